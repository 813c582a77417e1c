"""Noise stimulus → classification images (bias maps), the paper's Fig. 2.

Settings (built from the declaration) on the left; the per-class map grid, the
class-frequency bars and the split-half convergence curves on the right.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QSplitter, QVBoxLayout, QWidget

from ... import figures
from ...core.classification import KIND, MAP_VIEW_TITLES, ClassificationSnapshot
from ..plots import ClassFrequencyPlot, ConvergencePlot, MapGrid, MapTile, export_view
from .base import ExportTarget, Panel

VIEW_HELP = ("Each map averages the noise the model assigned to that class: mean; minus the average of all "
             "noise; or that difference in standard errors (z). One colour scale for all maps. "
             "Grey: no noise sample was assigned to the class yet.")
HOVER_HINT = "Hover over a map to read its pixel values."


class ClassificationPanel(Panel):
    def build_views(self) -> QWidget:
        self.view = QComboBox()
        self.view.setObjectName("map_view")
        for view in ("zmap", "mean", "centered"):
            self.view.addItem(MAP_VIEW_TITLES[view], view)
        display = QGroupBox("Display")
        display_form = QFormLayout(display)
        display_form.addRow("Maps", self.view)
        legend = QLabel(VIEW_HELP)
        legend.setWordWrap(True)
        legend.setStyleSheet("color: palette(placeholder-text)")
        display_form.addRow(legend)
        self.view.currentIndexChanged.connect(self._redraw)
        self.extra_settings.addWidget(display)

        self.map_grid = MapGrid()
        self.frequency_plot = ClassFrequencyPlot()
        self.convergence_plot = ConvergencePlot()
        self.hover_label = QLabel(HOVER_HINT)
        self.hover_label.setObjectName("hover_label")
        self.map_grid.hovered.connect(lambda text: self.hover_label.setText(text or self._grid_note()))
        maps_box = QWidget()
        maps_layout = QVBoxLayout(maps_box)
        maps_layout.setContentsMargins(0, 0, 0, 0)
        maps_layout.addWidget(self.map_grid, 1)
        maps_layout.addWidget(self.hover_label)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.setObjectName("plots_splitter")
        bottom.addWidget(self.frequency_plot)
        bottom.addWidget(self.convergence_plot)
        right = QSplitter(Qt.Orientation.Vertical)
        right.setObjectName("maps_splitter")
        right.addWidget(maps_box)
        right.addWidget(bottom)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        return right

    def view_settings(self) -> dict:
        return {"map_view": self.view.currentData()}

    def apply_view_settings(self, values: dict) -> None:
        index = self.view.findData(values.get("map_view"))
        if index >= 0:
            self.view.setCurrentIndex(index)

    @property
    def snapshot(self) -> ClassificationSnapshot | None:
        """The run as last drawn."""
        return self.snapshots.get(KIND)

    # --- drawing ---

    def clear_views(self) -> None:
        self.convergence_plot.clear_curves()
        names = tuple(self.model.class_names) if self.model is not None else ()
        tiles = [MapTile(k, name, f"{name} · no samples", None) for k, name in enumerate(names[:figures.MAX_TILES])]
        self.map_grid.show_maps(tiles, (-1.0, 1.0), self.view.currentData())
        self.frequency_plot.show_counts(np.zeros(len(names), dtype=np.int64), names)
        self.hover_label.setText(HOVER_HINT)

    def draw(self, kind: str, snapshot: ClassificationSnapshot) -> None:
        self._redraw()

    def _redraw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        view = self.view.currentData()
        classes = figures.shown_classes(snapshot.counts)
        maps = snapshot.maps.of(view, classes)
        levels = figures.map_levels(maps, view, snapshot.noise_mean if view == "mean" else None)
        titles = figures.map_titles(snapshot.class_names, snapshot.counts, snapshot.map_predictions)
        tiles = []
        for row, k in enumerate(classes):
            finite = bool(np.isfinite(maps[row]).all())
            note = "no samples yet" if snapshot.counts[k] == 0 else "undefined: every sample is in this class"
            image = maps[row].reshape(snapshot.image_shape) if finite else None
            tiles.append(MapTile(int(k), snapshot.class_names[k], titles[k], image, note))
        self.map_grid.show_maps(tiles, levels, view)
        self.frequency_plot.show_counts(snapshot.counts, snapshot.class_names)
        self.convergence_plot.show_reliability(snapshot.reliability_samples, snapshot.reliability_per_class,
                                               snapshot.reliability_mean, snapshot.class_names)
        if not self.hover_label.text() or self.hover_label.text() == HOVER_HINT:
            self.hover_label.setText(self._grid_note())

    def _grid_note(self) -> str:
        snapshot = self.snapshot
        if snapshot is not None and snapshot.counts.size > figures.MAX_TILES:
            return f"Showing the {figures.MAX_TILES} most frequent of {snapshot.counts.size:,} classes. {HOVER_HINT}"
        return HOVER_HINT

    # --- export ---

    def view_exports(self) -> list[ExportTarget]:
        return [
            ExportTarget("Map grid (as on screen)", (".png", ".svg"), lambda path: export_view(self.map_grid, path)),
            ExportTarget("Class-frequency plot", (".png", ".svg"), lambda path: export_view(self.frequency_plot, path)),
            ExportTarget("Convergence plot", (".png", ".svg"), lambda path: export_view(self.convergence_plot, path)),
            *super().view_exports(),
        ]


PANEL = ClassificationPanel
