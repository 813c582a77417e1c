"""Joint fits across conditions, the vectorised fitter, likelihood-ratio tests, performance thresholds and bound
flags, on simulated observers with known parameters (real numpy/scipy, no mocks)."""

import numpy as np
import pytest
from scipy import optimize

from wna_gui.core.psyfit import (
    CEILING_BELOW,
    FLOOR_ABOVE,
    NOTE,
    REACHED,
    SIGMOIDS,
    WARNING,
    PsychometricFit,
    _Batch,
    _interval,
    _Layout,
    _search_bounds,
    _to_internal,
    analyse_conditions,
    bootstrap_fit,
    bound_flags,
    fit_batch,
    guess_max,
    fit_psychometric,
    lr_test_batch,
    performance_threshold,
    search_limits,
    shift_interval,
    sigmoid_cdf,
    sigmoid_inverse,
)

X = np.round(np.linspace(0, 1, 21), 10)
SHARED = ("width", "guess", "lapse")


def levels_for(sigmoid):
    return np.linspace(0.05, 1, 21) if sigmoid == "weibull" else X


def psi_of(sigmoid, x, thresholds, width=0.3, guess=0.05, lapse=0.02):
    """(C, L) true ψ of conditions differing in threshold (and, given arrays, in the rest)."""
    thresholds, width, guess, lapse = (np.asarray(v, dtype=float)[..., None] for v in (thresholds, width, guess, lapse))
    return guess + (1 - guess - lapse) * sigmoid_cdf(sigmoid, x[None, :], thresholds, width)


def nll(psi, k, n):
    psi = np.clip(psi, 1e-12, 1 - 1e-12)
    return float(-(k * np.log(psi) + (n - k) * np.log1p(-psi)).sum())


# --- the fitter against an independent optimiser (scipy's), where the model is the same ---

def scipy_fit(x, k, n, sigmoid, guess):
    """The best of scipy's bounded quasi-Newton (TNC, finite-difference gradient: nothing of the fitter's) from
    a few hand-picked starts, over (threshold in u units, log width, guess, lapse) within the search limits."""
    weibull = sigmoid == "weibull"
    limits = search_limits(x, sigmoid, guess, "bounded")
    bounds = [tuple(np.log(limits["threshold"])) if weibull else limits["threshold"],
              tuple(np.log(limits["width"])), limits["guess"], limits["lapse"]]
    span = bounds[0][1] - bounds[0][0]

    def objective(theta):
        threshold = np.exp(theta[0]) if weibull else theta[0]
        with np.errstate(over="ignore"):  # the Gumbel's exp(z) far above the threshold: F = 1
            psi = theta[2] + (1 - theta[2] - theta[3]) * sigmoid_cdf(sigmoid, x, threshold, np.exp(theta[1]))
        return nll(psi, k, n)

    best = None
    for position in (0.35, 0.65):
        for relative_width in (0.1, 0.3):
            start = [bounds[0][0] + position * span, np.log(relative_width * span / 2),
                     float(np.clip(k[0] / n[0], *bounds[2])), min(0.02, bounds[3][1])]
            result = optimize.minimize(objective, np.clip(start, *np.transpose(bounds)), method="TNC", bounds=bounds,
                                       options={"maxfun": 2000})
            if best is None or result.fun < best.fun:
                best = result
    return best


