"""Psychometric-function fits by binomial maximum likelihood (Wichmann & Hill 2001).

Model, in psignifit 4's conventions::

    psi(x) = guess + (1 - guess - lapse) * F(x; threshold, width)

``threshold`` is where F = 0.5 and ``width`` is the distance between F = 0.05
and F = 0.95. Sigmoids (``SIGMOIDS``):

- ``"logistic"``: F = 1 / (1 + exp(-(x - threshold) / s)), s = width / (2 ln 19).
- ``"gauss"``: cumulative normal, sigma = width / (2 Phi^-1(0.95)).
- ``"gumbel"``: cumulative Gumbel (log-Weibull), F = 1 - exp(-exp(z)),
  z = c (x - threshold) + ln(ln 2), c = (ln(-ln 0.05) - ln(-ln 0.95)) / width.
- ``"weibull"``: the Gumbel applied to log x, as psignifit does, with one
  difference: ``threshold`` is reported in x units (F(threshold) = 0.5) while
  ``width`` stays in log-x units. Needs x >= 0; F(0) = 0.

Every sigmoid is a standard CDF G evaluated at z = a (u - t) / width + b, with
u = x (u = log x, t = log threshold for the Weibull) and the constants a, b
set so that G(b) = 0.5 and z(F=0.95) - z(F=0.05) = a.

Numpy and scipy only: no Qt, no torch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special

SIGMOIDS = ("logistic", "gauss", "weibull", "gumbel")

WIDTH_ALPHA = 0.05  # width spans F = WIDTH_ALPHA ... 1 - WIDTH_ALPHA
BOUNDED_LAPSE_MAX = 0.06
FREE_RATE_MAX = 0.5  # upper bound of a free guess rate, or of a "free" lapse rate

_PSI_EPS = 1e-12
# Beyond |z| = 40 every G is within 1e-17 of 0 or 1; clipping avoids overflow in the Gumbel.
_Z_LIMIT = 40.0
# Bounds of the search in units of the stimulus range: widths far outside it are not identifiable.
_WIDTH_BOUNDS = (0.005, 5.0)
_WIDTH_GRID = (0.05, 2.0)
_THRESHOLD_MARGIN = 0.5
_GRID_THRESHOLDS = 11
_GRID_WIDTHS = 8


@dataclass(frozen=True)
class _StandardCdf:
    cdf: Callable[[np.ndarray], np.ndarray]
    pdf: Callable[[np.ndarray], np.ndarray]
    quantile: Callable[[np.ndarray], np.ndarray]

    @property
    def scale(self) -> float:
        return float(self.quantile(1 - WIDTH_ALPHA) - self.quantile(WIDTH_ALPHA))

    @property
    def offset(self) -> float:
        return float(self.quantile(0.5))


def _logistic_pdf(z):
    f = special.expit(z)
    return f * (1 - f)


_LOGISTIC = _StandardCdf(special.expit, _logistic_pdf, special.logit)
_GAUSS = _StandardCdf(special.ndtr, lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi), special.ndtri)
_GUMBEL = _StandardCdf(
    lambda z: -np.expm1(-np.exp(z)),
    lambda z: np.exp(z - np.exp(z)),
    lambda p: np.log(-np.log1p(-p)),
)
_STANDARD = {"logistic": _LOGISTIC, "gauss": _GAUSS, "gumbel": _GUMBEL, "weibull": _GUMBEL}


def _check_sigmoid(sigmoid: str) -> _StandardCdf:
    if sigmoid not in _STANDARD:
        raise ValueError(f"unknown sigmoid {sigmoid!r}; choose one of {', '.join(SIGMOIDS)}")
    return _STANDARD[sigmoid]


def sigmoid_cdf(sigmoid: str, x, threshold: float, width: float) -> np.ndarray:
    """F(x) of the named sigmoid; for the Weibull, x <= 0 gives 0."""
    standard = _check_sigmoid(sigmoid)
    x = np.asarray(x, dtype=float)
    if sigmoid == "weibull":
        positive = x > 0
        u = np.log(np.where(positive, x, 1.0))
        f = standard.cdf(standard.scale * (u - np.log(threshold)) / width + standard.offset)
        return np.where(positive, f, 0.0)
    return standard.cdf(standard.scale * (x - threshold) / width + standard.offset)


def sigmoid_inverse(sigmoid: str, f, threshold: float, width: float) -> np.ndarray:
    """x at which the named sigmoid reaches F = f; f = 0 and 1 give -inf and inf (0 and inf for the Weibull)."""
    standard = _check_sigmoid(sigmoid)
    with np.errstate(divide="ignore"):
        z = standard.quantile(np.asarray(f, dtype=float))
    if sigmoid == "weibull":
        return np.exp(np.log(threshold) + (z - standard.offset) * width / standard.scale)
    return threshold + (z - standard.offset) * width / standard.scale


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
        self.standard = _STANDARD[sigmoid]
        self.a = self.standard.scale
        self.b = self.standard.offset
        finite_u = u[np.isfinite(u)]
        lo, hi = float(finite_u.min()), float(finite_u.max())
        span = hi - lo
        self.grid_thresholds = np.linspace(lo, hi, _GRID_THRESHOLDS)
        self.grid_log_widths = np.log(np.geomspace(_WIDTH_GRID[0] * span, _WIDTH_GRID[1] * span, _GRID_WIDTHS))

        # Parameter vector: threshold (u units), log width, guess, lapse.
        self.template = np.array([np.nan, np.nan, 0.0, 0.0])
        bounds = [
            (lo - _THRESHOLD_MARGIN * span, hi + _THRESHOLD_MARGIN * span),
            (np.log(_WIDTH_BOUNDS[0] * span), np.log(_WIDTH_BOUNDS[1] * span)),
        ]
        free = [0, 1]
        if guess is None:
            free.append(2)
            bounds.append((0.0, FREE_RATE_MAX))
        else:
            self.template[2] = guess
        if isinstance(lapse, str):
            free.append(3)
            bounds.append((0.0, BOUNDED_LAPSE_MAX if lapse == "bounded" else FREE_RATE_MAX))
        else:
            self.template[3] = lapse
        self.free = np.array(free)
        self.bounds = bounds
        self.guess_free = guess is None
        self.lapse_start = min(0.02, bounds[-1][1]) if isinstance(lapse, str) else lapse

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
            guess = float(np.clip(k[lowest] / self.n[lowest], 0.0, FREE_RATE_MAX))
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
        return best_params

    def deviance(self, params: np.ndarray, k: np.ndarray) -> float:
        psi = self.psi(params)
        misses = self.n - k
        # xlogy makes 0 * log 0 = 0 at levels with no hits or no misses.
        return float(2 * np.sum(special.xlogy(k, k / (self.n * psi))
                                + special.xlogy(misses, misses / (self.n * (1 - psi)))))


def _to_u(sigmoid: str, x: np.ndarray) -> np.ndarray:
    if sigmoid != "weibull":
        return x
    with np.errstate(divide="ignore"):
        return np.log(x)  # x = 0 becomes -inf, where F = 0


def _check_rates(guess, lapse) -> None:
    if guess is not None and not (isinstance(guess, numbers.Real) and 0 <= guess < 1):
        raise ValueError(f"guess must be None (free) or a number in [0, 1), got {guess!r}")
    if isinstance(lapse, str):
        if lapse not in ("bounded", "free"):
            raise ValueError(f"lapse must be 'bounded', 'free' or a number in [0, 1), got {lapse!r}")
    elif not (isinstance(lapse, numbers.Real) and 0 <= lapse < 1):
        raise ValueError(f"lapse must be 'bounded', 'free' or a number in [0, 1), got {lapse!r}")
    # psi must stay increasing: guess + lapse < 1 over the whole search range.
    guess_max = FREE_RATE_MAX if guess is None else guess
    lapse_max = {"bounded": BOUNDED_LAPSE_MAX, "free": FREE_RATE_MAX}.get(lapse, lapse)
    both_fixed = guess is not None and not isinstance(lapse, str)
    if guess_max + lapse_max > 1 or (both_fixed and guess + lapse == 1):
        raise ValueError(f"guess + lapse must stay below 1, but can reach {guess_max} + {lapse_max}")


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


def _to_x_threshold(sigmoid: str, threshold_u):
    return np.exp(threshold_u) if sigmoid == "weibull" else threshold_u


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

    ``guess``: a number fixes the guess rate (e.g. 1/K for K classes); None fits it in [0, 0.5].
    ``lapse``: "bounded" fits it in [0, 0.06], "free" in [0, 0.5], a number fixes it.
    ``n_correct`` may be fractional. Levels with no trials are ignored. Raises
    ValueError on malformed data or data without any (in)correct response.
    """
    problem, k = _prepare(x, n_correct, n_trials, sigmoid, guess, lapse)
    return _make_fit(problem, sigmoid, problem.fit(k), k)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_fit(x, correct_matrix, *, sigmoid: str = "logistic", guess: float | None = 0.1,
                  lapse: str | float = "bounded", n_boot: int = 200, seed: int = 0, gof_samples: int = 200,
                  return_samples: bool = False) -> PsychometricFit | tuple[PsychometricFit, BootstrapSamples]:
    """Fit with 95% bootstrap intervals and a Monte-Carlo goodness-of-fit p-value.

    ``correct_matrix`` (n_items, n_levels), 0/1: whether item i was classified as the
    target at level j. The bootstrap resamples items (rows) with replacement, because
    the same items appear at every level, and reports percentile intervals of threshold
    and width (None when ``n_boot`` is 0). The p-value is the fraction of deviances of
    data simulated from the fitted psi (same trials per level) that reach the observed
    deviance (None when ``gof_samples`` is 0).

    With ``return_samples=True`` returns ``(fit, BootstrapSamples)``; pass the samples of
    two conditions fitted with the same ``seed`` and items to ``threshold_shift`` for a
    paired interval.
    """
    matrix = np.asarray(correct_matrix)
    if matrix.ndim != 2:
        raise ValueError(f"correct_matrix must be 2-D (n_items, n_levels), got shape {matrix.shape}")
    matrix = matrix.astype(float)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("correct_matrix contains NaN or infinite values")
    if not np.all((matrix == 0) | (matrix == 1)):
        raise ValueError("correct_matrix must hold only 0/1 (or bool) values")
    n_items, n_levels = matrix.shape
    if n_items == 0:
        raise ValueError("correct_matrix has no items")
    if np.size(x) != n_levels:
        raise ValueError(f"x has {np.size(x)} levels but correct_matrix has {n_levels} columns")
    if n_boot < 0 or gof_samples < 0:
        raise ValueError("n_boot and gof_samples must be non-negative")

    problem, k = _prepare(x, matrix.sum(axis=0), np.full(n_levels, n_items), sigmoid, guess, lapse)
    params = problem.fit(k)
    # Separate streams keep the item resamples identical across calls with the same seed,
    # whatever gof_samples is, so that bootstraps of two conditions stay paired.
    boot_rng, gof_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    # A resample is a count of how often each item is drawn; its correct counts follow by a product.
    weights = boot_rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot)
    boot_params = np.array([problem.fit(k_boot, (params,), grid_count=1) for k_boot in weights @ matrix])
    boot_params = boot_params.reshape(n_boot, 4)
    samples = BootstrapSamples(
        threshold=_to_x_threshold(sigmoid, boot_params[:, 0]),
        width=np.exp(boot_params[:, 1]),
        guess=boot_params[:, 2],
        lapse=boot_params[:, 3],
        seed=seed,
        n_items=n_items,
    )

    p_value = None
    if gof_samples:
        observed = problem.deviance(params, k)
        simulated = gof_rng.binomial(n_items, problem.psi(params), size=(gof_samples, n_levels)).astype(float)
        deviances = np.array([problem.deviance(problem.fit(k_sim, (params,), grid_count=1), k_sim)
                              for k_sim in simulated])
        p_value = float(np.mean(deviances >= observed))

    fit = _make_fit(
        problem, sigmoid, params, k,
        threshold_ci=_interval(samples.threshold) if n_boot else None,
        width_ci=_interval(samples.width) if n_boot else None,
        p_value=p_value,
    )
    return (fit, samples) if return_samples else fit


