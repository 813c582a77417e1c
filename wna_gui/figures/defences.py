"""Figures of a defence run, shared by the app and `wna export`, all renderable headless.

``DefenceFigure`` (a pyqtgraph GraphicsLayout) holds the training curves
(loss per chunk and held-out accuracy per epoch, stages one after another on
one epoch axis) and, for a sleep run, the spike raster of the latest chunk
(input pixels, both hidden layers, outputs) and the histograms of the weight
changes per layer, for weights that started negative and non-negative. The app
hosts it live; ``save_defence_figure`` paints it off screen.

Nothing here imports wna_gui.app or the engine (only names from core.defences, for typing).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg

from ._qt import ensure_gui_application
from .page import TEXT_PT, points, write_scene
from .style import TEXT_COLOR, style_plot

if TYPE_CHECKING:
    from ..core.defences import DefenceSnapshot

STAGE_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
NEGATIVE_COLOR = "#4c72b0"
POSITIVE_COLOR = "#dd8452"
LAYER_NAMES = ("input", "hidden 1", "hidden 2", "output")
WEIGHT_NAMES = ("784→1200", "1200→1200", "1200→10")


def stage_offsets(snapshot: DefenceSnapshot) -> np.ndarray:
    """Epoch at which each stage starts on the shared axis (stages without epochs take none)."""
    ends: dict[int, float] = {}
    for stage, epoch, _, _ in snapshot.epoch_log:
        ends[int(stage)] = max(ends.get(int(stage), 0.0), float(epoch))
    offsets, total = [], 0.0
    for i in range(len(snapshot.stage_titles)):
        offsets.append(total)
        total += ends.get(i, 0.0)
    return np.asarray(offsets)


def _tick_font():
    """Tick labels at TEXT_PT as a pixel size: a point-size font would grow with the export's DPI."""
    from PySide6.QtGui import QFont

    font = QFont()
    font.setPixelSize(round(points(TEXT_PT)))
    return font


