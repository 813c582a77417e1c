"""Psychometric fits on simulated observers with known parameters (real numpy/scipy, no mocks)."""

import json

import numpy as np
import pytest
from scipy import special

from wna_gui.core.psyfit import (
    SHAPES,
    SIGMOIDS,
    BootstrapSamples,
    PsychometricFit,
    SigmoidShape,
    bootstrap_fit,
    bound_flags,
    check_shape,
    fit_psychometric,
    search_limits,
    sigmoid_cdf,
    sigmoid_inverse,
    threshold_shift,
)

TRUE_THRESHOLD = 0.45
TRUE_WIDTH = 0.3
TRUE_LAPSE = 0.02


def levels_for(sigmoid):
    # The Weibull lives on log x, so its levels must be positive.
    return np.linspace(0.05, 1, 21) if sigmoid == "weibull" else np.linspace(0, 1, 21)


def true_psi(sigmoid, x, guess, threshold=TRUE_THRESHOLD, width=TRUE_WIDTH, lapse=TRUE_LAPSE):
    return guess + (1 - guess - lapse) * sigmoid_cdf(sigmoid, x, threshold, width)


def simulate_items(rng, psi, n_items):
    """(n_items, n_levels) 0/1 responses, independent across items and levels."""
    return rng.random((n_items, len(psi))) < psi


@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_sigmoid_conventions(sigmoid):
    check_shape(sigmoid)  # the package's own sanity check, the same for every shape
    threshold, width = 0.45, 0.3
    assert sigmoid_cdf(sigmoid, threshold, threshold, width) == pytest.approx(0.5, abs=1e-12)
    x_lo, x_mid, x_hi = sigmoid_inverse(sigmoid, [0.05, 0.5, 0.95], threshold, width)
    assert x_mid == pytest.approx(threshold, abs=1e-12)
    spread = np.log(x_hi) - np.log(x_lo) if sigmoid == "weibull" else x_hi - x_lo
    assert spread == pytest.approx(width, abs=1e-12)
    f = np.linspace(0.01, 0.99, 11)
    np.testing.assert_allclose(sigmoid_cdf(sigmoid, sigmoid_inverse(sigmoid, f, threshold, width), threshold, width), f)
    assert sigmoid_inverse(sigmoid, 1.0, threshold, width) == np.inf


def test_the_shape_check_catches_a_broken_shape():
    logistic = SHAPES["logistic"]
    wrong_pdf = SigmoidShape(logistic.cdf, lambda z: 2 * logistic.pdf(z), logistic.quantile)
    with pytest.raises(ValueError, match="the logistic sigmoid breaks its conventions: its pdf"):
        check_shape("logistic", {"logistic": wrong_pdf})
    falling = SigmoidShape(lambda z: logistic.cdf(-z), logistic.pdf, logistic.quantile)
    with pytest.raises(ValueError, match="does not rise from 0 to 1"):
        check_shape("logistic", {"logistic": falling})


def test_sigmoid_closed_forms():
    x, a, w = np.linspace(0, 1, 11), 0.45, 0.3
    np.testing.assert_allclose(sigmoid_cdf("logistic", x, a, w), 1 / (1 + np.exp(-(x - a) / (w / (2 * np.log(19))))))
    np.testing.assert_allclose(sigmoid_cdf("gauss", x, a, w), special.ndtr((x - a) / (w / (2 * special.ndtri(0.95)))))
    c = (np.log(-np.log(0.05)) - np.log(-np.log(0.95))) / w
    np.testing.assert_allclose(sigmoid_cdf("gumbel", x, a, w), 1 - np.exp(-np.exp((x - a) * c + np.log(np.log(2)))))
    # The Weibull is the Gumbel on log x, with F(0) = 0.
    np.testing.assert_allclose(sigmoid_cdf("weibull", x[1:], a, w), sigmoid_cdf("gumbel", np.log(x[1:]), np.log(a), w))
    assert sigmoid_cdf("weibull", 0.0, a, w) == 0.0


