"""The `wna` command end to end, on small sample counts, through real subprocess-free calls."""

from __future__ import annotations

import json
import h5py
import numpy as np
import pytest

from wna_gui.cli import main
from wna_gui.core.session import load_session

RUN = ["run", "classification-images", "--batch-size", "500", "--quiet", "--autosave-seconds", "0"]


def _maps(path):
    state = load_session(path).runs["classification_images"]
    return state.total()


def test_run_info_and_resume_equal_single_run(tmp_path, capsys):
    whole, half = tmp_path / "whole.h5", tmp_path / "half.h5"
    assert main([*RUN, "--samples", "4000", "--seed", "3", "--out", str(whole)]) == 0
    assert main([*RUN, "--samples", "2000", "--seed", "3", "--out", str(half)]) == 0
    assert main([*RUN, "--resume", str(half), "--samples", "4000"]) == 0

    a, b = _maps(whole), _maps(half)
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.m2, b.m2, rtol=0, atol=1e-9)

    capsys.readouterr()
    assert main(["info", str(whole), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    run = info["experiments"]["classification_images"]
    assert run["samples_done"] == 4000
    assert sum(run["class_counts"].values()) == 4000
    assert run["class_counts"] == {str(k): int(c) for k, c in enumerate(a.count)}
    assert info["model"]["architecture"] == "mnist_cnn"
    assert info["model"]["heldout_accuracy"] >= 0.97

    assert run["kind"] == "classification_images" and run["config"]["seed"] == 3
    assert main(["info", str(whole)]) == 0
    text = capsys.readouterr().out
    assert "4,000 samples" in text and "mnist_cnn" in text


def test_resume_rules_measure_flags_are_refused_and_a_complete_run_is_left_alone(tmp_path, capsys):
    path = tmp_path / "s.h5"
    assert main([*RUN, "--samples", "1000", "--seed", "3", "--out", str(path)]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    # A resumed run keeps what it measures: another seed or noise is an error, in one line, naming the flag.
    for flags, named in ((["--seed", "4"], "--seed"), (["--noise", "gaussian"], "--noise"),
                         (["--noise-high", "2"], "--noise")):
        assert main([*RUN, "--resume", str(path), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("wna: error:") and named in err and "resume" in err and len(err.splitlines()) == 1
    assert main([*RUN, "--resume", str(path)]) == 0
    assert "complete; nothing to do" in capsys.readouterr().err
    assert path.read_bytes() == before
    # Not more samples than done: nothing to extend.
    assert main([*RUN, "--resume", str(path), "--samples", "500"]) == 2
    assert "raise the budget" in capsys.readouterr().err


def test_named_runs_live_side_by_side_and_resume_by_name(tmp_path, capsys):
    path = tmp_path / "s.h5"
    assert main([*RUN, "--samples", "1000", "--seed", "3", "--out", str(path)]) == 0
    assert main([*RUN, "--samples", "1000", "--seed", "4", "--name", "seed4", "--out", str(path)]) == 0
    assert main([*RUN, "--resume", str(path), "--name", "seed4", "--samples", "2000"]) == 0
    session = load_session(path)
    assert list(session.runs) == ["classification_images", "seed4"]
    assert session.runs["classification_images"].samples_done == 1000
    assert session.runs["seed4"].samples_done == 2000 and session.runs["seed4"].config.seed == 4
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["experiments"]
    assert {name: run["kind"] for name, run in runs.items()} == {"classification_images": "classification_images",
                                                                 "seed4": "classification_images"}
    assert runs["seed4"]["samples_done"] == 2000
    assert main(["info", str(path)]) == 0
    assert "classification_images 'seed4': 2,000 of 2,000 samples" in capsys.readouterr().out
    out = tmp_path / "export"
    assert main(["export", str(path), "--out", str(out), "--view", "zmap"]) == 0
    # The run named after its kind exports into the folder, another run into a folder of its name.
    assert (out / "maps_zmap.npz").exists() and (out / "seed4" / "maps_zmap.npz").exists()
    assert not (out / "maps_mean.npz").exists() and not (out / "seed4" / "maps_mean.npz").exists()
    assert np.load(out / "seed4" / "maps_zmap.npz")["counts"].sum() == 2000
    assert main([*RUN, "--resume", str(path), "--name", "nope"]) == 2
    assert "no classification-images run named 'nope'" in capsys.readouterr().err


def test_export_at_a_journal_column_width(tmp_path):
    from PySide6.QtGui import QImage

    out = tmp_path / "s.h5"
    assert main(["run", "classification-images", "--samples", "1000", "--quiet", "--out", str(out)]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "fig"), "--width-mm", "85", "--dpi", "300"]) == 0
    png = QImage(str(tmp_path / "fig" / "maps_centered.png"))
    assert 1000 <= png.width() <= 1010  # 85 mm at 300 dpi
    pdf = (tmp_path / "fig" / "maps_centered.pdf").read_bytes()
    width_pt = float(pdf.split(b"/MediaBox [")[1].split(b"]")[0].split()[2])
    assert width_pt * 25.4 / 72 == pytest.approx(85, abs=0.5)


def test_export_writes_figures_arrays_and_tables(tmp_path):
    session = tmp_path / "s.h5"
    assert main([*RUN, "--samples", "2000", "--out", str(session)]) == 0
    out = tmp_path / "export"
    assert main(["export", str(session), "--out", str(out)]) == 0

    with h5py.File(session) as f:
        saved = f["runs/classification_images/results/centered"][()]
        classes = f["runs/classification_images/results/classes"][()]
    exported = np.load(out / "maps_centered.npz")
    np.testing.assert_array_equal(exported["maps"], saved)
    np.testing.assert_array_equal(exported["classes"], classes)
    assert exported["counts"].sum() == 2000 and list(exported["class_names"]) == [str(d) for d in range(10)]
    for view in ("mean", "centered", "zmap"):
        assert (out / f"maps_{view}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"maps_{view}.pdf").read_bytes()[:4] == b"%PDF"
    rows = (out / "class_counts.csv").read_text().strip().splitlines()
    assert rows[0] == "class,name,count,map_prediction,split_half_r" and len(rows) == 11
    assert sum(int(r.split(",")[2]) for r in rows[1:]) == 2000
    # The saved run has no model's reading of its maps; export adds it (classes seen have a prediction).
    assert all(r.split(",")[3] in [str(d) for d in range(10)] for r in rows[1:] if int(r.split(",")[2]) > 0)
    lines = (out / "reliability.csv").read_text().strip().splitlines()
    assert lines[0] == "samples," + ",".join(f"r_{d}" for d in range(10)) and lines[-1].startswith("2000,")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["info", "missing.h5"], "not found"),
        ([*RUN, "--samples", "100"], "--out"),
        ([*RUN, "--samples", "0", "--out", "x.h5"], "sample budget"),
        ([*RUN, "--model", "mlp", "--out", "x.h5"], "needs a weights file"),
        ([*RUN, "--model", "nonsense", "--out", "x.h5"], "unknown model"),
        ([*RUN, "--noise", "gaussian", "--noise-std", "0", "--out", "x.h5"], "std > 0"),
        ([*RUN, "--model", "torchscript", "--weights", "nope.pt", "--out", "x.h5"], "not found"),
    ],
)
def test_bad_arguments_give_one_line_errors(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wna: error:") and expected in err
    assert len(err.splitlines()) == 1


def test_foreign_file_is_refused_in_one_line(tmp_path, capsys):
    foreign = tmp_path / "notes.h5"
    foreign.write_text("not a session")
    assert main(["info", str(foreign)]) == 2
    assert "not a wna-gui session" in capsys.readouterr().err


def test_train_writes_loadable_weights(tmp_path, capsys):
    weights = tmp_path / "logreg.pt"
    assert main(["train", "logreg", "--dataset", "bundled", "--epochs", "2", "--out", str(weights)]) == 0
    accuracy = float(capsys.readouterr().out.split("test accuracy ")[1].split("%")[0]) / 100
    assert accuracy > 0.7  # logistic regression on 4,000 real digits, far above 10% chance
    session = tmp_path / "lr.h5"
    assert main([*RUN, "--model", "logreg", "--weights", str(weights), "--samples", "1000",
                 "--out", str(session)]) == 0
    assert load_session(session).model.architecture == "logreg"


def test_a_new_run_keeps_the_other_experiments_in_its_session(tmp_path, capsys):
    session = tmp_path / "s.h5"
    assert main(["run", "psychometric", "--target", "3", "--gammas", "5", "--boot", "0", "--gof-samples", "0",
                 "--quiet", "--out", str(session)]) == 0
    assert main([*RUN, "--samples", "1000", "--out", str(session)]) == 0
    assert set(load_session(session).runs) == {"psychometric", "classification_images"}


@pytest.mark.parametrize("argv, expected", [
    (["--device", "gpu"], "unknown device"),
    (["--out", "."], "is a folder"),
])
def test_bad_device_or_output_fails_before_the_run_in_one_line(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    argv = argv if "--out" in argv else [*argv, "--out", "x.h5"]
    assert main([*RUN, "--samples", "1000", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wna: error:") and expected in err and len(err.splitlines()) == 1
