"""The psychometric panel, driven like a user would, through the real engine thread (offscreen Qt)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from wna_gui.app.main_window import MainWindow
from wna_gui.core.psychometric_report import PSYCHOMETRIC_COLUMNS, gamma_grid
from wna_gui.core.models import load_default
from wna_gui.core.psychometric import (
    GRID_KIND,
    KIND,
    PsychometricConfig,
    PsychometricExperiment,
    PsychometricGridState,
)
from wna_gui.core.session import Session, save_session

RUN_TIMEOUT_MS = 90_000
# Coarse grids and few resamples keep each run to seconds on a shared CPU.
UNSTIMULATED = {"target": 3, "layer": None, "gammas": 6, "seed": 5, "n_boot": 20, "gof_samples": 10}
STIMULATED = {"target": 3, "layer": "fc1", "k_values": "0:10", "gammas": 21, "seed": 2, "n_boot": 0,
              "gof_samples": 0}


STIMULATED_GRID = {"view": "grid", "gammas": 6, "seed": 1,
                   "grid": {"k_values": "0, 10", "layers": ["fc1"], "signs": [1]}}


def open_window(qtbot, tmp_path, name="settings.ini"):
    settings = QSettings(str(tmp_path / name), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard))
    return open_window(qtbot, tmp_path)


def psychometric_panel(window):
    panel = next(p for p in window.panels if p.kind == KIND)
    window.tabs.setCurrentWidget(panel)
    return panel


def run_to_end(qtbot, window):
    with qtbot.waitSignal(window.engine.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert not window.engine.running


def headless(config):
    return PsychometricExperiment(load_default(), config, device="cpu").run_to_end()


def export(panel, label, path):
    return next(target for target in panel.export_targets() if target.label == label).write(path)


def table_texts(panel):
    table = panel.table
    return [[table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def test_sweep_on_screen_equals_the_engine(window, qtbot):
    panel = psychometric_panel(window)
    panel.apply_settings(UNSTIMULATED)
    assert panel.trials.text().startswith("100 ")
    assert "1 curve × 6 γ" in panel.plan_label.text()
    run_to_end(qtbot, window)

    expected = headless(panel.config())
    x, y = panel.plot.points(0)
    np.testing.assert_array_equal(x, expected.gammas)
    np.testing.assert_array_equal(y, expected.fraction_correct[0])
    fit_x, fit_y = panel.plot.fitted(0)
    np.testing.assert_allclose(fit_y, expected.fits[0].predict(fit_x))
    threshold = table_texts(panel)[0][1]
    assert threshold.startswith(f"{expected.thresholds[0]:.3f} [")
    assert window.samples_label.text() == "Samples 600 / 600"
    assert "complete" in panel.plan_label.text()
    assert window.isWindowModified()


def test_session_round_trip_restores_curves_and_table_and_exports(window, qtbot, tmp_path):
    panel = psychometric_panel(window)
    panel.apply_settings(UNSTIMULATED)
    run_to_end(qtbot, window)
    before_points, before_table = panel.plot.points(0), table_texts(panel)

    path = tmp_path / "psy.h5"
    window.save_to(path)
    qtbot.waitUntil(lambda: window.session_path == path, timeout=10_000)
    window.new_session()
    assert panel.session_states() == {} and panel.table.rowCount() == 0
    window.open_session(path)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=20_000)
    for restored, saved in zip(panel.plot.points(0), before_points):
        np.testing.assert_array_equal(restored, saved)
    assert table_texts(panel) == before_table
    assert panel.settings()["gammas"] == 6 and panel.settings()["seed"] == 5

    png = export(panel, "Psychometric curves plot", tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not QImage(str(png)).isNull()
    fits = export(panel, "Fit table: thresholds, widths, intervals, shifts", tmp_path / "fits.csv")
    (row,) = csv.DictReader(fits.open())
    assert float(row["threshold"]) == pytest.approx(panel._snapshot.thresholds[0])
    assert row["threshold_in_range"] == "True" and row["layer"] == ""
    data = np.load(export(panel, "Curve data: targets / trials per k and γ", tmp_path / "data.npy"))
    np.testing.assert_array_equal(data["fraction_correct"], panel._snapshot.fraction_correct[0])
    np.testing.assert_array_equal(data["trials"], 100)


def test_stopped_stimulation_run_continues_to_the_same_result(window, qtbot):
    panel = psychometric_panel(window)
    panel.apply_settings(STIMULATED)
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.stop_run()
    state = panel.session_states()[KIND]
    assert 0 < state.cells_done < state.config.n_cells
    assert "continues the run" in panel.plan_label.text()

    run_to_end(qtbot, window)
    expected = headless(panel.config())
    for condition in range(len(expected.k_values)):
        np.testing.assert_array_equal(panel.plot.points(condition)[1], expected.fraction_correct[condition])
    np.testing.assert_allclose(panel._snapshot.thresholds, expected.thresholds, rtol=1e-6)
    # The k column is coloured on the blue-to-red ramp, and the table has a row per k.
    assert len(table_texts(panel)) == 11 and table_texts(panel)[5][5] != ""

    panel.apply_settings({"sigmoid": "gauss"})
    assert "refits" in panel.plan_label.text()
    run_to_end(qtbot, window)
    assert all(fit.sigmoid == "gauss" for fit in panel._snapshot.fits)
    np.testing.assert_array_equal(panel._snapshot.fraction_correct, expected.fraction_correct)


def grid_fractions(panel):
    """Per plot (row = class, one column) and k, the fractions drawn."""
    return np.array([[panel.grid_plot.cell_points(row, 0, condition)[1] for condition in range(2)]
                     for row in range(10)])


def test_small_multiples_grid_runs_every_class(window, qtbot, tmp_path):
    panel = psychometric_panel(window)
    panel.apply_settings(STIMULATED_GRID)
    assert "10 experiments" in panel.plan_label.text()
    run_to_end(qtbot, window)

    config = next(c for c in panel._grid_progress.configs if c.target == 4)
    expected = headless(config)
    for condition in range(2):
        np.testing.assert_array_equal(panel.grid_plot.cell_points(4, 0, condition)[1],
                                      expected.fraction_correct[condition])
    assert "complete" in panel.plan_label.text()
    rows = list(csv.DictReader(export(panel, "Small multiples fit table", tmp_path / "grid.csv").open()))
    assert [(int(r["target"]), float(r["k"])) for r in rows] == [(d, k) for d in range(10) for k in (0.0, 10.0)]
    assert not QImage(str(export(panel, "Small multiples plot", tmp_path / "grid.png"))).isNull()

    # Saved with the session and restored, numbers and all, in a new window.
    path = tmp_path / "grid.h5"
    window.save_to(path)
    qtbot.waitUntil(lambda: window.session_path == path, timeout=10_000)
    reopened = open_window(qtbot, tmp_path, "other.ini")
    again = psychometric_panel(reopened)
    reopened.open_session(path)
    qtbot.waitUntil(lambda: again._grid_progress is not None, timeout=20_000)
    np.testing.assert_array_equal(grid_fractions(again), grid_fractions(panel))
    assert reopened.samples_label.text() == window.samples_label.text()
    assert again.views.currentIndex() == 1 and "complete" in again.plan_label.text()
    assert list(csv.DictReader(export(again, "Small multiples fit table", tmp_path / "again.csv").open())) == rows


def test_grid_saved_halfway_continues_after_reopening(window, qtbot, tmp_path):
    model = load_default()
    base = PsychometricConfig(k_values=(0, 10), gammas=gamma_grid(6), seed=1, n_boot=0, gof_samples=0)
    grid = PsychometricGridState(base, targets=range(10), layers=("fc1",), signs=(1,))
    finished = [PsychometricExperiment(model, config, device="cpu") for config in grid.configs[:3]]
    for experiment in finished:
        experiment.run_to_end()
    stopped = PsychometricExperiment(model, grid.configs[3], device="cpu")
    stopped.run_cells(0, [0, 1])
    grid.cells[:4] = [experiment.state for experiment in (*finished, stopped)]
    path = save_session(Session(model, {GRID_KIND: grid}), tmp_path / "half.h5")

    panel = psychometric_panel(window)
    window.open_session(path)
    qtbot.waitUntil(lambda: panel._grid_progress is not None, timeout=20_000)
    assert panel.views.currentIndex() == 1 and panel.session_states() == {GRID_KIND: panel._grid}
    assert "continues the grid: 3 of 10 plots done" in panel.plan_label.text()
    np.testing.assert_array_equal(panel.grid_plot.cell_points(3, 0, 0)[1], grid.cells[3].fraction_correct()[0, :2])

    run_to_end(qtbot, window)
    expected = np.array([headless(config).fraction_correct for config in grid.configs])
    np.testing.assert_array_equal(grid_fractions(panel), expected)
    samples = sum(snapshot.samples_total for snapshot in panel._grid_progress.snapshots)
    assert window.samples_label.text() == f"Samples {samples:,} / {samples:,}"


def test_table_marks_failed_fits_and_out_of_range_thresholds(window):
    panel = psychometric_panel(window)
    coarse = {"gammas": (0, 0.2, 0.4, 0.6, 0.8, 1), "n_boot": 0, "gof_samples": 0}
    # Strong conv2 excitation makes every stimulus a 2: no fit, and the row says why across the numbers.
    failed = headless(PsychometricConfig(target=2, layer="conv2", k_values=(0, 10), **coarse))
    panel.show_snapshot(failed)
    assert table_texts(panel)[1][1].startswith("no fit: every trial is correct")
    assert panel.table.columnSpan(1, 1) == len(PSYCHOMETRIC_COLUMNS) - 1
    # The CNN calls most pure noise an 8: its threshold lies below γ = 0, an extrapolation, not a number.
    magnet = headless(PsychometricConfig(target=8, **coarse))
    panel.show_snapshot(magnet)
    assert table_texts(panel)[0][1] == "< 0 (out of range)"
    assert panel.table.columnSpan(0, 1) == 1
