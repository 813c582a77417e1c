"""The bias-map attack (paper §3.2, Fig. 6, Table 2): its end points, a linear observer's closed form, and the
paper's findings on the bundled CNN for every estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wna_gui.core.bias_attack import (
    CURVES,
    BiasAttackConfig,
    BiasAttackExperiment,
    chosen_signals,
    mix_and_classify,
    noise_images,
)
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.estimators import ESTIMATOR_NAMES
from wna_gui.core.models import LoadedModel, LogisticRegression, ZOO, load_default
from wna_gui.core.noise import GaussianNoise
from wna_gui.core.runtime import Runtime
from wna_gui.core.stats import wilson_interval

GAMMAS = (0.0, 0.5, 1.0)
TARGETS = (3, 8)


@pytest.fixture(scope="module")
def cnn():
    return load_default()


@pytest.fixture(scope="module")
def maps(cnn):
    """Every estimator's maps of the bundled CNN from 3,000 uniform-noise samples."""
    config = ClassificationImageConfig(samples=3000, estimators=ESTIMATOR_NAMES, gradient_every=6)
    experiment = ClassificationImageExperiment(cnn, config, device="cpu")
    experiment.run_to_end()
    return experiment.state


@pytest.fixture(scope="module")
def attacks(cnn, maps):
    """estimator → finished attack on targets 3 and 8 (the classes uniform noise lands in, so every estimator
    has their maps), 200 noise images and 200 signals."""
    out = {}
    for estimator in ESTIMATOR_NAMES:
        config = BiasAttackConfig(estimator=estimator, gammas=GAMMAS, samples=200, signals=200, min_support=5,
                                  targets=TARGETS)
        out[estimator] = BiasAttackExperiment(cnn, config, device="cpu", maps=maps).run_to_end()
    return out


@pytest.mark.slow
def test_gamma_0_is_how_often_the_model_calls_noise_and_signals_the_target(cnn, attacks):
    snapshot = attacks["hard"]
    config = BiasAttackConfig(gammas=GAMMAS, samples=200, signals=200)
    runtime = Runtime(cnn, "cpu")
    with torch.inference_mode():
        noise_labels = runtime.logits(noise_images(config, (1, 28, 28), "cpu")).argmax(1).numpy()
        signal_labels = runtime.logits(chosen_signals(config, cnn).images).argmax(1).numpy()
    rates = snapshot.rates()
    for t, target in enumerate(snapshot.targets):
        for c, curve in enumerate(CURVES):
            labels = noise_labels if curve.startswith("noise") else signal_labels
            assert rates[c, t, 0] == pytest.approx(np.mean(labels == target), abs=1e-12)


@pytest.mark.slow
def test_gamma_1_is_whether_the_map_itself_is_classified_as_its_class(cnn, attacks):
    snapshot = attacks["hard"]
    runtime = Runtime(cnn, "cpu")
    with torch.inference_mode():
        given = runtime.logits(torch.as_tensor(snapshot.maps).reshape(-1, 1, 28, 28)).argmax(1).numpy()
        given_means = runtime.logits(torch.as_tensor(snapshot.means).reshape(-1, 1, 28, 28)).argmax(1).numpy()
    rates = snapshot.rates()
    np.testing.assert_array_equal(rates[0, :, -1], (given == snapshot.targets).astype(float))
    np.testing.assert_array_equal(rates[1, :, -1], (given == snapshot.targets).astype(float))
    np.testing.assert_array_equal(rates[2, :, -1], (given_means == snapshot.targets).astype(float))


@pytest.mark.slow
def test_the_hard_label_maps_are_the_mean_noise_as_measured(maps, attacks):
    snapshot = attacks["hard"]
    measured = maps.snapshot().maps_of("hard").of("mean", snapshot.targets)
    np.testing.assert_allclose(snapshot.maps, measured, rtol=0, atol=1e-6)
    assert snapshot.map_rule == "raw" and attacks["logit"].map_rule == "minmax"
    assert attacks["logit"].maps.min() == 0.0 and attacks["logit"].maps.max() == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_noise_plus_map_fools_more_than_signal_plus_map(attacks, estimator):
    """The paper's finding (Fig. 6C): converting noise to a target is easier than converting a digit."""
    mean, low, high = attacks[estimator].average()
    half = GAMMAS.index(0.5)
    assert mean[0, half] > mean[1, half], (estimator, mean[:, half])


