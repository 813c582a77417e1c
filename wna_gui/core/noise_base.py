"""What every noise source builds on: counter-based random streams and the NoiseSource base.

Block ``b`` of a run is a pure function of ``(source, seed, b)``; see core.noise
(the sources and their registry) for the generators' rules. Structured sources
(core.structured_noise) and modules that only need the streams (sleep,
distortions) import this module, so none of them imports the registry that
lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch

from .params import config_to_dict, params


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


# --- the counter-based generator: lowbias32 (C. Wellons' 32-bit integer hash) of an affine map of the index ---

_MIX_1, _MIX_2 = 0x7FEB352D, 0x846CA68B
GENERATORS = {"counter": "counter-based: the same on every device",
              "torch": "torch generator of the device (sessions of wna-gui 0.1)"}


def _int32(value: int) -> int:
    """A uint32 constant as the int32 with the same bits (torch has no uint32 arithmetic)."""
    return value - (1 << 32) if value >= (1 << 31) else value


def counter_words(seed: int, block: int, n: int, device: torch.device | str = "cpu", stream: int = 0,
                  index: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` pseudo-random 32-bit words (int32 holding uint32 bits) of block ``block``, identical on every device.

    Word i is lowbias32(a·i + c) with (a odd, c) drawn from (seed, block,
    stream) by SeedSequence. Only wrapping 32-bit multiplies, adds, xors and
    masked shifts are used: the same bits on CPU and GPU.
    """
    if n >= 2**31:
        raise ValueError(f"a noise block holds at most 2^31 - 1 values, got {n:,}; use smaller blocks")
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be non-negative, got seed={seed}, block={block}")
    multiplier, offset = (int(k) for k in np.random.SeedSequence([int(seed), int(block), int(stream)])
                          .generate_state(2, np.uint32))
    # ``index``: only the words at these positions of the block (the same values; the rest are never computed).
    x = torch.arange(n, dtype=torch.int32, device=device) if index is None else \
        index.to(device=device, dtype=torch.int32)
    x *= _int32(multiplier | 1)
    x += _int32(offset)
    # lowbias32; ">>" is arithmetic on int32, so each shift is masked to make it logical.
    x ^= (x >> 16) & 0xFFFF
    x *= _int32(_MIX_1)
    x ^= (x >> 15) & 0x1FFFF
    x *= _int32(_MIX_2)
    x ^= (x >> 16) & 0xFFFF
    return x


