"""Counter-based noise stimuli from pluggable sources.

Block ``b`` of a run is a pure function of ``(source, seed, b)``: a run can be
resumed, split across workers, or regenerated for a later analysis without
storing any noise. Noise is drawn in pixel space ([0, 1] for images); the
model wrapper applies the model's own normalisation.

A source is a frozen dataclass whose parameters are declared with
:func:`params.param` (so the CLI and the panels offer them) and registered
in NOISE_SOURCES under its kind. Array parameters (a structured source's
basis, say) are returned by ``arrays()`` and stored in the session beside the
run; ``from_dict(data, arrays)`` gets them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .params import config_to_dict, param, params


def block_seed(seed: int, block: int) -> int:
    """A well-mixed 63-bit seed for block ``block`` of the run seeded ``seed``.

    SeedSequence hashes the pair, so neighbouring blocks and neighbouring
    seeds give unrelated streams (plain ``seed + block`` would overlap runs).
    """
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be non-negative, got seed={seed}, block={block}")
    state = np.random.SeedSequence([int(seed), int(block)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def block_generator(seed: int, block: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of block ``block``, on ``device``.

    The generator lives on the device so GPU runs never copy noise across the
    bus; CPU and CUDA streams therefore differ, and a session records the
    device type alongside the seed.
    """
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(block_seed(seed, block))
    return generator


class NoiseSource:
    """Base of noise sources: ``block(seed, b, size, shape, device)`` draws block b."""

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def block(self, seed: int, block: int, block_size: int, shape: tuple[int, ...],
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Block ``block`` of the stream: ``(block_size, *shape)`` on ``device``."""
        return self.draw(block_generator(seed, block, device), (block_size, *shape), torch.device(device), dtype)

    def draw(self, generator: torch.Generator, size: tuple[int, ...], device: torch.device,
             dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    @property
    def expected_mean(self) -> float:
        """Mean of one pixel; STA and bias maps subtract it."""
        raise NotImplementedError

    @property
    def expected_variance(self) -> float:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"kind": self.kind, **config_to_dict(self)}

    def arrays(self) -> dict[str, np.ndarray]:
        """Array parameters, stored in the session beside the run (none for white noise)."""
        return {}

    @classmethod
    def from_dict(cls, data: dict, arrays: dict[str, np.ndarray] | None = None) -> "NoiseSource":
        return cls(**{p.name: data[p.key] for p in params(cls) if p.key in data})


def _check_range(low: float, high: float) -> None:
    if not high > low:
        raise ValueError(f"noise range is empty: low={low} must be below high={high}")


_LOW = dict(label="Low", help="lowest pixel value", cli="--noise-low", low=-10, high=10, step=0.05,
            group="Noise stimulus")
_HIGH = dict(label="High", help="highest pixel value", cli="--noise-high", low=-10, high=10, step=0.05,
             group="Noise stimulus")


@dataclass(frozen=True)
class UniformNoise(NoiseSource):
    """White noise, each pixel U[low, high] independently: the paper's default (U[0, 1])."""

    kind: ClassVar[str] = "uniform"
    label: ClassVar[str] = "Uniform U[low, high]"
    low: float = param(0.0, **_LOW)
    high: float = param(1.0, **_HIGH)

    def __post_init__(self) -> None:
        _check_range(self.low, self.high)

    def draw(self, generator, size, device, dtype) -> torch.Tensor:
        out = torch.rand(size, generator=generator, device=device, dtype=dtype)
        if self.low != 0.0 or self.high != 1.0:
            out.mul_(self.high - self.low).add_(self.low)
        return out

    @property
    def expected_mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def expected_variance(self) -> float:
        return (self.high - self.low) ** 2 / 12.0


@dataclass(frozen=True)
class GaussianNoise(NoiseSource):
    """White Gaussian noise N(mean, std²) per pixel, optionally clipped to [low, high]."""

    kind: ClassVar[str] = "gaussian"
    label: ClassVar[str] = "Gaussian N(mean, std²)"
    mean: float = param(0.5, "Mean", "Gaussian mean", cli="--noise-mean", low=-10, high=10, step=0.05,
                        group="Noise stimulus")
    std: float = param(0.25, "Std", "Gaussian standard deviation", cli="--noise-std", low=0.001, high=10,
                       step=0.05, group="Noise stimulus")
    # Clipping keeps samples valid pixels.
    clip: bool = param(False, "Clip to [low, high]", "clip Gaussian noise to [low, high]", cli="--clip",
                       group="Noise stimulus")
    low: float = param(0.0, shown_if="clip", **_LOW)
    high: float = param(1.0, shown_if="clip", **_HIGH)

    def __post_init__(self) -> None:
        _check_range(self.low, self.high)
        if not self.std > 0:
            raise ValueError(f"Gaussian noise needs std > 0, got {self.std}")

    def draw(self, generator, size, device, dtype) -> torch.Tensor:
        out = torch.randn(size, generator=generator, device=device, dtype=dtype)
        out.mul_(self.std).add_(self.mean)
        if self.clip:
            out.clamp_(self.low, self.high)
        return out

    @property
    def expected_mean(self) -> float:
        return self.mean  # clipping a symmetric window keeps it only approximately

    @property
    def expected_variance(self) -> float:
        return self.std**2


NOISE_SOURCES: dict[str, type[NoiseSource]] = {source.kind: source for source in (UniformNoise, GaussianNoise)}
NOISE_KINDS = tuple(NOISE_SOURCES)


def noise_source(kind: str = "uniform", **values) -> NoiseSource:
    """The source ``kind`` with the given parameters (others at their defaults)."""
    if kind not in NOISE_SOURCES:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    return NOISE_SOURCES[kind](**values)


def noise_from_dict(data: dict, arrays: dict[str, np.ndarray] | None = None) -> NoiseSource:
    """A source from its ``to_dict()`` (keys of other sources' parameters are ignored)."""
    kind = data.get("kind", "uniform")
    if kind not in NOISE_SOURCES:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    return NOISE_SOURCES[kind].from_dict(data, arrays)


def log_spaced_checkpoints(first: int = 1000, up_to: int = 10**9) -> list[int]:
    """Sample counts 1e3, 1e4, ... at which convergence maps are recorded."""
    if first <= 0:
        raise ValueError("first checkpoint must be positive")
    return [first * 10**i for i in range(int(math.log10(up_to / first)) + 1)]
