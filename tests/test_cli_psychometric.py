"""`wna run psychometric`, and psychometric runs in `wna info` and `wna export`, end to end on small configs."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from wna_gui.cli import main
from wna_gui.core.psyfit import guess_max
from wna_gui.core.psychometric_report import format_k_values, parse_k_values
from wna_gui.core.control import Cancelled, RunControl
from wna_gui.core.models import load_default
from wna_gui.core.psychometric import KIND, PsychometricConfig, PsychometricExperiment
from wna_gui.core.psychometric_grid import KIND as GRID_KIND
from wna_gui.core.psychometric_grid import PsychometricGridConfig, PsychometricGridExperiment
from wna_gui.core.session import Session, load_session, save_session

# Two curves of 6 γ points and few resamples: seconds, but every part of the pipeline runs.
RUN = ["run", "psychometric", "--target", "3", "--layer", "fc1", "--k", "0,10", "--gammas", "6", "--boot", "20",
       "--gof-samples", "10", "--lr-samples", "20", "--seed", "4", "--autosave-seconds", "0"]
CONFIG = PsychometricConfig(target=3, layer="fc1", k_values=(0, 10), gammas=(0, 0.2, 0.4, 0.6, 0.8, 1), seed=4,
                            n_boot=20, gof_samples=10, lr_samples=20)


@pytest.fixture(scope="module")
def expected():
    return PsychometricExperiment(load_default(), CONFIG, device="cpu").run_to_end()


def test_run_writes_the_session_and_prints_the_summary(tmp_path, capsys, expected):
    out = tmp_path / "p.h5"
    assert main([*RUN, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "target 3 · fc1 excited, λ = 0.01" in printed and "threshold α [95% CI]" in printed
    assert "Joint fit: threshold per k; width, guess, lapse shared" in printed
    assert "γ at P = 0.50 [95% CI]" in printed and "width (γ) [95% CI]" in printed

    state = load_session(out).runs[KIND]
    # The run records the λ it used (fc1's default) in its config.
    assert state.config == replace(CONFIG, lambda_=0.01) and state.lambda_ == 0.01
    assert state.correct.shape == (2, 1, 100, 6) and state.done.all()
    np.testing.assert_array_equal(state.fraction_correct(), expected.fraction_correct)
    assert [fit.threshold for fit in state.fits] == pytest.approx(list(expected.thresholds))

    assert main(["info", str(out), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["experiments"][KIND]
    assert (entry["target"], entry["layer"], entry["k_values"]) == (3, "fc1", [0.0, 10.0])
    assert entry["thresholds"] == pytest.approx(list(expected.thresholds))
    assert entry["threshold_shifts"][1] == pytest.approx(expected.threshold_shifts[1])
    assert entry["finished"] and entry["samples_done"] == 1200
    # Added with issue 9: performance thresholds, bound flags, the model and its tests.
    assert entry["performance_level"] == 0.5 and entry["performance_status"] == ["reached", "reached"]
    assert entry["performance_thresholds"] == pytest.approx(list(expected.performance_thresholds))
    assert entry["performance_shifts"][1] == pytest.approx(expected.performance_shifts[1])
    assert entry["fit_model"]["shared"] == ["width", "guess", "lapse"] and entry["fit_model"]["n_params"] == 5
    assert [test["name"] for test in entry["lr_tests"]] == ["equal", "pair", "sharing"]
    assert entry["lr_tests"][1]["conditions"] == [0.0, 10.0] and 0 < entry["lr_tests"][1]["p_value"] <= 1
    assert len(entry["flags"]) == 2 and entry["width_unit"] == "γ" and entry["trials_per_point"] == 100
    assert entry["noise_index"] == "value" and entry["noise_samples_per_image"] == 1
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "psychometric: target 3, fc1 excited" in text and "k =   10: threshold" in text
    assert "γ at P = 0.50:" in text


@pytest.mark.slow
def test_resume_continues_a_stopped_run_and_keeps_other_experiments(tmp_path, expected):
    out = tmp_path / "both.h5"
    assert main(["run", "classification-images", "--samples", "1000", "--quiet", "--autosave-seconds", "0",
                 "--out", str(out)]) == 0
    # Stop after the first curve, as Ctrl-C would, and save beside the classification images.
    session = load_session(out)
    control = RunControl()
    experiment = PsychometricExperiment(session.model, replace_snapshot_seconds(CONFIG), control=control)
    with pytest.raises(Cancelled):
        for _ in experiment.run():
            control.cancel()
    session.runs[KIND] = experiment.state
    save_session(session, out)
    assert 0 < experiment.state.cells_done < CONFIG.n_cells

    assert main(["run", "psychometric", "--resume", str(out), "--quiet"]) == 0
    session = load_session(out)
    assert set(session.runs) == {"classification_images", KIND}
    np.testing.assert_array_equal(session.runs[KIND].fraction_correct(), expected.fraction_correct)
    # A new run of the same name is refused unless --replace says so; then it replaces that entry and keeps the rest.
    assert main([*RUN, "--target", "5", "--quiet", "--out", str(out)]) == 2
    assert load_session(out).runs[KIND].config.target == 3
    assert main([*RUN, "--target", "5", "--quiet", "--out", str(out), "--replace"]) == 0
    session = load_session(out)
    assert set(session.runs) == {"classification_images", KIND}
    assert session.runs[KIND].config.target == 5


def replace_snapshot_seconds(config):
    return replace(config, snapshot_seconds=0.0)  # a snapshot after every batch, so the run stops after one


def test_export_writes_tables_arrays_and_plots(tmp_path, expected):
    out = tmp_path / "p.h5"
    assert main([*RUN, "--quiet", "--out", str(out)]) == 0
    export = tmp_path / "export"
    # A fresh process, as a user runs it: no display, no Qt application yet.
    subprocess.run([sys.executable, "-m", "wna_gui.cli", "export", str(out), "--out", str(export)], check=True,
                   capture_output=True)
    rows = list(csv.DictReader((export / "psychometric_fits.csv").read_text().splitlines()))
    assert [float(r["k"]) for r in rows] == [0.0, 10.0]
    assert [float(r["threshold"]) for r in rows] == pytest.approx(list(expected.thresholds))
    data = np.load(export / "psychometric_data.npy")
    np.testing.assert_array_equal(data["n_correct"].reshape(2, 6), expected.n_correct)
    np.testing.assert_array_equal(data["gamma"][:6], expected.gammas)
    assert len((export / "psychometric_data.csv").read_text().splitlines()) == 1 + 12
    assert (export / "psychometric_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (export / "psychometric_curves.svg").read_bytes()[:2000]
    # The performance threshold, its shift and the flags beside the midpoint's; the tests in a table of their own.
    assert [float(r["performance_threshold"]) for r in rows] == pytest.approx(list(expected.performance_thresholds))
    assert rows[1]["performance_shift_ci_low"] and rows[0]["model"] == "joint" and rows[0]["shared"] == "width guess lapse"
    assert rows[0]["width_unit"] == "γ" and rows[0]["noise_samples"] == "1" and "flags" in rows[0]
    tests = list(csv.DictReader((export / "psychometric_tests.csv").read_text().splitlines()))
    assert [t["test"] for t in tests] == ["equal", "pair", "sharing"]
    assert tests[1]["null_hypothesis"] == "α(k = 10) = α(k = 0)" and tests[1]["samples"] == "20"


def test_info_and_export_of_a_small_multiples_grid(tmp_path, capsys):
    model = load_default()
    grid = PsychometricGridExperiment.new_state(model, PsychometricGridConfig(
        targets=(3, 4), layers=("fc1",), signs=(1,), k_values=CONFIG.k_values, gammas=CONFIG.gammas,
        seed=CONFIG.seed))
    experiment = PsychometricExperiment(model, grid.configs[0], device="cpu")
    first = experiment.run_to_end()
    grid.runs[0] = experiment.state  # the second plot's turn has not come
    out = save_session(Session(model, {GRID_KIND: grid}), tmp_path / "grid.h5")

    assert main(["info", str(out)]) == 0
    assert "psychometric_grid: 2 classes × fc1 (excite), k = 0, 10 × 6 γ; 1 of 2 plots done" in capsys.readouterr().out
    assert main(["info", str(out), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["experiments"][GRID_KIND]
    assert (entry["plots_done"], entry["plots_total"], entry["samples_done"]) == (1, 2, first.samples_done)
    assert entry["plots"][0]["threshold_shifts"] == pytest.approx(list(first.threshold_shifts))

    export = tmp_path / "export"
    subprocess.run([sys.executable, "-m", "wna_gui.cli", "export", str(out), "--out", str(export)], check=True,
                   capture_output=True)
    rows = list(csv.DictReader((export / "psychometric_grid_fits.csv").read_text().splitlines()))
    assert [(int(r["target"]), float(r["k"])) for r in rows] == [(3, 0.0), (3, 10.0)]
    assert [float(r["threshold"]) for r in rows] == pytest.approx(list(first.thresholds))
    data = np.load(export / "psychometric_grid_data.npy")
    np.testing.assert_array_equal(data["n_correct"].reshape(2, 6), first.n_correct)
    assert (export / "psychometric_grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (export / "psychometric_grid.svg").read_bytes()[:2000]


@pytest.mark.parametrize("argv, note", [
    # Strong conv2 excitation makes every stimulus a 2: nothing to fit, and the table says why.
    (["--target", "2", "--layer", "conv2"], "10  no fit: every trial is correct at every level"),
    # The CNN calls most pure noise an 8: with the guess held at chance the 8's threshold lies below γ = 0 and is
    # not given as a number.
    (["--target", "8", "--layer", "none", "--guess", "chance"], "0  < 0 (out of range)"),
])
def test_summary_shows_failed_fits_and_out_of_range_thresholds(tmp_path, capsys, argv, note):
    assert main([*RUN, "--boot", "0", "--gof-samples", "0", *argv, "--out", str(tmp_path / "p.h5")]) == 0
    assert note in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, expected_message",
    [
        # Choices the model offers are checked as the flags are read: the error lists them.
        ([*RUN, "--layer", "fc9", "--out", "x.h5"], "unknown layer 'fc9'; choose one of none, conv1, conv2, fc1, fc2"),
        ([*RUN, "--target", "12", "--out", "x.h5"], "unknown target class '12'; choose one of 0, 1, 2"),
        ([*RUN, "--target", "seven", "--out", "x.h5"], "unknown target class"),
        ([*RUN, "--k", "0:x", "--out", "x.h5"], "k values must look like"),
        ([*RUN, "--k", "0,1,1", "--out", "x.h5"], "distinct"),
        ([*RUN, "--gammas", "1", "--out", "x.h5"], "at least 2 points"),
        ([*RUN, "--lambda", "0", "--out", "x.h5"], "λ must be positive"),
        (RUN, "--out"),
        (["run", "psychometric", "--resume", "missing.h5"], "not found"),
    ],
)
def test_bad_arguments_give_one_line_errors(tmp_path, monkeypatch, capsys, argv, expected_message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wna: error:") and expected_message in err
    assert len(err.splitlines()) == 1


def test_out_holding_another_models_session_is_refused(tmp_path, capsys):
    out = tmp_path / "other.h5"
    model = load_default()
    model.net.fc2.bias.data += 1  # same architecture, other weights
    save_session(Session(model, {}), out)
    assert main([*RUN, "--out", str(out)]) == 2
    assert "another model" in capsys.readouterr().err


@pytest.mark.parametrize("text, values", [("0:10", tuple(range(11))), ("0:10:5", (0, 5, 10)),
                                          ("0, 1 2,5", (0, 1, 2, 5)), ("0:2,5", (0, 1, 2, 5)), ("0.5", (0.5,))])
def test_k_lists_parse_and_format_back(text, values):
    assert parse_k_values(text) == values
    assert parse_k_values(format_k_values(values)) == values


def test_resume_with_fit_flags_refits_without_measuring_again(tmp_path, capsys, expected):
    out = tmp_path / "p.h5"
    assert main([*RUN, "--quiet", "--out", str(out)]) == 0
    measured = load_session(out).runs[KIND]
    refitted_out = tmp_path / "weibull.h5"
    assert main(["run", "psychometric", "--resume", str(out), "--sigmoid", "weibull", "--boot", "0", "--quiet",
                 "--out", str(refitted_out)]) == 0
    state = load_session(refitted_out).runs[KIND]
    # Same measurements, new fits under the new fit settings; the original file is untouched.
    np.testing.assert_array_equal(state.correct, measured.correct)
    np.testing.assert_array_equal(state.responses, measured.responses)
    assert state.config == replace(measured.config, sigmoid="weibull", n_boot=0)
    assert all(fit.sigmoid == "weibull" for fit in state.fits) and state.boot_params.shape == (2, 0, 4)
    assert [fit.sigmoid for fit in load_session(out).runs[KIND].fits] == ["logistic", "logistic"]
    # A measure flag is refused in one line, naming it.
    capsys.readouterr()
    assert main(["run", "psychometric", "--resume", str(out), "--target", "4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wna: error: --target differs") and len(err.splitlines()) == 1


def test_new_flags_give_samples_per_image_a_fit_per_k_a_level_and_tests(tmp_path, capsys):
    out = tmp_path / "p.h5"
    assert main([*RUN, "--repeats", "2", "--width-across-k", "per-k", "--guess-across-k", "per-k",
                 "--lapse-across-k", "per-k", "--performance-level", "0.6", "--lr-samples", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Curves fitted separately: threshold, width, guess, lapse per k · 8 parameters" in printed
    assert "γ at P = 0.60 [95% CI]" in printed and "(χ²)" in printed
    state = load_session(out).runs[KIND]
    config = state.config
    assert (config.repeats, config.shared, config.performance_level, config.lr_samples) == (2, (), 0.6, 0)
    assert state.correct.shape == (2, 2, 100, 6) and state.trials()[0, 0] == 200
    assert all(test.p_value is None for test in state.snapshot().lr_tests)

    # Only fit flags given with --resume: the measured data are fitted again, jointly this time.
    capsys.readouterr()
    assert main(["run", "psychometric", "--resume", str(out), "--guess-across-k", "shared", "--width-across-k",
                 "shared", "--quiet"]) == 0
    refitted = load_session(out).runs[KIND]
    np.testing.assert_array_equal(refitted.correct, state.correct)
    assert refitted.config.shared == ("width", "guess") and refitted.model["shared"] == ["width", "guess"]
    # A measure flag is refused, named.
    assert main(["run", "psychometric", "--resume", str(out), "--repeats", "3", "--quiet"]) == 2
    assert "--repeats differs" in capsys.readouterr().err


def test_flagged_estimates_are_listed_with_their_reason(tmp_path, capsys):
    # The CNN calls most pure noise an 8 (floor ≈0.9): excited at k = 10 the floor rises above 1 − the largest
    # lapse, a guess per k runs to that limit, and the output says so; at k = 0 the floor is fitted.
    assert main([*RUN, "--target", "8", "--guess-across-k", "per-k", "--boot", "0", "--gof-samples", "0",
                 "--lr-samples", "0", "--out", str(tmp_path / "p.h5")]) == 0
    printed = capsys.readouterr().out
    limit = f"{guess_max('bounded'):g}"
    assert f"⚠ guess={limit}" in printed
    assert f"⚠ k = 10: the guess rate stopped at its upper limit {limit}" in printed
    assert re.search(r"none: floor 0\.[89]\d ≥ 0\.50", printed)
    assert main(["info", str(tmp_path / "p.h5")]) == 0
    assert f"⚠ guess={limit}" in capsys.readouterr().out