# A free guess is where ridges are; a fixed one only in the complete run.
@pytest.mark.parametrize("guess", [None, pytest.param(0.1, marks=pytest.mark.slow)])
@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_fits_reach_the_optimum_scipy_finds(sigmoid, guess):
    x = levels_for(sigmoid)
    rng = np.random.default_rng(3)
    thresholds = np.array([0.3, 0.45, 0.6])
    psi = psi_of(sigmoid, x, thresholds, guess=0.1 if guess else 0.15)
    k = rng.binomial(100, np.broadcast_to(psi, (2, *psi.shape))).astype(float)
    batch, batch_nll = fit_batch(x, k, 100, sigmoid=sigmoid, guess=guess, shared=())
    differences = []
    for d in range(len(k)):
        fits = [fit_psychometric(x, k[d, c], np.full(len(x), 100), sigmoid=sigmoid, guess=guess) for c in range(3)]
        params = np.array([[f.threshold, f.width, f.guess, f.lapse] for f in fits])
        # One curve is a batch of one: its fit does not depend on the other problems of a batch (the last
        # digits may: rows take the same steps, rounded apart).
        np.testing.assert_allclose(params, batch[d], rtol=1e-6)
        curve_nll = [nll(f.predict(x), k[d, c], 100) for c, f in enumerate(fits)]
        assert batch_nll[d] == pytest.approx(sum(curve_nll), abs=1e-6)
        for c in range(3):
            reference = scipy_fit(x, k[d, c], np.full(len(x), 100.0), sigmoid, guess)
            # Never worse than scipy's optimum (on a flat ridge scipy stops first), and the same optimum: the
            # estimates agree far below their standard errors (~0.01).
            assert curve_nll[c] <= reference.fun + 1e-6
            found = [np.exp(reference.x[0]) if sigmoid == "weibull" else reference.x[0], *reference.x[2:]]
            differences.append(np.abs(params[c, [0, 2, 3]] - found))
    differences = np.array(differences)
    assert np.median(differences) < 1e-5 and differences.max() < 1e-3


def test_the_joint_engine_unsplit_agrees_with_separate_fits():
    """A per-k model solved as one 12-parameter problem (not split per condition) gives the per-curve fits."""
    rng = np.random.default_rng(4)
    psi = psi_of("logistic", X, [0.25, 0.4, 0.55], guess=[0.05, 0.1, 0.2], lapse=[0.01, 0.03, 0.0])
    k = rng.binomial(200, np.broadcast_to(psi, (5, *psi.shape))).astype(float)
    batch = _Batch(X, "logistic", _Layout(3, _search_bounds(X, None, "bounded"), None, "bounded", ()))
    assert batch.layout.separable and batch.layout.n_params == 12
    start = np.broadcast_to(_to_internal("logistic", np.array([[0.4, 0.3, 0.1, 0.02]] * 3)), (5, 3, 4))
    theta, joint_nll = batch.solve(batch.pack(start), k, np.full(k.shape, 200.0))
    joint = batch.full(theta)
    for d in range(5):
        fits = [fit_psychometric(X, k[d, c], np.full(21, 200), guess=None) for c in range(3)]
        assert joint_nll[d] <= sum(nll(f.predict(X), k[d, c], 200) for c, f in enumerate(fits)) + 1e-6
        np.testing.assert_allclose(joint[d, :, 0], [f.threshold for f in fits], atol=2e-4)


def test_a_shared_fit_reaches_the_optimum_scipy_finds():
    """The joint NLL minimised by scipy from several starts is not below the vectorised fitter's."""
    rng = np.random.default_rng(5)
    thresholds = np.array([0.35, 0.3, 0.2, 0.1])
    k = rng.binomial(100, psi_of("logistic", X, thresholds)).astype(float)
    params, batch_nll = fit_batch(X, k[None], 100, guess=None, shared=SHARED)
    layout = _Layout(4, _search_bounds(X, None, "bounded"), None, "bounded", SHARED)
    batch = _Batch(X, "logistic", layout)
    n = np.full((1, 4, 21), 100.0)

    def objective(theta):
        value, grad, _ = batch.derivatives(theta[None], k[None], n)
        return value[0], grad[0]

    best = np.inf
    for start in (batch.pack(_to_internal("logistic", params))[0] + 0.05,
                  batch.pack(_to_internal("logistic", np.array([[0.5, 0.5, 0.1, 0.03]] * 4)[None]))[0]):
        result = optimize.minimize(objective, np.clip(start, layout.lo, layout.hi), jac=True, method="TNC",
                                   bounds=list(zip(layout.lo, layout.hi)), options={"maxfun": 2000})
        best = min(best, result.fun)
    assert batch_nll[0] <= best + 1e-6
    assert np.all(params[0, :, 1] == params[0, 0, 1]) and np.all(params[0, :, 2] == params[0, 0, 2])
    np.testing.assert_allclose(params[0, :, 0], thresholds, atol=0.03)


