"""Noise stimulus → per-class maps: the paper's classification images (Fig. 2) and maps for every class.

Settings (built from the declaration) on the left; on the right an estimator selector over the live
per-class map grid, a slider over the stored checkpoints (1e3, 1e4, … samples), the class-frequency bars
and the convergence race of the estimators (split-half reliability against samples).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ... import figures
from ...core.classification import KIND, ClassificationSnapshot, figure_title, mapped_reliability_text
from ...core.estimators import ESTIMATOR_NAMES, ESTIMATORS, memory_text
from ...core.experiment import plan_run
from ..plots import FIGURE_FORMATS, ClassFrequencyPlot, ConvergencePlot, MapGrid, MapTile, RaceCurve, export_view
from .base import ExportTarget, Panel

VIEW_HELP = ("One colour scale for all maps. A grey tile has no map yet. z-maps are in standard errors under a "
             "null observer: |z| > 1.96 marks pixels unlikely by chance.")
RELIABILITY_MODES = {"corrected": "Spearman–Brown (whole run)", "raw": "raw split-half r"}
RELIABILITY_HELP = ("Convergence: the correlation of each class's map from even vs odd noise blocks. The race "
                    "averages over all classes (a class without a map counts 0, so estimators compare); the facts "
                    "line averages over the classes with a map and says how many have none. Spearman–Brown, "
                    "2r/(1 + r), is the reliability of the map of all samples; the raw r is that of half of them.")
HOVER_HINT = "Hover over a map to read its pixel values."
NOT_RECORDED = "not recorded at this checkpoint"


class ClassificationPanel(Panel):
    def build_views(self) -> QWidget:
        # --- display options (left column, below the settings) ---
        self.view = QComboBox()
        self.view.setObjectName("map_view")
        self.view.setToolTip("z-map: standard errors from chance; mean: the average noise; "
                             "centred: minus the grand mean")
        for view in ("zmap", "mean", "centered"):
            self.view.addItem(ESTIMATORS["hard"].view_titles[view], view)
        self.reliability_mode = QComboBox()
        self.reliability_mode.setObjectName("reliability_mode")
        self.reliability_mode.setToolTip("Spearman–Brown: reliability of the map of all samples; "
                                         "raw: correlation of the two halves")
        for mode, label in RELIABILITY_MODES.items():
            self.reliability_mode.addItem(label, mode)
        self.limit_mode = QComboBox()
        self.limit_mode.setObjectName("limit_mode")
        self.limit_mode.addItem("robust, shared", "robust")
        self.limit_mode.addItem("set by hand", "manual")
        self.limit_mode.setToolTip(figures.levels_caption(counts=()) + ". A class with under "
                                   f"{figures.maps.MIN_CLASS_SHARE:.0%} of the largest class's samples does not "
                                   "set the scale (its map is mostly noise).")
        self.limit_value = QDoubleSpinBox()
        self.limit_value.setObjectName("limit_value")
        self.limit_value.setDecimals(4)
        self.limit_value.setRange(1e-4, 1e3)
        self.limit_value.setValue(0.05)
        self.limit_value.setPrefix("± ")
        self.limit_value.setToolTip("Half-range of the colour scale about its centre (the view's units)")
        self.colormap = QComboBox()
        self.colormap.setObjectName("colormap")
        for name, label in figures.COLORMAPS.items():
            self.colormap.addItem(label, name)
        self.colormap.setToolTip("Colour map of 1-channel maps (diverging: centre white or grey)")
        self.hide_empty = QCheckBox("Hide classes without a map")
        self.hide_empty.setObjectName("hide_empty")
        self.hide_empty.setToolTip("Leave out the grey tiles of classes the estimator has no map of yet")
        display = QGroupBox("Display")
        display_form = QFormLayout(display)
        display_form.addRow("Maps", self.view)
        display_form.addRow("Colour limits", self.limit_mode)
        display_form.addRow("", self.limit_value)
        display_form.addRow("Colour map", self.colormap)
        display_form.addRow(self.hide_empty)
        # Structured noise (Gabor-PCA): the hard label's maps averaged over the scores and mapped back, k = B·STA_a.
        self.score_space = QCheckBox("Hard label in score space (k = B·STA)")
        self.score_space.setObjectName("score_space")
        self.score_space.setToolTip("Structured noise: average the noise's scores per class and map them back "
                                    "to pixels, instead of averaging the (scaled) noise images")
        self.score_space.setVisible(False)
        display_form.addRow(self.score_space)
        display_form.addRow("Reliability", self.reliability_mode)
        self.legend = QLabel()
        self.legend.setObjectName("estimator_legend")
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: palette(placeholder-text)")
        display_form.addRow(self.legend)
        self.view.currentIndexChanged.connect(self._redraw)
        self.reliability_mode.currentIndexChanged.connect(self._redraw)
        self.limit_mode.currentIndexChanged.connect(self._limits_chosen)
        self.limit_value.valueChanged.connect(self._redraw)
        self.colormap.currentIndexChanged.connect(self._redraw)
        self.hide_empty.toggled.connect(self._redraw)
        self.score_space.toggled.connect(self._redraw)
        self.limit_value.setEnabled(False)
        self.extra_settings.addWidget(display)

        # --- the estimator selector and the checkpoint slider, over the grid ---
        self.estimator_buttons = QButtonGroup(self)
        self.estimator_buttons.setExclusive(True)
        selector = QHBoxLayout()
        selector.setSpacing(0)
        selector.addWidget(QLabel("Estimator "))
        for index, name in enumerate(ESTIMATOR_NAMES):
            button = QPushButton(ESTIMATORS[name].label)
            button.setObjectName(f"estimator_{name}")
            button.setCheckable(True)
            button.setToolTip(ESTIMATORS[name].description)
            button.setProperty("estimator", name)
            self.estimator_buttons.addButton(button, index)
            selector.addWidget(button)
        self.estimator_buttons.button(1).setChecked(True)  # logit kernel: every class has a map within seconds
        self.estimator_buttons.idToggled.connect(lambda _id, checked: self._estimator_chosen() if checked else None)
        selector.addStretch(1)
        history = QHBoxLayout()  # its own row: the selector and the slider share no width
        self.checkpoint_slider = QSlider(Qt.Orientation.Horizontal)
        self.checkpoint_slider.setObjectName("checkpoint_slider")
        self.checkpoint_slider.setToolTip("Browse the maps as they were at 1,000, 10,000, … samples; right: now")
        self.checkpoint_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.checkpoint_slider.setPageStep(1)
        self.checkpoint_slider.setMinimumWidth(140)
        self.checkpoint_slider.setMaximumWidth(260)
        self.checkpoint_slider.valueChanged.connect(self._redraw)
        self.checkpoint_label = QLabel()
        self.checkpoint_label.setObjectName("checkpoint_label")
        self.checkpoint_label.setMinimumWidth(110)
        history.addWidget(QLabel("Samples "))
        history.addWidget(self.checkpoint_slider)
        history.addSpacing(6)
        history.addWidget(self.checkpoint_label)
        history.addStretch(1)
        self._checkpoints: list[int] = []

        self.map_grid = MapGrid()
        self.frequency_plot = ClassFrequencyPlot()
        self.convergence_plot = ConvergencePlot()
        self.hover_label = QLabel(HOVER_HINT)
        self.hover_label.setObjectName("hover_label")
        self.facts_label = QLabel()
        self.facts_label.setObjectName("estimator_facts")
        self.facts_label.setWordWrap(True)
        self.map_grid.hovered.connect(lambda text: self.hover_label.setText(text or self._grid_note()))
        maps_box = QWidget()
        maps_layout = QVBoxLayout(maps_box)
        maps_layout.setContentsMargins(0, 0, 0, 0)
        maps_layout.addLayout(selector)
        maps_layout.addLayout(history)
        maps_layout.addWidget(self.map_grid, 1)
        maps_layout.addWidget(self.facts_label)
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
        self._update_slider(None)
        self._update_selector()
        return right

    # --- view options ---

    @property
    def estimator(self) -> str:
        """The estimator whose maps the grid shows."""
        button = self.estimator_buttons.checkedButton()
        return button.property("estimator") if button is not None else "hard"

    def set_estimator(self, name: str) -> None:
        self.estimator_buttons.button(ESTIMATOR_NAMES.index(name)).setChecked(True)

    def view_settings(self) -> dict:
        return {"map_view": self.view.currentData(), "estimator": self.estimator,
                "reliability": self.reliability_mode.currentData(), "limits": self.limit_mode.currentData(),
                "limit": self.limit_value.value(), "colormap": self.colormap.currentData(),
                "hide_empty": self.hide_empty.isChecked()}

    def apply_view_settings(self, values: dict) -> None:
        index = self.view.findData(values.get("map_view"))
        if index >= 0:
            self.view.setCurrentIndex(index)
        if values.get("estimator") in ESTIMATOR_NAMES:
            self.set_estimator(values["estimator"])
        for combo, key in ((self.reliability_mode, "reliability"), (self.limit_mode, "limits"),
                           (self.colormap, "colormap")):
            index = combo.findData(values.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        if isinstance(values.get("limit"), (int, float)):
            self.limit_value.setValue(float(values["limit"]))
        self.hide_empty.setChecked(bool(values.get("hide_empty", False)))
        self._update_selector()

    def _limits_chosen(self) -> None:
        manual = self.limit_mode.currentData() == "manual"
        if manual and self.snapshot is not None:  # start from what is on screen
            self.limit_value.blockSignals(True)
            self.limit_value.setValue(max(1e-4, (self.map_grid.levels[1] - self.map_grid.levels[0]) / 2))
            self.limit_value.blockSignals(False)
        self.limit_value.setEnabled(manual)
        self._redraw()

    def form_changed(self, kind: str) -> None:
        if self.snapshot is None:
            self._update_selector()

    def plan_text(self) -> str:
        """What Start will do, and for a new run how much memory its accumulators take."""
        text = super().plan_text()
        if self.running_kind is not None or self.model is None:
            return text
        try:
            config = self.forms[KIND].config()
        except (ValueError, TypeError):
            return text
        if plan_run(self.specs[KIND], self.states.get(KIND), config).action != "new":
            return text
        return f"{text} {memory_text(config.estimators, self.model.n_classes, self.model.input_spec.n_pixels)}"

    @property
    def snapshot(self) -> ClassificationSnapshot | None:
        """The run as last drawn."""
        return self.snapshots.get(KIND)

    # --- drawing ---

    def _shown_estimators(self) -> tuple[str, ...]:
        """The estimators of the run shown, else those the settings would run."""
        if self.snapshot is not None:
            return self.snapshot.estimators
        try:
            return self.forms[KIND].config().estimators
        except (ValueError, TypeError):
            return ESTIMATOR_NAMES

    def _update_selector(self) -> None:
        """Offer the estimators there are maps of; keep the choice if it is among them."""
        available = self._shown_estimators()
        for button in self.estimator_buttons.buttons():
            button.setVisible(button.property("estimator") in available)
        if self.estimator not in available and available:
            self.estimator_buttons.blockSignals(True)
            self.set_estimator("logit" if "logit" in available else available[0])
            self.estimator_buttons.blockSignals(False)
        info = ESTIMATORS[self.estimator]
        for index in range(self.view.count()):
            self.view.setItemText(index, info.view_titles[self.view.itemData(index)])
        self.legend.setText(f"{info.description} {VIEW_HELP}\n\n{RELIABILITY_HELP}")

    def _estimator_chosen(self) -> None:
        self._update_selector()
        self._redraw()

    def _update_slider(self, snapshot: ClassificationSnapshot | None) -> None:
        """Positions: each checkpoint the run recorded, then now (the right end)."""
        checkpoints = sorted(snapshot.checkpoints) if snapshot is not None else []
        if snapshot is not None and checkpoints and checkpoints[-1] >= snapshot.samples_done:
            checkpoints = checkpoints[:-1]  # now is that checkpoint
        if checkpoints == self._checkpoints and self.checkpoint_slider.maximum() == len(checkpoints):
            return
        at_end = self.checkpoint_slider.value() >= self.checkpoint_slider.maximum()
        self._checkpoints = checkpoints
        self.checkpoint_slider.blockSignals(True)
        self.checkpoint_slider.setRange(0, len(checkpoints))
        if at_end:
            self.checkpoint_slider.setValue(len(checkpoints))
        self.checkpoint_slider.blockSignals(False)
        self.checkpoint_slider.setEnabled(bool(checkpoints))

    def selected_checkpoint(self) -> int | None:
        """The checkpoint the slider shows (run samples), or None for now."""
        value = self.checkpoint_slider.value()
        return self._checkpoints[value] if value < len(self._checkpoints) else None

    def clear_views(self) -> None:
        self.convergence_plot.clear_curves()
        names = tuple(self.model.class_names) if self.model is not None else ()
        # The title says "no samples": the grey tile needs no note repeating it.
        tiles = [MapTile(k, name, f"{name} · no samples", None, "")
                 for k, name in enumerate(names[:figures.MAX_TILES])]
        self.map_grid.show_maps(tiles, (-1.0, 1.0), self.view.currentData())
        self.frequency_plot.show_counts(np.zeros(len(names), dtype=np.int64), names)
        self.hover_label.setText(HOVER_HINT)
        self.facts_label.setText("")
        self._update_slider(None)
        self.checkpoint_label.setText("")
        self._update_selector()

    def draw(self, kind: str, snapshot: ClassificationSnapshot) -> None:
        self.score_space.setVisible(snapshot.score_maps is not None)
        self._update_slider(snapshot)
        self._update_selector()
        self._redraw()

    def _shown(self, snapshot: ClassificationSnapshot):
        """What the grid shows with the display options: (estimator, view, checkpoint, estimated maps,
        classes, their maps (R, F), levels); classes without a map left out when so chosen."""
        estimator = self.estimator if self.estimator in snapshot.estimators else snapshot.estimators[0]
        info, view, checkpoint = ESTIMATORS[estimator], self.view.currentData(), self.selected_checkpoint()
        estimated = snapshot.maps_of(estimator, checkpoint)
        in_scores = (estimator == "hard" and checkpoint is None and snapshot.score_maps is not None
                     and self.score_space.isChecked())
        if in_scores:
            estimated = snapshot.score_maps
        classes = figures.shown_classes(snapshot.counts)
        maps = estimated.of(view, classes) if estimated is not None else np.full((len(classes), 1), np.nan)
        if self.hide_empty.isChecked() and estimated is not None:
            keep = np.isfinite(maps).all(1)
            classes, maps = classes[keep], maps[keep]
        support = estimated.support[classes] if estimated is not None and estimated.support.size else None
        manual = self.limit_value.value() if self.limit_mode.currentData() == "manual" else None
        centre = snapshot.noise_mean if view == "mean" and info.image_like and not in_scores else 0.0
        levels = figures.map_levels(maps, view, centre, support, manual)
        return estimator, view, checkpoint, estimated, classes, maps, levels

    def _redraw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        estimator, view, checkpoint, estimated, classes, maps, levels = self._shown(snapshot)
        info = ESTIMATORS[estimator]
        titles = self._titles(snapshot, estimator, checkpoint)
        tiles = []
        for row, k in enumerate(classes):
            finite = estimated is not None and bool(np.isfinite(maps[row]).all())
            image = maps[row].reshape(snapshot.image_shape) if finite else None
            # A title that already says "no samples" needs no note saying it again inside the tile.
            note = "" if titles[k].endswith("no samples") else self._empty_note(snapshot, estimator, estimated,
                                                                                 int(k), view)
            tiles.append(MapTile(int(k), snapshot.class_names[k], titles[k], image, note))
        self.map_grid.show_maps(tiles, levels, view, info.view_labels[view], self.colormap.currentData())
        self.frequency_plot.show_counts(snapshot.counts, snapshot.class_names)
        self._draw_race(snapshot, estimator)
        self.checkpoint_label.setText(self._checkpoint_text(snapshot, estimated, checkpoint))
        self.facts_label.setText(self._facts(snapshot, estimator, checkpoint))
        if not self.hover_label.text() or self.hover_label.text() == HOVER_HINT:
            self.hover_label.setText(self._grid_note())

    @staticmethod
    def _titles(snapshot: ClassificationSnapshot, estimator: str, checkpoint: int | None) -> list[str]:
        if checkpoint is None and estimator == "hard":
            return figures.map_titles(snapshot.class_names, snapshot.counts, snapshot.map_predictions)
        estimated = snapshot.maps_of(estimator, checkpoint)
        if estimated is None:
            return list(snapshot.class_names)
        live = checkpoint is None
        return figures.estimator_titles(estimator, snapshot.class_names, estimated.support,
                                        snapshot.predictions.get(estimator) if live else None,
                                        snapshot.latest_reliability(estimator) if live else None)

    @staticmethod
    def _empty_note(snapshot, estimator: str, estimated, k: int, view: str) -> str:
        """Why tile k has no map."""
        if estimated is None:
            return NOT_RECORDED
        if np.isfinite(estimated.of("mean", [k])).all():  # the map exists; this view of it is undefined
            if not np.isfinite(estimated.support).all():
                return NOT_RECORDED  # a checkpoint of an older session kept only the hard label's mean maps
            if estimator == "hard" and snapshot.counts[k] == snapshot.samples_done:
                return "undefined: every sample is in this class"
            return "undefined with so few samples"
        return figures.EMPTY_NOTES[estimator]

    def _draw_race(self, snapshot: ClassificationSnapshot, selected: str) -> None:
        corrected = self.reliability_mode.currentData() == "corrected"
        curves = [RaceCurve(name, ESTIMATORS[name].label, convergence.samples, convergence.mean(corrected))
                  for name, convergence in snapshot.convergence.items()]
        chosen = snapshot.convergence.get(selected)
        if chosen is None:
            samples, values = np.zeros(0), np.zeros((0, snapshot.n_classes))
        else:
            samples, values = chosen.samples, chosen.values(corrected)
        self.convergence_plot.show_race(curves, selected, samples, values, snapshot.class_names, corrected)

    @staticmethod
    def _checkpoint_text(snapshot: ClassificationSnapshot, estimated, checkpoint: int | None) -> str:
        if checkpoint is None:
            return f"now: {snapshot.samples_done:,}"
        used = "" if estimated is None or estimated.samples in (checkpoint, 0) else f" ({estimated.samples:,} used)"
        return f"at {checkpoint:,}{used}"

    @staticmethod
    def _facts(snapshot: ClassificationSnapshot, estimator: str, checkpoint: int | None = None) -> str:
        """One line about the estimator shown (at the slider's checkpoint): its samples and reliability, the
        Stein check, signal accuracy."""
        info = ESTIMATORS[estimator]
        estimated = snapshot.maps_of(estimator, checkpoint)
        if estimated is None:
            return f"{info.title}: {NOT_RECORDED} ({checkpoint:,} samples)"
        with_maps = int(np.isfinite(estimated.of("mean")).all(1).sum())
        parts = [f"{info.title}: maps of {with_maps} of {snapshot.n_classes:,} classes from "
                 f"{estimated.samples:,} samples"]
        if checkpoint is not None:  # what follows describes the run now, not the checkpoint
            return parts[0] + f" (at the {checkpoint:,}-sample checkpoint; the slider's right end shows now)"
        convergence = snapshot.convergence.get(estimator)
        if convergence is not None and convergence.per_class.shape[0] and np.isfinite(convergence.mapped_mean()[-1]):
            parts.append(mapped_reliability_text(convergence))
        if estimator == "gradient":
            parts.append(f"every {snapshot.gradient_every} block{'s' if snapshot.gradient_every > 1 else ''}")
            if snapshot.stein_cosine is not None and np.isfinite(snapshot.stein_cosine).any():
                exact = ("Stein's lemma makes them equal for Gaussian noise" if snapshot.noise_kind == "gaussian"
                         else "equal for Gaussian noise, close for this noise")
                parts.append(f"Stein check: cosine with the logit kernel {np.nanmin(snapshot.stein_cosine):.3f}–"
                             f"{np.nanmax(snapshot.stein_cosine):.3f} ({exact})")
        if estimator == "signal" and snapshot.signal_correct is not None and np.isfinite(snapshot.signal_correct):
            parts.append(f"γ = {snapshot.signal_gamma:g}: {snapshot.signal_correct:.0%} of trials answered as "
                         "their signal class")
        return " · ".join(parts)

    def _grid_note(self) -> str:
        snapshot = self.snapshot
        if snapshot is not None and snapshot.counts.size > figures.MAX_TILES:
            return f"Showing the {figures.MAX_TILES} most frequent of {snapshot.counts.size:,} classes. {HOVER_HINT}"
        return HOVER_HINT

    # --- export ---

    def write_shown_maps(self, path) -> object:
        """The estimator, view and checkpoint on screen as a publication figure (titles, one colour bar)."""
        snapshot = self.snapshot
        if snapshot is None:
            raise ValueError("nothing to export yet: run the classification images or open a session")
        checkpoint = self.selected_checkpoint()
        if checkpoint is not None and snapshot.maps_of(self.estimator, checkpoint) is None:
            raise ValueError(f"the {ESTIMATORS[self.estimator].label} maps were not recorded at "
                             f"{checkpoint:,} samples")
        if checkpoint is None and not snapshot.annotated and self.model is not None:
            snapshot = self.exported_snapshot(KIND)
        estimator, view, checkpoint, estimated, classes, maps, levels = self._shown(snapshot)
        info = ESTIMATORS[estimator]
        titles = self._titles(snapshot, estimator, checkpoint)
        manual = self.limit_mode.currentData() == "manual"
        support = None if manual or estimated is None else estimated.support[classes]
        return figures.save_map_grid(maps.reshape(len(classes), *snapshot.image_shape), [titles[k] for k in classes],
                                     path, view=view, levels=levels, label=info.view_labels[view],
                                     note=figures.EMPTY_NOTES[estimator], colormap=self.colormap.currentData(),
                                     title=figure_title(snapshot, f"{info.title} ({info.view_titles[view]})",
                                                        estimated.samples),
                                     caption=figures.levels_caption(support, self.limit_value.value()
                                                                    if manual else None))

    def view_exports(self) -> list[ExportTarget]:
        return [
            ExportTarget("Maps of the estimator shown: publication figure", (".png", ".pdf", ".svg"),
                         self.write_shown_maps),
            ExportTarget("Map grid (as on screen)", FIGURE_FORMATS, lambda path: export_view(self.map_grid, path)),
            ExportTarget("Class-frequency plot", FIGURE_FORMATS, lambda path: export_view(self.frequency_plot, path)),
            ExportTarget("Convergence plot", FIGURE_FORMATS, lambda path: export_view(self.convergence_plot, path)),
            *super().view_exports(),
        ]


PANEL = ClassificationPanel
