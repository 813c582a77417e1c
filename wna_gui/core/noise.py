"""Counter-based noise stimuli from pluggable sources.

Block ``b`` of a run is a pure function of ``(source, seed, b)``: a run can be
resumed, split across workers, or regenerated for a later analysis without
storing any noise. Noise is drawn in pixel space ([0, 1] for images); the
model wrapper applies the model's own normalisation.

Two generators draw the bits. ``counter`` (the default) hashes each value's
index with keys from (seed, block) using plain integer tensor ops, so a block
is the same bit for bit on the CPU and on any CUDA device: a session continues
on any machine. ``torch`` seeds torch's generator of the run's device (sessions
of wna-gui 0.1 used it; their noise depends on the device type, which the
session records).

A source is a frozen dataclass whose parameters are declared with
:func:`params.param` (so the CLI and the panels offer them) and registered
in NOISE_SOURCES under its kind. Array parameters (a structured source's
basis, say) are returned by ``arrays()`` and stored in the session beside the
run; ``from_dict(data, arrays)`` gets them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .noise_base import (  # re-exported: the public noise API
    GENERATORS,
    NoiseSource,
    block_generator as block_generator,
    block_seed as block_seed,
    counter_normal as counter_normal,
    counter_uniform as counter_uniform,
    counter_words as counter_words,
)
from .params import NOISE_SOURCES, param
from .params import noise_from_dict as noise_from_dict  # re-exported
from .structured_noise import STRUCTURED_SOURCES


def _check_generator(generator: str) -> None:
    if generator not in GENERATORS:
        raise ValueError(f"unknown noise generator {generator!r}; use {' or '.join(GENERATORS)}")


def _check_range(low: float, high: float) -> None:
    if not high > low:
        raise ValueError(f"noise range is empty: low={low} must be below high={high}")


_LOW: dict[str, Any] = dict(label="Low", help="lowest pixel value", cli="--noise-low", low=-10, high=10,
                            step=0.05, group="Noise stimulus")
_HIGH: dict[str, Any] = dict(label="High", help="highest pixel value", cli="--noise-high", low=-10, high=10,
                             step=0.05, group="Noise stimulus")
_GENERATOR: dict[str, Any] = dict(
    label="Generator", help="counter-based: the same noise on every device, so a run continues on any machine; "
    "torch: the device's torch generator (how wna-gui 0.1 drew noise)",
    cli="--noise-generator", choices=GENERATORS, group="Noise stimulus")


@dataclass(frozen=True)
class UniformNoise(NoiseSource):
    """White noise, each pixel U[low, high] independently: the paper's default (U[0, 1])."""

    kind: ClassVar[str] = "uniform"
    label: ClassVar[str] = "Uniform U[low, high]"
    low: float = param(0.0, **_LOW)
    high: float = param(1.0, **_HIGH)
    generator: str = param("counter", **_GENERATOR)

    def __post_init__(self) -> None:
        _check_range(self.low, self.high)
        _check_generator(self.generator)

    def shape_values(self, values: torch.Tensor) -> torch.Tensor:
        if self.low != 0.0 or self.high != 1.0:
            values.mul_(self.high - self.low).add_(self.low)
        return values

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
    generator: str = param("counter", **_GENERATOR)
    draws_normal: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_range(self.low, self.high)
        _check_generator(self.generator)
        if not self.std > 0:
            raise ValueError(f"Gaussian noise needs std > 0, got {self.std}")

    def shape_values(self, values: torch.Tensor) -> torch.Tensor:
        values.mul_(self.std).add_(self.mean)
        if self.clip:
            values.clamp_(self.low, self.high)
        return values

    @property
    def expected_mean(self) -> float:
        return self.mean  # clipping a symmetric window keeps it only approximately

    @property
    def expected_variance(self) -> float:
        return self.std**2


# Every source, by kind. The dict lives in core.params, whose noise params read it (it is below this module).
_source: type[NoiseSource]
for _source in (UniformNoise, GaussianNoise, *STRUCTURED_SOURCES):
    NOISE_SOURCES[_source.kind] = _source
NOISE_KINDS = tuple(NOISE_SOURCES)


def register_noise_source(source: type[NoiseSource]) -> None:
    """Offer ``source`` wherever noise is chosen (a source defined outside this package)."""
    global NOISE_KINDS
    NOISE_SOURCES[source.kind] = source
    NOISE_KINDS = tuple(NOISE_SOURCES)


def noise_source(kind: str = "uniform", **values) -> NoiseSource:
    """The source ``kind`` with the given parameters (others at their defaults)."""
    if kind not in NOISE_SOURCES:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    return NOISE_SOURCES[kind](**values)


def log_spaced_checkpoints(first: int = 1000, up_to: int = 10**9) -> list[int]:
    """Sample counts 1e3, 1e4, ... at which convergence maps are recorded."""
    if first <= 0:
        raise ValueError("first checkpoint must be positive")
    return [first * 10**i for i in range(int(math.log10(up_to / first)) + 1)]
