"""The receptive-fields panel: live filter grids from the engine thread, the unit picker, kernels, STC spectrum,
activation maps, and a saved session shown again; driven through the real window (offscreen Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from wna_gui.app.main_window import MainWindow
from wna_gui.core.models import load_default
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.sta import KIND, STAConfig, STAExperiment

RUN_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def model():
    return load_default()


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, model):
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard))
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                        data_dir=tmp_path / "appdata", model=model)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window


def sta_panel(window):
    panel = next(panel for panel in window.panels if panel.name == "sta")
    window.tabs.setCurrentWidget(panel)
    return panel


def test_a_run_streams_live_filters_and_every_view_draws(window, qtbot):
    panel = sta_panel(window)
    panel.forms[KIND].set_values({"samples": 6000, "batch_size": 1000, "stc_samples": 3000, "map_samples": 2000,
                                  "seed": 3})
    snapshots = []
    window.engine.snapshot.connect(snapshots.append)
    with qtbot.waitSignal(window.engine.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    qtbot.waitUntil(lambda: panel.snapshot is not None and panel.snapshot.finished, timeout=10_000)
    snapshot = panel.snapshot
    assert snapshot.samples_done == 6000 and snapshot.units == 20
    # Filters: one tile per unit, each showing that unit's STA (scaled to its own maximum by default).
    assert panel.filter_grid.tile_count() == 20
    shown = panel.filter_grid.tile_values(4)
    np.testing.assert_allclose(shown, snapshot.sta[4] / np.abs(snapshot.sta[4]).max(), rtol=1e-6)
    assert "receptive field 5×5" in panel.location.text()
    # Picking a unit by clicking its tile.
    tile = panel.filter_grid._tiles[6]

    class Click:
        def scenePos(self):
            return tile.view.sceneBoundingRect().center()

    panel.filter_grid._mouse_clicked(Click())
    assert panel.unit.value() == 6
    assert panel.filter_grid._tiles[6].outline.isVisible() and not panel.filter_grid._tiles[4].outline.isVisible()
    # Kernels: STA beside kernel, and the cosine histogram counts every unit.
    panel.show_view("kernels")
    assert panel.kernel_grid.tile_count() == 20
    heights = np.asarray(panel.cosine_plot._bars.opts["height"])
    assert heights.sum() == 20
    assert "mean 0.9" in panel.kernel_note.text()
    # STC: the picked unit's spectrum with its significant eigenvalues, and its eigenvectors.
    panel.show_view("stc")
    x, y = panel.spectrum_plot.figure.significant_points()
    count = int(snapshot.stc.count[6])
    assert len(y) == count and np.allclose(np.sort(y), np.sort(snapshot.stc.values[6, :count]))
    assert panel.eigen_grid.tile_count() == 1 + count
    # Activation maps: a layer picker, noise and real-digit grids, and the distance bars.
    panel.show_view("maps")
    assert [panel.map_layer.itemData(i) for i in range(panel.map_layer.count())] == ["conv1", "conv2", "fc1", "fc2"]
    assert panel.real_maps.tile_count() == 10
    noise, real = panel.distance_plot.figure.heights()
    np.testing.assert_allclose(real, snapshot.maps.real_distance)
    panel.map_layer.setCurrentIndex(2)
    assert panel.view_settings()["map_layer"] == "fc1"
    assert len(snapshots) >= 1


def test_a_saved_run_is_shown_again_and_exports(window, qtbot, tmp_path, model):
    experiment = STAExperiment(model, STAConfig(layer="conv2", samples=2000, stc_samples=0, map_samples=0), device="cpu")
    experiment.run_to_end()
    path = save_session(Session(model, {KIND: experiment.state}), tmp_path / "s.h5")
    panel = sta_panel(window)
    window.open_session(path)
    qtbot.waitUntil(lambda: panel.snapshot is not None, timeout=20_000)
    assert panel.forms[KIND].config() == load_session(path).runs[KIND].config
    assert panel.filter_grid.tile_count() == 50
    panel.show_view("kernels")  # conv2 is not a first layer: said so, not an empty plot
    assert "first conv layer" in panel.kernel_note.text()
    panel.show_view("maps")
    assert "off" in panel.maps_note.text()
    target = next(t for t in panel.export_targets() if t.label.startswith("STAs"))
    target.write(tmp_path / "sta.npz")
    with np.load(tmp_path / "sta.npz") as arrays:
        assert arrays["sta"].shape == (50, 1, 14, 14)
