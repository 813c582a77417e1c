"""The `wna` command end to end, on small sample counts, through real subprocess-free calls."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from wna_gui.cli import main
from wna_gui.core.session import load_session

RUN = ["run", "classification-images", "--batch-size", "500", "--quiet", "--autosave-seconds", "0"]


def _maps(path):
    state = load_session(path).experiments["classification_images"]
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

    assert main(["info", str(whole)]) == 0
    text = capsys.readouterr().out
    assert "4,000 samples" in text and "mnist_cnn" in text


def test_export_writes_figures_arrays_and_tables(tmp_path):
    session = tmp_path / "s.h5"
    assert main([*RUN, "--samples", "2000", "--out", str(session)]) == 0
    out = tmp_path / "export"
    assert main(["export", str(session), "--out", str(out)]) == 0

    with h5py.File(session) as f:
        saved = f["experiments/classification_images/results/centered"][()]
        classes = f["experiments/classification_images/results/classes"][()]
    exported = np.load(out / "maps_centered.npz")
    np.testing.assert_array_equal(exported["maps"], saved)
    np.testing.assert_array_equal(exported["classes"], classes)
    assert exported["counts"].sum() == 2000 and list(exported["class_names"]) == [str(d) for d in range(10)]
    for view in ("mean", "centered", "zmap"):
        assert (out / f"maps_{view}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"maps_{view}.pdf").read_bytes()[:4] == b"%PDF"
    rows = (out / "class_counts.csv").read_text().strip().splitlines()
    assert rows[0] == "class,name,count" and len(rows) == 11
    assert sum(int(r.split(",")[2]) for r in rows[1:]) == 2000


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


def test_core_never_imports_qt():
    code = ("import sys, wna_gui.core.classification, wna_gui.core.session, wna_gui.core.models, "
            "wna_gui.core.data, wna_gui.core.train, wna_gui.cli; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_new_run_keeps_the_other_experiments_in_its_session(tmp_path, capsys):
    session = tmp_path / "s.h5"
    assert main(["run", "psychometric", "--target", "3", "--gammas", "5", "--boot", "0", "--gof-samples", "0",
                 "--quiet", "--out", str(session)]) == 0
    assert main([*RUN, "--samples", "1000", "--out", str(session)]) == 0
    assert set(load_session(session).experiments) == {"psychometric", "classification_images"}


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
