"""Counter-based white-noise stimuli.

Block ``b`` of a run is a pure function of ``(seed, b)``: a run can be resumed,
split across workers, or regenerated for a later analysis without storing any
noise. Noise is drawn in pixel space ([0, 1] for images); the model wrapper
applies the model's own normalisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

NOISE_KINDS = ("uniform", "gaussian")


@dataclass(frozen=True)
class NoiseSpec:
    """What noise to draw. ``uniform`` is the paper's default (U[0, 1])."""

    kind: str = "uniform"
    low: float = 0.0
    high: float = 1.0
    mean: float = 0.5
    std: float = 0.25
    # Gaussian only: clip to [low, high] so samples stay valid pixels.
    clip: bool = False

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {self.kind!r}; expected one of {', '.join(NOISE_KINDS)}")
        if not self.high > self.low:
            raise ValueError(f"noise range is empty: low={self.low} must be below high={self.high}")
        if self.kind == "gaussian" and not self.std > 0:
            raise ValueError(f"Gaussian noise needs std > 0, got {self.std}")

    @property
    def expected_mean(self) -> float:
        """Mean of one pixel; STA and bias maps subtract it."""
        if self.kind == "uniform":
            return 0.5 * (self.low + self.high)
        return self.mean  # clipping a symmetric window keeps it only approximately

    @property
    def expected_variance(self) -> float:
        if self.kind == "uniform":
            return (self.high - self.low) ** 2 / 12.0
        return self.std**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NoiseSpec":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def block_seed(seed: int, block: int) -> int:
    """A well-mixed 63-bit seed for block ``block`` of the run seeded ``seed``.

    SeedSequence hashes the pair, so neighbouring blocks and neighbouring
    seeds give unrelated streams (plain ``seed + block`` would overlap runs).
    """
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be non-negative, got seed={seed}, block={block}")
    state = np.random.SeedSequence([int(seed), int(block)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def noise_block(
    spec: NoiseSpec,
    seed: int,
    block: int,
    block_size: int,
    shape: tuple[int, ...],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Block ``block`` of the noise stream: ``(block_size, *shape)`` on ``device``.

    The generator lives on ``device`` so GPU runs never copy noise across the
    bus; CPU and CUDA streams therefore differ, and the session records the
    device type alongside the seed.
    """
    device = torch.device(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(block_seed(seed, block))
    size = (block_size, *shape)
    if spec.kind == "uniform":
        out = torch.rand(size, generator=generator, device=device, dtype=dtype)
        if spec.low != 0.0 or spec.high != 1.0:
            out.mul_(spec.high - spec.low).add_(spec.low)
        return out
    out = torch.randn(size, generator=generator, device=device, dtype=dtype)
    out.mul_(spec.std).add_(spec.mean)
    if spec.clip:
        out.clamp_(spec.low, spec.high)
    return out


def log_spaced_checkpoints(first: int = 1000, up_to: int = 10**9) -> list[int]:
    """Sample counts 1e3, 1e4, ... at which convergence maps are recorded."""
    if first <= 0:
        raise ValueError("first checkpoint must be positive")
    return [first * 10**i for i in range(int(math.log10(up_to / first)) + 1)]
