"""Two-class classification images (Ahumada): the formula on a hand-computed case, z-maps calibrated on a null
observer, and the experiment: a binary CNN trained and kept in the session, exact resume, a two-class model
used as it is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wna_gui.core.accumulators import ClassAccumulator
from wna_gui.core.models import load_default
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.two_class import (
    EXPERIMENT,
    TwoClassConfig,
    TwoClassExperiment,
    TwoClassState,
    _binary_cnn,
    describe,
    summary,
    ahumada_image,
    response_difference,
)
from wna_gui.core.stats import gammas_between


def test_ahumada_image_of_a_hand_computed_case():
    # Two pixels; cells 2·s + r: 1→1, 1→2, 2→1, 2→2.
    noise = np.array([[1, 0], [3, 0], [0, 2], [4, 4], [0, 0], [1, 1], [1, 3], [1, 2]], dtype=float)
    cells = np.array([0, 0, 1, 2, 2, 3, 3, 3])
    acc = ClassAccumulator(4, 2)
    acc.add(noise[:3], cells[:3])  # two batches: the exact merge is part of the computation
    acc.add(noise[3:], cells[3:])
    image = ahumada_image(acc)
    # n̄11 = (2, 0), n̄12 = (0, 2), n̄21 = (2, 2), n̄22 = (1, 2): c = (n̄12 + n̄22) − (n̄11 + n̄21) = (−3, 2).
    np.testing.assert_allclose(image.image, [-3.0, 2.0])
    np.testing.assert_array_equal(image.counts, [2, 1, 2, 3])
    # Within-cell sums of squares (10, 10) over N − 4 = 4 degrees of freedom: σ² = 2.5; Σ 1/n = 7/3.
    se = np.sqrt(2.5 * (1 / 2 + 1 / 1 + 1 / 2 + 1 / 3))
    np.testing.assert_allclose(image.zmap, [-3.0 / se, 2.0 / se])
    # By response alone: answered 2 → mean (0.75, 2), answered 1 → (2, 1); its z uses 1/4 + 1/4.
    np.testing.assert_allclose(image.response_image, [-1.25, 1.0])
    np.testing.assert_allclose(image.response_zmap, np.array([-1.25, 1.0]) / np.sqrt(2.5 * 0.5))
    np.testing.assert_allclose(response_difference(acc), [-1.25, 1.0])


def test_an_empty_cell_leaves_c_undefined_not_zero():
    acc = ClassAccumulator(4, 3)
    acc.add(np.random.default_rng(0).random((20, 3)), np.array([0, 1, 3] * 6 + [0, 3]))
    image = ahumada_image(acc)
    assert np.isnan(image.image).all() and np.isnan(image.zmap).all()
    assert np.isfinite(image.response_image).all()  # both answers occurred


def test_z_maps_are_calibrated_on_a_null_observer():
    """Responses drawn independently of the noise (unequal cells): z ~ N(0, 1) pixel by pixel."""
    rng = np.random.default_rng(5)
    pixels, trials = 4000, 6000
    acc = ClassAccumulator(4, pixels)
    for _ in range(3):
        cells = rng.choice(4, size=trials // 3, p=[0.4, 0.1, 0.2, 0.3])
        acc.add(rng.random((trials // 3, pixels)), cells)
    image = ahumada_image(acc)
    for z in (image.zmap, image.response_zmap):
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
        assert 0.04 < (np.abs(z) > 1.96).mean() < 0.06


@pytest.fixture(scope="module")
def model():
    return load_default()


def small(**values) -> TwoClassConfig:
    return TwoClassConfig(**{"samples": 1200, "batch_size": 300, "epochs": 1, "gamma_min": 0.6, "gamma_max": 0.7,
                             "gamma_points": 2, "gamma_range": "manual", **values})


def test_a_binary_cnn_is_trained_kept_in_the_session_and_a_resumed_run_is_exact(model, tmp_path):
    config = small()
    whole = TwoClassExperiment(model, config, device="cpu")
    snapshot = whole.run_to_end()
    assert snapshot.class_names == ("1", "7") and snapshot.gammas == (0.6, 0.7)
    for image in snapshot.images:
        assert image.counts.sum() == 1200
    assert snapshot.correct(1) > 0.6  # the network sees the digits at γ = 0.7

    half = TwoClassExperiment(model, dataclasses.replace(config, samples=600), device="cpu")
    half.run_to_end()
    path = save_session(Session(model, {"two_class": half.state}), tmp_path / "s.h5")
    loaded = load_session(path)
    assert list(loaded.models) == [half.state.model_name]  # the trained observer, stored once
    state = loaded.runs["two_class"].with_budget(1200)
    assert state.binary.weights_sha256() == whole.state.binary.weights_sha256()
    TwoClassExperiment(model, state=state, device="cpu").run_to_end()
    for a, b in zip(state.noise + state.stimuli, whole.state.noise + whole.state.stimuli):
        np.testing.assert_array_equal(a.count, b.count)
        np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-12)


def test_a_two_class_model_answers_as_it_is(model):
    binary = _binary_cnn(5, 6, 1, 1)
    experiment = TwoClassExperiment(binary, small(samples=300, gamma_points=1), device="cpu")
    snapshot = experiment.run_to_end()
    assert experiment.state.model_name == "" and experiment.state.made_models() == {}
    assert snapshot.class_names == ("5", "6") and snapshot.images[0].counts.sum() == 300


def test_gamma_grid_and_settings():
    assert gammas_between(0.3, 0.7, 5) == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert gammas_between(0.2, 0.7, 1) == (0.2,)
    with pytest.raises(ValueError, match="differ"):
        TwoClassConfig(first=3, second=3)
    with pytest.raises(ValueError, match="largest"):
        TwoClassConfig(gamma_min=0.8, gamma_max=0.5)


@pytest.mark.slow
def test_the_default_gamma_range_comes_from_a_pilot_where_both_answers_occur(model, tmp_path):
    """With the defaults (1 vs 7), a fixed 0.3–0.7 grid left cells empty (every trial answered "7" at low γ, no
    errors at high γ) and c undefined. The pilot picks the range where all four cells fill, records it, and every
    γ of the run then has a classification image."""
    experiment = TwoClassExperiment(model, TwoClassConfig(samples=2000, batch_size=1000), device="cpu")
    snapshot = experiment.run_to_end()
    pilot = experiment.state.pilot
    assert pilot["found"] and snapshot.gammas[0] == pilot["gamma_min"] and snapshot.gammas[-1] == pilot["gamma_max"]
    for g, image in enumerate(snapshot.images):
        assert not snapshot.empty_cells(g) and np.isfinite(image.zmap).all(), (snapshot.gammas[g], image.counts)
    path = save_session(Session(model, {"two_class": experiment.state}), tmp_path / "s.h5")
    loaded = load_session(path).runs["two_class"]
    assert loaded.pilot == pilot and loaded.config.gammas == snapshot.gammas
    assert "from a pilot run" in "\n".join(describe(summary(loaded)))


def test_a_version_1_record_keeps_its_gamma_range():
    state = TwoClassState(small(gamma_range="pilot"), ("1", "7"), (1, 28, 28))
    meta, arrays = state.to_record()
    del meta["pilot"]
    meta["config"].pop("gamma_range")
    meta, arrays = EXPERIMENT.migrations[1](meta, arrays)
    restored = TwoClassState.from_record(meta, arrays)
    assert restored.config.gamma_range == "manual" and restored.config.gammas == (0.6, 0.7) and restored.pilot == {}
