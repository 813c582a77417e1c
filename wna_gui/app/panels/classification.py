"""Noise stimulus → classification images (bias maps), the paper's Fig. 2.

Settings on the left; the per-class map grid, the class-frequency bars and the
split-half convergence curves on the right. The engine's
ClassificationImageExperiment does all the work.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ... import figures
from ...core.classification import (
    KIND,
    WEIGHTINGS,
    ClassificationImageConfig,
    ClassificationImageExperiment,
    ClassificationImageState,
    ClassificationSnapshot,
)
from ...core.models import LoadedModel
from ...core.noise import NOISE_KINDS
from ..widgets import double_spin, int_spin
from ..plots import ClassFrequencyPlot, ConvergencePlot, MapGrid, MapTile, export_view
from .base import ExperimentFactory, ExportTarget, Panel

VIEWS = {"zmap": "z-map", "mean": "mean", "centered": "mean − grand mean"}
NOISE_LABELS = {"uniform": "Uniform U[low, high]", "gaussian": "Gaussian N(mean, std²)"}
WEIGHTING_LABELS = {"none": "none", "confidence": "softmax confidence"}
VIEW_HELP = ("Each map averages the noise the model assigned to that class: mean; minus the average of all "
             "noise; or that difference in standard errors (z). One colour scale for all maps. "
             "Grey: no noise sample was assigned to the class yet.")
HOVER_HINT = "Hover over a map to read its pixel values."
# More tiles than this would be unreadable (ImageNet has 1,000 classes): show the most frequent.


class ClassificationPanel(Panel):
    kind = KIND
    title = "Classification images"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state: ClassificationImageState | None = None
        self._snapshot: ClassificationSnapshot | None = None
        self._build_settings()
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
        layout = QHBoxLayout(self)
        layout.addWidget(self._settings_area)
        layout.addWidget(right, 1)
        self.apply_settings(self._defaults())

    # --- settings widgets ---

    def _build_settings(self) -> None:
        self.noise_kind = QComboBox()
        for kind in NOISE_KINDS:
            self.noise_kind.addItem(NOISE_LABELS[kind], kind)
        self.noise_low, self.noise_high = double_spin(-10, 10, 0.05), double_spin(-10, 10, 0.05)
        self.noise_mean, self.noise_std = double_spin(-10, 10, 0.05), double_spin(0.001, 10, 0.05)
        self.noise_clip = QCheckBox("clip to [low, high]")
        stimulus = QGroupBox("Noise stimulus")
        self._stimulus_form = QFormLayout(stimulus)
        self._stimulus_form.addRow("Noise", self.noise_kind)
        self._stimulus_form.addRow("Mean", self.noise_mean)
        self._stimulus_form.addRow("Std", self.noise_std)
        self._stimulus_form.addRow("", self.noise_clip)
        self._stimulus_form.addRow("Low", self.noise_low)
        self._stimulus_form.addRow("High", self.noise_high)

        self.samples = int_spin(1, 2_000_000_000, 10_000)
        self.batch_size = int_spin(1, 1_000_000, 100)
        self.seed = int_spin(0, 2**31 - 1, 1)
        self.seed.setGroupSeparatorShown(False)
        self.weighting = QComboBox()
        for weighting in WEIGHTINGS:
            self.weighting.addItem(WEIGHTING_LABELS[weighting], weighting)
        run = QGroupBox("Run")
        run_form = QFormLayout(run)
        run_form.addRow("Sample budget", self.samples)
        run_form.addRow("Batch size", self.batch_size)
        run_form.addRow("Seed", self.seed)
        run_form.addRow("Weighting", self.weighting)
        self.plan_label = QLabel()
        self.plan_label.setObjectName("plan_label")
        self.plan_label.setWordWrap(True)
        run_form.addRow(self.plan_label)

        self.view = QComboBox()
        for view, label in VIEWS.items():
            self.view.addItem(label, view)
        display = QGroupBox("Display")
        display_form = QFormLayout(display)
        display_form.addRow("Maps", self.view)
        legend = QLabel(VIEW_HELP)
        legend.setWordWrap(True)
        legend.setStyleSheet("color: palette(placeholder-text)")
        display_form.addRow(legend)
        self.view.currentIndexChanged.connect(self._redraw)

        column = QWidget()
        column_layout = QVBoxLayout(column)
        for box in (stimulus, run, display):
            column_layout.addWidget(box)
        column_layout.addStretch(1)
        self._locked_during_runs = (stimulus, run)
        self._settings_area = QScrollArea()
        self._settings_area.setWidget(column)
        self._settings_area.setWidgetResizable(True)
        self._settings_area.setFixedWidth(column.sizeHint().width() + 24)
        self._settings_area.setFrameShape(QScrollArea.Shape.NoFrame)

        for box in (self.noise_low, self.noise_high, self.noise_mean, self.noise_std):
            box.valueChanged.connect(self._settings_edited)
        for box in (self.samples, self.batch_size, self.seed):
            box.valueChanged.connect(self._settings_edited)
        for combo in (self.noise_kind, self.weighting, self.view):
            combo.currentIndexChanged.connect(self._settings_edited)
        self.noise_clip.toggled.connect(self._settings_edited)

    @staticmethod
    def _defaults() -> dict:
        return {**ClassificationImageConfig().to_dict(), "view": "zmap"}

    def settings(self) -> dict:
        return {
            "noise": {"kind": self.noise_kind.currentData(), "low": self.noise_low.value(),
                      "high": self.noise_high.value(), "mean": self.noise_mean.value(),
                      "std": self.noise_std.value(), "clip": self.noise_clip.isChecked()},
            "samples": self.samples.value(),
            "batch_size": self.batch_size.value(),
            "seed": self.seed.value(),
            "weighting": self.weighting.currentData(),
            "view": self.view.currentData(),
        }

    def apply_settings(self, values: dict) -> None:
        noise = values.get("noise", {})
        for key, box in (("low", self.noise_low), ("high", self.noise_high), ("mean", self.noise_mean),
                         ("std", self.noise_std)):
            if key in noise:
                box.setValue(float(noise[key]))
        if "clip" in noise:
            self.noise_clip.setChecked(bool(noise["clip"]))
        for key, box in (("samples", self.samples), ("batch_size", self.batch_size), ("seed", self.seed)):
            if key in values:
                box.setValue(int(values[key]))
        for combo, value in ((self.noise_kind, noise.get("kind")), (self.weighting, values.get("weighting")),
                             (self.view, values.get("view"))):
            index = combo.findData(value)
            if index >= 0:
                combo.setCurrentIndex(index)
        self._settings_edited()

    def config(self) -> ClassificationImageConfig:
        """The run the settings describe; ValueError (one line) when they are invalid."""
        return ClassificationImageConfig.from_dict(self.settings())

    def _settings_edited(self) -> None:
        gaussian = self.noise_kind.currentData() == "gaussian"
        for widget, visible in ((self.noise_mean, gaussian), (self.noise_std, gaussian), (self.noise_clip, gaussian),
                                (self.noise_low, not gaussian or self.noise_clip.isChecked()),
                                (self.noise_high, not gaussian or self.noise_clip.isChecked())):
            self._stimulus_form.setRowVisible(widget, visible)
        self.plan_label.setText(self._plan())

    def _plan(self) -> str:
        """What Start will do with these settings, so continuing versus restarting is never a surprise."""
        try:
            config = self.config()
        except ValueError as exc:
            return f"Invalid settings: {exc}"
        state = self._state
        if state is None or state.samples_done == 0:
            return "Start begins a new run."
        if not self._continues(state, config):
            return "Settings differ from the current run: Start begins a new run and replaces its results."
        if config.samples <= state.samples_done:
            return f"The run has {state.samples_done:,} samples; raise the budget to continue it."
        return f"Start continues the run from {state.samples_done:,} to {config.samples:,} samples."

    @staticmethod
    def _continues(state: ClassificationImageState, config: ClassificationImageConfig) -> bool:
        """Whether ``config`` describes the same noise stream as ``state`` (only the budget differs)."""
        return replace(state.config, samples=config.samples, snapshot_seconds=config.snapshot_seconds) == config

    def set_running(self, running: bool) -> None:
        for box in self._locked_during_runs:
            box.setEnabled(not running)
        self.plan_label.setText("Running…" if running else self._plan())

    # --- running ---

    def experiment_factory(self, model: LoadedModel, device: str) -> ExperimentFactory:
        config = self.config()
        state = self._state
        if state is not None and state.samples_done and self._continues(state, config):
            if config.samples <= state.samples_done:
                raise ValueError(f"the run already has {state.samples_done:,} samples; "
                                 "raise the sample budget to continue it")
            state.with_budget(config.samples)
        else:
            state = ClassificationImageState(config, model.n_classes, tuple(model.input_spec.shape),
                                             tuple(model.class_names))
            self._state = state
        return lambda control: ClassificationImageExperiment(model, state=state, device=device, control=control)

    def preview_factory(self, model: LoadedModel):
        state = self._state
        if state is None:
            return None
        # A preview draws no noise, so the CPU shows sessions made on any device.
        return lambda: [ClassificationImageExperiment(model, state=state, device="cpu").snapshot()]

    def session_states(self) -> dict:
        return {} if self._state is None else {KIND: self._state}

    def restore(self, states: dict, model: LoadedModel) -> None:
        state = self._state = states.get(KIND)
        self._snapshot = None
        if state is not None:
            self.apply_settings(state.config.to_dict())
        self.convergence_plot.clear_curves()
        self._show_empty(model)
        self.plan_label.setText(self._plan())

    # --- drawing ---

    def _show_empty(self, model: LoadedModel) -> None:
        names = tuple(model.class_names)
        tiles = [MapTile(k, name, f"{name} · no samples", None) for k, name in enumerate(names[:figures.MAX_TILES])]
        self.map_grid.show_maps(tiles, (-1.0, 1.0), self.view.currentData())
        self.frequency_plot.show_counts(np.zeros(len(names), dtype=np.int64), names)
        self.hover_label.setText(HOVER_HINT)

    def show_snapshot(self, snapshot: ClassificationSnapshot) -> None:
        self._snapshot = snapshot
        self._redraw()

    def _redraw(self) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        view = self.view.currentData()
        classes = figures.shown_classes(snapshot.counts)
        maps = snapshot.maps.of(view, classes)
        levels = self.levels(maps, view)
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

    def levels(self, maps: np.ndarray, view: str) -> tuple[float, float]:
        center = self._state.config.noise.expected_mean if view == "mean" and self._state is not None else None
        return figures.map_levels(maps, view, center)

    def _grid_note(self) -> str:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.counts.size > figures.MAX_TILES:
            return f"Showing the {figures.MAX_TILES} most frequent of {snapshot.counts.size:,} classes. {HOVER_HINT}"
        return HOVER_HINT

    # --- export ---

    def export_targets(self) -> list[ExportTarget]:
        return [
            ExportTarget("Map grid: publication figure with titles", figures.FIGURE_FORMATS, self._export_figure),
            ExportTarget("Map grid (as on screen)", (".png", ".svg"), lambda path: export_view(self.map_grid, path)),
            ExportTarget("Class-frequency plot", (".png", ".svg"), lambda path: export_view(self.frequency_plot, path)),
            ExportTarget("Convergence plot", (".png", ".svg"), lambda path: export_view(self.convergence_plot, path)),
            ExportTarget("Maps of the current view (.npz: maps of the classes seen, classes, counts)", (".npz",),
                         self._export_maps),
            ExportTarget("Class table: counts, map predictions, reliability", (".csv",), self._export_table),
            *super().export_targets(),
        ]

    def _exported_snapshot(self) -> ClassificationSnapshot:
        if self._snapshot is None:
            raise ValueError("nothing to export yet: run the experiment or open a session first")
        return self._snapshot

    def _export_figure(self, path: Path) -> Path:
        snapshot = self._exported_snapshot()
        view = self.view.currentData()
        classes = figures.shown_classes(snapshot.counts)
        maps = snapshot.maps.of(view, classes).reshape(len(classes), *snapshot.image_shape)
        titles = figures.map_titles(snapshot.class_names, snapshot.counts, snapshot.map_predictions)
        return figures.save_map_grid(
            maps, [titles[k] for k in classes], path, view=view, levels=self.levels(maps, view),
            title=f"Classification images ({VIEWS[view]}), N = {snapshot.samples_done:,}")

    def _export_maps(self, path: Path) -> Path:
        return self._exported_snapshot().save_arrays(path, self.view.currentData())

    def _export_table(self, path: Path) -> Path:
        snapshot = self._exported_snapshot()
        reliability = (snapshot.reliability_per_class[-1] if snapshot.reliability_per_class.size
                       else np.full(len(snapshot.class_names), np.nan))
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "name", "count", "map_prediction", "split_half_r"])
            for k, name in enumerate(snapshot.class_names):
                prediction = int(snapshot.map_predictions[k])
                writer.writerow([k, name, int(snapshot.counts[k]),
                                 snapshot.class_names[prediction] if prediction >= 0 else "",
                                 f"{reliability[k]:.6f}" if np.isfinite(reliability[k]) else ""])
        return Path(path)
