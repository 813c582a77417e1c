"""The desktop app, driven like a user would, through the real engine thread (offscreen Qt)."""

from __future__ import annotations

import csv
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QLabel, QMessageBox, QPushButton, QSplitter
from torch import nn

from wna_gui.app.main_window import MainWindow
from wna_gui.app.panels import build_panels
from wna_gui.app.panels.classification import ClassificationPanel
from wna_gui.core.classification import KIND, ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.estimators import ESTIMATOR_NAMES, ESTIMATORS
from wna_gui.core.models import CIFAR10_CLASSES, MNIST_CLASSES, InputSpec, LoadedModel, load_default
from wna_gui.core.noise import GaussianNoise
from wna_gui.core.registry import EXPERIMENTS
from wna_gui.core.session import Session, autosave_path, save_session

RUN_TIMEOUT_MS = 90_000
SMALL_RUN = {"samples": 3000, "batch_size": 500, "seed": 7}
MAPS_FIGURE = "Maps, z-map: publication figure or arrays (.npz)"


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def answers(monkeypatch):
    """Scripted answers to QMessageBox.question (default: Discard), recording each question's title."""
    script = SimpleNamespace(asked=[], replies={}, texts=[])

    def question(parent, title, text, *args, **kwargs):
        script.asked.append(title)
        script.texts.append(text)
        return script.replies.get(title, QMessageBox.StandardButton.Discard)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return script


@pytest.fixture
def make_window(qtbot, settings, tmp_path, answers):
    def make(**kwargs):
        window = MainWindow(settings=settings, data_dir=tmp_path / "appdata", **kwargs)
        qtbot.addWidget(window)
        window.show()
        return window

    return make


@pytest.fixture
def window(make_window):
    return make_window()


def panel_of(window) -> ClassificationPanel:
    return next(panel for panel in window.panels if KIND in panel.specs)


def configure(panel, *given: dict, **values):
    """Set the classification form's widgets as a user would (widget values keyed by param key)."""
    merged = {}
    for part in (*given, values):
        merged.update(part)
    panel.forms[KIND].set_values(merged)


def form_values(panel) -> dict:
    return panel.forms[KIND].values()


