"""Receptive fields: spike-triggered average and covariance of a layer's units (paper §3.3, Figs. 8, 20, 22).

Settings (built from the declaration) on the left, with a unit picker and
display options; four views on the right, each drawn from the run's latest
snapshot:

- Filters: every unit's STA (or its unnormalised form, or z-map) as it
  converges, the split-half reliability, the picked unit in detail;
- Kernels: STA beside the learned kernel for the first conv layer, and the
  distribution of their cosines (Fig. 22);
- STC: the picked unit's spectrum against the shuffle null's band and its
  significant eigenvectors;
- Activation maps: per-class mean activations of a layer for noise and real
  digits, and the distance between class means per layer (Fig. 20).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.sta import KIND, STA_VIEW_TITLES, STASnapshot
from ...figures.maps import map_levels
from ...figures.sta import MAX_FILTER_TILES, activation_tiles, filter_levels, normalised_tiles
from ..plots import FIGURE_FORMATS, export_view
from ..sta_plots import CosineHistogram, DistancePlot, FilterGrid, ReliabilityPlot, SpectrumPlot
from .base import ExportTarget, Panel

VIEWS = ("filters", "kernels", "stc", "maps")
VIEW_TITLES = {"filters": "Filters", "kernels": "Kernels", "stc": "Covariance (STC)", "maps": "Activation maps"}
SCALES = {"unit": "each unit its own", "shared": "shared by all units"}
FILTER_HELP = ("STA: the noise weighted by each unit's activation, Σa(x − x̄)/Σa, over the unit's receptive field; "
               "unnormalised: Σa(x − x̄)/N; z-map: the pixel's correlation with the activation in standard errors. "
               "Tile titles: unit · split-half r, or n = samples a rarely active unit responded to. "
               "Click a tile to pick its unit.")
HOVER_HINT = "Hover over a filter to read its pixels; click it to pick the unit."
MAP_HELP = ("Each class's mean activation minus the mean over classes: conv layers averaged over channels, vectors "
            "on a grid. Grey: no noise sample was given that class.")


def _small_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text)")
    return label


class STAPanel(Panel):
    title = "Receptive fields"

    def build_views(self) -> QWidget:
        self._map_layer = ""
        self.view = QComboBox()
        self.view.setObjectName("filter_view")
        self.view.setToolTip("STA as measured, its z-map, or its direction (unit norm)")
        for view in ("sta", "unnormalised", "zmap"):
            self.view.addItem(STA_VIEW_TITLES[view], view)
        self.scale = QComboBox()
        self.scale.setObjectName("filter_scale")
        self.scale.setToolTip("One colour scale for all units, or each unit on its own")
        for key, label in SCALES.items():
            self.scale.addItem(label, key)
        self.unit = QSpinBox()
        self.unit.setObjectName("unit")
        self.unit.setRange(0, 99_999)
        self.unit.setToolTip("the unit shown in detail (STC, reliability); click a filter tile to pick it")
        display = QGroupBox("Display")
        display_form = QFormLayout(display)
        display_form.addRow("Filters", self.view)
        display_form.addRow("Colour scale", self.scale)
        display_form.addRow("Unit", self.unit)
        display_form.addRow(_small_label(FILTER_HELP))
        self.extra_settings.addWidget(display)
        for widget in (self.view, self.scale):
            widget.currentIndexChanged.connect(self._redraw)
        self.unit.valueChanged.connect(self._unit_changed)

        self.views = QTabWidget()
        self.views.setObjectName("sta_views")
        self.views.addTab(self._build_filters(), VIEW_TITLES["filters"])
        self.views.addTab(self._build_kernels(), VIEW_TITLES["kernels"])
        self.views.addTab(self._build_stc(), VIEW_TITLES["stc"])
        self.views.addTab(self._build_maps(), VIEW_TITLES["maps"])
        self.views.currentChanged.connect(self._redraw)
        return self.views

    def _build_filters(self) -> QWidget:
        self.location = QLabel("Run the experiment or open a session to see the units' receptive fields.")
        self.location.setObjectName("location_label")
        self.location.setWordWrap(True)
        self.filter_grid = FilterGrid()
        self.hover_label = QLabel(HOVER_HINT)
        self.hover_label.setObjectName("hover_label")
        self.filter_grid.hovered.connect(lambda text: self.hover_label.setText(text or HOVER_HINT))
        self.filter_grid.picked.connect(self.unit.setValue)
        top = QWidget()
        layout = QVBoxLayout(top)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.location)
        layout.addWidget(self.filter_grid, 1)
        layout.addWidget(self.hover_label)
        self.reliability_plot = ReliabilityPlot()
        self.unit_grid = FilterGrid()
        self.unit_note = QLabel()
        self.unit_note.setObjectName("unit_note")
        self.unit_note.setWordWrap(True)
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.unit_grid, 1)
        detail_layout.addWidget(self.unit_note)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.setObjectName("filters_bottom_splitter")
        bottom.addWidget(self.reliability_plot)
        bottom.addWidget(detail)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("filters_splitter")
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        return splitter

    def _build_kernels(self) -> QWidget:
        self.kernel_sta_grid = FilterGrid(colorbar=False)
        self.kernel_grid = FilterGrid()
        self.kernel_sta_grid.picked.connect(self.unit.setValue)
        self.kernel_grid.picked.connect(self.unit.setValue)
        grids = QSplitter(Qt.Orientation.Horizontal)
        grids.setObjectName("kernels_splitter")
        for title, grid in (("STA (from noise)", self.kernel_sta_grid), ("Learned kernel (weights)", self.kernel_grid)):
            box = QWidget()
            layout = QVBoxLayout(box)
            layout.setContentsMargins(0, 0, 0, 0)
            heading = QLabel(f"<b>{title}</b>")
            heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(heading)
            layout.addWidget(grid, 1)
            grids.addWidget(box)
        self.cosine_plot = CosineHistogram()
        self.kernel_note = _small_label("Each tile is scaled to its own maximum: shapes compare, not scales.")
        self.kernel_note.setObjectName("kernel_note")
        bottom = QWidget()
        layout = QVBoxLayout(bottom)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.cosine_plot, 1)
        layout.addWidget(self.kernel_note)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("kernels_vertical_splitter")
        splitter.addWidget(grids)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        return splitter

    def _build_stc(self) -> QWidget:
        self.spectrum_plot = SpectrumPlot()
        self.eigen_grid = FilterGrid()
        self.stc_note = _small_label()
        self.stc_note.setObjectName("stc_note")
        lower = QWidget()
        layout = QVBoxLayout(lower)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.eigen_grid, 1)
        layout.addWidget(self.stc_note)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("stc_splitter")
        splitter.addWidget(self.spectrum_plot)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        return splitter

    def _build_maps(self) -> QWidget:
        self.map_layer = QComboBox()
        self.map_layer.setObjectName("map_layer")
        self.map_layer.setToolTip("The layer whose per-class activation maps are shown")
        self.map_layer.currentIndexChanged.connect(self._map_layer_chosen)
        row = QHBoxLayout()
        row.addWidget(QLabel("Layer"))
        row.addWidget(self.map_layer)
        row.addStretch(1)
        self.noise_maps = FilterGrid()
        self.real_maps = FilterGrid()
        self.maps_note = _small_label(MAP_HELP)
        self.maps_note.setObjectName("maps_note")
        grids = QWidget()
        layout = QVBoxLayout(grids)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        for title, grid in (("Noise, by predicted class", self.noise_maps), ("Real digits, by true class",
                                                                           self.real_maps)):
            layout.addWidget(QLabel(f"<b>{title}</b>"))
            layout.addWidget(grid, 1)
        layout.addWidget(self.maps_note)
        self.distance_plot = DistancePlot()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("maps_splitter")
        splitter.addWidget(grids)
        splitter.addWidget(self.distance_plot)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        return splitter

    # --- view settings ---

    def current_view(self) -> str:
        return VIEWS[self.views.currentIndex()]

    def show_view(self, view: str) -> None:
        self.views.setCurrentIndex(VIEWS.index(view))

    def view_settings(self) -> dict:
        return {"tab": self.current_view(), "filters": self.view.currentData(), "scale": self.scale.currentData(),
                "unit": self.unit.value(), "map_layer": self._map_layer}

    def apply_view_settings(self, values: dict) -> None:
        if values.get("tab") in VIEWS:
            self.show_view(values["tab"])
        for combo, key in ((self.view, "filters"), (self.scale, "scale")):
            index = combo.findData(values.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        if isinstance(values.get("unit"), int):
            self.unit.setValue(values["unit"])
        if isinstance(values.get("map_layer"), str):
            self._map_layer = values["map_layer"]
            index = self.map_layer.findData(self._map_layer)
            if index >= 0:
                self.map_layer.setCurrentIndex(index)

    def _unit_changed(self) -> None:
        for grid in (self.filter_grid, self.kernel_sta_grid, self.kernel_grid):
            grid.set_picked(self.unit.value())
        self._redraw()

    def _map_layer_chosen(self) -> None:
        layer = self.map_layer.currentData()
        if layer:
            self._map_layer = layer
            self._redraw()

    # --- drawing ---

    @property
    def snapshot(self) -> STASnapshot | None:
        return self.snapshots.get(KIND)

    def clear_views(self) -> None:
        for grid in (self.filter_grid, self.kernel_sta_grid, self.kernel_grid, self.unit_grid, self.eigen_grid,
                     self.noise_maps, self.real_maps):
            grid.show_message("")
        self.location.setText("Run the experiment or open a session to see the units' receptive fields.")
        self.reliability_plot.show_reliability(np.zeros(0), np.zeros((0, 0)), np.zeros(0), 0)
        self.cosine_plot.show_cosines(None)
        self.spectrum_plot.clear_spectrum("")
        self.distance_plot.show_maps(_EMPTY)
        self.unit_note.clear()
        self.stc_note.clear()
        self.hover_label.setText(HOVER_HINT)

    def draw(self, kind: str, snapshot: STASnapshot) -> None:
        self._redraw()

    def _redraw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self.location.setText(f"{snapshot.location_text()} · {snapshot.activation}-activation "
                              f"({snapshot.post_description}) · {snapshot.noise_label} noise · "
                              f"{snapshot.samples_done:,} samples · {snapshot.phase}")
        view = self.current_view()
        {"filters": self._draw_filters, "kernels": self._draw_kernels, "stc": self._draw_stc,
         "maps": self._draw_maps}[view](snapshot)

    def _unit(self, snapshot: STASnapshot) -> int:
        return min(self.unit.value(), snapshot.units - 1)

    def _draw_filters(self, snapshot: STASnapshot) -> None:
        view = self.view.currentData()
        images = snapshot.view(view)[:MAX_FILTER_TILES]
        if view != "zmap" and self.scale.currentData() == "unit":
            shown, levels, label = normalised_tiles(images), (-1.0, 1.0), "per-unit max |·| = 1"
        else:
            shown, levels, label = images, filter_levels(images, view), "z-score" if view == "zmap" else "value"
        titles = [self._tile_title(snapshot, u) for u in range(len(images))]
        self.filter_grid.show_tiles(list(shown), titles, list(range(len(images))), levels, label,
                                    picked=self._unit(snapshot), shape=images.shape[1:])
        mean = snapshot.reliability_mean
        unit = self._unit(snapshot)
        self.reliability_plot.show_reliability(snapshot.reliability_samples, snapshot.reliability, mean, unit)
        # The picked unit in detail: its STA and z-map (and kernel), each tile scaled to its own maximum.
        detail = [snapshot.sta[unit], snapshot.zmap[unit]]
        titles = [f"unit {unit} STA", f"unit {unit} z-map"]
        if snapshot.kernels is not None:
            assert snapshot.kernel_cosines is not None  # measured whenever there are kernels
            detail.append(snapshot.kernels[unit])
            cosine = snapshot.kernel_cosines[unit]
            titles.append(f"kernel · cos {cosine:.3f}" if np.isfinite(cosine) else "kernel")
        self.unit_grid.show_tiles(list(normalised_tiles(np.stack(detail))), titles, [-1] * len(detail), (-1.0, 1.0),
                                  "per-tile max |·| = 1")
        note = [f"unit {unit}: mean activation {snapshot.mean_activation[unit]:.4g}"]
        if snapshot.activation == "post":
            note.append(f"active on {snapshot.active_fraction[unit]:.1%} of samples")
        if snapshot.reliability.size and np.isfinite(snapshot.reliability[-1, unit]):
            note.append(f"split-half r {snapshot.reliability[-1, unit]:.3f}")
        if snapshot.units > MAX_FILTER_TILES:
            note.append(f"the grid shows units 0–{MAX_FILTER_TILES - 1} of {snapshot.units}")
        self.unit_note.setText(" · ".join(note))

    @staticmethod
    def _tile_title(snapshot: STASnapshot, unit: int) -> str:
        active = int(round(snapshot.active_fraction[unit] * snapshot.samples_done))
        if snapshot.activation == "post" and snapshot.samples_done and active == 0:
            return f"{unit} · silent"
        if snapshot.activation == "post" and active < 1000:  # a unit that rarely responds: its STA is mostly noise
            return f"{unit} · n={active:,}"
        if snapshot.reliability.size and np.isfinite(snapshot.reliability[-1, unit]):
            return f"{unit} · r {snapshot.reliability[-1, unit]:.2f}"
        return str(unit)

    def _draw_kernels(self, snapshot: STASnapshot) -> None:
        if snapshot.kernels is None:
            message = ("The kernel comparison is for the model's first conv layer (its receptive field is its "
                       f"kernel); {snapshot.layer} is not.")
            self.kernel_sta_grid.show_message(message)
            self.kernel_grid.show_message("")
            self.cosine_plot.show_cosines(None)
            self.kernel_note.setText(message)
            return
        units = min(snapshot.units, MAX_FILTER_TILES)
        cosines = snapshot.kernel_cosines
        assert cosines is not None  # measured whenever there are kernels
        titles = [f"{u}" + (f" · {cosines[u]:.3f}" if np.isfinite(cosines[u]) else " · silent") for u in range(units)]
        self.kernel_sta_grid.show_tiles(list(normalised_tiles(snapshot.sta[:units])), titles, list(range(units)),
                                        (-1.0, 1.0), picked=self._unit(snapshot))
        self.kernel_grid.show_tiles(list(normalised_tiles(snapshot.kernels[:units])), [str(u) for u in range(units)],
                                    list(range(units)), (-1.0, 1.0), "per-tile max |·| = 1",
                                    picked=self._unit(snapshot))
        self.cosine_plot.show_cosines(cosines)
        finite = cosines[np.isfinite(cosines)]
        summary = (f"cos(STA, kernel): mean {finite.mean():.4f}, min {finite.min():.4f} over {finite.size} units"
                   if finite.size else "no unit has responded yet")
        self.kernel_note.setText(f"{summary} · each tile is scaled to its own maximum: shapes compare, not scales. "
                                 "Tile titles: unit · cosine.")

    def _draw_stc(self, snapshot: STASnapshot) -> None:
        unit = self._unit(snapshot)
        self.spectrum_plot.show_unit(snapshot, unit)
        stc = snapshot.stc
        if stc is None:
            self.eigen_grid.show_message(snapshot.stc_note or "STC is off for this run.")
            self.stc_note.setText(snapshot.stc_note or "Turn on spike-triggered covariance in the settings.")
            return
        count = int(stc.count[unit]) if stc.tested[unit] else 0
        images = [snapshot.sta[unit]] + [stc.vectors[unit, k] for k in range(count)]
        titles = [f"unit {unit} STA"] + [f"λ = {stc.values[unit, k]:+.3g}" for k in range(count)]
        self.eigen_grid.show_tiles(list(normalised_tiles(np.stack(images))), titles, [-1] * len(images),
                                   (-1.0, 1.0), "per-tile max |·| = 1")
        caution = "" if "gaussian" in snapshot.noise_label else (
            " With non-Gaussian noise (uniform) STC also finds directions the noise's shape creates, not only the "
            "unit; Gaussian noise avoids this.")
        self.stc_note.setText(
            f"ΔC = STC − stimulus covariance over the receptive field, {stc.samples:,} samples. Significant: outside "
            f"the extremes of {stc.shuffles} shuffles (activations permuted across trials), found one at a time with "
            f"the ones found projected out. {int((stc.count[stc.tested] > 0).sum())} of {snapshot.units} units have "
            f"significant directions.{caution}")

    def _draw_maps(self, snapshot: STASnapshot) -> None:
        maps = snapshot.maps
        self.distance_plot.show_maps(snapshot if maps is not None else _EMPTY)
        if maps is None or not maps.layers:
            message = (maps.note if maps is not None and maps.note else "Activation maps are off (map samples 0).")
            self.noise_maps.show_message(message)
            self.real_maps.show_message("")
            self.maps_note.setText(message)
            return
        if [self.map_layer.itemData(i) for i in range(self.map_layer.count())] != list(maps.layers):
            self.map_layer.blockSignals(True)
            self.map_layer.clear()
            for name in maps.layers:
                self.map_layer.addItem(name, name)
            self.map_layer.blockSignals(False)
        index = self.map_layer.findData(self._map_layer)
        self.map_layer.blockSignals(True)
        self.map_layer.setCurrentIndex(index if index >= 0 else 0)
        self.map_layer.blockSignals(False)
        layer = self.map_layer.currentIndex()
        names = snapshot.class_names
        for grid, images, counts in ((self.noise_maps, maps.noise[layer], maps.noise_counts),
                                     (self.real_maps, maps.real[layer] if maps.real is not None else None,
                                      maps.real_counts)):
            if images is None:
                grid.show_message(maps.note or "real-digit maps come after the first unit of work")
                continue
            assert counts is not None  # counted wherever there are maps
            shown = activation_tiles(images, counts)
            levels = map_levels(shown, "centered", 0.0, counts)  # the exported figure's rule, robust to tiny n
            tiles = [shown[k] if counts[k] > 0 else None for k in range(len(names))]
            titles = [f"{names[k]} · n={counts[k]:,}" for k in range(len(names))]
            grid.show_tiles(tiles, titles, [-1] * len(names), levels, "− mean over classes")
        parts = [MAP_HELP]
        if maps.similarity is not None and np.isfinite(maps.similarity[layer]):
            parts.append(f"{maps.layers[layer]}: noise and real class means correlate r = {maps.similarity[layer]:.2f} "
                         "on average over the classes both have.")
        if maps.note:
            parts.append(maps.note)
        self.maps_note.setText(" ".join(parts))

    # --- export ---

    def view_exports(self) -> list[ExportTarget]:
        return [
            ExportTarget("Filter grid (as on screen)", FIGURE_FORMATS, lambda path: export_view(self.filter_grid, path)),
            ExportTarget("STC spectrum of the picked unit (as on screen)", FIGURE_FORMATS,
                         lambda path: export_view(self.spectrum_plot, path)),
            ExportTarget("Class-distance plot (as on screen)", FIGURE_FORMATS,
                         lambda path: export_view(self.distance_plot, path)),
            *super().view_exports(),
        ]


class _Empty:
    maps = None


_EMPTY = _Empty()

PANEL = STAPanel