@pytest.mark.slow
def test_mean_images_fool_more_than_hard_label_maps_at_equal_gamma(attacks):
    mean, _, _ = attacks["hard"].average()
    half = GAMMAS.index(0.5)
    assert mean[2, half] > mean[0, half] and mean[3, half] > mean[1, half]


def test_wilson_interval_covers_and_narrows():
    low, high = wilson_interval(np.array([0, 50, 100]), np.array([100, 100, 100]))
    assert low[0] == 0 and 0 < high[0] < 0.05 and low[1] < 0.5 < high[1] and high[2] == pytest.approx(1)
    narrow = wilson_interval(5000, 10000)
    assert narrow[1] - narrow[0] < high[1] - low[1]


def _linear_observer() -> LoadedModel:
    """A two-class linear observer (logistic regression) answering 1 when w·x + b > 0: the template is the
    difference of the mean 1 and mean 0 training digits."""
    from wna_gui.core.data import bundled_mnist

    train = bundled_mnist("train")
    w = (train.of_class(1).mean(0) - train.of_class(0).mean(0)).flatten()
    w = w / w.norm()
    net = LogisticRegression(2)
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.weight[1] = w
        net.fc.bias[:] = torch.tensor([0.0, -float(w.sum()) * 0.5])  # undecided on uniform grey
    return LoadedModel("zoo", "logreg", net, ZOO["logreg"].input_spec, ("0", "1"))


def test_a_linear_observers_fooling_curve_matches_its_closed_form():
    model = _linear_observer()
    noise = GaussianNoise(mean=0.5, std=0.25)
    maps_run = ClassificationImageExperiment(model, ClassificationImageConfig(samples=2000, noise=noise,
                                                                              estimators=("hard",)), device="cpu")
    maps_run.run_to_end()
    gammas = (0.0, 0.5, 0.9, 1.0)
    n = 5000
    config = BiasAttackConfig(gammas=gammas, samples=n, signals=200, noise=noise, targets=(1,), seed=5)
    snapshot = BiasAttackExperiment(model, config, device="cpu", maps=maps_run.state).run_to_end()
    w = model.net.fc.weight[1].detach().double().numpy()
    b = float((model.net.fc.bias[1] - model.net.fc.bias[0]).detach())
    m = snapshot.maps[0].astype(np.float64)
    # Noise: w·t + b with t = (1 − γ)·n + γ·m is normal, mean (1 − γ)·μ·Σw + γ·w·m + b, sd (1 − γ)·σ·‖w‖.
    for g, gamma in enumerate(gammas):
        mean = (1 - gamma) * 0.5 * w.sum() + gamma * w @ m + b
        sd = (1 - gamma) * 0.25 * np.linalg.norm(w)
        p = float(mean > 0) if sd == 0 else 0.5 * (1 + math.erf(mean / (sd * math.sqrt(2))))
        assert snapshot.rates()[0, 0, g] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 1e-3), gamma
    # Signals: each stimulus is fixed, so the curve is the fraction with (1 − γ)·w·s + γ·w·m + b > 0.
    signals = chosen_signals(config, model).images.reshape(-1, 784).double().numpy()
    for g, gamma in enumerate(gammas):
        expected = np.mean((1 - gamma) * signals @ w + gamma * w @ m + b > 0)
        assert abs(snapshot.rates()[1, 0, g] - expected) <= 1 / len(signals) + 1e-12, gamma


def test_mixing_is_elementwise_and_batch_independent(cnn):
    runtime = Runtime(cnn, "cpu")
    x = noise_images(BiasAttackConfig(samples=64), (1, 28, 28), "cpu")
    target = torch.full((1, 1, 28, 28), 0.3)
    a = mix_and_classify(runtime, x, target, 0.4, 7)
    b = mix_and_classify(runtime, x, target, 0.4, 64)
    assert torch.equal(a, b)


def test_a_target_without_a_map_is_a_one_line_error(cnn, maps):
    counts = maps.total().count
    missing = int(np.flatnonzero(counts == 0)[0])
    with pytest.raises(ValueError, match=f"target {missing} has no hard label map") as info:
        BiasAttackExperiment(cnn, BiasAttackConfig(targets=(missing,)), device="cpu", maps=maps)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="not an image"):
        BiasAttackExperiment(cnn, BiasAttackConfig(estimator="logit", scaling="raw"), device="cpu", maps=maps)