def run_to_end(qtbot, window, signal="run_finished"):
    with qtbot.waitSignal(getattr(window.engine, signal), timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert not window.engine.running


def headless(samples, batch_size=500, seed=7, model=None):
    config = ClassificationImageConfig(samples=samples, batch_size=batch_size, seed=seed)
    return ClassificationImageExperiment(model or load_default(), config, device="cpu").run_to_end()


def assert_maps_equal(a, b, atol=1e-12):
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.estimators == b.estimators
    for view in ("mean", "centered", "zmap"):
        np.testing.assert_allclose(a.maps.of(view), b.maps.of(view), rtol=0, atol=atol, equal_nan=True)
        for estimator in a.estimators:
            np.testing.assert_allclose(a.maps_of(estimator).of(view), b.maps_of(estimator).of(view), rtol=0,
                                       atol=atol, equal_nan=True, err_msg=f"{estimator} {view}")


def tiles(panel):
    """The map tiles on screen (the grid has no public accessor for what each tile shows)."""
    return panel.map_grid._tiles


def tile_titles(panel):
    return [tile.label.text for tile in tiles(panel)]


def colorbar(panel) -> pg.ColorBarItem:
    (bar,) = [item for item in panel.map_grid.ci.items if isinstance(item, pg.ColorBarItem)]
    return bar


def drawn_curves(plot) -> dict:
    """Name → (x, y) of every curve with data in a pyqtgraph plot."""
    return {item.name(): (item.xData, item.yData) for item in plot.getPlotItem().listDataItems()
            if item.xData is not None and len(item.xData)}


def export_target(panel, label):
    return next(target for target in panel.export_targets() if target.label == label)


def test_qt_binding_keeps_bool_reference_counts():
    """PySide6 6.12.0 on Python < 3.12 drops a reference to True on every bool signal emission.

    pyqtgraph emits many, so a long run ends in "Fatal Python error: bool_dealloc". Use another PySide6.
    """
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        changed = Signal(bool)

    emitter = Emitter()
    before = sys.getrefcount(True)
    for _ in range(200):
        emitter.changed.emit(True)
    assert sys.getrefcount(True) >= before - 10, "this PySide6 build corrupts bool reference counts"


def test_launches_with_default_model_panels_and_shortcuts(window):
    assert window.model.kind == "default"
    assert "Bundled MNIST CNN" in window.model_button.text()
    # One tab per panel module the registry names, in registry order.
    assert [panel.name for panel in window.panels] == list(dict.fromkeys(spec.panel for spec in EXPERIMENTS))
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [p.title for p in window.panels]
    assert [p.title for p in window.panels] == [p.title for p in build_panels()]
    assert window.windowTitle().startswith("Untitled")
    shortcuts = {keys: text for keys, text in window.commands.shortcut_table()}
    for keys in ("Space", "Ctrl+O", "Ctrl+S", "Ctrl+E", "Esc"):
        assert keys in shortcuts
    window.show_shortcuts()
    table = window.shortcuts_dialog.table
    assert {table.item(row, 0).text() for row in range(table.rowCount())} == set(shortcuts)
    menus = [action.text().replace("&", "") for action in window.menuBar().actions()]
    assert menus[0] == "File" and "Help" in menus
    # Empty classes are marked as such, not drawn as flat maps.
    titles = tile_titles(panel_of(window))
    assert len(titles) == 10 and all("no samples" in title for title in titles)
    assert panel_of(window).snapshot is None and panel_of(window).session_states() == {}


def test_run_streams_and_counts_on_screen_equal_the_engine(window, qtbot):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=4000)
    assert panel.plan_label.text().startswith("Start begins a new run of 4,000 samples. Accumulators for 10 classes")
    snapshots = []
    window.engine.snapshot.connect(snapshots.append)
    run_to_end(qtbot, window)
    expected = headless(4000)

    np.testing.assert_array_equal(panel.frequency_plot.heights(), expected.counts)
    assert_maps_equal(panel.snapshot, expected)
    assert window.samples_label.text() == "Samples 4,000 / 4,000"
    assert window.isWindowModified()
    assert snapshots, "the worker streamed no snapshot"
    # The default estimator on screen is the logit kernel: every class has a map (default view: z-maps).
    assert panel.estimator == "logit"
    kernel = expected.maps_of("logit")
    assert all(tile.values is not None for tile in tiles(panel))
    for k, tile in enumerate(tiles(panel)):
        np.testing.assert_array_equal(tile.values.reshape(-1), kernel.of("zmap", [k])[0])
    assert all(" · r=" in title for title in tile_titles(panel))
    panel.set_estimator("hard")
    for title, name, count in zip(tile_titles(panel), expected.class_names, expected.counts):
        assert title.startswith(name) and (f"n={count:,}" in title if count else "no samples" in title)
    dominant = int(np.argmax(expected.counts))
    np.testing.assert_array_equal(tiles(panel)[dominant].values.reshape(-1), expected.maps.of("zmap", [dominant])[0])
    assert tiles(panel)[int(np.argmin(expected.counts))].values is None
    # The convergence race: one curve per estimator, the reliability (Spearman-Brown) mean over all classes.
    curves = drawn_curves(panel.convergence_plot)
    assert {"hard label", "logit kernel", "probability-weighted"} <= set(curves)
    for name, label in (("hard", "hard label"), ("logit", "logit kernel")):
        race = expected.convergence[name]
        finite = np.isfinite(race.mean())
        np.testing.assert_array_equal(curves[label][0], race.samples[finite])
        np.testing.assert_allclose(curves[label][1], race.mean()[finite])
    assert curves["logit kernel"][1][-1] > curves["hard label"][1][-1]
    assert "complete" in panel.plan_label.text()


