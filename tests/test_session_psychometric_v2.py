"""Psychometric sessions written by the release before issue 9 (record version 2) open with their results, keep
the noise rule they were measured with (blocks by list position), continue exactly, and refit into the joint model.

tests/data/session-psychometric-v2.h5 was written by that release (tests/data/make_session_psychometric_v2.py):
a finished run of digit 3 (k = 0, 5, 10), a run of digit 5 stopped half-way (k = 0 and 4), and a small-multiples
grid with one of its two plots measured; -expected.npz holds what that release computed and would have measured.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from wna_gui.cli import main
from wna_gui.core.experiment import plan_run, prepare_state
from wna_gui.core.models import load_default
from wna_gui.core.psychometric import EXPERIMENT, PsychometricExperiment, noise_block
from wna_gui.core.psychometric_grid import PsychometricGridExperiment
from wna_gui.core.psyfit import FLOOR_ABOVE
from wna_gui.core.registry import BY_KIND
from wna_gui.core.session import load_session, read_header, save_session

V2 = Path(__file__).parent / "data" / "session-psychometric-v2.h5"


@pytest.fixture(scope="module")
def expected():
    with np.load(V2.with_name("session-psychometric-v2-expected.npz")) as arrays:
        return dict(arrays)


@pytest.fixture(scope="module")
def old():
    return load_session(V2)


def test_the_file_holds_version_2_records():
    runs = read_header(V2)["runs"]
    assert {name: (run["kind"], run["record_version"]) for name, run in runs.items()} == {
        "psychometric": ("psychometric", 2), "half": ("psychometric", 2), "psychometric_grid": ("psychometric_grid", 2)}
    assert BY_KIND["psychometric"].record_version == BY_KIND["psychometric_grid"].record_version == 3


def test_a_version_2_run_opens_with_its_results_and_its_noise_rule(old, expected):
    state = old.runs["psychometric"]
    config = state.config
    # The rules it was measured and fitted with: blocks by list position, one noise sample, curves fitted alone.
    assert (config.noise_index, config.repeats, config.shared, config.lr_samples) == ("position", 1, (), 0)
    assert config.noise.generator == "counter" and config.k_values == (0.0, 5.0, 10.0)
    assert state.correct.shape == (3, 1, state.n_images, 6) and state.done.shape == (3, 1, 6)
    np.testing.assert_array_equal(state.correct[:, 0], expected["finished_correct"])
    snapshot = state.snapshot()
    assert snapshot.finished and not snapshot.preliminary
    np.testing.assert_array_equal(snapshot.fraction_correct, expected["finished_fraction"])
    np.testing.assert_array_equal(snapshot.thresholds, expected["finished_thresholds"])
    np.testing.assert_array_equal(snapshot.threshold_shifts, expected["finished_shifts"])
    np.testing.assert_allclose(snapshot.shift_intervals, expected["finished_intervals"], rtol=1e-12)
    assert snapshot.fit_model["legacy"] and snapshot.lr_tests == ()
    # New readings of the old fits: performance thresholds (no intervals: only thresholds were resampled), flags.
    # The old free guess of k = 10 ran to its limit 0.5: flagged now, and that curve has no performance threshold.
    assert np.all(np.isfinite(snapshot.performance_thresholds[:2]))
    assert snapshot.performance_status[2] == FLOOR_ABOVE and "guess=0.5" in [f.label for f in snapshot.warnings(2)]
    assert np.all(np.isnan(snapshot.performance_intervals)) and len(snapshot.flags) == 3
    assert state.boot_params.shape == (3, 30, 4) and np.all(np.isnan(state.boot_params[..., 1:]))


def test_a_stopped_version_2_run_continues_exactly(expected):
    state = load_session(V2).runs["half"]  # a fresh copy: the module's session stays as read
    assert not state.finished and state.curve_fits[0] is not None and state.config.guess == "chance"
    assert plan_run(EXPERIMENT, state, state.config).action == "continue"
    snapshot = PsychometricExperiment(load_default(), state=state, device="cpu").run_to_end()
    np.testing.assert_array_equal(state.correct[:, 0], expected["half_correct"])
    np.testing.assert_array_equal(snapshot.fraction_correct, expected["half_fraction"])
    # The data are identical (asserted exactly); the maximum-likelihood threshold comes from an iterative
    # optimiser on a flat likelihood, whose last digits move with the torch release (up to 0.08% seen between
    # releases), so the fitted value is held to the optimiser's precision.
    np.testing.assert_allclose(snapshot.thresholds, expected["half_thresholds"], rtol=2e-3, atol=0)
    assert snapshot.finished and snapshot.fit_model["shared"] == [] and snapshot.fit_model["guess_fixed"] == 0.1


def test_a_stopped_version_2_grid_continues_exactly(expected):
    grid = load_session(V2).runs["psychometric_grid"]
    assert grid.plots_done == 1 and grid.runs[1] is None
    assert grid.config.noise_index == "position" and grid.configs[1].noise_index == "position"
    snapshot = PsychometricGridExperiment(load_default(), state=grid, device="cpu").run_to_end()
    assert snapshot.finished
    for plot, fraction in zip(snapshot.snapshots, expected["grid_fraction"], strict=True):
        np.testing.assert_array_equal(plot.fraction_correct, fraction)


def test_a_new_run_with_a_version_2_config_measures_what_that_release_did(old, expected):
    config = replace(old.runs["psychometric"].config, lambda_=None)
    experiment = PsychometricExperiment(load_default(), config, device="cpu")
    experiment.run_to_end()
    np.testing.assert_array_equal(experiment.state.correct[:, 0], expected["finished_correct"])
    # By position the k = 5 curve's noise depends on where 5 is in the list; by value it does not.
    assert noise_block(config, 1, 0) != noise_block(replace(config, k_values=(5.0,)), 0, 0)
    by_value = replace(config, noise_index="value")
    assert noise_block(by_value, 1, 0) == noise_block(replace(by_value, k_values=(5.0,)), 0, 0)


def test_refitting_a_version_2_run_gives_the_joint_fit_and_its_tests(old):
    state = old.runs["psychometric"]
    config = replace(state.config, width_across_k="shared", guess_across_k="shared", lapse_across_k="shared",
                     lr_samples=50)
    assert plan_run(EXPERIMENT, state, config).action == "refit"
    refitted = prepare_state(EXPERIMENT, state, config, load_default())
    snapshot = PsychometricExperiment(load_default(), state=refitted, device="cpu").run_to_end()
    assert snapshot.fit_model["shared"] == ["width", "guess", "lapse"] and not snapshot.fit_model.get("legacy")
    assert {test.name for test in snapshot.lr_tests} == {"equal", "pair", "sharing"}
    np.testing.assert_array_equal(refitted.correct, state.correct)  # measured once
    assert refitted.config.noise_index == "position"  # the rule it was measured with stays
    assert np.all(np.isfinite(snapshot.performance_intervals))


def test_saved_again_it_is_version_3_and_round_trips(old, tmp_path):
    path = save_session(old, tmp_path / "again.h5")
    assert {run["record_version"] for run in read_header(path)["runs"].values()} == {3}
    again = load_session(path)
    for name, state in old.runs.items():
        (meta, arrays), (meta_again, arrays_again) = state.to_record(), again.runs[name].to_record()
        assert meta_again == meta and sorted(arrays_again) == sorted(arrays)
        for key, array in arrays.items():
            np.testing.assert_array_equal(arrays_again[key], array, err_msg=key)


def test_the_cli_continues_a_version_2_run(tmp_path, capsys):
    out = tmp_path / "continued.h5"
    assert main(["run", "psychometric", "--resume", str(V2), "--name", "half", "--quiet", "--out", str(out)]) == 0
    assert load_session(out).runs["half"].finished
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "psychometric 'half': target 5" in text and "curve by curve by wna-gui 0.1" not in text
