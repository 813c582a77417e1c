"""The psychometric panel, driven like a user would, through the real engine thread (offscreen Qt)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from wna_gui.app.main_window import MainWindow
from wna_gui.core.models import load_default
from wna_gui.core.psychometric import KIND, PsychometricConfig, PsychometricExperiment, default_lambda
from wna_gui.core.psychometric_grid import KIND as GRID_KIND
from wna_gui.core.psychometric_grid import PsychometricGridConfig, PsychometricGridExperiment
from wna_gui.core.psychometric_report import PSYCHOMETRIC_COLUMNS
from wna_gui.core.stats import noise_to_image_gammas
from wna_gui.core.psyfit import guess_max
from wna_gui.app.panels.psychometric import WARNING_BACKGROUND
from wna_gui.core.session import Session, save_session

RUN_TIMEOUT_MS = 90_000
# Coarse grids and few resamples keep each run to seconds on a shared CPU (form widget values).
UNSTIMULATED = {"target": 3, "layer": None, "gammas": 6, "seed": 5, "n_boot": 20, "gof_samples": 10}
STIMULATED = {"target": 3, "layer": "fc1", "k_values": "0:10", "gammas": 21, "seed": 2, "n_boot": 0,
              "gof_samples": 0}
STIMULATED_GRID = {"targets": [], "k_values": "0, 10", "layers": ["fc1"], "signs": [1], "gammas": 6, "seed": 1}


def open_window(qtbot, tmp_path, name="settings.ini"):
    settings = QSettings(str(tmp_path / name), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    # Discard unsaved results when asked; a file another window holds opens read-only (Open).
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, *a, **k: QMessageBox.StandardButton.Open if title == "Session in use"
        else QMessageBox.StandardButton.Discard))
    return open_window(qtbot, tmp_path)


def psychometric_panel(window):
    panel = next(p for p in window.panels if KIND in p.specs)
    window.tabs.setCurrentWidget(panel)
    return panel


def configure(panel, values: dict, kind: str = KIND):
    """Show ``kind``'s view and set its form's widgets as a user would."""
    panel.show_view(kind)
    panel.forms[kind].set_values(values)


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


@pytest.mark.slow
def test_sweep_on_screen_equals_the_engine(window, qtbot):
    panel = psychometric_panel(window)
    configure(panel, UNSTIMULATED)
    assert panel.active_kind() == KIND
    assert "1 curve × 6 γ" in panel.plan_label.text()
    # Without a stimulated layer, k, sign and λ mean nothing: their editors are off.
    assert not panel.forms[KIND].editor("k_values").isEnabled()
    run_to_end(qtbot, window)

    expected = headless(panel.forms[KIND].config())
    assert panel.snapshot.n_images == 100
    x, y = panel.plot.points(0)
    np.testing.assert_array_equal(x, expected.gammas)
    np.testing.assert_array_equal(y, expected.fraction_correct[0])
    fit_x, fit_y = panel.plot.fitted(0)
    np.testing.assert_allclose(fit_y, expected.fits[0].predict(fit_x))
    np.testing.assert_allclose(panel.snapshot.thresholds, expected.thresholds)
    threshold = table_texts(panel)[0][1]
    assert threshold.startswith(f"{expected.thresholds[0]:.3f} [")
    assert window.samples_label.text().endswith(" 600 / 600")
    assert "complete" in panel.plan_label.text()
    assert window.isWindowModified()


def test_layer_choice_sets_its_paper_lambda(window):
    panel = psychometric_panel(window)
    form = panel.forms[KIND]
    for layer in ("conv1", "conv2", "fc1"):
        form.set_values({"layer": layer})
        assert form.values()["lambda"] == pytest.approx(default_lambda(window.model, layer))
        assert form.editor("k_values").isEnabled()
    # A λ typed after choosing the layer is kept, and Start uses it.
    form.set_values({"lambda": 0.05})
    assert form.config().lambda_ == pytest.approx(0.05)
    form.set_values({"layer": "conv1", "lambda": 0.2})
    assert form.config().lambda_ == pytest.approx(0.2)


@pytest.mark.slow
def test_session_round_trip_restores_curves_and_table_and_exports(window, qtbot, tmp_path):
    panel = psychometric_panel(window)
    configure(panel, UNSTIMULATED)
    run_to_end(qtbot, window)
    before_points, before_table = panel.plot.points(0), table_texts(panel)

    path = tmp_path / "psy.h5"
    window.save_to(path)
    qtbot.waitUntil(lambda: window.session_path == path, timeout=10_000)
    window.new_session()
    assert panel.session_states() == {} and panel.table.rowCount() == 0 and panel.snapshot is None
    window.open_session(path)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=20_000)
    for restored, saved in zip(panel.plot.points(0), before_points):
        np.testing.assert_array_equal(restored, saved)
    assert table_texts(panel) == before_table
    values = panel.forms[KIND].values()
    assert values["gammas"] == 6 and values["seed"] == 5 and values["target"] == 3
    assert panel.active_kind() == KIND and "complete" in panel.plan_label.text()

    png = export(panel, "Psychometric curves plot", tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not QImage(str(png)).isNull()
    on_screen = export(panel, "Psychometric curves plot (as on screen)", tmp_path / "screen.png")
    assert not QImage(str(on_screen)).isNull()
    fits = export(panel, "Fit table: thresholds, widths, intervals, shifts", tmp_path / "fits.csv")
    (row,) = csv.DictReader(fits.read_text().splitlines())
    assert float(row["threshold"]) == pytest.approx(panel.snapshot.thresholds[0])
    assert row["threshold_in_range"] == "True" and row["layer"] == ""
    data = np.load(export(panel, "Curve data: targets / trials per k and γ", tmp_path / "data.npy"))
    np.testing.assert_array_equal(data["fraction_correct"], panel.snapshot.fraction_correct[0])
    np.testing.assert_array_equal(data["trials"], 100)


@pytest.mark.slow
def test_stopped_stimulation_run_continues_to_the_same_result(window, qtbot):
    panel = psychometric_panel(window)
    configure(panel, STIMULATED)
    assert panel.forms[KIND].config().lambda_ == pytest.approx(0.01)  # fc1's paper λ
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert not panel.views.tabBar().isEnabled(), "the view is locked while it runs"
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.stop_run()
    state = panel.session_states()[KIND]
    assert 0 < state.cells_done < state.config.n_cells
    assert "continues the run" in panel.plan_label.text()

    run_to_end(qtbot, window)
    expected = headless(panel.forms[KIND].config())
    for condition in range(len(expected.k_values)):
        np.testing.assert_array_equal(panel.plot.points(condition)[1], expected.fraction_correct[condition])
    np.testing.assert_allclose(panel.snapshot.thresholds, expected.thresholds, rtol=1e-6)
    # The table has a row per k, with shifts against k = 0.
    assert len(table_texts(panel)) == 11 and table_texts(panel)[5][2] != ""

    # Only a fit setting changed: the measured data are refitted, not measured again.
    panel.forms[KIND].set_values({"sigmoid": "gauss"})
    assert "refits" in panel.plan_label.text()
    run_to_end(qtbot, window)
    assert all(fit.sigmoid == "gauss" for fit in panel.snapshot.fits)
    np.testing.assert_array_equal(panel.snapshot.fraction_correct, expected.fraction_correct)
    assert panel.session_states()[KIND].config.sigmoid == "gauss"


def grid_fractions(panel, rows=10):
    """Per plot (row = class, one column) and k, the fractions drawn."""
    return np.array([[panel.grid_plot.cell_points(row, 0, condition)[1] for condition in range(2)]
                     for row in range(rows)])


@pytest.mark.slow
def test_small_multiples_grid_runs_every_class(window, qtbot, tmp_path):
    panel = psychometric_panel(window)
    configure(panel, STIMULATED_GRID, GRID_KIND)
    assert panel.active_kind() == GRID_KIND
    assert "every class × 1 column" in panel.plan_label.text()
    run_to_end(qtbot, window)

    snapshot = panel.grid_snapshot
    assert [c.target for c in snapshot.configs] == list(range(10)) and snapshot.plots_done == 10
    config = next(c for c in snapshot.configs if c.target == 4)
    expected = headless(config)
    for condition in range(2):
        np.testing.assert_array_equal(panel.grid_plot.cell_points(4, 0, condition)[1],
                                      expected.fraction_correct[condition])
    assert "complete" in panel.plan_label.text()
    assert panel.snapshot is None, "the curves view is untouched by a grid run"
    rows = list(csv.DictReader(export(panel, "Small multiples fit table", tmp_path / "grid.csv").read_text().splitlines()))
    assert [(int(r["target"]), float(r["k"])) for r in rows] == [(d, k) for d in range(10) for k in (0.0, 10.0)]
    assert not QImage(str(export(panel, "Small multiples plot", tmp_path / "grid.png"))).isNull()
    data = list(csv.DictReader(export(panel, "Small multiples data", tmp_path / "data.csv").read_text().splitlines()))
    assert len(data) == 10 * 2 * 6

    # Saved with the session and restored, numbers and all, in a new window.
    path = tmp_path / "grid.h5"
    window.save_to(path)
    qtbot.waitUntil(lambda: window.session_path == path, timeout=10_000)
    reopened = open_window(qtbot, tmp_path, "other.ini")
    again = psychometric_panel(reopened)
    reopened.open_session(path)
    qtbot.waitUntil(lambda: again.grid_snapshot is not None, timeout=20_000)
    np.testing.assert_array_equal(grid_fractions(again), grid_fractions(panel))
    assert reopened.samples_label.text() == window.samples_label.text()
    assert again.active_kind() == GRID_KIND and "complete" in again.plan_label.text()
    assert list(csv.DictReader(export(again, "Small multiples fit table", tmp_path / "again.csv").read_text().splitlines())) == rows


@pytest.mark.slow
def test_grid_saved_halfway_continues_after_reopening(window, qtbot, tmp_path):
    model = load_default()
    config = PsychometricGridConfig(layers=("fc1",), signs=(1,), k_values=(0, 10), gammas=noise_to_image_gammas(6),
                                    seed=1)
    grid = PsychometricGridExperiment.new_state(model, config)
    for index, plot in enumerate(grid.configs[:3]):
        experiment = PsychometricExperiment(model, plot, device="cpu")
        experiment.run_to_end()
        grid.runs[index] = experiment.state
    stopped = PsychometricExperiment(model, grid.configs[3], device="cpu")
    stopped.run_unit((0, [0, 1]))  # two γ points of k = 0
    grid.runs[3] = stopped.state
    path = save_session(Session(model, runs={GRID_KIND: grid}), tmp_path / "half.h5")

    panel = psychometric_panel(window)
    window.open_session(path)
    qtbot.waitUntil(lambda: panel.grid_snapshot is not None, timeout=20_000)
    assert panel.active_kind() == GRID_KIND and set(panel.session_states()) == {GRID_KIND}
    assert panel.grid_snapshot.plots_done == 3
    assert (f"continues the run: {grid.progress_done:,} of {grid.progress_total:,} stimuli"
            in panel.plan_label.text())
    np.testing.assert_array_equal(panel.grid_plot.cell_points(3, 0, 0)[1], grid.runs[3].fraction_correct()[0, :2])

    run_to_end(qtbot, window)
    expected = np.array([headless(plot).fraction_correct for plot in grid.configs])
    np.testing.assert_array_equal(grid_fractions(panel), expected)
    samples = sum(snapshot.samples_total for snapshot in panel.grid_snapshot.snapshots)
    assert samples == grid.progress_total
    assert window.samples_label.text().endswith(f" {samples:,} / {samples:,}")


def test_table_marks_failed_fits_and_out_of_range_thresholds(window):
    panel = psychometric_panel(window)
    coarse = {"gammas": (0, 0.2, 0.4, 0.6, 0.8, 1), "n_boot": 0, "gof_samples": 0}
    # Strong conv2 excitation makes every stimulus a 2: no fit, and the row says why across the numbers.
    failed = headless(PsychometricConfig(target=2, layer="conv2", k_values=(0, 10), **coarse))
    panel.show_snapshot(failed, KIND)
    assert table_texts(panel)[1][1].startswith("no fit: every trial is correct")
    assert panel.table.columnSpan(1, 1) == len(PSYCHOMETRIC_COLUMNS) - 1
    # The CNN calls most pure noise an 8: with the guess held at chance its threshold lies below γ = 0, an
    # extrapolation, not a number.
    magnet = headless(PsychometricConfig(target=8, guess="chance", **coarse))
    panel.show_snapshot(magnet, KIND)
    assert table_texts(panel)[0][1] == "< 0 (out of range)"
    assert panel.table.columnSpan(0, 1) == 1


def test_the_table_shows_the_model_its_tests_and_shared_parameters_once(window):
    panel = psychometric_panel(window)
    snapshot = headless(PsychometricConfig(target=3, layer="fc1", k_values=(0, 5, 10),
                                           gammas=noise_to_image_gammas(11),
                                           n_boot=50, gof_samples=20, lr_samples=20))
    panel.show_snapshot(snapshot, KIND)
    texts = table_texts(panel)
    headers = [panel.table.horizontalHeaderItem(c) for c in range(len(PSYCHOMETRIC_COLUMNS))]
    assert "γ at P = 0.50" in headers[3].text() and headers[6].text() == "width (γ)"
    assert all(header.toolTip() for header in headers)  # every column says what it means
    # Width, guess and lapse are shared across k: one cell each, spanning the rows.
    for column in (6, 7, 8):
        assert panel.table.rowSpan(0, column) == 3 and "shared across k" in panel.table.item(0, column).toolTip()
    assert texts[0][2] == "reference" and texts[2][2].startswith("−") and texts[2][4].startswith("−")
    assert texts[2][5] and texts[0][5] == "—"  # the LR test of k = 10 against k = 0
    model = panel.model_label.text()
    assert model.startswith("Joint fit: threshold per k; width, guess, lapse shared") and "α equal across k?" in model
    assert "LR = " in panel.model_label.toolTip() and "Monte Carlo, 20 data sets" in panel.model_label.toolTip()
    # Both thresholds are marked on the curves: α on each curve, the performance threshold on the level line.
    (alpha_x, alpha_y), (level_x, level_y) = panel.plot.marks()
    np.testing.assert_allclose(alpha_x, snapshot.thresholds)
    np.testing.assert_allclose(level_x, snapshot.performance_thresholds)
    np.testing.assert_allclose(level_y, 0.5)
    np.testing.assert_allclose(alpha_y, [f.predict(f.threshold) for f in snapshot.fits])


def test_an_estimate_at_a_limit_is_marked_in_the_table_and_the_plot(window):
    panel = psychometric_panel(window)
    # The CNN calls most pure noise an 8 (floor ≈0.9): excited, a guess per k runs to its limit 1 − the largest lapse.
    snapshot = headless(PsychometricConfig(target=8, layer="fc1", k_values=(0, 10), gammas=noise_to_image_gammas(6),
                                           n_boot=0,
                                           gof_samples=0, lr_samples=0, guess_across_k="per-k"))
    panel.show_snapshot(snapshot, KIND)
    texts = table_texts(panel)
    flagged = [row for row in range(2) if snapshot.warnings(row)]
    assert flagged
    for row in flagged:
        assert texts[row][-1].startswith(f"⚠ guess={guess_max('bounded'):g}")
        tooltip = panel.table.item(row, len(PSYCHOMETRIC_COLUMNS) - 1).toolTip()
        assert f"upper limit {guess_max('bounded'):g}" in tooltip
        assert panel.table.item(row, 7).background().color() == WARNING_BACKGROUND
        assert panel.plot.is_dashed(row)
    assert texts[0][3].startswith("none: floor 0.") and texts[0][3].endswith("≥ 0.50")  # no γ where P = 0.5: in words
    assert panel.flags_label.isVisibleTo(panel) and "⚠ k = " in panel.flags_label.text()


def test_every_fit_choice_says_what_it_means_for_the_reader(window):
    form = psychometric_panel(window).forms[KIND]
    tips = {key: form.editor(key).toolTip() for key in ("sigmoid", "guess", "lapse", "width_across_k",
                                                         "guess_across_k", "lapse_across_k", "performance_level",
                                                         "n_boot", "gof_samples", "lr_samples")}
    assert "ln γ" in tips["sigmoid"] and "1/K" in tips["guess"] and "0.06" in tips["lapse"]
    assert "threshold" in tips["guess_across_k"] and "absorb" in tips["guess_across_k"]
    assert "performance threshold" in tips["performance_level"]
    assert all(len(tip) > 40 for tip in tips.values())
    # Sharing means nothing for a single curve: those editors are off without a stimulated layer.
    form.set_values({"layer": None})
    assert not form.editor("guess_across_k").isEnabled() and not form.editor("lr_samples").isEnabled()
    form.set_values({"layer": "fc1", "guess": "chance"})
    assert not form.editor("guess_across_k").isEnabled() and form.editor("width_across_k").isEnabled()