def test_the_batch_bootstrap_refits_each_resample_as_it_is_refitted_alone():
    rng = np.random.default_rng(6)
    items = rng.random((100, 21)) < psi_of("logistic", X, 0.4, guess=0.1)[0]
    fit_b, samples_b = bootstrap_fit(X, items, guess=None, n_boot=100, gof_samples=50, seed=3, return_samples=True)
    fit_s, samples_s = bootstrap_fit(X, items, guess=None, n_boot=100, gof_samples=50, seed=3, return_samples=True,
                                     engine="scalar")
    alone = fit_psychometric(X, items.sum(axis=0), np.full(21, 100), guess=None)
    assert fit_b.threshold == fit_s.threshold == alone.threshold  # one point estimate, fit_psychometric's
    for name in ("threshold", "width", "guess", "lapse"):  # a resample's fit does not depend on its batch-mates
        np.testing.assert_allclose(getattr(samples_b, name), getattr(samples_s, name), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit_b.threshold_ci, fit_s.threshold_ci, rtol=1e-6)
    # A simulated deviance within rounding of the observed one may count on either side.
    assert fit_b.p_value == pytest.approx(fit_s.p_value, abs=0.02)
    assert fit_b.guess_ci is not None and fit_b.lapse_ci is not None


def test_separate_curves_analysed_together_are_the_per_curve_fits_with_paired_resamples():
    rng = np.random.default_rng(7)
    psi = psi_of("logistic", X, [0.4, 0.3, 0.2], guess=[0.05, 0.1, 0.15])
    items = (rng.random((80, 3, 21)) < psi).astype(float)
    analysis = analyse_conditions(X, items, guess=None, shared=(), n_boot=60, gof_samples=0, lr_samples=0, seed=9)
    assert analysis.shared == () and analysis.n_params == 12 and analysis.n_points == 63
    for c in range(3):
        alone = fit_psychometric(X, items[:, c].sum(0), np.full(21, 80), guess=None)
        fit = analysis.fits[c]
        assert (fit.threshold, fit.width, fit.guess, fit.lapse) == (alone.threshold, alone.width, alone.guess,
                                                                     alone.lapse)
        _, samples = bootstrap_fit(X, items[:, c], guess=None, n_boot=60, gof_samples=0, seed=9,
                                   return_samples=True)
        # The same item resamples as a single-curve bootstrap with the seed, refitted to the same optimum.
        np.testing.assert_allclose(analysis.boot[c, :, 0], samples.threshold, atol=1e-4)


# --- the floor rises, the performance threshold falls: what each fit makes of it ---

