"""The main window as a scientist meets it: honest status, no silent loss, keys that work, help and exports.

Driven through the real window and engine thread (offscreen Qt).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QTableWidget

from wna_gui.app.dialogs import ExportDialog
from wna_gui.app.main_window import MainWindow
from wna_gui.app.panels.base import ExportTarget
from wna_gui.cli import build_parser, config_from_args, main
from wna_gui.core.classification import KIND
from wna_gui.core.psychometric import KIND as PSYCHOMETRIC
from wna_gui.core.registry import spec_of

RUN_TIMEOUT_MS = 90_000
SMALL_RUN = {"samples": 3000, "batch_size": 500, "seed": 7}
CURVES = {"target": 3, "layer": "fc1", "k_values": "0, 5", "gammas": 3, "n_boot": 0, "gof_samples": 0}
BUTTONS = QMessageBox.StandardButton


@pytest.fixture
def answers(monkeypatch):
    """Scripted answers to QMessageBox.question by title (default: Discard), recording the titles asked."""
    asked, replies = [], {}

    def question(parent, title, text, *args, **kwargs):
        asked.append(title)
        return replies.get(title, BUTTONS.Discard)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked, replies


@pytest.fixture
def window(qtbot, tmp_path, answers):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    return window


def run(qtbot, window, signal="run_finished"):
    with qtbot.waitSignal(getattr(window.engine, signal), timeout=RUN_TIMEOUT_MS):
        window.start_run()


def classification(window):
    return window.panels[0]


def psychometric(window):
    return window.panels[1]


@pytest.mark.slow
def test_status_bar_shows_the_shown_tabs_run_in_its_unit(window, qtbot):
    classification(window).forms[KIND].set_values(SMALL_RUN)
    run(qtbot, window)
    assert window.samples_label.text() == "Samples 3,000 / 3,000"
    window.tabs.setCurrentWidget(psychometric(window))
    assert window.samples_label.text() == "Stimuli —", "the psychometric tab has no run: it must not show another's"
    psychometric(window).forms[PSYCHOMETRIC].set_values(CURVES)
    run(qtbot, window)
    assert window.samples_label.text() == "Stimuli 600 / 600"
    window.tabs.setCurrentWidget(classification(window))
    assert window.samples_label.text() == "Samples 3,000 / 3,000"


def test_pause_says_paused_and_freezes_no_numbers(window, qtbot):
    panel = classification(window)
    panel.forms[KIND].set_values({**SMALL_RUN, "samples": 2_000_000})
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert panel.plan_label.text() == "Running…"
    window.toggle_run()  # pause
    assert panel.plan_label.text().startswith("Paused")
    assert window.rate_label.text() == "paused" and window.eta_label.text() == "ETA —"
    window.toggle_run()  # resume
    assert panel.plan_label.text() == "Running…"
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.stop_run()
    assert "Start continues the run" in panel.plan_label.text()


def test_a_failed_task_clears_its_progress_message(window, qtbot, tmp_path):
    missing = tmp_path / "missing.pt"
    window.statusBar().showMessage("Loading the model…")
    with qtbot.waitSignal(window.engine.task_failed, timeout=10_000):
        from wna_gui.core.models import load_model

        window.engine.submit(lambda: load_model("mnist_cnn", missing), on_done=window.set_model,
                             failure_title="Could not load the model")
    assert window.statusBar().currentMessage() == ""
    assert window.error_dialog is not None and "missing.pt" in window.error_dialog.text()


def test_starting_over_unsaved_results_keeps_them_as_a_run_of_their_own(window, qtbot, answers):
    asked, replies = answers
    panel = classification(window)
    panel.forms[KIND].set_values(SMALL_RUN)
    run(qtbot, window)
    before = panel.states[KIND]
    panel.forms[KIND].set_values({"seed": 8})
    run(qtbot, window)  # a new run adds one, never replaces one (issue 22): nothing to ask
    assert "Start a new run" not in asked
    runs = window.current_session().runs
    assert runs[KIND] is before and before.config.seed == 7
    assert runs[f"{KIND}-2"] is panel.states[KIND] and panel.states[KIND].config.seed == 8


def test_save_after_starting_over_saves_both_runs(window, qtbot, answers, tmp_path, monkeypatch):
    panel = classification(window)
    panel.forms[KIND].set_values(SMALL_RUN)
    run(qtbot, window)
    target = tmp_path / "kept.h5"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    panel.forms[KIND].set_values({"seed": 8})
    run(qtbot, window)
    window.save()
    from wna_gui.core.session import load_session

    qtbot.waitUntil(lambda: target.exists(), timeout=20_000)
    runs = load_session(target).runs
    assert runs[KIND].config.seed == 7 and runs[f"{KIND}-2"].config.seed == 8
    assert panel.states[KIND].config.seed == 8


def test_error_box_closes_on_return(window):
    window.show_error("Run failed", "model produced NaN or infinite outputs", "Traceback …")
    box = window.error_dialog
    assert box.defaultButton() is box.button(BUTTONS.Ok) and box.escapeButton() is box.button(BUTTONS.Ok)


def test_export_never_overwrites_silently(window, tmp_path, answers):
    asked, replies = answers
    target = tmp_path / "plot.png"
    target.write_bytes(b"precious")
    written = []
    dialog = ExportDialog([ExportTarget("Plot", (".png",), lambda path: written.append(path))], str(tmp_path), window)
    dialog.path.edit.setText(str(target))
    replies["Replace file?"] = BUTTONS.Cancel
    dialog.accept()
    assert asked[-1] == "Replace file?" and not written and target.read_bytes() == b"precious"
    replies["Replace file?"] = BUTTONS.Yes
    dialog.accept()
    assert written == [target]


def test_space_starts_a_run_while_a_spin_box_has_focus(window, qtbot):
    panel = classification(window)
    panel.forms[KIND].set_values({**SMALL_RUN, "samples": 2_000_000})
    spin = panel.forms[KIND].editor("samples")
    window.activateWindow()
    spin.setFocus()
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(spin, Qt.Key.Key_Space)
    assert spin.value() == 2_000_000, "Space must not edit the field"
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.stop_run()


def test_ctrl_c_in_the_fit_table_copies_rows(window, qtbot):
    panel = psychometric(window)
    window.tabs.setCurrentWidget(panel)
    panel.forms[PSYCHOMETRIC].set_values(CURVES)
    run(qtbot, window)
    table = panel.findChild(QTableWidget, "fit_table")
    table.selectAll()
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QApplication.clipboard().text().splitlines()
    assert len(lines) == table.rowCount() == 2
    assert lines[0].split("\t")[0] == "0" and len(lines[0].split("\t")) == table.columnCount()


def test_copied_command_reruns_the_same_settings_headless(window):
    for panel, kind, values in ((classification(window), KIND, {**SMALL_RUN, "weighting": "confidence"}),
                                (psychometric(window), PSYCHOMETRIC, {**CURVES, "sign": -1})):
        window.tabs.setCurrentWidget(panel)
        panel.forms[kind].set_values(values)
        window.copy_command()
        words = shlex.split(QApplication.clipboard().text())
        assert words[:3] == ["wna", "run", spec_of(kind).command]
        args = build_parser().parse_args(words[1:])
        spec = spec_of(kind)
        assert config_from_args(spec, args, spec.config(), window.model) == panel.forms[kind].config()


def test_export_all_writes_what_wna_export_writes(window, qtbot, tmp_path, monkeypatch):
    classification(window).forms[KIND].set_values(SMALL_RUN)
    run(qtbot, window)
    window.save_to(tmp_path / "s.h5")
    qtbot.waitUntil(lambda: (tmp_path / "s.h5").exists(), timeout=10_000)
    assert main(["export", str(tmp_path / "s.h5"), "--out", str(tmp_path / "cli")]) == 0
    folder = tmp_path / "app"
    folder.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    window.export_all_dialog()
    qtbot.waitUntil(lambda: "Exported" in window.statusBar().currentMessage(), timeout=30_000)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (tmp_path / "cli").iterdir())


def test_dropping_a_session_opens_it(window, qtbot, tmp_path):
    classification(window).forms[KIND].set_values(SMALL_RUN)
    run(qtbot, window)
    path = tmp_path / "dropped.h5"
    window.save_to(path)
    qtbot.waitUntil(lambda: path.exists() and not window.dirty, timeout=10_000)
    window.new_session()
    assert classification(window).states == {}
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: classification(window).snapshot is not None, timeout=20_000)
    assert window.session_path == path and classification(window).states[KIND].samples_done == 3000


def test_model_dialog_offers_the_last_entries_again(window, qtbot, monkeypatch, tmp_path):
    from wna_gui.app.dialogs import ModelDialog

    weights = str(tmp_path / "not-there.pt")
    seen = []

    def exec_dialog(dialog):
        seen.append(dialog.entries())
        dialog.zoo_weights.edit.setText(weights)
        return ModelDialog.DialogCode.Accepted

    monkeypatch.setattr(ModelDialog, "exec", exec_dialog)
    with qtbot.waitSignal(window.engine.task_failed, timeout=10_000):
        window.choose_model("zoo")
    monkeypatch.setattr(ModelDialog, "exec", lambda dialog: seen.append(dialog.entries()) or
                        ModelDialog.DialogCode.Rejected)
    window.choose_model("zoo")
    assert seen[-1]["zoo_weights"] == weights, "the entries typed before the failure are offered again"


def test_user_guide_explains_terms_and_cites_the_paper(window):
    window.show_guide()
    text = window.guide_dialog.browser.toPlainText()
    for term in ("map→j", "softmax", "clip to [low, high]", "split-half reliability", "guess", "lapse"):
        assert term in text, term
    assert "Borji" in text and "arxiv.org/abs/1912.12106" in text


def test_desktop_entry_installs_for_the_user(tmp_path):
    from wna_gui.app.desktop_entry import install_desktop_entry

    entry, icon = install_desktop_entry(tmp_path)
    text = entry.read_text()
    assert entry == tmp_path / "applications" / "wna-gui.desktop" and "Icon=wna-gui" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.endswith(" %f") and Path(shlex.split(exec_line[5:])[0]).name.startswith(("wna-gui", "python"))
    assert icon.read_text().lstrip().startswith("<svg")


def test_export_suggests_a_name_from_session_and_target_and_writes_at_the_chosen_size(window, tmp_path, answers):
    from PySide6.QtGui import QImage

    from wna_gui import figures

    seen = []

    def write(path):
        seen.append(figures.figure_size())
        return figures.save_map_grid(np.zeros((2, 1, 28, 28)), ["a", "b"], path)

    dialog = ExportDialog([ExportTarget("Maps of the estimator shown: publication figure", (".png", ".pdf"), write)],
                          str(tmp_path), window, stem="digits")
    assert Path(dialog.path.path()).name == "digits_maps-of-the-estimator-shown.png"
    dialog.width_preset.setCurrentIndex(dialog.width_preset.findData(85.0))
    dialog.dpi.setCurrentIndex(dialog.dpi.findData(300))
    assert dialog.width_mm.value() == 85
    dialog.accept()
    written = tmp_path / "digits_maps-of-the-estimator-shown.png"
    assert seen == [figures.FigureSize(85, 300)] and QImage(str(written)).width() >= 1000
    assert figures.figure_size() == figures.FigureSize()  # the size applied to that export only


def test_reliability_summary_never_falls_when_a_class_first_appears():
    from wna_gui.core.classification import Convergence

    rng = np.random.default_rng(1)
    per_class = np.full((40, 10), np.nan)
    for t in range(40):
        seen = 3 + t // 5  # another class appears every 5 records, its first r near 0 or below
        per_class[t, :seen] = np.clip(0.2 + 0.02 * t + rng.normal(0, 0.01, seen), -1, 1)
        per_class[t, seen - 1] = rng.uniform(-0.6, 0.05)  # the newest class: a handful of samples
    convergence = Convergence(np.arange(1, 41) * 1000, np.arange(1, 41) * 1000, per_class)
    for t in range(1, 40):
        appeared = np.isfinite(per_class[t]) & ~np.isfinite(per_class[t - 1])
        if appeared.any():
            before = per_class[t - 1].copy()
            now_same = per_class[t].copy()
            now_same[~appeared] = before[~appeared]  # the others unchanged: only the appearance counts
            step = Convergence(convergence.run_samples[t - 1:t + 1], convergence.samples[t - 1:t + 1],
                               np.stack([before, now_same]))
            assert step.mean()[1] >= step.mean()[0] - 1e-12
    assert np.all(np.isfinite(convergence.mean()))


def test_a_new_run_removes_the_previous_runs_curves(window, qtbot):
    panel = classification(window)
    panel.forms[KIND].set_values({**SMALL_RUN, "estimators": ("hard", "logit")})
    run(qtbot, window)
    assert set(panel.convergence_plot.curve_data()) == {"hard", "logit"}
    panel.forms[KIND].set_values({**SMALL_RUN, "estimators": ("prob",), "seed": 8})
    window.start_run()
    assert panel.convergence_plot.curve_data() == {}  # nothing of the replaced run stays on screen
    with qtbot.waitSignal(window.engine.run_finished, timeout=RUN_TIMEOUT_MS):
        pass
    assert set(panel.convergence_plot.curve_data()) == {"prob"}


def test_colour_limits_come_from_classes_with_enough_samples_and_can_be_set(window, qtbot):
    panel = classification(window)
    panel.forms[KIND].set_values({**SMALL_RUN, "samples": 5000, "estimators": ("hard",)})
    run(qtbot, window)
    panel.set_estimator("hard")
    panel.view.setCurrentIndex(panel.view.findData("centered"))
    snapshot = panel.snapshot
    counts = snapshot.counts
    maps = snapshot.maps_of("hard").of("centered", np.arange(counts.size))
    expected = figures_levels(maps, counts)
    assert panel.map_grid.levels == pytest.approx(expected)
    panel.limit_mode.setCurrentIndex(panel.limit_mode.findData("manual"))
    panel.limit_value.setValue(0.02)
    assert panel.map_grid.levels == pytest.approx((-0.02, 0.02))
    shown_before = len(panel.map_grid._tiles)
    panel.hide_empty.setChecked(True)
    assert len(panel.map_grid._tiles) == int((counts > 0).sum()) <= shown_before


def figures_levels(maps, counts):
    from wna_gui import figures

    return figures.map_levels(maps, "centered", 0.0, counts)


def test_at_1024_by_700_every_panel_fits_and_map_tiles_are_equal_and_apart(window, qtbot):
    window.resize(1024, 700)
    QApplication.processEvents()
    assert window.width() == 1024 and window.height() == 700
    for panel in window.panels:  # no settings column is wider than its scroll area shows
        column = panel.settings_area.widget()
        room = panel.settings_area.width() - panel.settings_area.verticalScrollBar().sizeHint().width()
        assert column.minimumSizeHint().width() <= room + 1, panel.name
    panel = classification(window)
    panel.forms[KIND].set_values({**SMALL_RUN, "estimators": ("hard", "logit")})
    run(qtbot, window)
    panel.set_estimator("logit")
    QApplication.processEvents()
    boxes = [tile.view.sceneBoundingRect() for tile in panel.map_grid._tiles]
    labels = [tile.label.sceneBoundingRect() for tile in panel.map_grid._tiles]
    assert len(boxes) == 10
    sizes = {(round(b.width()), round(b.height())) for b in boxes}
    assert max(w for w, _ in sizes) - min(w for w, _ in sizes) <= 1, sizes
    assert max(h for _, h in sizes) - min(h for _, h in sizes) <= 1, sizes
    assert min(w for w, _ in sizes) >= 40, "tiles large enough to see"
    shapes = boxes + labels
    for i, a in enumerate(shapes):
        for b in shapes[i + 1:]:
            overlap = a.intersected(b)
            assert overlap.width() < 1 or overlap.height() < 1, (a, b)


def test_clicking_a_map_enlarges_it_and_plots_copy_their_data(window, qtbot):
    from wna_gui.app.plots import map_csv

    panel = classification(window)
    panel.forms[KIND].set_values({**SMALL_RUN, "estimators": ("hard", "logit")})
    run(qtbot, window)
    panel.set_estimator("logit")
    grid = panel.map_grid
    tile_view = grid._tiles[3].view
    centre = tile_view.sceneBoundingRect().center()
    clicked = grid.tile_at(centre)
    assert clicked is not None and clicked.class_index == 3
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.mapFromScene(centre))
    dialog = grid.enlarged
    assert dialog is not None and dialog.isVisible() and dialog.windowTitle() == clicked.title
    enlarged = dialog.findChild(type(grid), "enlarged_map")
    assert enlarged.levels == grid.levels and len(enlarged._tiles) == 1
    assert enlarged._tiles[0].view.sceneBoundingRect().width() > 2 * tile_view.sceneBoundingRect().width()
    dialog.close()
    rows = map_csv(clicked.image).strip().splitlines()
    assert len(rows) == 28 and float(rows[5].split(",")[7]) == pytest.approx(clicked.image[0, 5, 7], rel=1e-5)
    frequency = panel.frequency_plot.csv().splitlines()
    assert frequency[0] == "class,count" and sum(int(line.split(",")[1]) for line in frequency[1:]) == 3000
    race = panel.convergence_plot.csv().splitlines()
    assert race[0] == "estimator,samples,r" and {line.split(",")[0] for line in race[1:]} == {"hard", "logit"}


def test_every_control_of_every_panel_says_what_it_does(window):
    from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QLineEdit, QPushButton, QSlider

    silent = []
    for panel in window.panels:
        for kind in (QComboBox, QAbstractSpinBox, QCheckBox, QLineEdit, QPushButton, QSlider):
            for control in panel.findChildren(kind):
                if isinstance(control, QLineEdit) and isinstance(control.parent(), (QAbstractSpinBox, QComboBox)):
                    continue  # the editor inside a spin or combo box: its box has the tooltip
                parent = control.parent()
                if not control.toolTip() and not (parent is not None and parent.toolTip()):
                    name = control.objectName() or getattr(control, "text", str)()
                    silent.append(f"{panel.name}: {kind.__name__} {name}")
    assert not silent, silent
