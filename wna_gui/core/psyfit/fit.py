"""One curve: the fit's result types, the data checks and the scalar maximum-likelihood fitter.

``fit_psychometric`` fits one curve by multi-start bounded quasi-Newton (scipy's
TNC), independently of the vectorised fitter (core.psyfit.batch): each is the
other's reference in the tests, and the point estimates stored in sessions
come from this one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from .bounds import _GRID_THRESHOLDS, _GRID_WIDTHS, _WIDTH_GRID, _check_rates, _search_bounds
from .sigmoids import SHAPES, _PSI_EPS, _Z_LIMIT, _check_sigmoid, _to_u, _to_x_threshold, sigmoid_cdf


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


class _Problem:
    """One data layout (levels, trials per level, sigmoid, free parameters) that many
    count vectors are fitted against: the bootstrap and goodness-of-fit refits reuse it."""

    def __init__(self, u: np.ndarray, n: np.ndarray, sigmoid: str, guess, lapse):
        self.u = u
        self.n = n
        self.standard = SHAPES[sigmoid]
        self.a = self.standard.scale
        self.b = self.standard.offset
        finite_u = u[np.isfinite(u)]
        lo, hi = float(finite_u.min()), float(finite_u.max())
        span = hi - lo
        self.grid_thresholds = np.linspace(lo, hi, _GRID_THRESHOLDS)
        self.grid_log_widths = np.log(np.geomspace(_WIDTH_GRID[0] * span, _WIDTH_GRID[1] * span, _GRID_WIDTHS))

        # Parameter vector: threshold (u units), log width, guess, lapse.
        self.template = np.array([np.nan, np.nan, 0.0, 0.0])
        free = [0, 1]
        if guess is None:
            free.append(2)
        else:
            self.template[2] = guess
        if isinstance(lapse, str):
            free.append(3)
        else:
            self.template[3] = lapse
        self.free = np.array(free)
        self.bounds = [(float(low), float(high)) for low, high in _search_bounds(u, guess, lapse)[self.free]]
        self.guess_free = guess is None
        self.lapse_start = min(0.02, self.bounds[-1][1]) if isinstance(lapse, str) else lapse

    def _cdf_parts(self, threshold, log_width):
        """z, width and F at the levels (broadcasting over parameter arrays); z is clipped
        to keep the Gumbel's exp finite."""
        width = np.exp(log_width)
        z = np.minimum(np.maximum(self.a * (self.u - threshold) / width + self.b, -_Z_LIMIT), _Z_LIMIT)
        return z, width, self.standard.cdf(z)

    @staticmethod
    def _psi_from_f(f, guess, lapse):
        return np.minimum(np.maximum(guess + (1 - guess - lapse) * f, _PSI_EPS), 1 - _PSI_EPS)

    def psi(self, params: np.ndarray) -> np.ndarray:
        threshold, log_width, guess, lapse = params
        return self._psi_from_f(self._cdf_parts(threshold, log_width)[2], guess, lapse)

    def nll_and_grad(self, theta: np.ndarray, k: np.ndarray):
        params = self.template.copy()
        params[self.free] = theta
        threshold, log_width, guess, lapse = params
        z, width, f = self._cdf_parts(threshold, log_width)
        scale = 1 - guess - lapse
        psi = self._psi_from_f(f, guess, lapse)
        misses = self.n - k
        nll = -(k @ np.log(psi) + misses @ np.log1p(-psi))
        d_nll_d_psi = misses / (1 - psi) - k / psi
        d_nll_d_f = scale * self.standard.pdf(z) * d_nll_d_psi
        grad = np.array([
            -self.a / width * d_nll_d_f.sum(),
            (self.b - z) @ d_nll_d_f,
            (1 - f) @ d_nll_d_psi,
            -(f @ d_nll_d_psi),
        ])
        return nll, grad[self.free]

    def grid_starts(self, k: np.ndarray, count: int) -> list[np.ndarray]:
        """The ``count`` best (threshold, width) grid points, evaluated in one vectorised pass."""
        guess = self.template[2]
        if self.guess_free:
            lowest = np.argmin(self.u)
            guess = float(np.clip(k[lowest] / self.n[lowest], 0.0, self.bounds[2][1]))
        thresholds, log_widths = (a.reshape(-1, 1) for a in
                                  np.meshgrid(self.grid_thresholds, self.grid_log_widths, indexing="ij"))
        psi = self._psi_from_f(self._cdf_parts(thresholds, log_widths)[2], guess, self.lapse_start)
        nll = -(np.log(psi) @ k + np.log1p(-psi) @ (self.n - k))
        return [np.array([thresholds[i, 0], log_widths[i, 0], guess, self.lapse_start])
                for i in np.argsort(nll)[:count]]

    def fit(self, k: np.ndarray, extra_starts: tuple[np.ndarray, ...] = (), grid_count: int = 3) -> np.ndarray:
        """Best full parameter vector over several bounded quasi-Newton runs."""
        best_params, best_nll = None, np.inf
        for start in [*extra_starts, *self.grid_starts(k, grid_count)]:
            theta0 = np.clip(start[self.free], [b[0] for b in self.bounds], [b[1] for b in self.bounds])
            # TNC rather than L-BFGS-B: scipy >= 1.15's L-BFGS-B calls OpenBLAS, which can make
            # each of these tiny fits ~50x slower when its thread pool is active (scipy#22438).
            result = optimize.minimize(
                self.nll_and_grad, theta0, args=(k,), jac=True, method="TNC", bounds=self.bounds,
                options={"maxfun": 500},
            )
            if result.fun < best_nll:
                best_nll = result.fun
                best_params = self.template.copy()
                best_params[self.free] = result.x
        assert best_params is not None, "no start gave a finite fit"  # the clipped ψ keeps the NLL finite
        return best_params

    def deviance(self, params: np.ndarray, k: np.ndarray) -> float:
        psi = self.psi(params)
        misses = self.n - k
        # xlogy makes 0 * log 0 = 0 at levels with no hits or no misses.
        return float(2 * np.sum(special.xlogy(k, k / (self.n * psi))
                                + special.xlogy(misses, misses / (self.n * (1 - psi)))))


def _prepare(x, n_correct, n_trials, sigmoid: str, guess, lapse) -> tuple[_Problem, np.ndarray]:
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
    return _Problem(u, n, sigmoid, guess, lapse), k


def _make_fit(problem: _Problem, sigmoid: str, params: np.ndarray, k: np.ndarray, **uncertainty) -> PsychometricFit:
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