def test_a_rising_floor_is_read_right_by_the_joint_fit_and_the_performance_threshold():
    """Stimulation moves the whole curve left until its lower part lies below γ = 0: the observed floor rises
    from 0.07 to 0.94 while the performance threshold falls. The joint fit with one guess, width and lapse
    recovers every shift, and so does the performance threshold, read even off fits that give each curve its
    own (free) guess. Those fits cannot place the top curve's floor (≈0.94, above 1 − the largest lapse): its
    guess runs to the limit, is flagged, and its midpoint shift is off."""
    thresholds = np.array([0.20, 0.13, 0.06, -0.02, -0.10, -0.16])
    guess, lapse, width, level = 0.05, 0.02, 0.3, 0.5
    psi = psi_of("logistic", X, thresholds, width, guess, lapse)
    assert psi[0, 0] < 0.1 and psi[-1, 0] > 0.9  # the floor rises
    true_performance = performance_threshold("logistic", level, thresholds, width, guess, lapse)[0]
    assert np.all(np.diff(true_performance) < 0)  # the performance threshold falls
    in_range = true_performance >= 0
    items = np.random.default_rng(6).binomial(20, np.broadcast_to(psi, (100, *psi.shape)))  # 2,000 trials a point

    joint = analyse_conditions(X, items, 20, guess=None, shared=SHARED, n_boot=100, gof_samples=0, lr_samples=0,
                               seed=1)
    free = analyse_conditions(X, items, 20, guess=None, shared=(), n_boot=100, gof_samples=0, lr_samples=0, seed=1)
    joint_alpha = np.array([f.threshold for f in joint.fits])
    np.testing.assert_allclose(joint_alpha - joint_alpha[0], thresholds - thresholds[0], atol=0.02)
    assert not [flag for f in joint.fits for flag in bound_flags(f, X, None, "bounded", SHARED)
                if flag.severity == WARNING]
    for analysis in (joint, free):
        params = np.array([[f.threshold, f.width, f.guess, f.lapse] for f in analysis.fits])
        performance = performance_threshold("logistic", level, *params.T)[0]
        np.testing.assert_allclose((performance - performance[0])[in_range],
                                   (true_performance - true_performance[0])[in_range], atol=0.02)
    # The paired bootstrap interval of the joint shift covers the truth at the largest k.
    low, high = _interval(joint.boot[-1, :, 0] - joint.boot[0, :, 0])
    assert low <= thresholds[-1] - thresholds[0] <= high and high < 0

    flags = [bound_flags(f, X, None, "bounded") for f in free.fits]
    limited = [c for c, fl in enumerate(flags) if any(f.parameter == "guess" and f.side == "upper" for f in fl)]
    assert limited == [5], "the free guess of the curve whose floor is above 1 − lapse reaches its limit"
    for c in limited:
        flag = next(f for f in flags[c] if f.parameter == "guess")
        assert flag.severity == WARNING and flag.label == f"guess={guess_max('bounded'):g}"
        assert "threshold shift" in flag.reason
        free_shift = free.fits[c].threshold - free.fits[0].threshold
        assert abs(free_shift - (thresholds[c] - thresholds[0])) > 0.02  # the flagged estimate is off


def test_free_guesses_of_out_of_range_floors_end_at_a_limit():
    """Over 200 simulated sweeps of that observer, the free guess of the top curve (floor 0.94) ends at 0 or at
    0.5 nearly always, and at 0.5 often: a limit the table flags either way."""
    thresholds = np.array([0.20, 0.13, 0.06, -0.02, -0.10, -0.16])
    psi = psi_of("logistic", X, thresholds)
    k = np.random.default_rng(3).binomial(2000, np.broadcast_to(psi, (200, *psi.shape))).astype(float)
    free, _ = fit_batch(X, k, 2000, guess=None, shared=())
    top = free[:, -1, 2]
    at_limit = (top < 1e-4) | (top > 0.5 - 1e-4)
    assert np.mean(at_limit) >= 0.8 and np.mean(top > 0.5 - 1e-4) >= 0.3
    assert np.all(free[:, 0, 2] < 0.2)  # the bottom curve's floor is measured: no limit there


def test_recovery_holds_over_many_simulated_sweeps():
    """The same observer, 100 simulated sweeps at once: joint shifts within 0.02 of the truth in (nearly) all."""
    thresholds = np.array([0.20, 0.13, 0.06, -0.02, -0.10, -0.16])
    psi = psi_of("logistic", X, thresholds)
    k = np.random.default_rng(2).binomial(2000, np.broadcast_to(psi, (100, *psi.shape))).astype(float)
    joint, _ = fit_batch(X, k, 2000, guess=None, shared=SHARED)
    error = np.abs(joint[:, :, 0] - joint[:, :1, 0] - (thresholds - thresholds[0]))
    assert np.mean(error.max(axis=1) < 0.02) >= 0.95


# --- likelihood-ratio tests ---

