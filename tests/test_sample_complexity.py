"""Sample complexity (paper Figs. 4, 14, 15): maps kept at 1e2, 1e3, … samples and split-half reliability
against samples for every stimulus type, on the bundled CNN; structured noise needs fewer samples than white."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from wna_gui.core.experiment import plan_run, prepare_state
from wna_gui.core.models import load_default
from wna_gui.core.sample_complexity import (
    EXPERIMENT,
    STIMULI,
    SampleComplexityConfig,
    SampleComplexityExperiment,
    SampleComplexityState,
)

BUDGET = 2000
BATCH = 100


@pytest.fixture(scope="module")
def model():
    return load_default()


@pytest.fixture(scope="module")
def run(model):
    """Every stimulus type, hard label and logit kernel, 2,000 samples each (maps at 100, 1,000, 2,000)."""
    config = SampleComplexityConfig(estimators=("hard", "logit"), samples=BUDGET, batch_size=BATCH,
                                    snapshot_seconds=3600.0)
    experiment = SampleComplexityExperiment(model, config, device="cpu")
    return experiment, experiment.run_to_end()


def test_every_stimulus_type_runs_its_budget_in_turn(run):
    experiment, snapshot = run
    assert snapshot.stimuli == tuple(STIMULI) and snapshot.finished
    assert snapshot.samples_done == len(STIMULI) * BUDGET
    for stimulus, result in snapshot.results.items():
        assert result.run.samples_done == BUDGET
        assert result.run.noise_kind == stimulus
        assert bool(result.fit) == (stimulus in ("gabor-pca", "autoencoder", "vae"))


def test_checkpoints_hold_maps_of_exactly_their_sample_counts(run):
    _, snapshot = run
    assert snapshot.checkpoint_counts() == [100, 1000, BUDGET]
    for result in snapshot.results.values():
        for estimator in ("hard", "logit"):
            kept = result.checkpoint_maps(estimator)
            assert sorted(kept) == [100, 1000, BUDGET]
            assert {n: maps.samples for n, maps in kept.items()} == {100: 100, 1000: 1000, BUDGET: BUDGET}
            assert all(maps.mean.shape[1] == 784 for maps in kept.values())


def test_reliability_grows_with_samples_for_every_stimulus_type(run):
    _, snapshot = run
    for stimulus, result in snapshot.results.items():
        samples, values = result.reliability("logit")
        assert samples[0] == 200 and samples[-1] == BUDGET and np.all(np.diff(samples) > 0)
        assert np.isfinite(values).all()
        if stimulus in ("uniform", "gaussian", "gabor-pca"):
            assert values[-1] > values[0] + 0.1, stimulus
        else:  # decoder samples: near 1 from the first records on (Fig. 15: ~100 samples suffice)
            assert values[-1] >= values[0] - 0.02 and values[-1] > 0.9, stimulus


def test_gabor_pca_noise_reaches_reliability_08_in_fewer_samples_than_white_noise(run):
    _, snapshot = run
    gabor, white = snapshot.results["gabor-pca"], snapshot.results["uniform"]
    reached = gabor.samples_to("logit", 0.8)
    assert reached is not None and reached <= 1000
    white_reached = white.samples_to("logit", 0.8)
    assert white_reached is None or white_reached > 2 * reached
    # At every sample count both recorded, the structured noise's maps are the more reliable.
    g_samples, g_values = gabor.reliability("logit")
    w_samples, w_values = white.reliability("logit")
    common = np.intersect1d(g_samples, w_samples)
    assert common.size >= 5
    assert np.all(g_values[np.isin(g_samples, common)] > w_values[np.isin(w_samples, common)])


def test_the_record_round_trips_and_the_run_extends(run, model):
    experiment, snapshot = run
    meta, arrays = experiment.state.to_record()
    restored = SampleComplexityState.from_record(meta, arrays)
    assert restored.progress_done == experiment.state.progress_done
    assert restored.config.to_dict() == experiment.state.config.to_dict()
    again = restored.snapshot()
    for stimulus in STIMULI:
        a, b = snapshot.results[stimulus], again.results[stimulus]
        assert np.array_equal(a.run.counts, b.run.counts)
        np.testing.assert_array_equal(a.reliability("logit")[1], b.reliability("logit")[1])
        assert a.fit == b.fit
    # A larger budget extends every stimulus type (the structured noise from its stored fit).
    bigger = dataclasses.replace(restored.config, samples=BUDGET + BATCH)
    assert plan_run(EXPERIMENT, restored, bigger).action == "extend"
    state = prepare_state(EXPERIMENT, restored, bigger, model)
    extended = SampleComplexityExperiment(model, state=state, device="cpu").run_to_end()
    assert all(result.run.samples_done == BUDGET + BATCH for result in extended.results.values())


def test_exports_write_the_figures_and_the_csv(run, tmp_path):
    _, snapshot = run
    written = {}
    for artefact in EXPERIMENT.artefacts:
        for suffix in artefact.suffixes:
            written[artefact.name + suffix] = artefact.write(snapshot, tmp_path / f"{artefact.name}{suffix}")
    for path in written.values():
        assert path.stat().st_size > 1000
    with written["sample_complexity.csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["stimulus"] for row in rows} == set(STIMULI)
    assert {row["estimator"] for row in rows} == {"hard", "logit"}
    last = [row for row in rows if row["stimulus"] == "gabor-pca" and row["estimator"] == "logit"][-1]
    assert int(last["samples"]) == BUDGET and float(last["reliability_mean"]) > 0.8
    with np.load(written["sample_complexity_maps.npz"]) as maps:
        assert maps["vae/logit/100/centered"].shape == (10, 1, 28, 28)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown stimulus type 'pink'"):
        SampleComplexityConfig(stimuli=("pink",))
    with pytest.raises(ValueError, match="not a noise estimator"):
        SampleComplexityConfig(estimators=("signal",))
    assert SampleComplexityConfig(stimuli=()).stimuli == tuple(STIMULI)