def _plot(title: str, left: str, bottom: str) -> pg.PlotItem:
    plot = pg.PlotItem(enableMenu=False)
    style_plot(plot, title, left, bottom)
    for side in ("left", "bottom"):
        plot.getAxis(side).setStyle(tickFont=_tick_font())
        plot.getAxis(side).enableAutoSIPrefix(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    return plot


class DefenceFigure(pg.GraphicsLayout):
    """Training curves; for a sleep run also its spike raster and weight-change histograms."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.loss = _plot("Training loss", "loss", "epoch")
        self.accuracy = _plot("Held-out accuracy", "accuracy", "epoch")
        self.accuracy.setYRange(0, 1, padding=0.02)
        self.raster = _plot("Spikes during sleep", "unit", "time step")
        self.raster_image = pg.ImageItem()
        self.raster.addItem(self.raster_image)
        self.raster.invertY(True)
        self.histograms = [_plot(f"ΔW {name}", "weights", "ΔW") for name in WEIGHT_NAMES]
        self.stages = pg.LabelItem("", color=TEXT_COLOR, size="10pt")  # the stages' colours (the legend)
        self.note = pg.LabelItem("", color=TEXT_COLOR, size="9pt", justify="left")
        self.addItem(self.stages, row=0, col=0, colspan=2)
        self.addItem(self.loss, row=1, col=0)
        self.addItem(self.accuracy, row=1, col=1)
        # Budget, image subsets and at-chance warnings: what a reader needs to judge the curves.
        self.caption = pg.LabelItem("", color=TEXT_COLOR, size="9pt", justify="left")
        self.addItem(self.caption, row=5, col=0, colspan=2)
        self._sleep_shown = False

    def _show_sleep(self, shown: bool) -> None:
        if shown == self._sleep_shown:
            return
        self._sleep_shown = shown
        if shown:
            self.addItem(self.raster, row=2, col=0, colspan=2)
            inner = pg.GraphicsLayout()
            for i, plot in enumerate(self.histograms):
                inner.addItem(plot, row=0, col=i)
            self._inner = inner
            self.addItem(inner, row=3, col=0, colspan=2)
            self.addItem(self.note, row=4, col=0, colspan=2)
        else:
            for item in (self.raster, self._inner, self.note):
                self.removeItem(item)

    def show_run(self, snapshot: DefenceSnapshot) -> None:
        self.caption.setText("<br>".join(snapshot.notes))
        self._curves(snapshot)
        self._show_sleep(snapshot.has_sleep)
        if snapshot.has_sleep:
            self._raster(snapshot)
            self._histograms(snapshot)

    def _curves(self, snapshot: DefenceSnapshot) -> None:
        self.loss.clear()
        self.accuracy.clear()
        offsets = stage_offsets(snapshot)
        self.stages.setText("&nbsp;&nbsp;".join(
            f"<span style='color:{STAGE_COLORS[i % len(STAGE_COLORS)]}'>●</span>&nbsp;{title}"
            for i, title in enumerate(snapshot.stage_titles)))
        for i in range(len(snapshot.stage_titles)):
            color = STAGE_COLORS[i % len(STAGE_COLORS)]
            losses = snapshot.loss_log[snapshot.loss_log[:, 1] == i] if len(snapshot.loss_log) else np.zeros((0, 4))
            epochs = snapshot.epoch_log[snapshot.epoch_log[:, 0] == i] if len(snapshot.epoch_log) else \
                np.zeros((0, 4))
            if len(losses):  # one point per chunk of batches
                self.loss.plot(offsets[i] + losses[:, 2], losses[:, 3], pen=pg.mkPen(color, width=2), symbol="o",
                               symbolSize=5, symbolBrush=color, symbolPen=None)
            if len(epochs):
                self.accuracy.plot(offsets[i] + epochs[:, 1], epochs[:, 3], pen=pg.mkPen(color, width=2),
                                   symbol="o", symbolSize=6, symbolBrush=color, symbolPen=None)
            elif i == len(snapshot.stage_titles) - 1 and "final" in snapshot.accuracy:  # after sleep: one point
                self.accuracy.plot([offsets[i]], [snapshot.accuracy["final"]], pen=None, symbol="d", symbolSize=10,
                                   symbolBrush=color, symbolPen=None)

    def _raster(self, snapshot: DefenceSnapshot) -> None:
        if not snapshot.raster:
            self.raster_image.clear()
            return
        image = np.concatenate([np.asarray(r, dtype=np.float32) for r in snapshot.raster], axis=1)
        # Black spikes on white; x = time step, y = unit (layers stacked, input on top).
        self.raster_image.setImage(1.0 - image, levels=(0, 1), autoLevels=False)
        self.raster_image.setRect(snapshot.raster_start, 0, image.shape[0], image.shape[1])
        bounds = np.cumsum([0] + [r.shape[1] for r in snapshot.raster])
        for item in [i for i in self.raster.items if isinstance(i, pg.InfiniteLine)]:
            self.raster.removeItem(item)
        for y in bounds[1:-1]:
            self.raster.addItem(pg.InfiniteLine(pos=y, angle=0, pen=pg.mkPen("#c44e52", width=1)))
        ticks = [((a + b) / 2, name) for a, b, name in zip(bounds[:-1], bounds[1:], LAYER_NAMES)]
        self.raster.getAxis("left").setTicks([ticks, []])
        self.raster.setTitle(f"Spikes during sleep, steps {snapshot.raster_start:,}–"
                             f"{snapshot.raster_start + image.shape[0]:,}", color=TEXT_COLOR, size="10pt")
        self.raster.setXRange(snapshot.raster_start, snapshot.raster_start + image.shape[0], padding=0)
        self.raster.setYRange(0, image.shape[1], padding=0)

    def _histograms(self, snapshot: DefenceSnapshot) -> None:
        stats = snapshot.layer_stats()
        for i, plot in enumerate(self.histograms):
            plot.clear()
            edges = snapshot.histograms.get(f"{i}/edges")
            if edges is None:
                continue
            for key, color in (("negative", NEGATIVE_COLOR), ("positive", POSITIVE_COLOR)):
                counts = snapshot.histograms[f"{i}/{key}"]
                plot.plot(edges, counts, stepMode="center", fillLevel=0, brush=(*pg.mkColor(color).getRgb()[:3], 90),
                          pen=pg.mkPen(color, width=1.5))
        lines = []
        for i, (changed, negative, _) in enumerate(stats):
            share = "—" if not np.isfinite(negative) else f"{100 * negative:.0f}%"
            lines.append(f"{WEIGHT_NAMES[i]}: {100 * changed:.1f}% of weights changed, {share} of |ΔW| on weights "
                         "that started negative")
        counts = snapshot.spike_log[:, 1:].sum(0) if len(snapshot.spike_log) else []
        lines.append("Spikes so far per layer (input, hidden 1, hidden 2, output): "
                     + ", ".join(f"{int(c):,}" for c in counts))
        alphas = ", ".join(f"{a:.3g}" for a in snapshot.sleep_alphas)
        lines.append(f"Blue: weights that started negative; orange: non-negative. Input scales α = {alphas}.")
        self.note.setText("<br>".join(lines))


def save_defence_figure(snapshot: DefenceSnapshot, path) -> Path:
    """The run's training curves (and sleep raster and weight changes) as .png or .svg."""
    path = Path(path)
    ensure_gui_application()
    aspect = (720, 740) if snapshot.has_sleep else (720, 320)
    return write_scene(DefenceFigure(), aspect, path, lambda figure: figure.show_run(snapshot))
