"""The fitter: many data sets of one or several conditions, fitted in one numpy pass (one curve is a batch of one).

A *layout* says where each condition's (threshold, log width, guess, lapse) comes from: a
parameter of its own, one shared with other conditions, or a fixed value. The batch fitter
minimises the binomial negative log-likelihood of every problem of a batch at once by
Fisher scoring with Levenberg-Marquardt damping (the Fisher information is never indefinite),
with bound constraints handled by an active set (a parameter at a bound whose gradient points
outwards is held there). Problems that converge leave the batch.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .bounds import _GRID_THRESHOLDS, _GRID_WIDTHS, _WIDTH_GRID, _check_rates, _search_bounds
from .sigmoids import SHAPES, _PSI_EPS, _Z_LIMIT, _check_sigmoid, _to_u, _to_x_threshold


SHAREABLE = ("width", "guess", "lapse")  # parameters a joint fit may share across conditions
_MAX_ITERATIONS = 200
_DECREMENT_TOLERANCE = 1e-10  # nats: a step predicted to gain less than this ends the search
_MU_START, _MU_MIN, _MU_MAX = 1e-3, 1e-12, 1e10
_GRID_CHUNK = 2_000_000  # elements per grid-start evaluation chunk (memory bound)
_GRID_STARTS = 3  # grid starts of a fit from nothing (a coarse grid's best points can sit on different ridges)


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
        self.standard = SHAPES[sigmoid]
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
    ``count`` > 1 a list of that many, best first.

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
    groups, width_groups = layout.labels[0], layout.labels[1]
    assert groups is not None and width_groups is not None  # thresholds and widths are always fitted
    membership = np.eye(groups.max() + 1)[groups]  # (C, G)
    by_group = np.einsum("bctw,cg->bgtw", nll, membership)
    starts = []
    if width_groups.max() == 0:  # one width for all conditions: the best widths, each with its thresholds
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


def _refit(batch: _Batch, k: np.ndarray, n: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Refits of data sets near an estimate: from the estimate ((C, 4) or (4,), internal units) and from
    the grid, the better kept; (B, C, 4) internal parameters."""
    if len(k) == 0:
        return np.zeros((0, k.shape[1], 4))
    start = np.broadcast_to(np.asarray(estimate, dtype=float).reshape(1, -1, 4), (len(k), k.shape[1], 4))
    n = _broadcast_trials(n, k)
    return _solve_starts(batch, k, n, [start, _grid_start(batch, k, n)])[0]