@pytest.mark.slow
def test_the_likelihood_ratio_test_holds_its_size_and_has_power():
    """200 simulated sweeps of three conditions with equal thresholds (100 trials a point): the Monte-Carlo test
    of equal thresholds rejects ≈ 5% at α = 0.05; 200 sweeps with a shift of 0.05: it rejects nearly all."""
    equal = psi_of("logistic", X, [0.3, 0.3, 0.3])
    k = np.random.default_rng(11).binomial(100, np.broadcast_to(equal, (200, *equal.shape))).astype(float)
    statistic, p_chi2, p_mc = lr_test_batch(X, k, 100, guess=None, samples=100, seed=12)
    assert statistic.shape == p_mc.shape == (200,) and np.all(statistic >= 0)
    assert 0.02 <= np.mean(p_mc < 0.05) <= 0.09
    assert 0.02 <= np.mean(p_chi2 < 0.05) <= 0.11
    assert np.all((p_mc > 0) & (p_mc <= 1))

    shifted = psi_of("logistic", X, [0.3, 0.25])
    k = np.random.default_rng(13).binomial(100, np.broadcast_to(shifted, (200, *shifted.shape))).astype(float)
    _, _, p_mc = lr_test_batch(X, k, 100, guess=None, samples=100, seed=14)
    assert np.mean(p_mc < 0.05) >= 0.9


def test_an_analysis_tests_equal_thresholds_each_k_against_the_reference_and_the_sharing():
    rng = np.random.default_rng(8)
    psi = psi_of("logistic", X, [0.4, 0.4, 0.3, 0.2])
    items = (rng.random((100, 4, 21)) < psi).astype(float)
    analysis = analyse_conditions(X, items, guess=None, shared=SHARED, n_boot=50, gof_samples=50, lr_samples=50,
                                  seed=2, reference=0)
    tests = {(t.name, t.conditions): t for t in analysis.lr_tests}
    assert set(tests) == {("equal", (0, 1, 2, 3)), ("pair", (0, 1)), ("pair", (0, 2)), ("pair", (0, 3)),
                          ("sharing", (0, 1, 2, 3))}
    assert tests["equal", (0, 1, 2, 3)].df == 3 and tests["pair", (0, 1)].df == 1
    assert tests["sharing", (0, 1, 2, 3)].df == 3 * 3  # width, guess and lapse for each of the other three
    assert tests["equal", (0, 1, 2, 3)].p_value < 0.05 and tests["pair", (0, 3)].p_value < 0.05
    assert tests["pair", (0, 1)].p_value > 0.05  # the same threshold
    assert tests["sharing", (0, 1, 2, 3)].p_value > 0.01  # the curves do share their shape
    for test in analysis.lr_tests:
        assert test.samples == 50 and 1 / 51 <= test.p_value <= 1 and 0 <= test.p_chi2 <= 1
    assert 0 <= analysis.p_value <= 1 and all(0 <= f.p_value <= 1 for f in analysis.fits)
    assert analysis.df == 84 - analysis.n_params == 84 - 7
    assert sum(f.deviance for f in analysis.fits) == pytest.approx(analysis.deviance)


# --- performance thresholds ---

@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_the_performance_threshold_is_where_psi_reaches_the_level(sigmoid):
    fit = PsychometricFit(sigmoid, threshold=0.4, width=0.3, guess=0.1, lapse=0.03, deviance=0.0, n_levels=21)
    for level in (0.3, 0.5, 0.8):
        value, status = performance_threshold(sigmoid, level, fit.threshold, fit.width, fit.guess, fit.lapse)
        assert status == REACHED and fit.predict(value) == pytest.approx(level, abs=1e-12)
    # ψ(α) = guess + (1 − guess − lapse)/2: at that level the two thresholds coincide.
    midpoint = fit.guess + (1 - fit.guess - fit.lapse) / 2
    assert performance_threshold(sigmoid, midpoint, 0.4, 0.3, 0.1, 0.03)[0] == pytest.approx(0.4)


