"""Error consistency between observers: Cohen's κ on trial-by-trial correctness (Geirhos et al., NeurIPS 2020).

Two observers (networks, people) classify the same trials. Each trial is
scored correct or wrong for each. With accuracies p₁ and p₂, observers that
err independently agree (both right or both wrong) on a fraction

    c_exp = p₁·p₂ + (1 − p₁)·(1 − p₂)

of trials by chance alone. With c_obs the fraction on which they do agree,

    κ = (c_obs − c_exp) / (1 − c_exp)

is 0 for independent observers whatever their accuracies, 1 when they are
right and wrong on exactly the same trials, and negative when one tends to
be right where the other is wrong. κ is undefined (NaN) when c_exp = 1: two
observers that are both always right (or both always wrong) leave nothing to
be consistent about. Numpy only.
"""

from __future__ import annotations

import numpy as np


def error_consistency(correct_a, correct_b) -> tuple[float, float, float]:
    """(κ, c_obs, c_exp) of two observers' correctness on the same trials (bool or 0/1 arrays of one shape)."""
    a, b = np.asarray(correct_a, dtype=bool).ravel(), np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"the two observers saw different numbers of trials: {a.size} and {b.size}")
    if a.size == 0:
        raise ValueError("error consistency needs at least one trial")
    kappa, observed, expected = kappa_matrix(np.stack([a, b]))
    return float(kappa[0, 1]), float(observed[0, 1]), float(expected[0, 1])


def kappa_matrix(correct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """κ, c_obs and c_exp between every pair of M observers: ``correct`` (M, T) bool over the same T trials.

    Returns three (M, M) float arrays; κ is NaN where c_exp = 1. The diagonal
    holds each observer against itself (κ = 1 unless undefined).
    """
    x = np.asarray(correct, dtype=bool)
    if x.ndim != 2:
        raise ValueError(f"correctness must be (observers, trials), got shape {x.shape}")
    trials = x.shape[1]
    if trials == 0:
        raise ValueError("error consistency needs at least one trial")
    right = x.astype(np.float64)
    p = right.mean(axis=1)
    both_right = right @ right.T / trials
    # Both wrong = 1 − p_a − p_b + both right.
    observed = 2.0 * both_right + 1.0 - p[:, None] - p[None, :]
    expected = p[:, None] * p[None, :] + (1 - p[:, None]) * (1 - p[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected < 1.0 - 1e-12, (observed - expected) / (1.0 - expected), np.nan)
    # κ ≤ 1 exactly; rounding put the diagonal at 1 + 1e-16 on some counts.
    return np.minimum(kappa, 1.0), observed, expected
