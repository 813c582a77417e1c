"""Activation injection (paper Fig. 7C, 21): mixing the noise's class-mean activation into real images at a layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wna_gui.core.activation_injection import (
    INPUT,
    InjectionConfig,
    InjectionExperiment,
    MIN_NOISE_IMAGES,
    injectable_layers,
    real_images,
    report,
)
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.models import load_default
from wna_gui.core.runtime import Runtime

GAMMAS = (0.0, 0.5, 1.0)
CONFIG = InjectionConfig(gammas=GAMMAS, samples=1000, images=10)  # 10 real images of each class


@pytest.fixture(scope="module")
def cnn():
    return load_default()


@pytest.fixture(scope="module")
def run(cnn):
    return InjectionExperiment(cnn, CONFIG, device="cpu").run_to_end()


def test_every_layer_of_the_cnn_is_injected_and_reported(cnn, run):
    assert run.layers == (INPUT, "conv1", "conv2", "fc1") == tuple(injectable_layers(cnn))
    rate, low, high = run.ratios()
    assert rate.shape == (4, len(GAMMAS)) and np.isfinite(rate).all()
    assert (low <= rate + 1e-12).all() and (rate <= high + 1e-12).all()
    # Uniform noise lands in a few classes only: those are the classes injected, each with its count.
    assert set(run.classes) == set(np.flatnonzero(run.noise_counts))
    assert run.noise_counts.sum() == CONFIG.samples


def test_injection_at_the_input_with_gamma_1_leaves_accuracy_unchanged(cnn, run):
    images = real_images(CONFIG, cnn)
    with torch.inference_mode():
        plain = (Runtime(cnn, "cpu").logits(images.images).argmax(1) == images.labels).double().mean().item()
    accuracy = run.accuracy()
    for c in run.classes:
        assert accuracy[0, c, -1] == pytest.approx(plain, abs=1e-12)


def test_gamma_0_at_the_input_is_whether_the_class_map_itself_is_given_its_class(cnn, run):
    maps = ClassificationImageExperiment(cnn, ClassificationImageConfig(samples=CONFIG.samples,
                                                                        estimators=("hard",)), device="cpu")
    maps.run_to_end()  # the same counter-based noise (seed 0, blocks of 1,000): the same class means
    hard = maps.state.snapshot().maps
    np.testing.assert_array_equal(hard.counts, run.noise_counts)
    with torch.inference_mode():
        given = Runtime(cnn, "cpu").logits(torch.as_tensor(hard.of("mean", run.classes), dtype=torch.float32)
                                           .reshape(-1, 1, 28, 28)).argmax(1).numpy()
    per_class = run.class_ratios()
    for c, g in zip(run.classes, given):
        assert per_class[0, c, 0] == float(g == c)


def test_an_affine_first_layer_injects_like_the_input(run):
    """conv1 is affine and the mean of an affine map is the map of the mean: injecting its mean activation is
    injecting the mean image (up to float rounding at ties)."""
    per_class = run.class_ratios()
    np.testing.assert_allclose(per_class[1][run.classes], per_class[0][run.classes], atol=0.02)


def test_an_unknown_layer_is_a_one_line_error(cnn):
    with pytest.raises(ValueError, match="no layer 'fc9'.*input, conv1, conv2, fc1"):
        InjectionExperiment(cnn, InjectionConfig(layers=("fc9",)), device="cpu")


def test_real_images_are_counted_per_class_and_thin_class_means_are_flagged(run):
    """--images is per class (a stratified subset), and a class mean of fewer than 30 noise images is flagged:
    at 1,000 uniform samples the bundled CNN calls nearly all of them one digit."""
    assert np.bincount(run.labels, minlength=10).tolist() == [CONFIG.images] * 10
    thin = [c for c in run.classes if run.noise_counts[c] < MIN_NOISE_IMAGES]
    assert thin, run.noise_counts
    assert len(run.warnings) == 1 and all(run.class_names[c] in run.warnings[0] for c in thin)
    assert run.warnings[0] in report(run)[-1]


def test_a_session_model_is_injected_with_session_and_target(tmp_path, capsys):
    from wna_gui.cli import main
    from wna_gui.core.models import load_zoo
    from wna_gui.core.session import Session, load_session, save_session

    copy = load_zoo("logreg")
    path = save_session(Session(load_default(), models={"copy": copy}), tmp_path / "s.h5")
    assert main(["run", "activation-injection", "--session", str(path), "--target", "copy", "--layers", "input",
                 "--samples", "200", "--images", "3", "--gammas", "2", "--quiet"]) == 0, capsys.readouterr().err
    session = load_session(path)
    state = session.runs["activation_injection"]
    assert session.inputs["activation_injection"] == {"target": "copy"}
    assert np.bincount(state.labels, minlength=10).tolist() == [3] * 10
    # The counts are the stored copy's answers to the noise, not the session model's.
    with torch.inference_mode():
        noise = CONFIG.noise.block(0, 0, 1000, (1, 28, 28), "cpu")[:200]
        expected = np.bincount(Runtime(copy, "cpu").logits(noise).argmax(1).numpy(), minlength=10)
    np.testing.assert_array_equal(state.noise_counts, expected)
