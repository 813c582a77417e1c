"""Robustness lab: κ, the experiment over several models (accuracy, attacks, thresholds, κ), resuming, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from wna_gui.cli import main
from wna_gui.core.agreement import error_consistency, kappa_matrix
from wna_gui.core.data import bundled_mnist
from wna_gui.core.experiment import plan_run
from wna_gui.core.models import load_default, load_zoo
from wna_gui.core.robustness import EXPERIMENT, RobustnessConfig, RobustnessExperiment
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.train import TrainConfig, evaluate, train_zoo_model

IMAGES = 120
SMALL = RobustnessConfig(images=IMAGES, noise_levels=(0.0, 0.3, 0.9), blur_levels=(0.0, 1.0, 2.0, 3.0),
                         fgsm_levels=(0.0, 0.05, 0.1, 0.2, 0.3), ifgsm_levels=(0.0, 0.1, 0.2), ifgsm_steps=5,
                         repetitions=2, n_boot=50)


# --- κ ---

def test_kappa_is_zero_for_independent_observers_and_one_for_identical_ones():
    rng = np.random.default_rng(0)
    a, b = rng.random(200_000) < 0.7, rng.random(200_000) < 0.7
    kappa, observed, expected = error_consistency(a, b)
    assert abs(kappa) < 0.01
    assert expected == pytest.approx(0.7**2 + 0.3**2, abs=0.005) and observed == pytest.approx(expected, abs=0.005)
    assert error_consistency(a, a)[0] == pytest.approx(1.0)
    # Right exactly where the other is wrong: no agreement at all, below chance's c_exp = 2·p·(1 − p).
    p = a.mean()
    assert error_consistency(a, ~a)[0] == pytest.approx(-2 * p * (1 - p) / (1 - 2 * p * (1 - p)))


def test_kappa_by_hand_and_undefined_without_errors():
    # 10 trials: both right on 6, both wrong on 2, disagree on 2; p = 0.7 and 0.7.
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 1], bool)
    kappa, observed, expected = error_consistency(a, b)
    assert observed == pytest.approx(0.8) and expected == pytest.approx(0.58)
    assert kappa == pytest.approx((0.8 - 0.58) / 0.42)
    matrix = kappa_matrix(np.stack([a, b, np.ones(10, bool)]))[0]
    # Against an observer who is always right, agreement is what chance predicts (κ = 0); two such observers leave
    # nothing to be consistent about (c_exp = 1: undefined).
    assert matrix[0, 2] == pytest.approx(0.0) and np.isnan(matrix[2, 2]) and matrix[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different numbers"):
        error_consistency(a, b[:5])


# --- the experiment ---

@pytest.fixture(scope="module")
def mlp():
    model = train_zoo_model(TrainConfig(architecture="mlp", epochs=1, seed=0), bundled_mnist("train"))
    model.extra["loss"] = "cross_entropy"
    return model


@pytest.fixture(scope="module")
def cnn():
    return load_default()


@pytest.fixture(scope="module")
def finished(cnn, mlp):
    experiment = RobustnessExperiment(cnn, SMALL, device="cpu", models={"mlp": mlp})
    snapshots = [experiment.snapshot(), *experiment.run()]
    return experiment.state, snapshots


def test_every_model_is_measured_on_the_same_clean_images(finished, cnn, mlp):
    state, snapshots = finished
    snapshot = snapshots[-1]
    assert state.finished and snapshot.samples_done == snapshot.samples_total == state.progress_total
    assert snapshot.model_names == ("model", "mlp")
    images = bundled_mnist("heldout")
    clean = [evaluate(m.pixel_model, images.images[:IMAGES], images.labels[:IMAGES]) for m in (cnn, mlp)]
    for result in snapshot.distortions:  # level 0 is the clean image for every distortion (FGSM at η = 0 too)
        np.testing.assert_allclose(result.accuracy[:, 0], clean, atol=1e-12)
        assert np.all(result.accuracy_low <= result.accuracy) and np.all(result.accuracy <= result.accuracy_high)
    # Deterministic models under blur and attacks are measured once; noise every repetition.
    assert state.done["blur"][:, :, 0].all() and not state.done["blur"][:, :, 1].any()
    assert state.done["noise"].all()
    assert np.isfinite(snapshot.distortion("noise").spread[:, 1:]).all()


def test_attacks_lower_accuracy_and_ifgsm_is_at_least_as_strong_as_fgsm(finished):
    snapshot = finished[1][-1]
    fgsm, ifgsm = snapshot.distortion("fgsm"), snapshot.distortion("ifgsm")
    for m in range(2):
        assert np.all(np.diff(fgsm.accuracy[m]) <= 0.02), fgsm.accuracy[m]
        assert fgsm.accuracy[m, -1] < fgsm.accuracy[m, 0] - 0.3
        for eps in (0.1, 0.2):
            assert ifgsm.accuracy[m, list(ifgsm.levels).index(eps)] <= fgsm.accuracy[m, list(fgsm.levels).index(eps)]


def test_thresholds_lie_where_accuracy_is_half_way_to_chance(finished):
    snapshot = finished[1][-1]
    for result in snapshot.distortions:
        for m, curve in enumerate(result.fits):
            assert curve is not None and curve.fit is not None, (result.name, m, curve)
            assert curve.target == pytest.approx(0.5 * (result.accuracy[m, 0] + 0.1))
            if np.isfinite(curve.threshold) and result.levels[0] < curve.threshold < result.levels[-1]:
                assert curve.accuracy(curve.threshold) == pytest.approx(curve.target, abs=1e-6)
                low, high = curve.threshold_ci
                assert low <= curve.threshold <= high
                # The measured accuracy is above the target below the threshold's bracket, and below it above.
                below = result.levels < low
                above = result.levels > high
                assert np.all(result.accuracy[m, below] > curve.target - 0.1)
                assert np.all(result.accuracy[m, above] < curve.target + 0.1)
    fgsm = snapshot.distortion("fgsm")
    assert fgsm.differences[0, 1] == pytest.approx(-fgsm.differences[1, 0])
    low, high = fgsm.difference_ci[1, 0]
    assert low <= fgsm.differences[1, 0] <= high


def test_error_consistency_between_the_models(finished):
    snapshot = finished[1][-1]
    for result in snapshot.distortions:
        kappa = result.kappa
        assert kappa.shape == (len(result.levels), 2, 2)
        finite = np.isfinite(kappa)
        assert np.all((kappa[finite] >= -1) & (kappa[finite] <= 1))
        np.testing.assert_allclose(kappa[:, 0, 1], kappa[:, 1, 0], equal_nan=True)
    # The two networks make overlapping errors on strongly noisy digits: κ above chance agreement.
    assert snapshot.distortion("noise").kappa[-1, 0, 1] > 0


def test_a_run_round_trips_and_refits_without_measuring_again(finished, tmp_path, cnn, mlp):
    state = finished[0]
    path = save_session(Session(cnn, {"robustness": state}, models={"mlp": mlp}), tmp_path / "s.h5")
    loaded = load_session(path).runs["robustness"]
    assert loaded.config == state.config and loaded.finished
    for d in state.config.distortions:
        np.testing.assert_array_equal(loaded.correct[d], state.correct[d])
        for a, b in zip(loaded.fits[d], state.fits[d]):
            assert a.to_dict() == b.to_dict()
            np.testing.assert_array_equal(a.boot, b.boot)
    other = dataclasses.replace(state.config, sigmoid="logistic")
    assert plan_run(EXPERIMENT, loaded, other).action == "refit"
    refitted = loaded.refitted(other)
    assert refitted.fits["fgsm"][0].fit.sigmoid == "logistic"
    np.testing.assert_array_equal(refitted.correct["fgsm"], state.correct["fgsm"])


def test_a_stochastic_model_is_measured_every_repetition_and_attacked_with_eot(cnn):
    noisy = load_zoo("noisy_resnet8")  # untrained: noise inside its forward pass is all this test needs
    config = dataclasses.replace(SMALL, distortions=("blur", "fgsm"), images=16, blur_levels=(0.0, 2.0),
                                 fgsm_levels=(0.0, 0.1), eot_draws=2, n_boot=0)
    experiment = RobustnessExperiment(cnn, config, device="cpu", models={"noisy": noisy})
    assert experiment.state.stochastic == (False, True)
    experiment.run_to_end()
    state = experiment.state
    assert state.done["blur"][1].all() and not state.done["blur"][0, :, 1].any()
    assert state.progress_total == 16 * 2 * (1 + 2) * 2  # (model once + noisy twice) × 2 levels × 2 distortions
    # Its passes are seeded per unit: the same run again gives the same answers.
    again = RobustnessExperiment(cnn, config, device="cpu", models={"noisy": noisy})
    again.run_to_end()
    for d in config.distortions:
        np.testing.assert_array_equal(again.state.correct[d], state.correct[d])


def test_the_cli_runs_from_a_session_and_info_lists_thresholds(tmp_path, cnn, mlp, capsys):
    source = save_session(Session(cnn, models={"mlp": mlp, "other": load_default()}), tmp_path / "s.h5")
    out = tmp_path / "out.h5"
    assert main(["run", "robustness", "--session", str(source), "--models", "mlp", "--out", str(out),
                 "--distortions", "blur,fgsm", "--blur-levels", "0:3:1", "--fgsm-levels", "0, 0.1, 0.2, 0.3",
                 "--images", "60", "--boot", "20", "--device", "cpu", "--quiet", "--autosave-seconds", "0"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["experiments"]["robustness"]
    assert entry["models"] == ["model", "mlp"] and entry["finished"]
    for distortion in ("blur", "fgsm"):
        for name in ("model", "mlp"):
            facts = entry["thresholds"][distortion][name]
            assert facts["status"] in ("reached", "never reached") and facts["clean_accuracy"] > 0.8
    assert isinstance(entry["thresholds"]["fgsm"]["model"]["threshold"], float)
    assert main(["info", str(out)]) == 0
    assert "FGSM threshold" in capsys.readouterr().out
    assert main(["run", "robustness", "--session", str(source), "--models", "nobody",
                 "--out", str(tmp_path / "other.h5")]) == 2
    error = capsys.readouterr().err.strip()
    assert "no model named 'nobody'" in error and len(error.splitlines()) == 1


def test_the_cli_default_leaves_out_models_of_another_task(tmp_path, cnn, capsys):
    binary = load_zoo("mnist_cnn", class_names=("1", "7"))
    source = save_session(Session(cnn, models={"binary-cnn-1v7": binary, "again": load_default()}), tmp_path / "s.h5")
    out = tmp_path / "out.h5"
    assert main(["run", "robustness", "--session", str(source), "--out", str(out), "--distortions", "blur",
                 "--blur-levels", "0:2:1", "--images", "20", "--boot", "0", "--device", "cpu", "--quiet",
                 "--autosave-seconds", "0"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["experiments"]["robustness"]["models"] == ["model", "again"]
    # Named explicitly, the binary model is still refused in one line that says why.
    assert main(["run", "robustness", "--session", str(source), "--models", "binary-cnn-1v7",
                 "--out", str(tmp_path / "other.h5"), "--distortions", "blur", "--images", "20"]) == 2
    error = capsys.readouterr().err.strip()
    assert "2 classes" in error and len(error.splitlines()) == 1


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="levels must be increasing"):
        RobustnessConfig(blur_levels=(0.0, 2.0, 1.0))
    with pytest.raises(ValueError, match="at least two levels"):
        RobustnessConfig(noise_levels=(0.0,))
    with pytest.raises(ValueError, match="unknown distortion"):
        RobustnessConfig(distortions=("fog",))


def test_the_panel_shows_curves_thresholds_and_kappa_at_the_chosen_level(qtbot, finished, cnn, mlp, tmp_path):
    from wna_gui.app.panels import build_panels

    (panel,) = [p for p in build_panels() if p.name == "robustness"]
    qtbot.addWidget(panel)
    state = finished[0]
    panel.restore({"robustness": state}, cnn, {"robustness": {"models": "mlp"}})
    panel.show_snapshot(state.snapshot(), "robustness")
    assert panel.table.rowCount() == len(state.config.distortions) * 2
    assert panel.table.item(0, 4).text() not in ("", "no fit")
    fgsm = state.snapshot().distortion("fgsm")
    x, y = panel.figure.curve("fgsm", 0)
    assert len(x) and np.all(np.diff(y) <= 1e-9)  # the fitted accuracy only falls with η
    panel.apply_view_settings({"tab": "kappa", "distortion": "fgsm", "level": 3})
    assert panel.level.value() == 3 and "η = 0.2" in panel.level_label.text()
    shown = panel.kappa_figure.image.image
    np.testing.assert_allclose(shown, np.nan_to_num(fgsm.kappa[3]).astype(np.float32))
    panel.apply_view_settings({"distortion": "blur", "level": 99})  # beyond the grid: its last level
    assert panel.level.value() == len(state.config.blur_levels) - 1
    assert "mlp" in panel.answers.text()
    assert panel.settings()["view"]["distortion"] == "blur"