def test_map_view_and_estimator_choices_redraw_the_maps(window, qtbot):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=1000)
    run_to_end(qtbot, window)
    dominant = int(np.argmax(panel.snapshot.counts))
    buttons = {name: panel.findChild(QPushButton, f"estimator_{name}") for name in ESTIMATOR_NAMES}
    assert [name for name, button in buttons.items() if button.isVisible()] == ["hard", "logit", "prob"]
    for estimator in ("hard", "logit", "prob"):
        qtbot.mouseClick(buttons[estimator], Qt.MouseButton.LeftButton)
        assert panel.estimator == estimator
        for view in ("mean", "centered", "zmap"):
            panel.view.setCurrentIndex(panel.view.findData(view))
            shown = {key: panel.settings()["view"][key] for key in ("map_view", "estimator", "reliability")}
            assert shown == {"map_view": view, "estimator": estimator, "reliability": "corrected"}
            assert panel.view.currentText() == ESTIMATORS[estimator].view_titles[view]
            np.testing.assert_allclose(tiles(panel)[dominant].values.reshape(-1),
                                       panel.snapshot.maps_of(estimator).of(view, [dominant])[0])
        assert ESTIMATORS[estimator].title in panel.findChild(QLabel, "estimator_facts").text()
    # The race's y axis follows the reliability choice.
    panel.reliability_mode.setCurrentIndex(panel.reliability_mode.findData("raw"))
    raw = panel.snapshot.convergence["logit"].mean(corrected=False)
    np.testing.assert_allclose(drawn_curves(panel.convergence_plot)["logit kernel"][1], raw[np.isfinite(raw)])


def test_a_new_run_says_how_much_memory_its_accumulators_take(window):
    panel = panel_of(window)
    configure(panel, estimators=["hard", "logit"])
    assert panel.plan_label.text().startswith("Start begins a new run of 100,000 samples. Accumulators for 10 "
                                              "classes × 784 pixels:")
    assert "logit" in panel.plan_label.text() and "prob" not in panel.plan_label.text()


def test_the_slider_browses_each_estimators_stored_checkpoints(window, qtbot):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=12_000, batch_size=1000)
    run_to_end(qtbot, window)
    snapshot = panel.snapshot
    slider = panel.checkpoint_slider
    assert sorted(snapshot.checkpoints) == [1000, 10_000]
    assert slider.isEnabled() and slider.maximum() == 2 and slider.value() == 2
    assert panel.checkpoint_label.text() == "now: 12,000"
    panel.view.setCurrentIndex(panel.view.findData("centered"))
    for position, samples in ((0, 1000), (1, 10_000)):
        slider.setValue(position)
        assert panel.selected_checkpoint() == samples and panel.checkpoint_label.text() == f"at {samples:,}"
        for estimator in snapshot.estimators:
            panel.set_estimator(estimator)
            recorded = snapshot.maps_of(estimator, samples)
            for k, tile in enumerate(tiles(panel)):
                expected = recorded.of("centered", [k])[0]
                if np.isfinite(expected).all():
                    np.testing.assert_array_equal(tile.values.reshape(-1), expected.astype(np.float32))
                else:
                    assert tile.values is None
    slider.setValue(2)
    assert panel.selected_checkpoint() is None


def test_pause_resume_and_stop_between_batches(window, qtbot):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=1_000_000)
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.toggle_run()
    assert panel.plan_label.text() == "Running…"
    assert not panel.forms[KIND].groups[0].isEnabled(), "settings are locked during a run"
    window.toggle_run()
    assert window.engine.paused and window.commands["start_pause"].text() == "&Resume"
    qtbot.wait(300)  # the batch in flight finishes, then the run holds
    held = panel.session_states()[KIND].samples_done
    qtbot.wait(400)
    assert panel.session_states()[KIND].samples_done == held

    window.toggle_run()
    assert not window.engine.paused
    qtbot.waitUntil(lambda: panel.session_states()[KIND].samples_done > held, timeout=10_000)

    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.commands["stop"].trigger()
    state = panel.session_states()[KIND]
    assert state is panel.states[KIND]
    assert 0 < state.samples_done < 1_000_000
    assert panel.frequency_plot.heights().sum() == state.samples_done
    assert window.commands["start_pause"].text() == "&Start"
    assert "continues the run" in panel.plan_label.text()
    assert all(group.isEnabled() for group in panel.forms[KIND].groups)


