"""Statistics every experiment shares: the Wilson interval of a proportion and the γ grids.

γ is the signal fraction of a stimulus t = γ·s + (1 − γ)·n. Two grids, for two meanings:
:func:`noise_to_image_gammas` spans the whole way from pure noise to the clean image (a psychometric
curve's x axis, declared by its number of points), :func:`gammas_between` a chosen range of it (the
conditions of a two-class run, where only the hard γ's are worth trials).
"""

from __future__ import annotations

import numpy as np

Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson_interval(successes, trials, z: float = Z_95):
    """Wilson score interval (low, high) of the proportions ``successes / trials``, elementwise.

    Clipped to [0, 1] (k = 0 gives low = 0, k = n high = 1 exactly); NaN where there are no trials or the
    count is NaN. Arrays broadcast; scalars in give numpy float scalars out.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(n > 0, n, np.nan)
        p = k / n
        z2 = z * z
        denominator = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denominator
        half = z * np.sqrt(np.clip(p * (1 - p), 0, None) / n + z2 / (4 * n * n)) / denominator
    # At k = 0 and k = n the bounds are exactly 0 and 1; rounding would leave them a hair off.
    low = np.where((k <= 0) & (n > 0), 0.0, np.clip(centre - half, 0, 1))
    high = np.where((k >= n) & (n > 0), 1.0, np.clip(centre + half, 0, 1))
    return low[()], high[()]


def gammas_between(gamma_min: float, gamma_max: float, points: int) -> tuple[float, ...]:
    """``points`` γ's evenly spaced from ``gamma_min`` to ``gamma_max`` (one point: γ_min), rounded to 10
    decimals so that a grid written to a file reads back equal."""
    return tuple(float(g) for g in np.round(np.linspace(gamma_min, gamma_max, points), 10))


def noise_to_image_gammas(points: int) -> tuple[float, ...]:
    """``points`` γ's evenly spaced from 0 (pure noise) to 1 (clean image)."""
    if points < 2:
        raise ValueError(f"the γ grid needs at least 2 points, got {points}")
    return gammas_between(0.0, 1.0, points)


__all__ = ["Z_95", "gammas_between", "noise_to_image_gammas", "wilson_interval"]