def test_a_curve_whose_floor_is_above_the_level_or_top_below_has_no_performance_threshold():
    values, status = performance_threshold("logistic", 0.5, [0.3, 0.3, 0.3, np.nan], 0.2, [0.5, 0.6, 0.1, 0.1],
                                           [0.0, 0.0, 0.55, 0.0])
    assert list(status[:3]) == [FLOOR_ABOVE, FLOOR_ABOVE, CEILING_BELOW]
    assert values[0] == values[1] == -np.inf and values[2] == np.inf and np.isnan(values[3])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        performance_threshold("logistic", 1.0, 0.3, 0.2, 0.1, 0.0)


def test_intervals_and_paired_shifts_tolerate_levels_never_reached():
    values = np.linspace(0, 1, 99)
    # Only the smallest sample is infinite: the ends fall between finite ones, as numpy's percentiles do.
    np.testing.assert_allclose(_interval(np.r_[-np.inf, values]), np.percentile(np.r_[-1e9, values], [2.5, 97.5]))
    assert _interval(np.r_[np.full(5, -np.inf), np.zeros(95)])[0] == -np.inf
    np.testing.assert_allclose(_interval(np.linspace(0, 1, 101)), np.percentile(np.linspace(0, 1, 101), [2.5, 97.5]))
    assert shift_interval(np.r_[-np.inf, np.zeros(9)], np.zeros(10))[0] == -np.inf
    assert shift_interval(np.r_[-np.inf, np.zeros(9)], np.r_[-np.inf, np.zeros(9)]) is None  # −∞ − (−∞)
    with pytest.raises(ValueError, match="equal length"):
        shift_interval(np.zeros(3), np.zeros(4))


# --- estimates at a bound ---

def test_estimates_at_a_search_limit_are_flagged_with_a_reason():
    def fit(**values):
        base = dict(sigmoid="logistic", threshold=0.4, width=0.3, guess=0.1, lapse=0.02, deviance=1.0, n_levels=21)
        return PsychometricFit(**{**base, **values})

    assert bound_flags(fit(), X, None, "bounded") == ()
    assert bound_flags(fit(guess=0.5), X, None, "bounded") == ()  # a floor of 0.5 is no limit: [0, 1 − lapse)
    (flag,) = bound_flags(fit(guess=guess_max("bounded")), X, None, "bounded")
    assert (flag.parameter, flag.side, flag.bound, flag.severity) == ("guess", "upper", guess_max("bounded"), WARNING)
    (flag,) = bound_flags(fit(lapse=0.06), X, None, "bounded", shared=("lapse",))
    assert flag.severity == WARNING and flag.label == "lapse=0.06" and flag.reason.startswith("the shared lapse")
    assert bound_flags(fit(lapse=0.06), X, None, "free") == ()  # free lapse: the limit is 0.5
    (flag,) = bound_flags(fit(lapse=0.5), X, None, "free")
    assert flag.bound == 0.5 and flag.severity == WARNING
    notes = bound_flags(fit(guess=0.0, lapse=0.0), X, None, "bounded")
    assert [(f.parameter, f.severity) for f in notes] == [("guess", NOTE), ("lapse", NOTE)]
    assert bound_flags(fit(guess=0.1), X, 0.1, "bounded") == ()  # a fixed guess is not an estimate
    (flag,) = bound_flags(fit(width=0.005), X, None, "bounded")
    assert (flag.parameter, flag.side, flag.label) == ("width", "lower", "width=min")
    (flag,) = bound_flags(fit(threshold=-0.5), X, None, "bounded")
    assert (flag.parameter, flag.side) == ("threshold", "lower") and "do not locate" in flag.reason
    # Weibull widths are in ln γ: its limits too.
    x = np.linspace(0.05, 1, 21)
    span = np.log(1 / 0.05)
    (flag,) = bound_flags(fit(sigmoid="weibull", width=5 * span), x, None, "bounded")
    assert flag.side == "upper" and "ln γ" in flag.reason
    assert flag.to_dict()["label"] == "width=max"


