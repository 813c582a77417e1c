"""Rules for results a reviewer accepts (docs/science.md; issue 21 parts 1–5), each shown on real runs.

Stratified subsets, training budgets in SGD steps, one evaluation for every accuracy, the chance guard,
the gradient-masking check and censored thresholds. The tests marked slow train the defences at their
default budgets (1,200 SGD steps per stage): minutes on a CPU.
"""

from __future__ import annotations

import copy
import csv
import dataclasses

import numpy as np
import pytest
import torch

from wna_gui.core.bias_attack import BiasAttackConfig, chosen_signals
from wna_gui.core.censoring import censored_text, censored_value, in_grid
from wna_gui.core.defences import (
    DefenceConfig,
    DefenceExperiment,
    DefenceState,
    EXPERIMENT as DEFENCE,
    training_images,
)
from wna_gui.core.defences import describe as describe_defence
from wna_gui.core.defences import summary as summarise_defence
from wna_gui.core.models import load_default
from wna_gui.core.psychometric_report import _out_of_range_text
from wna_gui.core.robustness import (
    EXPERIMENT as ROBUSTNESS,
    RobustnessConfig,
    RobustnessExperiment,
    RobustnessState,
    _test_images,
    fit_curve,
    threshold_records,
)
from wna_gui.core.robustness import describe as describe_robustness
from wna_gui.core.robustness import summary as summarise_robustness

from test_defences import train  # noqa: E402  (one way to train a defence in the tests)

QUICK_STEPS = 150  # enough for the control to leave chance (≈80% held out), seconds on a CPU


@pytest.fixture(scope="module")
def control():
    return train("control", steps=QUICK_STEPS)


@pytest.fixture(scope="module")
def one_step():
    return train("control", steps=1)


def per_class(labels, n_classes=10) -> np.ndarray:
    return np.bincount(np.asarray(labels), minlength=n_classes)


# --- stratified subsets ---

def test_every_image_count_draws_a_stratified_subset_of_500():
    model = load_default()
    robustness_images, record = _test_images(RobustnessConfig(images=500), model)
    train_images, heldout, records = training_images(DefenceConfig(train_images=500, eval_images=500))
    signals = chosen_signals(BiasAttackConfig(signals=500), model)
    for labels in (robustness_images.labels, train_images.labels, heldout.labels, signals.labels):
        counts = per_class(labels.numpy())
        assert counts.sum() == 500 and np.all(np.abs(counts - 50) <= 1), counts
    # Recorded with the run, label counts included.
    assert record["label_counts"] == per_class(robustness_images.labels.numpy()).tolist()
    assert records["train"]["size"] == 500 and records["heldout"]["rule"] == "stratified-v1"


# --- one evaluation, the chance guard ---

@pytest.mark.slow
def test_the_defences_accuracy_is_the_robustness_labs_clean_accuracy(control):
    made = control.made
    assert made.extra["heldout_accuracy"] == control.accuracy["final"] > 0.5
    assert made.extra["heldout_images"]["label_counts"] == [100] * 10
    config = RobustnessConfig(distortions=("blur",), blur_levels=(0.0, 2.0), repetitions=1, n_boot=0)
    experiment = RobustnessExperiment(load_default(), config, device="cpu", models={"ctl": made})
    experiment.run_to_end()
    result = experiment.state.snapshot().distortion("blur")
    assert result.accuracy[1, 0] == made.extra["heldout_accuracy"]


@pytest.mark.slow
def test_a_model_trained_for_one_step_is_at_chance_and_gets_no_threshold_or_kappa(one_step, control):
    assert one_step.made.extra["at_chance"] and not control.made.extra["at_chance"]
    lines = describe_defence(summarise_defence(one_step))
    assert any("(at chance)" in line for line in lines)
    warning = next(line for line in lines if "warning" in line)
    assert "at chance" in warning and "--steps" in warning and "--lr" in warning
    config = RobustnessConfig(distortions=("noise",), noise_levels=(0.0, 0.5, 0.9), repetitions=1, images=300,
                              n_boot=0)
    experiment = RobustnessExperiment(load_default(), config, device="cpu",
                                      models={"control": control.made, "one-step": one_step.made})
    experiment.run_to_end()
    result = experiment.state.snapshot().distortion("noise")
    at_chance = experiment.state.model_names.index("one-step")
    curve = result.fits[at_chance]
    assert curve.at_chance and curve.fit is None and np.isnan(curve.threshold)
    assert curve.threshold_text() == "at chance: no threshold"
    assert np.isnan(result.kappa[:, at_chance, :]).all() and np.isnan(result.kappa[:, :, at_chance]).all()
    assert np.isfinite(result.kappa[:, 0, 1]).all(), "the other models keep their κ"
    entry = summarise_robustness(experiment.state)
    assert entry["at_chance"] == ["one-step"]
    assert any("one-step at chance" in line for line in describe_robustness(entry))


