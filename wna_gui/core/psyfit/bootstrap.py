"""Item-bootstrap intervals and Monte-Carlo goodness of fit of one curve, and paired threshold shifts."""

from __future__ import annotations

import numbers

import numpy as np

from .batch import _deviance_terms, _refit
from .fit import BootstrapSamples, PsychometricFit, _interval, _make_fit, _prepare
from .sigmoids import _to_x_threshold


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

    The point estimate is fit_psychometric's. Each resample and simulation is refitted from
    the estimate and from the grid's best point, the better kept: ``engine="batch"`` refits
    them all at once, ``"scalar"`` one at a time (the same optimiser on batches of one: the
    loop the vectorised refit replaces, kept for the benchmark and to check that a problem's
    fit does not depend on the others in its batch).

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

    batch = problem.batch
    if engine == "scalar":
        def refit(counts: np.ndarray) -> np.ndarray:
            return np.concatenate([_refit(batch, row[None, None], problem.n, params) for row in counts]
                                  or [np.zeros((0, 1, 4))])
    else:
        def refit(counts: np.ndarray) -> np.ndarray:
            return _refit(batch, counts[:, None, :], problem.n, params)
    boot_params = refit(boot_k)[:, 0]
    fitted = refit(simulated)
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