@pytest.mark.parametrize("guess", [0.5, 0.1])
@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_parameter_recovery(sigmoid, guess):
    rng = np.random.default_rng(7)
    x = levels_for(sigmoid)
    n_trials = np.full(len(x), 20000)
    n_correct = rng.binomial(n_trials, true_psi(sigmoid, x, guess))
    fit = fit_psychometric(x, n_correct, n_trials, sigmoid=sigmoid, guess=guess)
    assert abs(fit.threshold - TRUE_THRESHOLD) < 0.02
    assert abs(fit.width - TRUE_WIDTH) < 0.02
    assert abs(fit.lapse - TRUE_LAPSE) < 0.01
    assert fit.guess == guess and fit.n_levels == len(x)
    assert fit.threshold_ci is None and fit.p_value is None


def test_free_guess_recovery():
    rng = np.random.default_rng(8)
    x = levels_for("logistic")
    n_trials = np.full(len(x), 20000)
    n_correct = rng.binomial(n_trials, true_psi("logistic", x, 0.25))
    fit = fit_psychometric(x, n_correct, n_trials, guess=None, lapse="free")
    assert abs(fit.guess - 0.25) < 0.01
    assert abs(fit.threshold - TRUE_THRESHOLD) < 0.02


def test_a_high_floor_is_fitted_not_capped():
    """Digit 8 under noise: the bundled CNN calls 84% of noise "8", so its curve starts near 0.9. The free guess rate
    is bounded by 1 − lapse, not by 0.5, so the fit recovers that floor and no bound flag is raised."""
    rng = np.random.default_rng(3)
    x = levels_for("logistic")
    n_trials = np.full(len(x), 20000)
    n_correct = rng.binomial(n_trials, 0.88 + (1 - 0.88 - 0.02) * special.expit((x - TRUE_THRESHOLD) / 0.05))
    fit = fit_psychometric(x, n_correct, n_trials, guess=None, lapse="bounded")
    assert abs(fit.guess - 0.88) < 0.01
    assert not [flag for flag in bound_flags(fit, x, None, "bounded") if flag.parameter == "guess"]
    assert search_limits(x, "logistic", None, "bounded")["guess"][1] > 0.9


def test_weibull_accepts_zero_level():
    x = np.linspace(0, 1, 21)
    n_trials = np.full(len(x), 1000.0)
    fit = fit_psychometric(x, n_trials * true_psi("weibull", x, 0.1), n_trials, sigmoid="weibull")
    assert fit.threshold == pytest.approx(TRUE_THRESHOLD, abs=1e-3)


@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_deviance_is_zero_at_the_model(sigmoid):
    x = levels_for(sigmoid)
    n_trials = np.full(len(x), 500.0)
    fit = fit_psychometric(x, n_trials * true_psi(sigmoid, x, 0.1), n_trials, sigmoid=sigmoid, guess=0.1)
    assert fit.deviance < 1e-6
    assert fit.threshold == pytest.approx(TRUE_THRESHOLD, abs=1e-4)
    np.testing.assert_allclose(fit.predict(x), true_psi(sigmoid, x, 0.1), atol=1e-6)


def test_bootstrap_interval_coverage():
    # Percentile intervals at 100 items cover ~92-93% in the long run (300 repetitions,
    # 2-way and 10-way), slightly under 95% as Wichmann & Hill (2001b) report; these seeds give 93/100.
    x = levels_for("logistic")
    psi = true_psi("logistic", x, 0.1)
    repetitions, covered = 100, 0
    for repetition in range(repetitions):
        items = simulate_items(np.random.default_rng(2000 + repetition), psi, 100)
        fit = bootstrap_fit(x, items, sigmoid="logistic", guess=0.1, n_boot=100, seed=repetition, gof_samples=0)
        covered += fit.threshold_ci[0] <= TRUE_THRESHOLD <= fit.threshold_ci[1]
    assert covered >= 90


