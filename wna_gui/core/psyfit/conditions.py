"""Several conditions measured on the same items: joint fits, a paired bootstrap, goodness of fit and
likelihood-ratio tests of the thresholds (and of sharing parameters)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .batch import (
    SHAREABLE,
    _GRID_STARTS,
    _Batch,
    _Layout,
    _broadcast_trials,
    _check_shared,
    _deviance_terms,
    _grid_start,
    _refit,
    _solve_starts,
    _to_internal,
    _to_natural,
    _whole,
)
from .bounds import _check_rates, _search_bounds
from .fit import PsychometricFit, _interval, _prepare
from .sigmoids import _check_sigmoid, _to_u


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
    for c in range(conditions):  # each condition must have a curve of its own
        try:
            problem = _prepare(x, k[c], n[c], sigmoid, guess, lapse)[0]
        except ValueError as exc:
            raise ValueError(f"condition {c}: {exc}") from None
    u = problem.u
    bounds = _search_bounds(u, guess, lapse)
    if curve_fits is None:
        curve = problem.fit(k)  # every condition has the same levels and trials: one batch
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
    p_total: float | None = None
    p_condition: list[float | None] = [None] * conditions
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