def test_closing_mid_run_offers_to_save_and_stops_the_thread(window, qtbot, answers):
    configure(panel_of(window), SMALL_RUN, samples=1_000_000)
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    window.autosave()
    qtbot.waitUntil(window.autosave_file.exists, timeout=10_000)
    assert window.close()
    assert answers.asked == ["Quit wna-gui"]
    assert not window.engine._thread.isRunning()
    assert not window.autosave_file.exists(), "a clean exit removes the autosave"


def test_closing_mid_run_can_save(window, qtbot, answers, tmp_path):
    answers.replies["Quit wna-gui"] = QMessageBox.StandardButton.Save
    target = tmp_path / "closing.h5"
    window.session_path = target
    configure(panel_of(window), SMALL_RUN, samples=1_000_000)
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    assert window.close()
    assert not window.engine._thread.isRunning()
    from wna_gui.core.session import load_session

    state = load_session(target).runs[KIND]
    assert state.samples_done == panel_of(window).session_states()[KIND].samples_done > 0


def test_save_then_open_restores_maps_and_continues(window, qtbot, tmp_path, monkeypatch):
    panel = panel_of(window)
    configure(panel, SMALL_RUN)
    run_to_end(qtbot, window)
    before = panel.snapshot

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(tmp_path / "run"), "")))
    window.save()  # untitled: asks for a name; the suffix is added
    path = tmp_path / "run.h5"
    qtbot.waitUntil(lambda: window.session_path == path, timeout=10_000)
    assert not window.isWindowModified() and window.windowTitle().startswith("run.h5")

    window.new_session()
    assert panel.session_states() == {} and panel.snapshot is None
    configure(panel, seed=99, samples=100)
    window.open_session(path)
    qtbot.waitUntil(lambda: panel.snapshot is not None, timeout=20_000)
    assert_maps_equal(panel.snapshot, before)
    # The restored run's settings are shown, not the ones typed before opening.
    assert form_values(panel)["seed"] == 7 and form_values(panel)["samples"] == 3000
    assert panel.forms[KIND].config() == panel.session_states()[KIND].config
    np.testing.assert_array_equal(panel.frequency_plot.heights(), before.counts)
    assert window.recent_files()[0] == str(path.resolve())
    assert "complete" in panel.plan_label.text()

    configure(panel, samples=4000)
    assert "continues the run from 3,000" in panel.plan_label.text()
    run_to_end(qtbot, window)
    assert_maps_equal(panel.snapshot, headless(4000), atol=1e-9)


def test_a_changed_measurement_setting_starts_a_new_run(window, qtbot):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=1000)
    run_to_end(qtbot, window)
    configure(panel, seed=8)
    assert "begins a new run" in panel.plan_label.text()
    run_to_end(qtbot, window)
    assert_maps_equal(panel.snapshot, headless(1000, seed=8))


def _check_export(path):
    data = path.read_bytes()
    suffix = path.suffix
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = QImage(str(path))
        assert not image.isNull()
        return image.size()
    if suffix == ".svg":
        assert ET.fromstring(data).tag.endswith("svg")
    elif suffix == ".pdf":
        assert data.startswith(b"%PDF") and len(data) > 2000
    elif suffix == ".npz":
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    elif suffix == ".csv":
        return list(csv.DictReader(path.read_text().splitlines()))
    return None