# --- gradient masking ---

def saturated(model):
    """The model with its outputs × 10⁴ and cross-entropy as its loss: the softmax saturates, so the input
    gradient of the loss is exactly zero wherever the model is right (a distilled network deployed at T = 1)."""
    toy = copy.deepcopy(model)
    with torch.no_grad():
        toy.net.weight_layers()[-1].weight.mul_(1e4)
    toy.extra = {"loss": "cross_entropy"}
    return toy


@pytest.mark.slow
def test_a_saturated_softmax_is_flagged_as_gradient_masking_and_the_control_is_not(control):
    config = RobustnessConfig(distortions=("fgsm", "ifgsm"), fgsm_levels=(0.0, 0.1, 0.2, 0.3),
                              ifgsm_levels=(0.0, 0.1, 0.2), ifgsm_steps=5, images=200, n_boot=0)
    models = {"control": control.made, "saturated": saturated(control.made)}
    experiment = RobustnessExperiment(load_default(), config, device="cpu", models=models)
    experiment.run_to_end()
    state = experiment.state
    snapshot = state.snapshot()
    c, s = state.model_names.index("control"), state.model_names.index("saturated")
    assert state.variants(s, "fgsm") == ("transfer",) and state.variants(c, "fgsm") == ()
    assert state.zero_gradient_share(s) > 0.5 and state.zero_gradient_share(c) < 0.5
    for result in snapshot.distortions:
        assert result.masking[s].startswith("gradient masking suspected") and result.masking[c] == ""
        # The reported curve is the strongest attack: never above the model's own-gradient attack.
        assert np.all(result.accuracy[s] <= result.plain_accuracy[s] + 1e-12)
        assert result.accuracy[s, -1] < result.plain_accuracy[s, -1] - 0.1
    assert "saturated" in summarise_robustness(state)["gradient_masking"]["fgsm"]
    # The export names the IFGSM step used at each ε (2/255, or 2.5·ε/steps above that).
    steps = snapshot.distortion("ifgsm").steps
    assert steps == pytest.approx([2 / 255, 2.5 * 0.1 / 5, 2.5 * 0.2 / 5])


def test_a_distilled_model_is_also_attacked_on_its_logits_over_t():
    distilled = train("distill", steps=20, train_images=500, eval_images=100)
    assert distilled.made.extra["temperature"] == 50.0
    config = RobustnessConfig(distortions=("fgsm",), fgsm_levels=(0.0, 0.2), images=100, n_boot=0)
    experiment = RobustnessExperiment(load_default(), config, device="cpu", models={"distilled": distilled.made})
    state = experiment.state
    assert state.variants(state.model_names.index("distilled"), "fgsm") == ("temperature",)
    experiment.run_to_end()
    assert "temperature" in state.snapshot().distortion("fgsm").variant_accuracy


# --- censored thresholds ---

def test_a_curve_above_half_way_at_the_top_of_its_grid_reports_more_than_the_grid(tmp_path):
    levels = (0.0, 0.1, 0.2, 0.3)
    rng = np.random.default_rng(0)
    accuracy = np.array([0.95, 0.9, 0.8, 0.7])  # half-way to chance is 0.525: beyond 0.3
    wrong = (rng.random((400, len(levels))) > accuracy).astype(np.int64)
    curve = fit_curve(levels, wrong, 1, 0.1, "weibull", 0, 0)
    assert curve.fit is not None and curve.censored == "above"
    assert curve.threshold_text() == "> 0.3"
    assert curve.summary()["threshold"] == "> 0.3" and curve.summary()["ci"] is None
    assert censored_value(curve.threshold, *curve.grid) == "> 0.3"
    # The same rule, from the same function, in the psychometric tables.
    assert _out_of_range_text(1.35, (0.0, 0.9)) == "> 0.9 (out of range)"
    assert censored_text(0.31, 0.0, 0.9, interval=" [0.28, 0.35]") == "0.31 [0.28, 0.35]"
    assert censored_text(-0.2, 0.0, 0.9) == "< 0" and list(in_grid([0.5, 1.0, np.inf], 0.0, 0.9)) == [1, 0, 0]