def counter_uniform(seed: int, block: int, n: int, device: torch.device | str = "cpu",
                    index: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` float32 values in [0, 1) from the top 24 bits of the counter words (torch.rand's resolution)."""
    words = counter_words(seed, block, n, device, index=index)
    return ((words >> 8) & 0xFFFFFF).to(torch.float32).mul_(1.0 / 16777216.0)


# Acklam's rational approximation of the normal quantile (relative error < 1.2e-9), in float64.
_ACKLAM_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
             -3.066479806614716e+01, 2.506628277459239e+00)
_ACKLAM_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
             -1.328068155288572e+01)
_ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
             4.374664141464968e+00, 2.938163982698783e+00)
_ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
_P_LOW = 0.02425
_LN2 = 0.6931471805599453


def _horner(coefficients, x: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out.mul_(x).add_(c)  # two IEEE-rounded ops (no fused multiply-add): the same on every device
    return out


def _log(x: torch.Tensor) -> torch.Tensor:
    """Natural log of positive float64 values from +, ×, ÷ and the exponent bits only.

    torch.log differs between CPU and CUDA in the last bit; this does not.
    """
    mantissa, exponent = torch.frexp(x)  # x = m·2^e, m in [0.5, 1)
    s = (mantissa - 1.0) / (mantissa + 1.0)  # |s| ≤ 1/3: log m = 2·atanh(s)
    s2 = s * s
    series = torch.full_like(s, 1.0 / 27.0)
    for k in range(25, 0, -2):  # 2·(s + s³/3 + … + s²⁷/27): error < 1e-16 for |s| ≤ 1/3
        series = series * s2 + 1.0 / k
    return exponent.to(torch.float64) * _LN2 + 2.0 * s * series


def counter_normal(seed: int, block: int, n: int, device: torch.device | str = "cpu",
                   index: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` standard normal float32 values: the normal quantile of (word + ½)/2³² (|z| ≤ 6.2).

    Acklam's rational functions in float64, with a log built from correctly
    rounded operations in the tails: every device gives the same bits.
    """
    words = counter_words(seed, block, n, device, index=index)
    # float64: Acklam's coefficients cancel, float32 would lose ~3 digits near the tails.
    q = (words.to(torch.int64) & 0xFFFFFFFF).to(torch.float64).add_(0.5).mul_(1.0 / 4294967296.0).sub_(0.5)
    r = q * q
    z = _horner(_ACKLAM_A, r).mul_(q).div_(_horner(_ACKLAM_B, r).mul_(r).add_(1.0)).to(torch.float32)
    tail = torch.nonzero((r > (0.5 - _P_LOW) ** 2).flatten()).flatten()
    if tail.numel():
        exact = ((words[tail].to(torch.int64) & 0xFFFFFFFF).to(torch.float64) + 0.5) * (1.0 / 4294967296.0)
        lower = torch.where(exact < 0.5, exact, 1.0 - exact)  # exact: 1 − p is exact for p in (0.5, 1)
        t = torch.sqrt(-2.0 * _log(lower))
        zt = _horner(_ACKLAM_C, t) / (_horner(_ACKLAM_D, t) * t + 1.0)
        z[tail] = torch.where(exact < 0.5, zt, -zt).to(torch.float32)
    return z


class NoiseSource:
    """Base of noise sources: ``block(seed, b, size, shape, device)`` draws block b.

    A source's ``generator`` (a declared param) picks the bits: ``counter``
    (device-independent) or ``torch`` (the device's torch generator).
    """

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    generator: str  # each source's declared param; an annotation only, so a source without it has none

    def block(self, seed: int, block: int, block_size: int, shape: tuple[int, ...],
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Block ``block`` of the stream: ``(block_size, *shape)`` on ``device``."""
        size = (block_size, *shape)
        device = torch.device(device)
        if self.generator == "counter":
            n = int(np.prod(size))
            raw = counter_normal if self.draws_normal else counter_uniform
            return self.shape_values(raw(seed, block, n, device).reshape(size).to(dtype))
        generator = block_generator(seed, block, device)
        draw = torch.randn if self.draws_normal else torch.rand
        return self.shape_values(draw(size, generator=generator, device=device, dtype=dtype))

    draws_normal: ClassVar[bool] = False  # standard normal (True) or U[0, 1) (False) values to start from

    def block_pixels(self, seed: int, block: int, block_size: int, shape: tuple[int, ...], pixels,
                     device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``block(...)`` at the flat per-image positions ``pixels`` only: ``(block_size, len(pixels))``, the same
        values. The counter generator draws just those (a receptive-field crop costs its own pixels, not the image's)."""
        device = torch.device(device)
        pixels = torch.as_tensor(pixels, dtype=torch.int64, device=device)
        if getattr(self, "generator", None) != "counter":
            return self.block(seed, block, block_size, shape, device, dtype).reshape(block_size, -1)[:, pixels]
        d = int(np.prod(shape))
        index = (torch.arange(block_size, dtype=torch.int64, device=device)[:, None] * d + pixels[None, :]).flatten()
        raw = counter_normal if self.draws_normal else counter_uniform
        values = raw(seed, block, block_size * d, device, index=index).reshape(block_size, len(pixels)).to(dtype)
        return self.shape_values(values)

    def shape_values(self, values: torch.Tensor) -> torch.Tensor:
        """Turn U[0, 1) or N(0, 1) values (in place) into this source's noise."""
        raise NotImplementedError

    @property
    def device_independent(self) -> bool:
        return self.generator == "counter"

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
        # A record without a generator predates the counter-based one: its noise came from torch's.
        return cls(**{"generator": "torch", **{p.name: data[p.key] for p in params(cls) if p.key in data}})


# A fixed set of noise images (a run measured once over "its" noise, not streamed in batches) is drawn in blocks
# of this size: image i is image i % FIXED_NOISE_BLOCK of block i // FIXED_NOISE_BLOCK, whatever the batch size.
FIXED_NOISE_BLOCK = 1000


def fixed_noise_blocks(noise: NoiseSource, seed: int, samples: int, shape: tuple[int, ...], device
                       ) -> Iterator[torch.Tensor]:
    """The first ``samples`` images of ``noise`` seeded ``seed``, block by block (the last one cut short)."""
    for b in range(-(-samples // FIXED_NOISE_BLOCK)):
        yield noise.block(seed, b, FIXED_NOISE_BLOCK, shape, device)[:samples - b * FIXED_NOISE_BLOCK]