def test_exports_write_valid_files(window, qtbot, tmp_path):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=2000)
    run_to_end(qtbot, window)
    snapshot = panel.snapshot
    counts = snapshot.counts
    written = {}
    for target in panel.export_targets():
        for suffix in target.suffixes:
            path = tmp_path / f"{len(written)}{suffix}"
            assert target.write(path) == path or path.exists()
            written[(target.label, suffix)] = _check_export(path)
    # Every declared artefact is offered, then the views as on screen.
    labels = [label for label, _ in written]
    for artefact in ClassificationImageExperiment.spec.artefacts:
        assert all((artefact.label, suffix) in written for suffix in artefact.suffixes)
    assert "Map grid (as on screen)" in labels and "Whole panel (as on screen)" in labels

    figure = written[(MAPS_FIGURE, ".png")]
    assert figure.width() >= 5 * 28 * 8 and figure.height() >= 2 * 28 * 8  # native pixels, 8× nearest-neighbour
    plot = written[("Class-frequency plot", ".png")]
    # At the export size (default: double column, 300 dpi), not the widget's screen pixels.
    from wna_gui.figures import figure_size

    assert plot.width() == round(figure_size().width_mm / 25.4 * figure_size().dpi)
    for view in ("mean", "centered", "zmap"):
        label = next(a.label for a in ClassificationImageExperiment.spec.artefacts if a.variant == view)
        arrays = written[(label, ".npz")]
        np.testing.assert_array_equal(arrays["classes"], np.flatnonzero(counts))
        assert arrays["maps"].shape == (np.count_nonzero(counts), 1, 28, 28)
        np.testing.assert_array_equal(arrays["maps"].reshape(len(arrays["classes"]), -1),
                                      getattr(snapshot.maps, view))
        np.testing.assert_array_equal(arrays["counts"], counts)
    for view in ("mean", "centered", "zmap"):
        label = next(a.label for a in ClassificationImageExperiment.spec.artefacts if a.name == f"estimators_{view}")
        arrays = written[(label, ".npz")]
        assert list(arrays["estimators"]) == ["hard", "logit", "prob"] and str(arrays["view"]) == view
        for estimator in ("logit", "prob"):
            estimated = snapshot.maps_of(estimator)
            np.testing.assert_array_equal(arrays[f"{estimator}_classes"], np.arange(10))
            np.testing.assert_array_equal(arrays[f"{estimator}_maps"].reshape(10, -1), getattr(estimated, view))
            np.testing.assert_array_equal(arrays[f"{estimator}_support"], estimated.support)
            assert int(arrays[f"{estimator}_samples"]) == 2000
        np.testing.assert_array_equal(arrays["hard_classes"], np.flatnonzero(counts))
        assert written[(label, ".png")].height() > 3 * 28 * 4  # a row per estimator
    progression = written[("How the maps built up: every estimator at 1e3, 1e4, … samples (figure)", ".png")]
    assert progression.width() > 10 * 28 * 4 and progression.height() > 6 * 28 * 4  # 3 estimators × 2 rows
    shown = written[("Maps of the estimator shown: publication figure", ".png")]
    assert shown.width() >= 5 * 28 * 8  # the logit kernel's 10 maps, native pixels upscaled
    rows = written[("Split-half reliability of every estimator over samples (raw and Spearman–Brown)", ".csv")]
    logit = [row for row in rows if row["estimator"] == "logit" and row["split_half_r"]]
    assert logit and all(abs(float(row["spearman_brown_r"]) - 2 * float(row["split_half_r"]) /
                             (1 + float(row["split_half_r"]))) < 1e-5 for row in logit)
    table = written[("Class table: counts, map predictions, split-half r", ".csv")]
    assert [int(row["count"]) for row in table] == counts.tolist()
    assert all(row["map_prediction"] for row, count in zip(table, counts) if count)
    reliability = written[("Split-half reliability per class over samples", ".csv")]
    assert [int(row["samples"]) for row in reliability] == snapshot.reliability_samples.tolist()

    window.open_export_dialog()
    dialog = window.export_dialog
    dialog.target.setCurrentIndex(dialog.target.findText(MAPS_FIGURE))
    dialog.format.setCurrentText(".pdf")
    dialog.path.edit.setText(str(tmp_path / "dialog" / "figure"))
    dialog.accept()
    _check_export(tmp_path / "dialog" / "figure.pdf")


def test_export_before_any_run_says_so(window, tmp_path):
    window.open_export_dialog()
    dialog = window.export_dialog
    dialog.path.edit.setText(str(tmp_path / "nothing"))
    dialog.accept()
    assert "nothing to export yet" in dialog.error.text()
    assert dialog.isVisible()


