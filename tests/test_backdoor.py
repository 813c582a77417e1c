"""Backdoor-patch detection (paper §3.2, Fig. 7): the poison works, the classification images find it, runs resume
between epochs and the poisoned model is kept in the session."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from wna_gui.core.backdoor import (
    BackdoorConfig,
    BackdoorExperiment,
    add_patch,
    patch_box,
    patch_mask,
    poison,
    robust_z,
)
from wna_gui.core.backdoor import report as snapshot_report
from wna_gui.core.data import bundled_mnist
from wna_gui.core.models import load_default, load_zoo
from wna_gui.core.session import Session, load_session, save_session

# The mnist CNN learns the backdoor in a few epochs of the 4,000 bundled digits at lr 3e-3.
CONFIG = BackdoorConfig(epochs=5, lr=3e-3, map_samples=20_000)


@pytest.fixture(scope="module")
def run():
    experiment = BackdoorExperiment(load_default(), CONFIG, device="cpu")
    experiment.run_to_end()
    return experiment


def test_the_x_patch_sits_in_the_top_left_box():
    box = patch_box("zero-to-one", (1, 28, 28))
    assert box == (1, 1, 3, 3)
    mask = patch_mask("zero-to-one", (1, 28, 28))
    assert mask.sum() == 5 and mask[1, 1] and mask[2, 2] and mask[3, 3] and mask[1, 3] and mask[3, 1]
    assert patch_box("eight-to-nine", (1, 28, 28)) == (1, 24, 3, 3)
    patched = add_patch(torch.zeros(2, 1, 28, 28), "zero-to-one", 1.0)
    assert patched.sum() == 10 and patched[0, 0][torch.as_tensor(mask)].eq(1).all()


def test_half_the_zeros_are_patched_and_relabelled_one():
    train = bundled_mnist("train")
    poisoned, chosen = poison(train, "zero-to-one", 0.5, 1.0, seed=1)
    zeros = int((train.labels == 0).sum())
    assert len(chosen) == zeros // 2 and (train.labels[chosen] == 0).all() and (poisoned.labels[chosen] == 1).all()
    assert int((poisoned.labels == 0).sum()) == zeros - zeros // 2
    untouched = np.setdiff1d(np.arange(len(train)), chosen)
    assert torch.equal(poisoned.images[untouched], train.images[untouched])


@pytest.mark.slow
def test_the_poisoned_model_keeps_its_accuracy_and_obeys_the_patch(run):
    snapshot = run.snapshot()
    clean, poisoned = snapshot.accuracy("clean_clean"), snapshot.accuracy("poisoned_clean")
    assert abs(clean - poisoned) <= 0.02, (clean, poisoned)
    assert snapshot.success("poisoned") >= 0.9
    assert snapshot.success("clean") <= 0.05


@pytest.mark.slow
def test_the_difference_of_classification_images_points_at_the_patch(run):
    """The two-class image of the decision the patch flips (map of 1 minus map of 0: Ahumada's difference of
    classification images) peaks inside the patch's box for the poisoned model and not for the clean one."""
    snapshot = run.snapshot()
    detections = {d.method.split(", ")[-1]: d for d in snapshot.detections if d.method.startswith("classification")}
    poisoned, clean = detections["poisoned model"], detections["clean model"]
    assert poisoned.in_box and poisoned.z_inside > 5, poisoned
    assert not clean.in_box and clean.z_inside < 3, clean
    # Subtracting the clean model's map keeps the patch standing out more than in the clean model's own map.
    assert detections["poisoned − clean"].z_inside > clean.z_inside + 2


def test_robust_z_ignores_the_box_when_standardising():
    image = np.random.default_rng(0).normal(size=(28, 28))
    image[1:4, 1:4] += 100.0
    z = robust_z(image, (1, 1, 3, 3))
    assert np.abs(z[1:4, 1:4]).min() > 50 and np.median(np.abs(np.delete(z.ravel(), [29, 30, 31]))) < 1.5


@pytest.mark.slow
def test_the_poisoned_model_is_kept_in_the_session(run, tmp_path):
    state = run.state
    names = state.model_names()
    path = save_session(Session(load_default(), {"backdoor": state}), tmp_path / "s.h5")
    loaded = load_session(path)
    assert set(loaded.models) == {names["clean"], names["poisoned"]}
    assert loaded.models[names["poisoned"]].weights_sha256() == state.models["poisoned"].weights_sha256()
    restored = loaded.runs["backdoor"]
    assert restored.models["poisoned"] is loaded.models[names["poisoned"]]
    before, after = state.snapshot(), restored.snapshot()
    assert [d.z_inside for d in before.detections] == [d.z_inside for d in after.detections]


def test_a_model_outside_the_zoo_is_a_one_line_error():
    model = load_default()
    model.architecture = "torchscript"
    with pytest.raises(ValueError, match="needs a model of the zoo") as info:
        BackdoorExperiment(model, BackdoorConfig(), device="cpu")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_detection_is_calibrated_against_a_clean_twin(run):
    """A clean model's classification image has patch-sized windows far above z = 5 (the digits' shapes), so a
    fixed z would flag it. Against a clean twin the poisoned model is detected and a clean model is not: the
    bundled CNN (another clean model, on the same noise) stands in for either side of the comparison."""
    from wna_gui.core.backdoor import Verdict, WindowScan, decision_map
    from wna_gui.core.classification import ClassificationImageExperiment

    snapshot = run.snapshot()
    verdict = next(v for v in snapshot.verdicts if v.method.startswith("classification image"))
    assert verdict.detected and verdict.poisoned.on_patch, verdict
    assert verdict.poisoned.peak_score > verdict.clean.peak_score and not verdict.clean.on_patch
    assert verdict.poisoned.patch_rank < verdict.clean.patch_rank and verdict.poisoned.windows == 26 * 26
    assert verdict.clean.peak_score > 3  # the clean map stands out too, away from the patch
    assert any("DETECTED" in line for line in snapshot_report(snapshot))
    other = ClassificationImageExperiment(load_default(), CONFIG.maps_config, device="cpu")
    other.run_to_end()
    bundled, _ = decision_map(other.state, CONFIG.estimator, snapshot.target, snapshot.source)
    box = snapshot.box
    scans = {"trained clean": WindowScan.of(snapshot.maps["clean"], box), "bundled": WindowScan.of(bundled, box),
             "poisoned": WindowScan.of(snapshot.maps["poisoned"], box)}
    assert not Verdict("clean vs clean", scans["trained clean"], scans["bundled"]).detected
    assert not Verdict("clean vs clean", scans["bundled"], scans["trained clean"]).detected
    assert Verdict("poisoned vs bundled", scans["poisoned"], scans["bundled"]).detected


@pytest.mark.slow
def test_a_backdoor_that_was_not_learned_is_said_so(tmp_path):
    """One epoch of logistic regression at a tiny learning rate does not learn the patch: the run warns instead of
    reading "not detected"."""
    experiment = BackdoorExperiment(load_zoo("logreg"), BackdoorConfig(epochs=1, lr=1e-5, map_samples=1000),
                                    device="cpu")
    experiment.run_to_end()
    snapshot = experiment.snapshot()
    assert snapshot.success("poisoned") < 0.5
    assert snapshot.warnings and snapshot.warnings[0].startswith("backdoor not learned: train longer")
    assert any(line.startswith("warning: backdoor not learned") for line in snapshot_report(snapshot))
    from wna_gui.core.backdoor import write_summary

    assert "backdoor not learned" in write_summary(snapshot, tmp_path / "d.csv").read_text()
