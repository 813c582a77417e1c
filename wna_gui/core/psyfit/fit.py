"""One curve: the fit's result types, the data checks and the fit of one curve.

``fit_psychometric`` is the vectorised fitter (core.psyfit.batch) on a batch of one: one
optimiser serves single curves, resamples, simulations and joint fits, so they all reach
the same optimum. (Until issue 23 single curves had their own, scipy's TNC; on flat
likelihood ridges it stopped before the optimum the batch fitter reaches.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batch import _GRID_STARTS, _Batch, _deviance_terms, _grid_start, _Layout, _solve_starts
from .bounds import _check_rates, _search_bounds
from .sigmoids import _check_sigmoid, _to_u, _to_x_threshold, sigmoid_cdf


@dataclass(frozen=True)
class PsychometricFit:
    """Maximum-likelihood fit; ``threshold`` in x units, ``width`` as described in the module doc."""

    sigmoid: str
    threshold: float
    width: float
    guess: float
    lapse: float
    deviance: float
    n_levels: int
    threshold_ci: tuple[float, float] | None = None  # 95% bootstrap percentile interval
    width_ci: tuple[float, float] | None = None
    p_value: float | None = None  # Monte-Carlo goodness of fit of the deviance
    guess_ci: tuple[float, float] | None = None
    lapse_ci: tuple[float, float] | None = None

    def predict(self, x) -> np.ndarray:
        """psi(x), the probability of a target response."""
        f = sigmoid_cdf(self.sigmoid, x, self.threshold, self.width)
        return self.guess + (1 - self.guess - self.lapse) * f

    def to_dict(self) -> dict:
        return {
            "sigmoid": self.sigmoid,
            "threshold": self.threshold,
            "width": self.width,
            "guess": self.guess,
            "lapse": self.lapse,
            "deviance": self.deviance,
            "n_levels": self.n_levels,
            "threshold_ci": None if self.threshold_ci is None else list(self.threshold_ci),
            "width_ci": None if self.width_ci is None else list(self.width_ci),
            "p_value": self.p_value,
            "guess_ci": None if self.guess_ci is None else list(self.guess_ci),
            "lapse_ci": None if self.lapse_ci is None else list(self.lapse_ci),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PsychometricFit:
        def interval(value):
            return None if value is None else (float(value[0]), float(value[1]))

        return cls(
            sigmoid=str(data["sigmoid"]),
            threshold=float(data["threshold"]),
            width=float(data["width"]),
            guess=float(data["guess"]),
            lapse=float(data["lapse"]),
            deviance=float(data["deviance"]),
            n_levels=int(data["n_levels"]),
            threshold_ci=interval(data.get("threshold_ci")),
            width_ci=interval(data.get("width_ci")),
            p_value=None if data.get("p_value") is None else float(data["p_value"]),
            guess_ci=interval(data.get("guess_ci")),
            lapse_ci=interval(data.get("lapse_ci")),
        )


@dataclass(frozen=True)
class BootstrapSamples:
    """Per-resample estimates from ``bootstrap_fit(..., return_samples=True)``.

    Two calls with the same ``seed`` and the same number of items draw the same
    item resamples, so differences of their samples are paired.
    """

    threshold: np.ndarray
    width: np.ndarray
    guess: np.ndarray
    lapse: np.ndarray
    seed: int
    n_items: int


class _Curve:
    """One curve's layout (levels, trials per level, sigmoid, free parameters) as a one-condition batch of the
    vectorised fitter: the point estimate, the bootstrap and the goodness-of-fit refits all use it."""

    def __init__(self, u: np.ndarray, n: np.ndarray, sigmoid: str, guess, lapse):
        self.u = u
        self.n = n
        self.batch = _Batch(u, sigmoid, _Layout(1, _search_bounds(u, guess, lapse), guess, lapse))

    def fit(self, k: np.ndarray) -> np.ndarray:
        """Maximum-likelihood (threshold in u units, log width, guess, lapse) of the counts k (L,), or (B, 4)
        of B count vectors (B, L) at once (independent problems in one batch), the best of the coarse grid's
        best starts."""
        counts = np.atleast_2d(k)[:, None, :]
        starts = _grid_start(self.batch, counts, self.n, _GRID_STARTS)
        fitted = _solve_starts(self.batch, counts, self.n, starts)[0][:, 0]
        return fitted if k.ndim == 2 else fitted[0]

    def psi(self, params: np.ndarray) -> np.ndarray:
        return self.batch.psi(params[None, None])[0, 0]

    def deviance(self, params: np.ndarray, k: np.ndarray) -> float:
        return float(_deviance_terms(k, self.n, self.psi(params)).sum())


def _prepare(x, n_correct, n_trials, sigmoid: str, guess, lapse) -> tuple[_Curve, np.ndarray]:
    """Validated problem and its correct counts; levels without trials are dropped."""
    _check_sigmoid(sigmoid)
    _check_rates(guess, lapse)
    arrays = {name: np.asarray(v, dtype=float).ravel() for name, v in
              (("x", x), ("n_correct", n_correct), ("n_trials", n_trials))}
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise ValueError("x, n_correct and n_trials must have the same length, got "
                         + ", ".join(str(len(v)) for v in arrays.values()))
    for name, values in arrays.items():
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contains NaN or infinite values")
    x, k, n = arrays["x"], arrays["n_correct"], arrays["n_trials"]
    if np.any(n < 0) or np.any(k < 0):
        raise ValueError("n_correct and n_trials must be non-negative")
    if np.any(k > n):
        raise ValueError("n_correct exceeds n_trials at some level")
    if sigmoid == "weibull" and np.any(x < 0):
        raise ValueError("the weibull sigmoid needs stimulus levels x >= 0")
    used = n > 0
    if not np.any(used):
        raise ValueError("n_trials is zero at every level: nothing to fit")
    x, k, n = x[used], k[used], n[used]
    u = _to_u(sigmoid, x)
    if len(np.unique(u[np.isfinite(u)])) < 2:
        raise ValueError("need at least two distinct stimulus levels with trials"
                         + (" (and x > 0 for the weibull)" if sigmoid == "weibull" else ""))
    if np.all(k == 0):
        raise ValueError("no correct responses at any level: the psychometric function is undefined")
    if np.all(k == n):
        raise ValueError("every trial is correct at every level: the psychometric function is undefined")
    return _Curve(u, n, sigmoid, guess, lapse), k


def _make_fit(problem: _Curve, sigmoid: str, params: np.ndarray, k: np.ndarray, **uncertainty) -> PsychometricFit:
    return PsychometricFit(
        sigmoid=sigmoid,
        threshold=float(_to_x_threshold(sigmoid, params[0])),
        width=float(np.exp(params[1])),
        guess=float(params[2]),
        lapse=float(params[3]),
        deviance=problem.deviance(params, k),
        n_levels=len(k),
        **uncertainty,
    )


def fit_psychometric(x, n_correct, n_trials, *, sigmoid: str = "logistic", guess: float | None = 0.1,
                     lapse: str | float = "bounded") -> PsychometricFit:
    """Maximum-likelihood point estimate (no intervals, no p-value).

    ``guess``: a number fixes the guess rate (e.g. 1/K for K classes); None fits it in [0, 1 − lapse) (guess_max).
    ``lapse``: "bounded" fits it in [0, 0.06], "free" in [0, 0.5], a number fixes it.
    ``n_correct`` may be fractional. Levels with no trials are ignored. Raises
    ValueError on malformed data or data without any (in)correct response.
    """
    problem, k = _prepare(x, n_correct, n_trials, sigmoid, guess, lapse)
    return _make_fit(problem, sigmoid, problem.fit(k), k)


def _interval(samples) -> tuple[float, float]:
    """95% percentile interval (linear interpolation, as numpy's default) that tolerates infinite samples:
    an end that falls on or next to an infinite sample is that infinity."""
    values = np.sort(np.asarray(samples, dtype=float).ravel())
    ends = []
    for q in (0.025, 0.975):
        position = q * (len(values) - 1)
        below, above = int(np.floor(position)), int(np.ceil(position))
        low, high = values[below], values[above]
        if below == above or low == high:
            ends.append(float(low))
        elif not np.isfinite(low):
            ends.append(float(low))
        elif not np.isfinite(high):
            ends.append(float(high))
        else:
            ends.append(float(low + (high - low) * (position - below)))
    return ends[0], ends[1]