@pytest.mark.slow
def test_the_thresholds_csv_writes_the_bound_not_the_extrapolation(control, tmp_path):
    config = RobustnessConfig(distortions=("blur",), blur_levels=(0.0, 0.5, 1.0), repetitions=1, images=200,
                              n_boot=0)  # too little blur to halve the accuracy
    experiment = RobustnessExperiment(load_default(), config, device="cpu", models={"control": control.made})
    experiment.run_to_end()
    snapshot = experiment.state.snapshot()
    thresholds = next(a for a in ROBUSTNESS.artefacts if a.name == "robustness_thresholds")
    path = thresholds.write(snapshot, tmp_path / "t.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["threshold"] for row in rows] == ["> 1", "> 1"]
    assert all(row["fitted_threshold"] == "" or float(row["fitted_threshold"]) > 1 for row in rows)  # "": +inf
    assert rows[0]["image_subset"] == "200 images, 20 per class"
    assert all(r["status"] != "" for r in threshold_records(snapshot))


# --- old sessions still open ---

@pytest.mark.slow
def test_version_1_records_migrate(one_step):
    meta, arrays = one_step.to_record()
    old = {k: v for k, v in meta.items() if k != "subsets"}
    old["config"] = {k: v for k, v in meta["config"].items() if k not in ("steps", "chance_floor")}
    old["config"]["epochs"] = 2
    migrated = DefenceState.from_record(*DEFENCE.migrations[1](old, arrays))
    assert migrated.subsets["train"]["rule"] == "first" and migrated.config.epochs == 2
    config = RobustnessConfig(distortions=("blur",), blur_levels=(0.0, 1.0), repetitions=1, images=30, n_boot=0)
    experiment = RobustnessExperiment(load_default(), config, device="cpu")
    experiment.run_to_end()
    meta, arrays = experiment.state.to_record()
    old = {k: v for k, v in meta.items() if k not in ("subset", "temperatures", "transfer_source", "variant_plan")}
    arrays = {k: v for k, v in arrays.items() if k != "zero_gradient"}
    state = RobustnessState.from_record(*ROBUSTNESS.migrations[1](old, arrays))
    assert state.finished and state.subset["rule"] == "first"
    resumed = RobustnessExperiment(load_default(), device="cpu", state=state)  # the first 30 images, as in v1
    assert resumed._images.labels.tolist() == [int(v) for v in load_default_labels()[:30]]


def load_default_labels():
    from wna_gui.core.data import bundled_mnist

    return bundled_mnist("heldout").labels.numpy()


# --- the papers' budgets train (slow: 1,200 SGD steps per stage) ---

@pytest.fixture(scope="module")
def default_control():
    return train("control")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["control", "finetune-noise", "distill", "sleep"])
def test_defences_at_their_default_budgets_reach_85_percent(method, default_control):
    state = default_control if method == "control" else \
        train(method, base=default_control.made if method != "distill" else None)
    assert state.stages[-1]["kind"] == "sleep" or state.stage_steps(state.stages[-1]) == 1200
    assert state.made.extra["heldout_accuracy"] >= 0.85, state.accuracy
    assert not state.made.extra["at_chance"]
    if method == "distill":
        assert state.config.temperature == 50.0


def test_the_budget_is_in_steps_and_old_epochs_still_work():
    assert DefenceConfig().steps == 1200 and DefenceConfig().epochs == 0
    state = DefenceExperiment(load_default(), DefenceConfig(epochs=2), device="cpu").state
    assert state.progress_total == 80, "2 epochs of 4,000 images at batch 100"
    state = DefenceExperiment(load_default(), DefenceConfig(), device="cpu").state
    assert state.progress_total == 1200
    assert any("1,200 SGD steps" in note for note in state.notes())
    assert dataclasses.replace(DefenceConfig(), steps=300).steps == 300