def test_fits_stuck_at_a_limit_are_found_and_flagged():
    """A curve that starts above 1 − the largest lapse drives a free guess to its limit (one that starts at 0.6 is
    fitted: the limit is not 0.5); a top that sags, the lapse."""
    rng = np.random.default_rng(3)
    floor = 0.6 + 0.38 * sigmoid_cdf("logistic", X, 0.3, 0.2)
    fit = fit_psychometric(X, rng.binomial(1000, floor), np.full(21, 1000), guess=None)
    assert fit.guess == pytest.approx(0.6, abs=0.02)
    assert not [f for f in bound_flags(fit, X, None, "bounded") if f.parameter == "guess"]
    floor = 0.96 + 0.03 * sigmoid_cdf("logistic", X, 0.3, 0.2)
    fit = fit_psychometric(X, rng.binomial(1000, floor), np.full(21, 1000), guess=None)
    assert fit.guess == pytest.approx(guess_max("bounded"), abs=1e-6)
    assert f"guess={guess_max('bounded'):g}" in [f.label for f in bound_flags(fit, X, None, "bounded")
                                                  if f.severity == WARNING]
    sag = 0.02 + 0.88 * sigmoid_cdf("logistic", X, 0.4, 0.2)
    fit = fit_psychometric(X, rng.binomial(1000, sag), np.full(21, 1000), guess=None)
    assert "lapse=0.06" in [f.label for f in bound_flags(fit, X, None, "bounded")]


def test_repeated_trials_per_item_narrow_the_intervals():
    """r noise samples per image: counts 0…r per item and level; the bootstrap resamples items with all their
    trials, and more trials per item give tighter intervals."""
    psi = psi_of("logistic", X, [0.4])[0]
    rng = np.random.default_rng(5)
    once = rng.binomial(1, np.broadcast_to(psi, (100, 21)))
    four = rng.binomial(4, np.broadcast_to(psi, (100, 21)))
    fit_1 = bootstrap_fit(X, once, guess=None, n_boot=200, gof_samples=0, seed=1)
    fit_4 = bootstrap_fit(X, four, guess=None, n_boot=200, gof_samples=0, seed=1, trials_per_item=4)
    width_1, width_4 = np.diff(fit_1.threshold_ci)[0], np.diff(fit_4.threshold_ci)[0]
    assert 0.3 < width_4 / width_1 < 0.75  # ≈ 1/2 = 1/√4
    with pytest.raises(ValueError, match="counts from 0 to trials_per_item = 4"):
        bootstrap_fit(X, four + 1, n_boot=5, gof_samples=0, trials_per_item=4)
    items = np.stack([four, four], axis=1)
    with pytest.raises(ValueError, match="whole numbers from 0 to trials_per_item = 2"):
        analyse_conditions(X, items, 2, n_boot=0, gof_samples=0, lr_samples=0)


def test_a_condition_without_a_curve_is_named():
    items = np.zeros((10, 2, 21))
    items[:, 0, 10:] = 1
    with pytest.raises(ValueError, match="condition 1: no correct responses"):
        analyse_conditions(X, items, n_boot=0, gof_samples=0, lr_samples=0)
    with pytest.raises(ValueError, match="only width, guess, lapse can be shared"):
        fit_batch(X, np.ones((1, 2, 21)), 2, shared=("threshold",))


def test_weibull_thresholds_and_widths_keep_their_units_in_the_joint_fit():
    x = np.linspace(0.05, 1, 21)
    psi = psi_of("weibull", x, [0.3, 0.5], width=1.5, guess=0.1)
    k = np.random.default_rng(9).binomial(5000, psi).astype(float)
    params, _ = fit_batch(x, k[None], 5000, sigmoid="weibull", guess=0.1, shared=("width", "lapse"))
    np.testing.assert_allclose(params[0, :, 0], [0.3, 0.5], atol=0.01)  # thresholds in γ
    assert params[0, 0, 1] == pytest.approx(1.5, abs=0.05)  # the width in ln γ
    assert sigmoid_inverse("weibull", 0.95, 0.3, 1.5) / sigmoid_inverse("weibull", 0.05, 0.3, 1.5) == \
        pytest.approx(np.exp(1.5))