def test_goodness_of_fit_accepts_the_model():
    # Under the model p is uniform (checked offline over 150 data sets: 5% below 0.05), so a
    # single draw fails this with 5% chance; the seed is fixed.
    rng = np.random.default_rng(13)
    x = levels_for("gauss")
    items = simulate_items(rng, true_psi("gauss", x, 0.1), 200)
    fit = bootstrap_fit(x, items, sigmoid="gauss", guess=0.1, n_boot=50, seed=1, gof_samples=200)
    assert fit.p_value > 0.05
    assert fit.threshold_ci[0] < fit.threshold < fit.threshold_ci[1]
    assert fit.width_ci[0] < fit.width < fit.width_ci[1]


def test_goodness_of_fit_rejects_a_non_monotone_observer():
    rng = np.random.default_rng(4)
    x = levels_for("logistic")
    # Rises, then collapses back to chance: no sigmoid can follow it.
    psi = 0.1 + 0.85 * np.exp(-0.5 * ((x - 0.5) / 0.15) ** 2)
    items = simulate_items(rng, psi, 200)
    fit = bootstrap_fit(x, items, sigmoid="logistic", guess=0.1, n_boot=0, seed=1, gof_samples=200)
    assert fit.p_value < 0.05
    assert fit.threshold_ci is None and fit.width_ci is None


def simulate_shifted_conditions(rng, n_items, thresholds):
    """The same items under several conditions: each item has its own difficulty offset,
    so responses are correlated across conditions as with real test images."""
    x = levels_for("logistic")
    offsets = rng.normal(0, 0.1, size=(n_items, 1))
    return x, [rng.random((n_items, len(x))) < true_psi("logistic", x - offsets, 0.1, threshold=t)
               for t in thresholds]


def test_threshold_shift_recovers_truth_with_paired_bootstrap():
    rng = np.random.default_rng(5)
    x, (items_0, items_k) = simulate_shifted_conditions(rng, 300, [0.45, 0.35])
    fit_0, boot_0 = bootstrap_fit(x, items_0, guess=0.1, n_boot=200, seed=11, gof_samples=0, return_samples=True)
    fit_k, boot_k = bootstrap_fit(x, items_k, guess=0.1, n_boot=200, seed=11, gof_samples=0, return_samples=True)
    shift, interval = threshold_shift(fit_k, fit_0, boot_k, boot_0)
    assert shift == pytest.approx(fit_k.threshold - fit_0.threshold)
    assert interval[0] <= -0.10 <= interval[1]
    assert abs(shift + 0.10) < 0.03

    # Raw threshold arrays work too; unpaired resamples (another seed) give a wider interval.
    _, boot_k_unpaired = bootstrap_fit(x, items_k, guess=0.1, n_boot=200, seed=12, gof_samples=0,
                                       return_samples=True)
    _, unpaired = threshold_shift(fit_k, fit_0, boot_k_unpaired.threshold, boot_0.threshold)
    assert unpaired[1] - unpaired[0] > interval[1] - interval[0]


def test_threshold_shift_without_samples():
    fit_0 = fit_psychometric([0, 0.5, 1], [10, 50, 90], [100, 100, 100])
    fit_k = fit_psychometric([0, 0.5, 1], [10, 70, 90], [100, 100, 100])
    shift, interval = threshold_shift(fit_k, fit_0)
    assert shift < 0 and interval is None
    with pytest.raises(ValueError, match="both fits"):
        threshold_shift(fit_k, fit_0, np.zeros(5), None)
    with pytest.raises(ValueError, match="equal length"):
        threshold_shift(fit_k, fit_0, np.zeros(5), np.zeros(4))