def threshold_shift(fit_k: PsychometricFit, fit_0: PsychometricFit,
                    boot_k: BootstrapSamples | np.ndarray | None = None,
                    boot_0: BootstrapSamples | np.ndarray | None = None) -> tuple[float, tuple[float, float] | None]:
    """Threshold shift fit_k.threshold - fit_0.threshold and its 95% percentile interval.

    ``boot_k``/``boot_0`` are ``BootstrapSamples`` (or arrays of bootstrap thresholds)
    of equal length; the interval is taken over their element-wise differences, which
    is a paired bootstrap when both come from ``bootstrap_fit`` with the same seed on
    the same items. Without samples the interval is None.
    """
    shift = fit_k.threshold - fit_0.threshold
    if boot_k is None and boot_0 is None:
        return shift, None
    if boot_k is None or boot_0 is None:
        raise ValueError("threshold_shift needs bootstrap samples for both fits, or for neither")
    thresholds_k = np.asarray(boot_k.threshold if isinstance(boot_k, BootstrapSamples) else boot_k, dtype=float)
    thresholds_0 = np.asarray(boot_0.threshold if isinstance(boot_0, BootstrapSamples) else boot_0, dtype=float)
    if thresholds_k.shape != thresholds_0.shape or thresholds_k.size == 0:
        raise ValueError(f"bootstrap samples must be non-empty and of equal length, "
                         f"got {thresholds_k.size} and {thresholds_0.size}")
    return shift, _interval(thresholds_k - thresholds_0)