class _NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


class _BrokenNet(_NaNNet):
    def forward(self, x):
        raise RuntimeError("boom in forward")


@pytest.mark.parametrize("net, message", [
    (_NaNNet, "model produced NaN or infinite outputs"),
    (_BrokenNet, "Unexpected error: RuntimeError: boom in forward"),
])
def test_worker_error_shows_dialog_and_app_stays_usable(window, qtbot, net, message):
    window.set_model(LoadedModel("zoo", "failing", net(), InputSpec((1, 28, 28)), MNIST_CLASSES))
    configure(panel_of(window), SMALL_RUN, samples=1000)
    run_to_end(qtbot, window, signal="run_failed")
    dialog = window.error_dialog
    assert dialog.isVisible() and message in dialog.text()
    assert "\n" not in dialog.text()
    assert "Traceback" in dialog.detailedText()
    dialog.accept()
    assert all(group.isEnabled() for group in panel_of(window).forms[KIND].groups), "settings unlocked again"

    window.set_model(load_default())
    run_to_end(qtbot, window)
    np.testing.assert_array_equal(panel_of(window).frequency_plot.heights(), headless(1000).counts)


class _TinyRGBNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_rgb_model_shows_colour_maps(make_window, qtbot, tmp_path):
    model = LoadedModel("zoo", "tiny_rgb", _TinyRGBNet(), InputSpec((3, 8, 8), (0.5,), (0.25,)), CIFAR10_CLASSES)
    window = make_window(model=model)
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=2000)
    run_to_end(qtbot, window)
    shown = [tile for tile in tiles(panel) if tile.values is not None]
    assert shown and all(tile.values.shape == (3, 8, 8) for tile in shown)
    assert all(tile.image.image.shape == (8, 8, 3) for tile in shown)
    assert not colorbar(panel).isVisible()
    assert panel.frequency_plot.heights().sum() == 2000
    figure = export_target(panel, MAPS_FIGURE).write(tmp_path / "rgb.png")
    assert _check_export(figure).width() > 0
    arrays = _check_export(export_target(panel, MAPS_FIGURE).write(tmp_path / "rgb.npz"))
    assert arrays["maps"].shape[1:] == (3, 8, 8)


def test_offers_to_recover_an_autosave(make_window, qtbot, tmp_path, answers):
    experiment = ClassificationImageExperiment(load_default(), ClassificationImageConfig(samples=1000, batch_size=500))
    expected = experiment.run_to_end()
    save_session(Session(load_default(), runs={KIND: experiment.state}), autosave_path(tmp_path / "appdata"))
    answers.replies["Recover session"] = QMessageBox.StandardButton.Yes
    window = make_window()
    assert window.offer_recovery()
    qtbot.waitUntil(lambda: panel_of(window).snapshot is not None, timeout=20_000)
    assert_maps_equal(panel_of(window).snapshot, expected)
    np.testing.assert_array_equal(panel_of(window).snapshot.map_predictions, expected.map_predictions)
    assert window.session_path is None and window.isWindowModified()


def test_recovery_says_what_was_autosaved_and_keeps_the_file_it_continued(make_window, qtbot, tmp_path, answers):
    experiment = ClassificationImageExperiment(load_default(), ClassificationImageConfig(samples=2000, batch_size=500))
    for _ in experiment.run():
        if experiment.state.progress_done >= 1000:
            break
    original = tmp_path / "digits.wna.h5"
    session = Session(load_default(), runs={KIND: experiment.state}, origin=str(original))
    save_session(session, autosave_path(tmp_path / "appdata"))
    answers.replies["Recover session"] = QMessageBox.StandardButton.Yes
    window = make_window()
    assert window.offer_recovery()
    text = answers.texts[-1]
    assert str(original) in text and "UTC" in text and f"{experiment.state.progress_done:,} of 2,000 samples" in text
    qtbot.waitUntil(lambda: panel_of(window).snapshot is not None, timeout=20_000)
    assert window.session_path == original and window.isWindowModified()  # Save writes the file it continued


