"""The window tells the truth about its state and never changes a setting or its size behind the user's back:
"*" while anything is unsaved, the wheel edits only a focused field, no panel widens the window past 1024 px,
Robustness picks comparable models, results carry their warnings, and every panel fits 1024 × 700.

Driven through the real window, engine thread and experiments (offscreen Qt, tiny runs).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QScrollArea, QSpinBox, QToolBar

from wna_gui.app import main_window as main_window_module
from wna_gui.app.main_window import MainWindow
from wna_gui.app.panels.robustness import PLOT_MIN_WIDTH, PLOT_ROW_HEIGHT
from wna_gui.core.classification import KIND as CLASSIFICATION
from wna_gui.core.experiment import run_warnings
from wna_gui.core.models import DEFAULT_MODEL_FILE, load_default, load_zoo
from wna_gui.core.registry import BY_KIND
from wna_gui.core.resources import resource_path
from wna_gui.core.session import Session, save_session

RUN_TIMEOUT_MS = 120_000
RUNS_BAR_MAX_HEIGHT = 60  # px: the folded Runs list on a short screen, title bar included
SMALL_RUN = {"samples": 3000, "batch_size": 500, "seed": 7}
# Per kind, settings that make a run take a few seconds at most on a shared CPU (as tests/test_contract.py).
TINY = {
    "classification_images": dict(samples=2000, batch_size=500),
    "psychometric": dict(gammas=(0.0, 0.5, 1.0), n_boot=0, gof_samples=0, layer="fc1", k_values=(0.0, 5.0)),
    "sta": dict(samples=1000, stc_samples=0, map_samples=1000),
    "bias_attack": dict(gammas=(0.0, 0.5, 1.0), samples=100, signals=100, min_support=1.0),
    "sample_complexity": dict(stimuli=("uniform",), samples=400, batch_size=100),
    "defence": dict(method="sleep", epochs=1, train_images=300, sleep_steps=300, eval_images=200),
    "template_classifier": dict(lr_steps=5),
    "two_class": dict(samples=500, batch_size=250, epochs=1, gamma_points=2),
    "robustness": dict(images=40, noise_levels=(0.0, 0.5), blur_levels=(0.0, 2.0), fgsm_levels=(0.0, 0.2),
                       ifgsm_levels=(0.0, 0.2), ifgsm_steps=2, repetitions=1, n_boot=0),
}
# A backdoor that trains one step: not learned, a poisoned model at chance, a long report.
TINY_BACKDOOR = dict(epochs=1, train_batch=4000, clean="session", map_samples=1000)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args, **kwargs: QMessageBox.StandardButton
                                                             .Discard))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture(scope="module")
def backdoor_session(tmp_path_factory) -> Path:
    """A session file holding a finished tiny backdoor run (trained once for the module)."""
    spec = BY_KIND["backdoor"]
    model = load_default()
    experiment = spec.experiment(model, dataclasses.replace(spec.config(), **TINY_BACKDOOR), device="cpu")
    experiment.run_to_end()
    path = tmp_path_factory.mktemp("backdoor") / "backdoor.h5"
    save_session(Session(model, {"backdoor": experiment.state}), path)
    return path


def panel_named(window, name):
    return next(panel for panel in window.panels if panel.name == name)


def set_config(panel, kind, **values):
    form = panel.forms[kind]
    form.set_config(dataclasses.replace(form.config(), **values))


def run(qtbot, window):
    with qtbot.waitSignal(window.engine.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()


def open_session(qtbot, window, path):
    window.open_session(path)
    qtbot.waitUntil(lambda: window.session_path == Path(path), timeout=30_000)
    QApplication.processEvents()


def test_title_marks_unsaved_results_from_the_first_progress_update_until_saved(window, qtbot, tmp_path):
    assert not window.isWindowModified() and "[*]" in window.windowTitle()
    panel = panel_named(window, "classification")
    panel.forms[CLASSIFICATION].set_values({**SMALL_RUN, "samples": 20_000})
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert window.isWindowModified(), "a running run is unsaved work: the title must show '*'"
    qtbot.waitSignal(window.engine.run_finished, timeout=RUN_TIMEOUT_MS).wait()
    assert window.isWindowModified()
    window.save_to(tmp_path / "s.h5")
    qtbot.waitUntil(lambda: not window.isWindowModified(), timeout=30_000)
    assert window.session_path == tmp_path / "s.h5" and "s.h5" in window.windowTitle()


def wheel(widget, steps: int = -1) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, widget.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_panel_and_changes_only_a_focused_field(window, qtbot):
    window.resize(1024, 700)
    panel = panel_named(window, "classification")
    QApplication.processEvents()
    samples = panel.forms[CLASSIFICATION].editor("samples")
    assert isinstance(samples, QSpinBox) and isinstance(panel.settings_area, QScrollArea)
    scroll = panel.settings_area.verticalScrollBar()
    assert scroll.maximum() > 0, "at 700 px the settings column scrolls"
    before, position = samples.value(), scroll.value()
    wheel(samples, -3)
    assert samples.value() == before, "the wheel over an unfocused spin box must not change it"
    assert scroll.value() > position, "the wheel over it scrolls the panel instead"
    window.activateWindow()
    samples.setFocus()
    qtbot.waitUntil(samples.hasFocus)
    wheel(samples, 1)
    assert samples.value() == before + samples.singleStep(), "a focused spin box takes the wheel"


@pytest.mark.slow
def test_no_panel_or_long_result_widens_the_window_past_1024_px(window, qtbot, backdoor_session):
    open_session(qtbot, window, backdoor_session)
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        QApplication.processEvents()
        assert window.minimumSizeHint().width() <= 1024, window.tabs.tabText(index)
    adversarial = panel_named(window, "adversarial")
    window.tabs.setCurrentWidget(adversarial)
    adversarial.views.setCurrentIndex(adversarial.kinds.index("backdoor"))
    qtbot.waitUntil(lambda: "backdoor" in adversarial.snapshots, timeout=30_000)
    window.resize(1024, 700)
    QApplication.processEvents()
    note = adversarial.pages["backdoor"]["note"].text()
    assert len(max(note.split("\n"), key=len)) > 200, "the backdoor report has a line far wider than the window"
    assert window.minimumSizeHint().width() <= 1024 and window.width() == 1024
    view_area = adversarial.findChild(QScrollArea, "view_area")
    assert view_area.horizontalScrollBar().maximum() == 0, "the long report wraps: nothing scrolls sideways"
    # The run's warnings are on the panel, as `wna info` prints them.
    strip = adversarial.warning_strip
    expected = run_warnings(BY_KIND["backdoor"], adversarial.states["backdoor"])
    assert strip.isVisible() and expected and all(line in strip.text() for line in expected)
    assert any("at chance" in line or "not learned" in line for line in expected)


def test_robustness_measures_the_comparable_models_and_says_why_not_the_binary_one(window, qtbot, tmp_path):
    default_weights = resource_path(DEFAULT_MODEL_FILE)
    first, second = (load_zoo("mnist_cnn", default_weights) for _ in range(2))
    first.extra["heldout_accuracy"] = 0.979
    binary = load_zoo("mnist_cnn", class_names=("1", "7"))
    path = tmp_path / "models.h5"
    save_session(Session(load_default(), {}, models={"binary-cnn-1v7": binary, "mnist-a": first,
                                                      "mnist-b": second}), path)
    open_session(qtbot, window, path)
    panel = panel_named(window, "robustness")
    window.tabs.setCurrentWidget(panel)
    items = {panel.model_list.item(row).data(Qt.ItemDataRole.UserRole): panel.model_list.item(row)
             for row in range(panel.model_list.count())}
    assert set(items) == {None, "binary-cnn-1v7", "mnist-a", "mnist-b"}
    refused = items["binary-cnn-1v7"]
    assert not refused.flags() & Qt.ItemFlag.ItemIsEnabled and refused.checkState() == Qt.CheckState.Unchecked
    assert "has 2 classes, the session's model 10" in refused.text() and "2 classes" in refused.toolTip()
    assert "97.9%" in items["mnist-a"].text() and "not recorded" in items["mnist-b"].text()
    assert panel.picked_models() == ["mnist-a", "mnist-b"], "default: every comparable model"
    set_config(panel, "robustness", **TINY["robustness"], distortions=("noise",))
    run(qtbot, window)
    assert panel.snapshots["robustness"].model_names == ("model", "mnist-a", "mnist-b")


def test_tab_reaches_start_and_stop_through_visible_stops_only(window, qtbot):
    panel = panel_named(window, "classification")
    window.activateWindow()
    first = panel.forms[CLASSIFICATION].editor("samples")
    first.setFocus()
    qtbot.waitUntil(first.hasFocus)
    start = window.findChild(QToolBar, "run_toolbar").widgetForAction(window.commands["start_pause"])
    visited = []
    for _ in range(80):
        widget = QApplication.focusWidget()
        visited.append(widget)
        if widget is start:
            break
        assert widget is not None and widget.isVisible() and widget.width() > 0 and widget.height() > 0, widget
        assert not isinstance(widget, QScrollArea), "a scroll frame is an invisible Tab stop"
        qtbot.keyClick(widget, Qt.Key.Key_Tab)
    assert visited[-1] is start, "Tab must reach Start"


def test_a_finished_run_fills_the_progress_bar_warns_and_notifies_when_long(window, qtbot, monkeypatch):
    monkeypatch.setattr(main_window_module, "NOTIFY_AFTER_SECONDS", 0)
    panel = panel_named(window, "classification")
    panel.forms[CLASSIFICATION].set_values({**SMALL_RUN, "samples": 1000})
    run(qtbot, window)
    assert window.progress_bar.value() == window.progress_bar.maximum()
    # 1,000 noise images: the bundled CNN gives most to one class, a few classes get under 30.
    counts = panel.snapshots[CLASSIFICATION].counts
    assert ((counts > 0) & (counts < 30)).any()
    assert panel.warning_strip.isVisible() and "fewer than 30 noise images" in panel.warning_strip.text()
    from PySide6.QtWidgets import QSystemTrayIcon

    if not QSystemTrayIcon.isSystemTrayAvailable():  # offscreen: the status bar carries the notification
        assert window.statusBar().currentMessage().startswith(f"{panel.title}: Run finished")


def test_session_info_shows_what_wna_info_prints(window, qtbot, tmp_path):
    from wna_gui.cli import info_lines, session_summary

    panel = panel_named(window, "classification")
    panel.forms[CLASSIFICATION].set_values({**SMALL_RUN, "samples": 1000})
    run(qtbot, window)
    window.commands["session_info"].trigger()
    qtbot.waitUntil(lambda: getattr(window, "session_info_dialog", None) is not None, timeout=30_000)
    text = window.session_info_dialog.findChild(main_window_module.QPlainTextEdit).toPlainText()
    window.save_to(tmp_path / "s.h5")
    qtbot.waitUntil(lambda: not window.isWindowModified(), timeout=30_000)
    printed = info_lines(session_summary(tmp_path / "s.h5"))
    assert "(unsaved changes included)" in text.splitlines()[0]
    run_line = next(line for line in printed if line.startswith(f"  {CLASSIFICATION}:"))
    assert run_line in text and any("warning: class means" in line for line in text.splitlines())


def test_view_reset_layout_restores_the_first_launch_size(window):
    window.resize(1100, 760)
    window.commands["reset_layout"].trigger()
    assert (window.width(), window.height()) == main_window_module.DEFAULT_SIZE


def _plot_items(panel):
    for view in panel.findChildren(pg.GraphicsView):
        for item in view.scene().items():
            if isinstance(item, pg.PlotItem) and item.isVisible() and item.width() > 0:
                yield item


@pytest.mark.slow
def test_every_panel_at_1024_by_700_after_a_short_run_screenshots(window, qtbot, tmp_path, backdoor_session):
    """Screenshots of every panel (WNA_SCREENSHOT_DIR, else a temporary folder) after a tiny run of each, with
    every plot's title inside its plot and every legend inside its plot area."""
    out = Path(os.environ.get("WNA_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    open_session(qtbot, window, backdoor_session)
    window.resize(1024, 700)
    for panel in window.panels:
        window.tabs.setCurrentWidget(panel)
        kind = panel.active_kind()
        if kind in TINY:
            set_config(panel, kind, **TINY[kind])
            run(qtbot, window)
        QApplication.processEvents()
        assert window.width() == 1024 and window.height() == 700, panel.name
        assert window.runs_dock.height() <= RUNS_BAR_MAX_HEIGHT, "the Runs list folds to one line on a short screen"
        if panel.name == "robustness":  # long plot titles (a model at chance) and four plots: one column
            view_area = panel.findChild(QScrollArea, "view_area")
            assert view_area.horizontalScrollBar().maximum() == 0, "the accuracy plots reflow, nothing scrolls sideways"
        image = window.grab().toImage()
        assert (image.width(), image.height()) == (1024, 700)
        assert image.save(str(out / f"panel-{panel.name}-1024x700.png"))
        for plot in _plot_items(panel):
            title = plot.titleLabel
            if title.isVisible() and title.text:
                assert title.item.boundingRect().width() <= plot.width() + 1, (panel.name, title.text)
            legend = plot.legend
            if legend is not None and legend.isVisible() and legend.items:
                # A legend lies inside its plot: wholly in the data area, or wholly beside it (not half over it).
                box, data = legend.sceneBoundingRect(), plot.vb.sceneBoundingRect().adjusted(-1, -1, 1, 1)
                assert plot.sceneBoundingRect().adjusted(-1, -1, 1, 1).contains(box), (panel.name, "legend outside")
                assert data.contains(box) or not data.intersects(box), (panel.name, "legend larger than the plot")


def _curve_columns(panel) -> set[int]:
    return {column for plot in panel.figure.plots.values() for _, column in panel.figure.items[plot]}


def test_robustness_plots_reflow_to_the_width_shown_and_never_scroll_sideways(window, qtbot, tmp_path):
    """One column of accuracy plots at 1024 px (the panel scrolls down), two side by side at 1400 px; every plot
    keeps a readable size and a title naming two long-named untrained models at chance wraps inside its plot.
    Screenshots of both go to WNA_SCREENSHOT_DIR when set."""
    out = Path(os.environ.get("WNA_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    untrained = {f"untrained-mnist-cnn-with-a-long-descriptive-name-{n}": load_zoo("mnist_cnn") for n in (1, 2)}
    path = tmp_path / "untrained.h5"
    save_session(Session(load_default(), {}, models=untrained), path)
    open_session(qtbot, window, path)
    panel = panel_named(window, "robustness")
    window.tabs.setCurrentWidget(panel)
    window.resize(1024, 700)
    set_config(panel, "robustness", **TINY["robustness"])
    run(qtbot, window)
    assert len(panel.figure.plots) == 4
    assert all("at chance" in plot.titleLabel.text for plot in panel.figure.plots.values())
    view_area = panel.findChild(QScrollArea, "view_area")
    for (width, height), columns in (((1024, 700), {0}), ((1400, 900), {0, 1}), ((1024, 700), {0})):
        window.resize(width, height)
        qtbot.waitUntil(lambda columns=columns: _curve_columns(panel) == columns, timeout=5_000)
        QApplication.processEvents()
        assert view_area.horizontalScrollBar().maximum() == 0, (width, "the plots scroll sideways")
        for plot in panel.figure.plots.values():
            assert plot.width() >= PLOT_MIN_WIDTH and plot.height() >= 0.9 * PLOT_ROW_HEIGHT, (width, plot.size())
            title = plot.titleLabel
            assert title.item.boundingRect().width() <= plot.width() + 1, (width, title.text)
            assert title.height() >= title.item.boundingRect().height() - 1, (width, "the title's lines are cut")
        assert window.grab().save(str(out / f"robustness-{width}x{height}.png"))


@pytest.mark.slow
def test_defence_plots_and_backdoor_maps_stay_readable_at_1024_by_700(window, qtbot, backdoor_session):
    """At 1024 × 700 every defence plot (curves, sleep raster, weight-change histograms) keeps a readable data area,
    the panel scrolling down instead, and the backdoor view shows the title and first row of tiles of "Where each
    method points", not its title alone. Both were ~40 px tall (data area and pane) at this size."""
    from wna_gui.app.panels.adversarial import FIGURE_SCALE
    from wna_gui.app.panels.defences import PLOT_MIN_HEIGHT as DEFENCE_PLOT_MIN_HEIGHT
    from wna_gui.figures.adversarial import PANEL_VIEWS

    open_session(qtbot, window, backdoor_session)
    window.resize(1024, 700)
    defences = panel_named(window, "defences")
    window.tabs.setCurrentWidget(defences)
    set_config(defences, "defence", **TINY["defence"])
    run(qtbot, window)
    QApplication.processEvents()
    figure = defences.figure
    plots = [figure.loss, figure.accuracy, figure.raster, *figure.histograms]
    assert all(plot.scene() is defences.canvas.scene() for plot in plots), "a sleep run shows all six plots"
    for plot in plots:
        assert plot.vb.height() >= DEFENCE_PLOT_MIN_HEIGHT - 1, (plot.titleLabel.text, plot.vb.height())
    assert figure.geometry().bottom() <= defences.canvas.height() + 1, "the canvas holds the whole figure"
    assert defences.findChild(QScrollArea, "view_area").verticalScrollBar().maximum() > 0, "the panel scrolls down"

    adversarial = panel_named(window, "adversarial")
    window.tabs.setCurrentWidget(adversarial)
    adversarial.views.setCurrentIndex(adversarial.kinds.index("backdoor"))
    qtbot.waitUntil(lambda: "backdoor" in adversarial.snapshots, timeout=30_000)
    QApplication.processEvents()
    maps = PANEL_VIEWS["backdoor"](adversarial.snapshots["backdoor"])[-1][0]
    assert maps.title.startswith("Where each method points") and maps.rows
    pane = adversarial.pages["backdoor"]["figures"].viewport()
    assert pane.height() >= round(FIGURE_SCALE * maps.head_height), (pane.height(), "the first row of tiles is cut")
    # Below the title line the pane shows the tiles' colours (the diverging maps), not white alone.
    image = pane.grab().toImage()
    below_title = round(FIGURE_SCALE * (2 * maps.GAP + maps.title_h))
    coloured = sum(1 for y in range(below_title, image.height(), 4) for x in range(0, image.width(), 4)
                   if len({image.pixelColor(x, y).red(), image.pixelColor(x, y).green(),
                           image.pixelColor(x, y).blue()}) > 1)
    assert coloured > 100, coloured


def _coloured_column_runs(image) -> list[tuple[int, int]]:
    """(first, last) x of each run of columns that hold colour (maps on their diverging scale, not text or white)."""
    coloured = [sum(1 for y in range(0, image.height(), 2)
                    if len({image.pixelColor(x, y).red(), image.pixelColor(x, y).green(),
                            image.pixelColor(x, y).blue()}) > 1) > 10 for x in range(image.width())]
    runs: list[tuple[int, int]] = []
    for x, colour in enumerate(coloured):
        if colour and runs and runs[-1][1] == x - 1:
            runs[-1] = (runs[-1][0], x)
        elif colour:
            runs.append((x, x))
    return runs


@pytest.mark.slow
def test_backdoor_maps_fit_the_pane_width_at_1024_and_1400(window, qtbot, backdoor_session):
    """The backdoor view's figures are drawn to the pane's width: at 1024 × 700 nothing scrolls sideways and the
    three tiles of "Where each method points" (clean, poisoned, difference) are all on screen, the third one was
    cut off (figures drawn 986 px wide into a ~560 px pane); the pane draws them again after a resize."""
    from wna_gui.app.panels.adversarial import FIGURE_SCALE
    from wna_gui.figures.adversarial import TileFigure

    open_session(qtbot, window, backdoor_session)
    adversarial = panel_named(window, "adversarial")
    window.tabs.setCurrentWidget(adversarial)
    adversarial.views.setCurrentIndex(adversarial.kinds.index("backdoor"))
    qtbot.waitUntil(lambda: "backdoor" in adversarial.snapshots, timeout=30_000)
    pane = adversarial.pages["backdoor"]["figures"]
    for width, height in ((1024, 700), (1400, 900), (1024, 700)):
        window.resize(width, height)
        qtbot.waitUntil(lambda: pane.label.pixmap().width() == pane.viewport().width(), timeout=5_000)
        QApplication.processEvents()
        assert pane.horizontalScrollBar().maximum() == 0, (width, "the figures scroll sideways")
        pane.verticalScrollBar().setValue(0)
        runs = [run for run in _coloured_column_runs(pane.viewport().grab().toImage()) if run[1] - run[0] >= 40]
        assert len(runs) == 3, (width, runs, "clean, poisoned and difference maps side by side")
        assert runs[-1][1] < pane.viewport().width() - 1, (width, runs, "the difference map is cut at the edge")
        tile = runs[0][1] - runs[0][0] + 1
        assert all(abs(last - first + 1 - tile) <= 2 for first, last in runs), (width, runs, "tiles of one size")
        # Full-size tiles (the pane is wide enough to need no narrower layout) at the least scale or more.
        assert tile >= FIGURE_SCALE * TileFigure.MAX_TILE - 2, (width, tile)
