"""Sample complexity: how many samples each kind of noise needs for classification maps (Figs. 4, 14, 15).

Settings on the left; on the right, live: the split-half reliability of every estimator against samples, one
plot per stimulus type, each beside the same curve of a signal-free observer on the same noise (dashed), and below it the maps of one stimulus type and estimator (every class, each scaled to
its own peak) at the sample count picked, with the structured sources' fits in words.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget
from PySide6.QtCore import Qt

from ...core.estimators import ESTIMATORS
from ...core.sample_complexity import ESTIMATOR_CHOICES, STIMULUS_TITLES, SampleComplexitySnapshot
from ...figures import COLORMAP_NAME, colormap_table, grid_columns
from ...figures.sample_complexity import ReliabilityFigure, montage
from .base import Panel

NOW = -1  # the sample-count choice "now" (the latest maps)


class SampleComplexityPanel(Panel):
    title = "Sample complexity"

    def build_views(self) -> QWidget:
        self.reliability = pg.GraphicsLayoutWidget()
        self.reliability.setBackground("w")
        self.figure = ReliabilityFigure()
        self.reliability.setCentralItem(self.figure)
        self.stimulus = QComboBox()
        self.stimulus.setObjectName("stimulus")
        self.stimulus.setToolTip("The stimulus type whose maps are shown")
        for key, label in STIMULUS_TITLES.items():
            self.stimulus.addItem(label, key)
        self.estimator = QComboBox()
        self.estimator.setObjectName("estimator")
        self.estimator.setToolTip("The estimator whose maps are shown")
        for key in ESTIMATOR_CHOICES:
            self.estimator.addItem(ESTIMATORS[key].label, key)
        self.samples = QComboBox()
        self.samples.setObjectName("samples_shown")
        self.samples.setToolTip("The maps as they were at this many samples")
        self.samples.addItem("now", NOW)
        for combo in (self.stimulus, self.estimator, self.samples):
            combo.currentIndexChanged.connect(self._draw_maps)
        pickers = QHBoxLayout()
        for text, combo in (("Stimulus", self.stimulus), ("Estimator", self.estimator), ("Samples", self.samples)):
            pickers.addWidget(QLabel(text))
            pickers.addWidget(combo)
        pickers.addStretch(1)
        self.maps = pg.GraphicsLayoutWidget()
        self.maps.setBackground("w")
        self.map_view = self.maps.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.map_view.setMouseEnabled(x=False, y=False)
        self.map_image = pg.ImageItem()
        self.map_image.setLookupTable(colormap_table())
        self.map_view.addItem(self.map_image)
        self.map_labels: list[pg.TextItem] = []  # each tile's class, at its top-left corner
        self.map_bar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get(COLORMAP_NAME), interactive=False,
                                       width=12, colorMapMenu=False)
        self.map_bar.setLabel("left", "value / class peak")
        self.maps.addItem(self.map_bar)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addLayout(pickers)
        lower_layout.addWidget(self.maps, 1)
        lower_layout.addWidget(self.caption)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.reliability)
        splitter.addWidget(lower)
        splitter.setSizes([400, 400])
        self.clear_views()
        return splitter

    @property
    def snapshot(self) -> SampleComplexitySnapshot | None:
        return next(iter(self.snapshots.values()), None)

    def clear_views(self) -> None:
        self.figure.show_snapshot(None)
        self.map_image.clear()
        self._label_tiles(())
        self.caption.setText("Run the experiment or open a session to see how fast each kind of noise gives maps.")

    def draw(self, kind: str, snapshot: SampleComplexitySnapshot) -> None:
        self.figure.show_snapshot(snapshot)
        counts = snapshot.checkpoint_counts()
        shown = [self.samples.itemData(i) for i in range(1, self.samples.count())]
        if shown != counts[:len(shown)] or len(shown) != len(counts):
            current = self.samples.currentData()
            self.samples.blockSignals(True)
            while self.samples.count() > 1:
                self.samples.removeItem(1)
            for n in counts:
                self.samples.addItem(f"{n:,}", n)
            index = self.samples.findData(current)
            self.samples.setCurrentIndex(max(index, 0))
            self.samples.blockSignals(False)
        self._draw_maps()

    def _draw_maps(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        result = snapshot.results.get(self.stimulus.currentData())
        estimator = self.estimator.currentData()
        if result is None or estimator not in snapshot.estimators:
            self.map_image.clear()
            self.caption.setText(f"This run has no {self.stimulus.currentText()} maps of the "
                                 f"{self.estimator.currentText()}; choose another stimulus or estimator.")
            return
        picked = self.samples.currentData()
        maps = result.run.maps_of(estimator) if picked == NOW else result.checkpoint_maps(estimator).get(picked)
        if maps is None:
            self.map_image.clear()
            self.caption.setText("No maps kept at that sample count for this stimulus yet.")
            return
        image = montage(maps.of("centered").reshape(len(snapshot.class_names), *snapshot.image_shape))
        shown = image[0] if image.shape[0] == 1 else image.mean(0)
        self.map_image.setImage(shown.T, levels=(-1.0, 1.0), autoLevels=False)
        self._label_tiles(snapshot.class_names, snapshot.image_shape)
        self.map_view.autoRange(padding=0.02)
        samples, values = result.reliability(estimator)
        reliability = f"{values[-1]:.2f}" if values.size and np.isfinite(values[-1]) else "not yet measured"
        reached = result.samples_to(estimator)
        lines = [f"{STIMULUS_TITLES[result.stimulus]} · {ESTIMATORS[estimator].label}: maps from "
                 f"{maps.samples:,} samples (every class row by row, each scaled to its own peak); reliability "
                 f"now {reliability}" + (f", ≥ 0.8 from {reached:,} samples" if reached else "")]
        excess, cosine = result.excess(estimator)[1], result.template_cosine(estimator)[1]
        if excess.size:
            lines.append(f"excess over the signal-free observer (dashed) {excess[-1]:+.2f}"
                         + (f"; known-template observer's cosine with its templates {cosine[-1]:.2f}" if cosine.size
                            else "")
                         + ": correlated noise raises reliability without signal, so compare stimuli on these")
        if result.fit:
            lines.append(result.fit)
        self.caption.setText("\n".join(lines))

    def _label_tiles(self, class_names, image_shape=(1, 1, 1)) -> None:
        """Name each class's tile of the montage (laid out as figures.sample_complexity.montage lays it out)."""
        for label in self.map_labels:
            self.map_view.removeItem(label)
        self.map_labels = []
        if not class_names:
            return
        height, width = image_shape[-2:]
        columns = grid_columns(len(class_names))
        for i, name in enumerate(class_names):
            row, col = divmod(i, columns)
            label = pg.TextItem(str(name), color="k", fill=pg.mkBrush(255, 255, 255, 170), anchor=(0, 0))
            label.setPos(col * (width + 1), row * (height + 1))
            self.map_view.addItem(label)
            self.map_labels.append(label)

    def view_settings(self) -> dict:
        return {"stimulus": self.stimulus.currentData(), "estimator": self.estimator.currentData()}

    def apply_view_settings(self, values: dict) -> None:
        for combo, key in ((self.stimulus, "stimulus"), (self.estimator, "estimator")):
            index = combo.findData(values.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)


PANEL = SampleComplexityPanel