def test_declining_recovery_removes_the_autosave(make_window, tmp_path, answers):
    path = autosave_path(tmp_path / "appdata")
    save_session(Session(load_default(), runs={}), path)
    answers.replies["Recover session"] = QMessageBox.StandardButton.No
    assert not make_window().offer_recovery()
    assert not path.exists()


def test_settings_and_layout_persist(make_window, settings):
    first = make_window()
    gaussian = {"kind": "gaussian", "mean": 0.5, "std": 0.2}
    panel_of(first).apply_settings({"forms": {KIND: {"seed": 42, "samples": 5000, "noise": gaussian}},
                                    "view": {"map_view": "centered", "estimator": "prob", "reliability": "raw",
                                             "limits": "manual", "limit": 0.03, "colormap": "CET-D6",
                                             "hide_empty": True}})
    splitter = panel_of(first).findChild(QSplitter, "maps_splitter")
    splitter.setSizes([500, 100])
    share = splitter.sizes()[0] / sum(splitter.sizes())
    assert first.close()
    assert settings.contains("window/geometry") and settings.contains("window/state")
    assert settings.contains(f"panels/{panel_of(first).name}/settings")
    second = make_window()
    panel = panel_of(second)
    values = panel.settings()
    assert values["forms"][KIND]["seed"] == 42 and values["forms"][KIND]["samples"] == 5000
    assert values["view"] == {"map_view": "centered", "estimator": "prob", "reliability": "raw",
                              "limits": "manual", "limit": 0.03, "colormap": "CET-D6", "hide_empty": True}
    assert panel.view.currentData() == "centered" and panel.estimator == "prob"
    assert values["forms"][KIND]["noise"]["kind"] == "gaussian"
    assert values["forms"][KIND]["noise"]["std"] == pytest.approx(0.2)
    sizes = panel.findChild(QSplitter, "maps_splitter").sizes()
    assert sizes[0] / sum(sizes) == pytest.approx(share, abs=0.02)
    assert panel.forms[KIND].config().noise == GaussianNoise(mean=0.5, std=0.2)
    assert panel.forms[KIND].config() == ClassificationImageConfig(noise=GaussianNoise(std=0.2), samples=5000,
                                                                   seed=42)


def test_space_starts_and_escape_stops(window, qtbot):
    configure(panel_of(window), SMALL_RUN, samples=1_000_000)
    window.activateWindow()
    window.tabs.setFocus()
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window.tabs, Qt.Key.Key_Space)
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window.tabs, Qt.Key.Key_Escape)


def test_start_refuses_invalid_settings_with_a_message(window):
    configure(panel_of(window), noise={"kind": "uniform", "low": 1.0, "high": 0.5})
    assert "Invalid settings" in panel_of(window).plan_label.text()
    window.start_run()
    assert not window.engine.running
    assert "noise range is empty" in window.error_dialog.text()
    assert "\n" not in window.error_dialog.text()


def test_hover_reports_pixel_value(window, qtbot):
    panel = panel_of(window)
    configure(panel, SMALL_RUN, samples=1000)
    run_to_end(qtbot, window)
    k = int(np.argmax(panel.snapshot.counts))
    tile = tiles(panel)[k]
    panel.map_grid._mouse_moved(tile.view.mapViewToScene(QPointF(3.5, 14.5)))
    expected = tile.values[0, 14, 3]
    assert panel.hover_label.text() == f"class {tile.class_name} · x=3, y=14 · {expected:.4g}"


def test_escape_stops_after_a_menu_was_closed_with_escape(window, qtbot):
    configure(panel_of(window), SMALL_RUN, samples=1_000_000)
    window.activateWindow()
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    menu_bar = window.menuBar()
    menu_bar.setFocus()  # where the keyboard is once a menu was closed with Esc
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(menu_bar, Qt.Key.Key_Escape)
    assert menu_bar.activeAction() is None


def test_without_a_display_the_app_says_so_in_one_line():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "wna_gui.app.main"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no display" in done.stderr