def test_bootstrap_is_deterministic_and_samples_are_returned():
    rng = np.random.default_rng(6)
    x = levels_for("logistic")
    items = simulate_items(rng, true_psi("logistic", x, 0.1), 60)
    fit_a, samples_a = bootstrap_fit(x, items, n_boot=30, seed=2, gof_samples=20, return_samples=True)
    fit_b = bootstrap_fit(x, items.astype(int), n_boot=30, seed=2, gof_samples=20)
    assert fit_a == fit_b
    assert isinstance(samples_a, BootstrapSamples)
    assert samples_a.threshold.shape == samples_a.width.shape == (30,)
    assert samples_a.seed == 2 and samples_a.n_items == 60


def test_dict_round_trip_is_json_safe():
    rng = np.random.default_rng(9)
    x = levels_for("weibull")
    items = simulate_items(rng, true_psi("weibull", x, 0.5), 50)
    fit = bootstrap_fit(x, items, sigmoid="weibull", guess=0.5, n_boot=20, gof_samples=20)
    restored = PsychometricFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert restored == fit
    np.testing.assert_allclose(restored.predict(x), fit.predict(x))


def test_flat_valid_data_still_fits():
    x = np.linspace(0, 1, 21)
    fit = fit_psychometric(x, np.full(21, 50), np.full(21, 100), guess=0.1)
    assert np.isfinite([fit.threshold, fit.width, fit.lapse, fit.deviance]).all()


def test_levels_without_trials_are_ignored():
    x = np.linspace(0, 1, 21)
    n_trials = np.full(21, 1000.0)
    n_correct = n_trials * true_psi("logistic", x, 0.1)
    n_trials[[0, 5]] = 0
    n_correct[[0, 5]] = 0
    fit = fit_psychometric(x, n_correct, n_trials)
    assert fit.n_levels == 19
    assert fit.threshold == pytest.approx(TRUE_THRESHOLD, abs=1e-4)


X = [0.0, 0.5, 1.0]
N = [10, 10, 10]


@pytest.mark.parametrize("args, kwargs, message", [
    ((X, [1, 2], N), {}, "same length"),
    (([0.0, np.nan, 1.0], [1, 2, 3], N), {}, "x contains NaN"),
    ((X, [1, np.nan, 3], N), {}, "n_correct contains NaN"),
    ((X, [0, 0, 0], [0, 0, 0]), {}, "n_trials is zero at every level"),
    ((X, [1, 12, 3], N), {}, "exceeds n_trials"),
    ((X, [-1, 2, 3], N), {}, "non-negative"),
    ((X, [0, 0, 0], N), {}, "no correct responses"),
    ((X, N, N), {}, "every trial is correct"),
    (([0.5, 0.5, 0.5], [1, 2, 3], N), {}, "two distinct stimulus levels"),
    (([-0.5, 0.5, 1.0], [1, 2, 3], N), {"sigmoid": "weibull"}, "x >= 0"),
    ((X, [1, 2, 3], N), {"sigmoid": "probit"}, "unknown sigmoid"),
    ((X, [1, 2, 3], N), {"guess": 1.5}, "guess must be"),
    ((X, [1, 2, 3], N), {"lapse": "loose"}, "lapse must be"),
    ((X, [1, 2, 3], N), {"guess": 0.6, "lapse": 0.5}, "guess \\+ lapse"),
    ((X, [1, 2, 3], N), {"guess": None, "lapse": 0.995}, "guess \\+ lapse"),
])
def test_fit_rejects_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_psychometric(*args, **kwargs)


@pytest.mark.parametrize("matrix, message", [
    (np.ones(3), "2-D"),
    (np.full((4, 3), 0.5), "only 0/1"),
    (np.array([[1.0, np.nan, 0.0]]), "NaN"),
    (np.ones((4, 2)), "columns"),
    (np.zeros((0, 3)), "no items"),
])
def test_bootstrap_rejects_bad_matrix(matrix, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_fit(X, matrix, n_boot=5, gof_samples=5)
