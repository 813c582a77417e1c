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

What it offers:

- ``fit_psychometric``: one curve, the scalar fitter (multi-start bounded
  quasi-Newton; agrees with psignifit 4's maximum-likelihood estimates).
- ``bootstrap_fit``: one curve with item-bootstrap intervals and a Monte-Carlo
  goodness of fit; the resamples are refitted all at once by the vectorised
  fitter (``engine="batch"``) or one by one (``"scalar"``, the reference).
- ``fit_batch``: the vectorised fitter itself, many data sets of several
  conditions at once, with ``shared`` parameters (one width, guess or lapse
  for every condition; thresholds per condition), as Palamedes' multiple-
  condition fits do.
- ``analyse_conditions``: several conditions measured on the same items,
  fitted together under a model, with a paired item bootstrap, a Monte-Carlo
  goodness of fit and likelihood-ratio tests (``LRTest``) of equal thresholds,
  of each condition against a reference, and of the sharing itself.
- ``lr_test_batch``: the test of equal thresholds on many data sets (simulations).
- ``performance_threshold``: the x where psi itself reaches a level, with
  whether psi reaches it at all (its floor may be above, its top below).
- ``bound_flags``: the estimates stuck at a limit of the search, with why it
  matters (``BoundFlag``).

Numpy and scipy only: no Qt, no torch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special, stats

SIGMOIDS = ("logistic", "gauss", "weibull", "gumbel")

WIDTH_ALPHA = 0.05  # width spans F = WIDTH_ALPHA ... 1 - WIDTH_ALPHA
BOUNDED_LAPSE_MAX = 0.06
FREE_RATE_MAX = 0.5  # upper bound of a "free" lapse rate
# A free guess rate may reach just below 1 − the largest lapse: a network's floor under noise can be ≈0.9 (the
# bundled CNN calls 84% of noise "8"), so a fixed 0.5 cap would let the bound, not the data, set the fit.
GUESS_MARGIN = 0.01

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
            bounds.append((0.0, guess_max(lapse)))
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


# The free guess rate's upper limit of wna-gui 0.1's curve-by-curve fits (stored fits of that version used it).
LEGACY_GUESS_MAX = 0.5


def guess_max(lapse) -> float:
    """Upper limit of a free guess rate: the curve must still rise, so guess < 1 − the largest lapse allowed."""
    lapse_max = {"bounded": BOUNDED_LAPSE_MAX, "free": FREE_RATE_MAX}.get(lapse, lapse)
    return max(0.0, 1.0 - float(lapse_max) - GUESS_MARGIN)


def _check_rates(guess, lapse) -> None:
    if guess is not None and not (isinstance(guess, numbers.Real) and 0 <= guess < 1):
        raise ValueError(f"guess must be None (free) or a number in [0, 1), got {guess!r}")
    if isinstance(lapse, str):
        if lapse not in ("bounded", "free"):
            raise ValueError(f"lapse must be 'bounded', 'free' or a number in [0, 1), got {lapse!r}")
    elif not (isinstance(lapse, numbers.Real) and 0 <= lapse < 1):
        raise ValueError(f"lapse must be 'bounded', 'free' or a number in [0, 1), got {lapse!r}")
    # psi must stay increasing: guess + lapse < 1 over the whole search range.
    highest_guess = guess_max(lapse) if guess is None else guess
    lapse_max = {"bounded": BOUNDED_LAPSE_MAX, "free": FREE_RATE_MAX}.get(lapse, lapse)
    both_fixed = guess is not None and not isinstance(lapse, str)
    if guess is None and highest_guess <= 0:
        raise ValueError(f"guess + lapse must stay below 1, but a lapse of {lapse_max} leaves no room for a free guess")
    if highest_guess + lapse_max > 1 or (both_fixed and guess + lapse == 1):
        raise ValueError(f"guess + lapse must stay below 1, but can reach {highest_guess} + {lapse_max}")


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


# --- the vectorised fitter: many data sets, one or several conditions, in one numpy pass ---
#
# A *layout* says where each condition's (threshold, log width, guess, lapse) comes from: a
# parameter of its own, one shared with other conditions, or a fixed value. The batch fitter
# minimises the binomial negative log-likelihood of every problem of a batch at once by
# Fisher scoring with Levenberg-Marquardt damping (the Fisher information is never indefinite),
# with bound constraints handled by an active set (a parameter at a bound whose gradient points
# outwards is held there). Problems that converge leave the batch.

SHAREABLE = ("width", "guess", "lapse")  # parameters a joint fit may share across conditions
PARAMETERS = ("threshold", "width", "guess", "lapse")
_MAX_ITERATIONS = 200
_DECREMENT_TOLERANCE = 1e-10  # nats: a step predicted to gain less than this ends the search
_MU_START, _MU_MIN, _MU_MAX = 1e-3, 1e-12, 1e10
_GRID_CHUNK = 2_000_000  # elements per grid-start evaluation chunk (memory bound)
_GRID_STARTS = 3  # grid starts of a fit from nothing (the scalar fitter's number)


def _search_bounds(u: np.ndarray, guess, lapse) -> np.ndarray:
    """(4, 2) search bounds of (threshold in u units, log width, guess, lapse), as _Problem searches them."""
    finite = u[np.isfinite(u)]
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo
    lapse_max = BOUNDED_LAPSE_MAX if lapse == "bounded" else FREE_RATE_MAX
    return np.array([
        [lo - _THRESHOLD_MARGIN * span, hi + _THRESHOLD_MARGIN * span],
        [np.log(_WIDTH_BOUNDS[0] * span), np.log(_WIDTH_BOUNDS[1] * span)],
        [0.0, guess_max(lapse)] if guess is None else [guess, guess],
        [0.0, lapse_max] if isinstance(lapse, str) else [lapse, lapse],
    ], dtype=float)


class _Layout:
    """Where each of C conditions' four parameters comes from (see the section comment)."""

    def __init__(self, n_conditions: int, bounds: np.ndarray, guess, lapse, shared=(),
                 threshold_groups=None) -> None:
        every, one = np.arange(n_conditions), np.zeros(n_conditions, dtype=int)
        thresholds = every if threshold_groups is None else np.unique(np.asarray(threshold_groups),
                                                                        return_inverse=True)[1].ravel()
        self.labels = [
            thresholds,
            one if "width" in shared else every,
            None if guess is not None else (one if "guess" in shared else every),
            None if not isinstance(lapse, str) else (one if "lapse" in shared else every),
        ]
        fixed = [0.0, 0.0, 0.0 if guess is None else float(guess), 0.0 if isinstance(lapse, str) else float(lapse)]
        idx = np.full((n_conditions, 4), -1)
        lo, hi, offset = [], [], 0
        for p, labels in enumerate(self.labels):
            if labels is None:
                continue
            idx[:, p] = offset + labels
            groups = int(labels.max()) + 1
            lo += [bounds[p, 0]] * groups
            hi += [bounds[p, 1]] * groups
            offset += groups
        self.n_conditions, self.n_params = n_conditions, offset
        self.free = idx >= 0
        self.take = np.where(self.free, idx, 0)
        self.fixed = np.where(self.free, 0.0, np.broadcast_to(np.array(fixed), (n_conditions, 4)))
        self.lo, self.hi = np.array(lo), np.array(hi)
        scatter = np.zeros((n_conditions * 4, offset))
        rows = np.flatnonzero(self.free.ravel())
        scatter[rows, idx.ravel()[rows]] = 1.0
        self.scatter = scatter
        members = scatter.sum(axis=0)
        self.average = scatter / members
        # Every parameter belongs to one condition: the conditions can be fitted one by one.
        self.separable = bool(np.all(members == 1))


class _Batch:
    """The negative log-likelihood of a layout at the levels u, and its minimisation over a batch."""

    def __init__(self, u: np.ndarray, sigmoid: str, layout: _Layout) -> None:
        self.u = u
        self.sigmoid = sigmoid
        self.layout = layout
        self.standard = _STANDARD[sigmoid]
        self.a, self.b = self.standard.scale, self.standard.offset

    def full(self, theta: np.ndarray) -> np.ndarray:
        """(B, P) parameter vectors → (B, C, 4) per-condition (threshold u, log width, guess, lapse)."""
        return np.where(self.layout.free, theta[:, self.layout.take], self.layout.fixed)

    def pack(self, full: np.ndarray) -> np.ndarray:
        """(B, C, 4) → (B, P): a shared parameter takes the mean of its conditions' values; clipped to bounds."""
        flat = np.nan_to_num(np.asarray(full, dtype=float).reshape(len(full), -1))
        return np.clip(flat @ self.layout.average, self.layout.lo, self.layout.hi)

    def _psi(self, full: np.ndarray):
        threshold, log_width, guess, lapse = (full[..., i] for i in range(4))
        width = np.exp(log_width)[..., None]
        z = np.clip(self.a * (self.u - threshold[..., None]) / width + self.b, -_Z_LIMIT, _Z_LIMIT)
        f = self.standard.cdf(z)
        scale = (1 - guess - lapse)[..., None]
        psi = np.clip(guess[..., None] + scale * f, _PSI_EPS, 1 - _PSI_EPS)
        return z, width, scale, f, psi

    def psi(self, full: np.ndarray) -> np.ndarray:
        return self._psi(full)[4]

    def nll(self, theta: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
        psi = self.psi(self.full(theta))
        return -(k * np.log(psi) + (n - k) * np.log1p(-psi)).sum(axis=(1, 2))

    def derivatives(self, theta: np.ndarray, k: np.ndarray, n: np.ndarray):
        """NLL (B,), its gradient (B, P) and the Fisher information (B, P, P)."""
        z, width, scale, f, psi = self._psi(self.full(theta))
        slope = scale * self.standard.pdf(z)
        jac = np.stack([slope * (-self.a / width), slope * (self.b - z), 1 - f, -f], axis=-1)  # dψ/dθ (B,C,L,4)
        misses = n - k
        nll = -(k * np.log(psi) + misses * np.log1p(-psi)).sum(axis=(1, 2))
        residual = misses / (1 - psi) - k / psi  # dNLL/dψ
        local_grad = np.einsum("bcl,bcli->bci", residual, jac)
        weighted = (n / (psi * (1 - psi)))[..., None] * jac
        local_fisher = np.matmul(np.swapaxes(weighted, -1, -2), jac)  # (B, C, 4, 4)
        batch, conditions = local_grad.shape[:2]
        scatter = self.layout.scatter
        grad = local_grad.reshape(batch, conditions * 4) @ scatter
        spread = np.matmul(local_fisher, scatter.reshape(conditions, 4, -1))  # (B, C, 4, P)
        fisher = np.matmul(scatter.T, spread.reshape(batch, conditions * 4, -1))
        return nll, grad, fisher

    def solve(self, theta: np.ndarray, k: np.ndarray, n: np.ndarray,
              max_iterations: int = _MAX_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
        """Maximum-likelihood parameters from the starts ``theta`` (B, P): (theta, NLL) per problem."""
        lo, hi = self.layout.lo, self.layout.hi
        theta = np.clip(np.array(theta, dtype=float), lo, hi)
        n = np.broadcast_to(n, k.shape)
        nll = self.nll(theta, k, n)
        mu = np.full(len(theta), _MU_START)
        todo = np.arange(len(theta))
        diagonal = np.eye(self.layout.n_params, dtype=bool)
        for _ in range(max_iterations):
            if todo.size == 0:
                break
            current, counts, trials, damping = theta[todo], k[todo], n[todo], mu[todo]
            value, grad, fisher = self.derivatives(current, counts, trials)
            pinned = ((current <= lo) & (grad > 0)) | ((current >= hi) & (grad < 0))
            free = ~pinned
            scale = np.diagonal(fisher, axis1=1, axis2=2)
            scale = np.maximum(scale, 1e-9 * (1.0 + scale.max(axis=1, keepdims=True)))
            system = fisher * (free[:, :, None] & free[:, None, :])
            system[:, diagonal] = np.where(pinned, 1.0, system[:, diagonal] + damping[:, None] * scale)
            rhs = np.where(pinned, 0.0, -grad)
            step = np.linalg.solve(system, rhs[..., None])[..., 0]
            finite = np.all(np.isfinite(step), axis=1)
            step = np.where(finite[:, None], step, 0.0)
            trial = np.clip(current + step, lo, hi)
            trial_value = self.nll(trial, counts, trials)
            accept = finite & (trial_value < value)
            decrement = np.where(finite, -(grad * (trial - current)).sum(axis=1), np.inf)
            theta[todo] = np.where(accept[:, None], trial, current)
            nll[todo] = np.where(accept, trial_value, value)
            mu[todo] = np.where(accept, np.maximum(damping * 0.2, _MU_MIN), damping * 10)
            # The predicted gain of a descent step is small (a clipped step that is not one says nothing).
            converged = (((damping <= 1.0) & (decrement >= 0) & (decrement <= _DECREMENT_TOLERANCE))
                         | (~accept & (damping >= _MU_MAX)))
            todo = todo[~converged]
        return theta, nll


def _broadcast_trials(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(n, dtype=float), k.shape)


def _solve_starts(batch: _Batch, k: np.ndarray, n: np.ndarray, starts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The best of several starts ((B, C, 4) each) per problem: ((B, C, 4) parameters, (B,) NLL)."""
    layout = batch.layout
    n = _broadcast_trials(n, k)
    size, conditions = k.shape[:2]
    if layout.separable and conditions > 1:
        # No parameter is shared: C independent problems of four parameters each are faster.
        single = _Batch(batch.u, batch.sigmoid, _single_layout(layout))
        flat = [start.reshape(size * conditions, 1, 4) for start in starts]
        full, _ = _solve_starts(single, k.reshape(size * conditions, 1, -1), n.reshape(size * conditions, 1, -1), flat)
        full = full.reshape(size, conditions, 4)
        return full, batch.nll(batch.pack(full), k, n)
    thetas = np.concatenate([batch.pack(start) for start in starts])
    repeat = len(starts)
    theta, nll = batch.solve(thetas, np.concatenate([k] * repeat), np.concatenate([n] * repeat))
    theta, nll = theta.reshape(repeat, size, -1), nll.reshape(repeat, size)
    best = np.argmin(nll, axis=0)
    rows = np.arange(size)
    return batch.full(theta[best, rows]), nll[best, rows]


def _single_layout(layout: _Layout) -> _Layout:
    """The one-condition layout with a separable layout's bounds and fixed values."""
    single = object.__new__(_Layout)
    free = layout.free[0]
    single.labels = [None if labels is None else np.zeros(1, dtype=int) for labels in layout.labels]
    single.n_conditions, single.n_params = 1, int(free.sum())
    idx = np.where(free, np.cumsum(free) - 1, -1)[None, :]
    single.free = idx >= 0
    single.take = np.where(single.free, idx, 0)
    single.fixed = layout.fixed[:1]
    positions = layout.take[0][free]  # the first condition's parameters, in order
    single.lo, single.hi = layout.lo[positions], layout.hi[positions]
    single.scatter = np.zeros((4, single.n_params))
    single.scatter[np.flatnonzero(free), np.arange(single.n_params)] = 1.0
    single.average = single.scatter
    single.separable = True
    return single


def _grid_start(batch: _Batch, k: np.ndarray, n: np.ndarray, count: int = 1):
    """(B, C, 4) starting parameters from a coarse grid of thresholds and widths, evaluated at once; with
    ``count`` > 1 a list of that many, best first (as the scalar fitter's several grid starts).

    The guess starts at the response rate at the lowest level (pooled over conditions when shared),
    the lapse at 0.02; per threshold group the best grid threshold, per width group the best width.
    """
    layout = batch.layout
    n = _broadcast_trials(n, k)
    size, conditions, levels = k.shape
    u = batch.u
    finite = u[np.isfinite(u)]
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo
    thresholds = np.linspace(lo, hi, _GRID_THRESHOLDS)
    log_widths = np.log(np.geomspace(_WIDTH_GRID[0] * span, _WIDTH_GRID[1] * span, _GRID_WIDTHS))
    fixed_guess, fixed_lapse = layout.fixed[0, 2], layout.fixed[0, 3]
    if layout.labels[2] is None:
        guess = np.full((size, conditions), fixed_guess)
    else:
        lowest = int(np.argmin(u))
        hits, trials = k[:, :, lowest], n[:, :, lowest]
        if layout.labels[2].max() == 0:  # shared: the pooled rate
            rate = hits.sum(axis=1, keepdims=True) / np.maximum(trials.sum(axis=1, keepdims=True), 1)
            rate = np.broadcast_to(rate, (size, conditions))
        else:
            rate = hits / np.maximum(trials, 1)
        guess = np.clip(rate, 0.0, float(layout.hi[layout.take[0, 2]]))
    lapse_start = min(0.02, float(layout.hi[layout.take[0, 3]])) if layout.labels[3] is not None else fixed_lapse
    lapse = np.full((size, conditions), lapse_start)
    z = np.clip(batch.a * (u - thresholds[:, None, None]) / np.exp(log_widths)[None, :, None] + batch.b,
                -_Z_LIMIT, _Z_LIMIT)
    f = batch.standard.cdf(z)  # (T, W, L)
    per_problem = conditions * f.size
    chunk = max(1, _GRID_CHUNK // per_problem)
    nll = np.empty((size, conditions, len(thresholds), len(log_widths)))
    for begin in range(0, size, chunk):
        part = slice(begin, begin + chunk)
        g = guess[part][:, :, None, None, None]
        psi = np.clip(g + (1 - g - lapse[part][:, :, None, None, None]) * f, _PSI_EPS, 1 - _PSI_EPS)
        hits, misses = k[part][:, :, None, None, :], (n[part] - k[part])[:, :, None, None, :]
        nll[part] = -(hits * np.log(psi) + misses * np.log1p(-psi)).sum(axis=-1)
    groups = layout.labels[0]
    membership = np.eye(groups.max() + 1)[groups]  # (C, G)
    by_group = np.einsum("bctw,cg->bgtw", nll, membership)
    starts = []
    if layout.labels[1].max() == 0:  # one width for all conditions: the best widths, each with its thresholds
        order = np.argsort(by_group.min(axis=2).sum(axis=1), axis=1)  # (B, W)
        for rank in range(min(count, len(log_widths))):
            width_index = order[:, rank]
            chosen = np.take_along_axis(by_group, width_index[:, None, None, None], axis=3)[..., 0]  # (B, G, T)
            threshold_index = np.argmin(chosen, axis=2)[:, groups]
            starts.append((threshold_index, np.broadcast_to(width_index[:, None], (size, conditions))))
    else:  # each condition its own width: each condition's best (threshold, width) pairs
        order = np.argsort(nll.reshape(size, conditions, -1), axis=2)  # (B, C, T·W)
        for rank in range(min(count, order.shape[2])):
            threshold_index, width_index = np.unravel_index(order[:, :, rank], nll.shape[2:])
            if groups.max() + 1 < conditions:  # tied thresholds: the best common one given the widths
                chosen = np.take_along_axis(nll, width_index[:, :, None, None], axis=3)[..., 0]  # (B, C, T)
                threshold_index = np.argmin(np.einsum("bct,cg->bgt", chosen, membership), axis=2)[:, groups]
            starts.append((threshold_index, width_index))
    made = [np.stack([thresholds[t], log_widths[w], guess, lapse], axis=-1) for t, w in starts]
    return made if count > 1 else made[0]


def _whole(n) -> np.ndarray:
    """Trial counts as integers, for simulating binomial data."""
    return np.rint(np.asarray(n, dtype=float)).astype(np.int64)


def _deviance_terms(k: np.ndarray, n: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Per-cell deviance contributions 2[k ln(k/nψ) + (n−k) ln((n−k)/n(1−ψ))] (0 where n = 0)."""
    n = _broadcast_trials(n, k)
    misses = n - k
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = special.xlogy(k, k / (n * psi)) + special.xlogy(misses, misses / (n * (1 - psi)))
    return 2 * np.where(n > 0, terms, 0.0)


def _to_internal(sigmoid: str, params: np.ndarray) -> np.ndarray:
    """(…, 4) (threshold x units, width, guess, lapse) → (threshold u units, log width, guess, lapse)."""
    params = np.asarray(params, dtype=float)
    out = params.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out[..., 0] = _to_u(sigmoid, params[..., 0])
        out[..., 1] = np.log(params[..., 1])
    return out


def _to_natural(sigmoid: str, full: np.ndarray) -> np.ndarray:
    """The inverse of _to_internal."""
    out = np.array(full, dtype=float)
    out[..., 0] = _to_x_threshold(sigmoid, full[..., 0])
    out[..., 1] = np.exp(full[..., 1])
    return out


def fit_batch(x, n_correct, n_trials, *, sigmoid: str = "logistic", guess: float | None = 0.1,
              lapse: str | float = "bounded", shared=(), starts=None, grid_start: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood fits of many data sets at once (the vectorised fitter).

    ``n_correct`` (B, C, L): B data sets of C conditions at the L levels ``x``;
    ``n_trials`` broadcasts to it. ``shared``: which of width, guess and lapse one
    value serves all C conditions (thresholds are per condition). ``starts``: an
    optional list of (B, C, 4) starting parameters (threshold, width, guess, lapse);
    ``grid_start`` adds the best three points of a coarse grid. Returns (B, C, 4) parameters
    (threshold in x units, width as in the module doc, guess, lapse) and the (B,)
    negative log-likelihoods. The best of the starts is kept per data set.
    """
    _check_sigmoid(sigmoid)
    _check_rates(guess, lapse)
    k = np.asarray(n_correct, dtype=float)
    if k.ndim != 3:
        raise ValueError(f"n_correct must be 3-D (data sets, conditions, levels), got shape {k.shape}")
    n = _broadcast_trials(n_trials, k)
    x = np.asarray(x, dtype=float).ravel()
    if len(x) != k.shape[2]:
        raise ValueError(f"x has {len(x)} levels but n_correct has {k.shape[2]}")
    u = _to_u(sigmoid, x)
    batch = _Batch(u, sigmoid, _Layout(k.shape[1], _search_bounds(u, guess, lapse), guess, lapse,
                                       _check_shared(shared, guess, lapse)))
    start_list = [_to_internal(sigmoid, s) for s in (starts or [])]
    if grid_start or not start_list:
        start_list += _grid_start(batch, k, n, count=_GRID_STARTS)
    full, nll = _solve_starts(batch, k, n, start_list)
    return _to_natural(sigmoid, full), nll


def _check_shared(shared, guess, lapse) -> tuple[str, ...]:
    """The shared parameters that are fitted (a fixed guess or lapse is the same everywhere anyway)."""
    shared = tuple(shared)
    unknown = [p for p in shared if p not in SHAREABLE]
    if unknown:
        raise ValueError(f"only {', '.join(SHAREABLE)} can be shared across conditions, not {', '.join(unknown)}")
    fitted = {"width": True, "guess": guess is None, "lapse": isinstance(lapse, str)}
    return tuple(p for p in SHAREABLE if p in shared and fitted[p])


def bootstrap_fit(x, correct_matrix, *, sigmoid: str = "logistic", guess: float | None = 0.1,
                  lapse: str | float = "bounded", n_boot: int = 200, seed: int = 0, gof_samples: int = 200,
                  return_samples: bool = False, trials_per_item: int = 1,
                  engine: str = "batch") -> PsychometricFit | tuple[PsychometricFit, BootstrapSamples]:
    """Fit with 95% bootstrap intervals and a Monte-Carlo goodness-of-fit p-value.

    ``correct_matrix`` (n_items, n_levels): how often item i was classified as the
    target at level j, out of ``trials_per_item`` trials (0/1 with the default of one
    trial). The bootstrap resamples items (rows, all their trials together) with
    replacement, because the same items appear at every level, and reports percentile
    intervals of threshold, width, guess and lapse (None when ``n_boot`` is 0 or the
    parameter is fixed). The p-value is the fraction of deviances of data simulated
    from the fitted psi (same trials per level) that reach the observed deviance
    (None when ``gof_samples`` is 0).

    The point estimate is the scalar fitter's (fit_psychometric). ``engine="batch"``
    refits all resamples and simulations at once with the vectorised fitter;
    ``"scalar"`` refits them one by one with the scalar fitter (the reference, slower).

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
    if not (isinstance(trials_per_item, numbers.Integral) and trials_per_item >= 1):
        raise ValueError(f"trials_per_item must be a positive integer, got {trials_per_item!r}")
    if not np.all((matrix >= 0) & (matrix <= trials_per_item) & (matrix == np.round(matrix))):
        raise ValueError("correct_matrix must hold only 0/1 (or bool) values" if trials_per_item == 1 else
                         f"correct_matrix must hold counts from 0 to trials_per_item = {trials_per_item}")
    if engine not in ("batch", "scalar"):
        raise ValueError(f"engine must be 'batch' or 'scalar', got {engine!r}")
    n_items, n_levels = matrix.shape
    if n_items == 0:
        raise ValueError("correct_matrix has no items")
    if np.size(x) != n_levels:
        raise ValueError(f"x has {np.size(x)} levels but correct_matrix has {n_levels} columns")
    if n_boot < 0 or gof_samples < 0:
        raise ValueError("n_boot and gof_samples must be non-negative")

    trials = n_items * trials_per_item
    problem, k = _prepare(x, matrix.sum(axis=0), np.full(n_levels, trials), sigmoid, guess, lapse)
    params = problem.fit(k)
    # Separate streams keep the item resamples identical across calls with the same seed,
    # whatever gof_samples is, so that bootstraps of two conditions stay paired.
    boot_rng, gof_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    # A resample is a count of how often each item is drawn; its correct counts follow by a product.
    weights = boot_rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot)
    boot_k = weights @ matrix
    simulated = (gof_rng.binomial(trials, problem.psi(params), size=(gof_samples, n_levels)).astype(float)
                 if gof_samples else np.zeros((0, n_levels)))

    if engine == "scalar":
        boot_params = np.array([problem.fit(kb, (params,), grid_count=1) for kb in boot_k]).reshape(n_boot, 4)
        deviances = np.array([problem.deviance(problem.fit(ks, (params,), grid_count=1), ks) for ks in simulated])
    else:
        batch = _Batch(problem.u, sigmoid, _Layout(1, _search_bounds(problem.u, guess, lapse), guess, lapse))
        boot_params = _refit(batch, boot_k[:, None, :], problem.n, params)[:, 0]
        fitted = _refit(batch, simulated[:, None, :], problem.n, params)
        deviances = _deviance_terms(simulated[:, None, :], problem.n, batch.psi(fitted)).sum(axis=(1, 2))
    samples = BootstrapSamples(
        threshold=_to_x_threshold(sigmoid, boot_params[:, 0]),
        width=np.exp(boot_params[:, 1]),
        guess=boot_params[:, 2],
        lapse=boot_params[:, 3],
        seed=seed,
        n_items=n_items,
    )
    p_value = float(np.mean(deviances >= problem.deviance(params, k))) if gof_samples else None
    fit = _make_fit(
        problem, sigmoid, params, k,
        threshold_ci=_interval(samples.threshold) if n_boot else None,
        width_ci=_interval(samples.width) if n_boot else None,
        guess_ci=_interval(samples.guess) if n_boot and guess is None else None,
        lapse_ci=_interval(samples.lapse) if n_boot and isinstance(lapse, str) else None,
        p_value=p_value,
    )
    return (fit, samples) if return_samples else fit


def _refit(batch: _Batch, k: np.ndarray, n: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Refits of data sets near an estimate: from the estimate ((C, 4) or (4,), internal units) and from
    the grid, the better kept; (B, C, 4) internal parameters."""
    if len(k) == 0:
        return np.zeros((0, k.shape[1], 4))
    start = np.broadcast_to(np.asarray(estimate, dtype=float).reshape(1, -1, 4), (len(k), k.shape[1], 4))
    n = _broadcast_trials(n, k)
    return _solve_starts(batch, k, n, [start, _grid_start(batch, k, n)])[0]


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


def shift_interval(samples_k, samples_0) -> tuple[float, float] | None:
    """95% percentile interval of paired differences samples_k − samples_0 (bootstrap resamples drawn
    with one seed on the same items). Infinite samples (a level never reached) are allowed; None when
    some difference is undefined (both infinite alike) or any sample is NaN."""
    a, b = np.asarray(samples_k, dtype=float), np.asarray(samples_0, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"bootstrap samples must be non-empty and of equal length, got {a.size} and {b.size}")
    with np.errstate(invalid="ignore"):
        difference = a - b
    if np.isnan(difference).any():
        return None
    return _interval(difference)


# --- the performance threshold: where ψ itself reaches a stated level ---

REACHED, FLOOR_ABOVE, CEILING_BELOW = 0, -1, 1  # performance_threshold statuses


def performance_threshold(sigmoid: str, level: float, threshold, width, guess, lapse) -> tuple[np.ndarray, np.ndarray]:
    """The x at which ψ = ``level`` (e.g. P(target) = 0.5), and whether ψ reaches it.

    Arrays broadcast. Status REACHED (0): the value is the x; FLOOR_ABOVE (−1): the
    guess rate is at or above the level, so ψ exceeds it everywhere (value −inf);
    CEILING_BELOW (+1): 1 − lapse is at or below the level, so ψ never reaches it
    (value +inf). NaN parameters give NaN (status REACHED).
    """
    _check_sigmoid(sigmoid)
    if not 0 < level < 1:
        raise ValueError(f"the performance level must lie strictly between 0 and 1, got {level}")
    threshold, width, guess, lapse = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                            for v in (threshold, width, guess, lapse)))
    known = np.isfinite(threshold) & np.isfinite(width) & np.isfinite(guess) & np.isfinite(lapse)
    status = np.where(known & (guess >= level), FLOOR_ABOVE,
                      np.where(known & (1 - lapse <= level), CEILING_BELOW, REACHED))
    reached = known & (status == REACHED)
    f = np.where(reached, (level - np.where(reached, guess, 0)) / np.where(reached, 1 - guess - lapse, 1), 0.5)
    x = sigmoid_inverse(sigmoid, f, np.where(reached, threshold, 1.0), np.where(reached, width, 1.0))
    x = np.where(status == FLOOR_ABOVE, -np.inf, np.where(status == CEILING_BELOW, np.inf, x))
    return np.where(known, x, np.nan), status


# --- estimates at a bound ---

WARNING, NOTE = "warning", "note"


@dataclass(frozen=True)
class BoundFlag:
    """An estimate at a bound of its search range: which, where, how serious, and what it means."""

    parameter: str  # threshold | width | guess | lapse
    side: str  # lower | upper
    bound: float  # in the parameter's reporting units (threshold in x, width as fitted)
    severity: str  # WARNING: an artificial limit constrains the fit; NOTE: a rate at its natural 0
    reason: str

    @property
    def label(self) -> str:
        """Short: "guess=0.5", "lapse=0", "width=min", "threshold=max"."""
        if self.parameter in ("guess", "lapse"):
            return f"{self.parameter}={self.bound:g}"
        return f"{self.parameter}={'min' if self.side == 'lower' else 'max'}"

    def to_dict(self) -> dict:
        return {"parameter": self.parameter, "side": self.side, "bound": float(self.bound),
                "severity": self.severity, "label": self.label, "reason": self.reason}


_AT_BOUND = 1e-4  # in rate units, in log-width units, and as a fraction of the level span for thresholds


def search_limits(x, sigmoid: str, guess, lapse) -> dict[str, tuple[float, float]]:
    """The ranges the fitter searches, per parameter, in reporting units (threshold in x units; width in
    the sigmoid's units: x, or ln x for the Weibull). ``x``: the levels with trials."""
    u = _to_u(sigmoid, np.asarray(x, dtype=float))
    bounds = _search_bounds(u, guess, lapse)
    return {"threshold": tuple(float(v) for v in _to_x_threshold(sigmoid, bounds[0])),
            "width": tuple(float(v) for v in np.exp(bounds[1])),
            "guess": tuple(float(v) for v in bounds[2]), "lapse": tuple(float(v) for v in bounds[3])}


def bound_flags(fit: PsychometricFit, x, guess, lapse, shared=(), guess_limit: float | None = None
                ) -> tuple[BoundFlag, ...]:
    """The fitted parameters of ``fit`` that sit at a bound of the search (fixed ones are not flagged).

    ``x``: the levels fitted; ``guess``/``lapse``: as given to the fitter (None / "bounded" /
    "free" when fitted); ``shared``: parameters shared across conditions (their reasons say so);
    ``guess_limit``: the free guess rate's upper limit when the fit used another than today's (an old fit).
    """
    u = _to_u(fit.sigmoid, np.asarray(x, dtype=float))
    bounds = _search_bounds(u, guess, lapse)
    if guess_limit is not None and guess is None:
        bounds[2, 1] = guess_limit
    finite = u[np.isfinite(u)]
    span = float(finite.max() - finite.min())
    values = {"threshold": float(_to_u(fit.sigmoid, np.array(fit.threshold))), "width": float(np.log(fit.width)),
              "guess": fit.guess, "lapse": fit.lapse}
    tolerance = {"threshold": _AT_BOUND * span, "width": _AT_BOUND, "guess": _AT_BOUND, "lapse": _AT_BOUND}
    fitted = {"threshold": True, "width": True, "guess": guess is None, "lapse": isinstance(lapse, str)}
    flags = []
    for p, name in enumerate(PARAMETERS):
        if not fitted[name] or not np.isfinite(values[name]):
            continue
        for side, bound in (("lower", bounds[p, 0]), ("upper", bounds[p, 1])):
            if abs(values[name] - bound) <= tolerance[name]:
                shown = {"threshold": float(_to_x_threshold(fit.sigmoid, bound)), "width": float(np.exp(bound))}
                flags.append(_flag(name, side, shown.get(name, float(bound)), name in shared, fit.sigmoid))
                break
    return tuple(flags)


def _flag(name: str, side: str, bound: float, shared: bool, sigmoid: str) -> BoundFlag:
    whose = "the shared " if shared else "the "
    unit = "ln γ" if sigmoid == "weibull" else "γ"
    if name == "guess" and side == "lower":
        return BoundFlag(name, side, bound, NOTE, f"{whose}guess rate is 0, its lower limit: at low γ the target "
                         "is (almost) never chosen; its interval is one-sided")
    if name == "lapse" and side == "lower":
        return BoundFlag(name, side, bound, NOTE, f"{whose}lapse rate is 0, its lower limit: the curve reaches 1 at "
                         "high γ; its interval is one-sided")
    if name == "guess":
        return BoundFlag(name, side, bound, WARNING, f"{whose}guess rate stopped at its upper limit {bound:g}: the "
                         "floor took up the curve's lower part and may hide a threshold shift there; share the guess "
                         "across k, or read the performance threshold")
    if name == "lapse":
        return BoundFlag(name, side, bound, WARNING, f"{whose}lapse rate stopped at its upper limit {bound:g}: the "
                         f"curve's top sags below {1 - bound:g} and the threshold can move to follow the sag; "
                         "set the lapse free, or read the performance threshold")
    if name == "width":
        if side == "lower":
            return BoundFlag(name, side, bound, WARNING, f"{whose}width stopped at its lower search limit "
                             f"({bound:.3g} {unit}): the curve is a step between two γ points, its width unmeasured")
        return BoundFlag(name, side, bound, WARNING, f"{whose}width stopped at its upper search limit "
                         f"({bound:.3g} {unit}): the curve is nearly flat over the γ range")
    return BoundFlag(name, side, bound, WARNING, f"the threshold stopped at its search limit ({bound:.3g}, half a "
                     "γ range beyond the data): the data do not locate it")


# --- several conditions: joint fits, bootstrap, goodness of fit and likelihood-ratio tests ---

@dataclass(frozen=True)
class LRTest:
    """A likelihood-ratio test of a restriction on the thresholds (or of sharing parameters).

    ``statistic`` = 2 (NLL_null − NLL_model); ``p_chi2`` its asymptotic χ²(df) p-value;
    ``p_value`` its Monte-Carlo p-value, (1 + #{simulated ≥ observed}) / (1 + samples), from
    data sets simulated under the fitted null model as independent binomial trials, each refitted
    under both models (Palamedes' PAL_PFLR_ModelComparison does the same; None without samples).
    The χ² approximation can be poor when an estimate sits at a bound of the search; the Monte-Carlo
    p does not rely on it.
    """

    name: str  # "equal": thresholds equal across conditions; "pair": two conditions' thresholds equal;
    #            "sharing": the shared parameters suffice (vs each condition its own)
    conditions: tuple[int, ...]  # the conditions whose thresholds the null ties (all for equal and sharing)
    df: int
    statistic: float
    p_chi2: float
    p_value: float | None
    samples: int

    def to_dict(self) -> dict:
        return {"name": self.name, "conditions": list(self.conditions), "df": self.df,
                "statistic": self.statistic, "p_chi2": self.p_chi2, "p_value": self.p_value,
                "samples": self.samples}

    @classmethod
    def from_dict(cls, data: dict) -> LRTest:
        return cls(str(data["name"]), tuple(int(c) for c in data["conditions"]), int(data["df"]),
                   float(data["statistic"]), float(data["p_chi2"]),
                   None if data.get("p_value") is None else float(data["p_value"]), int(data["samples"]))


@dataclass(frozen=True)
class ConditionAnalysis:
    """The fit of several conditions' curves under one model, with its uncertainty and tests.

    ``fits[c]``: condition c's parameters under the model, with bootstrap intervals, its
    share of the deviance and that share's Monte-Carlo p-value. ``boot``: (C, n_boot, 4)
    per-resample (threshold, width, guess, lapse), the same image resamples for every
    condition (paired). ``shared``: the parameters one value serves for every condition.
    """

    fits: tuple[PsychometricFit, ...]
    boot: np.ndarray
    shared: tuple[str, ...]
    n_params: int
    n_points: int
    deviance: float
    p_value: float | None  # Monte-Carlo goodness of fit of the total deviance
    lr_tests: tuple[LRTest, ...]

    @property
    def df(self) -> int:
        return self.n_points - self.n_params


def _check_items(item_counts, x, trials_per_item: int) -> np.ndarray:
    counts = np.asarray(item_counts)
    if counts.ndim != 3:
        raise ValueError(f"item counts must be 3-D (items, conditions, levels), got shape {counts.shape}")
    counts = counts.astype(float)
    if counts.shape[0] == 0 or counts.shape[1] == 0:
        raise ValueError("item counts hold no items or no conditions")
    if not (isinstance(trials_per_item, numbers.Integral) and trials_per_item >= 1):
        raise ValueError(f"trials_per_item must be a positive integer, got {trials_per_item!r}")
    if not np.all(np.isfinite(counts)) or not np.all((counts >= 0) & (counts <= trials_per_item)
                                                     & (counts == np.round(counts))):
        raise ValueError(f"item counts must be whole numbers from 0 to trials_per_item = {trials_per_item}")
    if np.size(x) != counts.shape[2]:
        raise ValueError(f"x has {np.size(x)} levels but the item counts have {counts.shape[2]}")
    return counts


def analyse_conditions(x, item_counts, trials_per_item: int = 1, *, sigmoid: str = "logistic",
                       guess: float | None = 0.1, lapse: str | float = "bounded", shared=SHAREABLE,
                       n_boot: int = 200, gof_samples: int = 200, lr_samples: int = 200, seed: int = 0,
                       reference: int | None = 0, curve_fits=None) -> ConditionAnalysis:
    """Fit C conditions' curves together, with thresholds per condition and ``shared`` parameters common.

    ``item_counts`` (n_items, C, L): how often item i was classified as the target in
    condition c at level x_l, out of ``trials_per_item``; every item appears in every
    cell. With nothing shared (or one condition) the fits are the per-condition fits of
    fit_psychometric. The bootstrap resamples items (all their trials, in every
    condition, together) and refits the model to each resample. Tests (``lr_samples``
    Monte-Carlo data sets each, 0 for the χ² p only): thresholds equal across all
    conditions; each condition's threshold equal to the ``reference`` condition's; and,
    when parameters are shared, the shared model against each condition fitted alone.
    ``curve_fits``: per-condition PsychometricFit from fit_psychometric, if already made.
    Raises ValueError when a condition alone has no curve to fit (no or only target
    responses) or the inputs are malformed.
    """
    counts = _check_items(item_counts, x, trials_per_item)
    n_items, conditions, levels = counts.shape
    if min(n_boot, gof_samples, lr_samples) < 0:
        raise ValueError("n_boot, gof_samples and lr_samples must be non-negative")
    if reference is not None and not 0 <= reference < conditions:
        raise ValueError(f"reference condition {reference} is out of range for {conditions} conditions")
    shared = _check_shared(shared, guess, lapse) if conditions > 1 else ()
    k = counts.sum(axis=0)  # (C, L)
    trials = float(n_items * trials_per_item)
    n = np.full((conditions, levels), trials)
    problems = []
    for c in range(conditions):
        try:
            problems.append(_prepare(x, k[c], n[c], sigmoid, guess, lapse)[0])
        except ValueError as exc:
            raise ValueError(f"condition {c}: {exc}") from None
    u = problems[0].u
    bounds = _search_bounds(u, guess, lapse)
    if curve_fits is None:
        curve = np.array([problem.fit(k[c]) for c, problem in enumerate(problems)])
    else:
        curve = _to_internal(sigmoid, np.array([[f.threshold, f.width, f.guess, f.lapse] for f in curve_fits]))
    model = _Batch(u, sigmoid, _Layout(conditions, bounds, guess, lapse, shared))
    if model.layout.separable:
        estimate = curve
    else:
        estimate = _solve_starts(model, k[None], n, [curve[None], *_grid_start(model, k[None], n, _GRID_STARTS)])[0][0]
    boot_rng, gof_rng, lr_seed = np.random.SeedSequence(seed).spawn(3)

    # Bootstrap: item resamples (a count per item), the same for every condition.
    weights = np.random.default_rng(boot_rng).multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot)
    boot_k = (weights @ counts.reshape(n_items, -1)).reshape(n_boot, conditions, levels)
    boot = _to_natural(sigmoid, _refit(model, boot_k, n, estimate))  # (B, C, 4)

    # Goodness of fit: deviance (total and per condition) of data simulated from the fitted model.
    psi = model.psi(estimate[None])[0]
    observed = _deviance_terms(k, n, psi).sum(axis=1)
    p_total, p_condition = None, [None] * conditions
    if gof_samples:
        simulated = np.random.default_rng(gof_rng).binomial(_whole(n), psi, size=(gof_samples, conditions, levels)).astype(float)
        refitted = _refit(model, simulated, n, estimate)
        deviances = _deviance_terms(simulated, n, model.psi(refitted)).sum(axis=2)  # (S, C)
        p_total = float(np.mean(deviances.sum(axis=1) >= observed.sum()))
        p_condition = [float(v) for v in np.mean(deviances >= observed, axis=0)]

    tests = _lr_tests(model, k, n, estimate, shared, guess, lapse, bounds, reference, lr_samples, lr_seed) \
        if conditions > 1 else ()
    natural = _to_natural(sigmoid, estimate)

    def ci(c, p, fitted=True):
        return _interval(boot[:, c, p]) if n_boot and fitted else None

    fits = tuple(PsychometricFit(
        sigmoid=sigmoid, threshold=float(natural[c, 0]), width=float(natural[c, 1]), guess=float(natural[c, 2]),
        lapse=float(natural[c, 3]), deviance=float(observed[c]), n_levels=levels,
        threshold_ci=ci(c, 0), width_ci=ci(c, 1), p_value=p_condition[c],
        guess_ci=ci(c, 2, guess is None), lapse_ci=ci(c, 3, isinstance(lapse, str)),
    ) for c in range(conditions))
    return ConditionAnalysis(fits=fits, boot=np.moveaxis(boot, 0, 1).copy(), shared=shared,
                             n_params=model.layout.n_params, n_points=conditions * levels,
                             deviance=float(observed.sum()), p_value=p_total, lr_tests=tuple(tests))


def _lr_tests(model: _Batch, k, n, estimate, shared, guess, lapse, bounds, reference, samples, seed) -> list[LRTest]:
    """The model's tests (see analyse_conditions): each null fitted, its statistic and its p-values."""
    conditions = k.shape[0]
    nulls = [("equal", tuple(range(conditions)), np.zeros(conditions, dtype=int), shared)]
    if reference is not None:
        for c in range(conditions):
            if c != reference:
                groups = np.arange(conditions)
                groups[c] = groups[reference]
                nulls.append(("pair", (reference, c), groups, shared))
    seeds = seed.spawn(len(nulls) + 1)
    tests = []
    for (name, tied, groups, null_shared), child in zip(nulls, seeds):
        null = _Batch(model.u, model.sigmoid, _Layout(conditions, bounds, guess, lapse, null_shared, groups))
        tests.append(_likelihood_ratio(name, tied, null, model, k, n, None, estimate, samples, child))
    if shared:
        fuller = _Batch(model.u, model.sigmoid, _Layout(conditions, bounds, guess, lapse, ()))
        tests.append(_likelihood_ratio("sharing", tuple(range(conditions)), model, fuller, k, n, estimate, None,
                                       samples, seeds[-1]))
    return tests


def _likelihood_ratio(name, tied, null: _Batch, alternative: _Batch, k, n, null_fit, alternative_fit, samples,
                      seed) -> LRTest:
    """LR test of ``null`` nested in ``alternative`` on the data (C, L); either fit may be given ((C, 4))."""
    data = k[None]
    if null_fit is None:
        null_fit = _solve_starts(null, data, n, [alternative_fit[None], *_grid_start(null, data, n, _GRID_STARTS)])[0][0]
    if alternative_fit is None:
        alternative_fit = _solve_starts(alternative, data, n, [null_fit[None], *_grid_start(alternative, data, n, _GRID_STARTS)])[0][0]
    null_fit, alternative_fit, statistic = _nested_pair(null, alternative, data, n, null_fit[None],
                                                        alternative_fit[None])
    df = alternative.layout.n_params - null.layout.n_params
    p_value = None
    if samples:
        psi = null.psi(null_fit)[0]
        simulated = np.random.default_rng(seed).binomial(_whole(n), psi, size=(samples, *k.shape)).astype(float)
        start = np.broadcast_to(null_fit, (samples, *null_fit.shape[1:]))
        simulated_null = _solve_starts(null, simulated, n, [start])[0]
        _, _, simulated_statistic = _nested_pair(null, alternative, simulated, n, simulated_null, None)
        p_value = float((1 + np.sum(simulated_statistic >= statistic[0] - 1e-9)) / (1 + samples))
    return LRTest(name, tuple(int(c) for c in tied), int(df), float(statistic[0]),
                  float(stats.chi2.sf(statistic[0], df)), p_value, int(samples))


def _nested_pair(null: _Batch, alternative: _Batch, k, n, null_fit, alternative_fit):
    """Fits of a nested pair on data sets (B, C, L) and 2 (NLL_null − NLL_alternative) ≥ 0.

    The alternative is (re)fitted from the null's optimum, which it contains, so its
    likelihood is never below the null's (a better alternative fit, if given, is kept)."""
    null_nll = null.nll(null.pack(null_fit), k, _broadcast_trials(n, k))
    from_null, nll = _solve_starts(alternative, k, n, [null_fit])
    if alternative_fit is not None:
        given = alternative.nll(alternative.pack(alternative_fit), k, _broadcast_trials(n, k))
        better = given < nll
        from_null = np.where(better[:, None, None], alternative_fit, from_null)
        nll = np.where(better, given, nll)
    return null_fit, from_null, np.maximum(2 * (null_nll - nll), 0.0)


def lr_test_batch(x, n_correct, n_trials, *, sigmoid: str = "logistic", guess: float | None = 0.1,
                  lapse: str | float = "bounded", shared=SHAREABLE, tie=None, samples: int = 200, seed: int = 0,
                  starts=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Likelihood-ratio test of equal thresholds on many data sets at once (for simulations).

    ``n_correct`` (D, C, L). The model fits thresholds per condition and ``shared``
    parameters common; the null ties the thresholds of the conditions in ``tie``
    (default: all). ``starts``: optional (D, C, 4) starting parameters of the model.
    Returns per data set the statistic, its χ² p-value and its Monte-Carlo p-value
    (``samples`` simulations from each data set's fitted null; NaN without samples).
    """
    _check_sigmoid(sigmoid)
    _check_rates(guess, lapse)
    k = np.asarray(n_correct, dtype=float)
    if k.ndim != 3:
        raise ValueError(f"n_correct must be 3-D (data sets, conditions, levels), got shape {k.shape}")
    datasets, conditions, levels = k.shape
    n = _broadcast_trials(n_trials, k)
    u = _to_u(sigmoid, np.asarray(x, dtype=float).ravel())
    bounds = _search_bounds(u, guess, lapse)
    shared = _check_shared(shared, guess, lapse)
    groups = np.arange(conditions)
    tie = tuple(range(conditions)) if tie is None else tuple(tie)
    groups[list(tie)] = tie[0]
    model = _Batch(u, sigmoid, _Layout(conditions, bounds, guess, lapse, shared))
    null = _Batch(u, sigmoid, _Layout(conditions, bounds, guess, lapse, shared, groups))
    start_list = [] if starts is None else [_to_internal(sigmoid, starts)]
    fitted = _solve_starts(model, k, n, [*start_list, *_grid_start(model, k, n, _GRID_STARTS)])[0]
    null_fit = _solve_starts(null, k, n, [fitted, *_grid_start(null, k, n, _GRID_STARTS)])[0]
    null_fit, _, statistic = _nested_pair(null, model, k, n, null_fit, fitted)
    df = model.layout.n_params - null.layout.n_params
    p_chi2 = stats.chi2.sf(statistic, df)
    if not samples:
        return statistic, p_chi2, np.full(datasets, np.nan)
    psi = null.psi(null_fit)  # (D, C, L)
    rng = np.random.default_rng(seed)
    simulated = rng.binomial(_whole(n)[:, None], psi[:, None], size=(datasets, samples, conditions, levels)).astype(float)
    simulated = simulated.reshape(datasets * samples, conditions, levels)
    trials = np.repeat(n, samples, axis=0)
    start = np.repeat(null_fit, samples, axis=0)
    simulated_null = _solve_starts(null, simulated, trials, [start])[0]
    _, _, simulated_statistic = _nested_pair(null, model, simulated, trials, simulated_null, None)
    exceed = (simulated_statistic.reshape(datasets, samples) >= statistic[:, None] - 1e-9).sum(axis=1)
    return statistic, p_chi2, (1 + exceed) / (1 + samples)
