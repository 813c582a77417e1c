"""Robustness figures: accuracy against distortion level per model (one plot per distortion), error consistency.

pyqtgraph graphics items, hosted by the robustness panel on screen and painted
headless by save_curves / save_kappa_curves for `wna export` (the psychometric
figures' renderer), so the screen and the exported files come from one code
path. One colour per model, the same in every plot.

Accuracy plot: measured accuracy (points, 95% Wilson bars over test images),
the fitted curve, and a diamond where the fit falls halfway from the model's
clean accuracy to chance (its threshold); chance 1/K dashed. A fit with an
estimate held by a search limit is drawn dashed.
"""

from __future__ import annotations

import html

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ._qt import ensure_gui_application
from .maps import COLORMAP_NAME, colormap_table
from .page import TEXT_PT, points, write_scene
from .psychometric import BACKGROUND, CHANCE_PEN
from .style import TEXT_COLOR, TITLE_SIZE, style_plot

if TYPE_CHECKING:
    from ..core.robustness import DistortionResult, RobustnessSnapshot

# Distinct, colour-blind-friendly colours (Okabe & Ito), then greys.
MODEL_COLORS = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233),
                (120, 120, 120), (0, 0, 0)]
FIT_SAMPLES = 200
PLOT_CELL = (520, 380)  # proportions of one plot of the headless figures
ACCURACY_LABEL = "accuracy"
KAPPA_LABEL = "error consistency κ"


def model_color(index: int):
    return pg.mkColor(MODEL_COLORS[index % len(MODEL_COLORS)])


def _columns(count: int) -> int:
    return 1 if count == 1 else 2


def _level_range(levels: np.ndarray) -> tuple[float, float]:
    span = float(levels[-1] - levels[0]) or 1.0
    return float(levels[0]) - 0.03 * span, float(levels[-1]) + 0.03 * span


def tick_font():
    """Tick labels at TEXT_PT as a pixel size: a point-size font would grow with the export's DPI (the painter
    is already scaled to it)."""
    from PySide6.QtGui import QFont

    font = QFont()
    font.setPixelSize(round(points(TEXT_PT)))
    return font


def _style_ticks(plot: pg.PlotItem) -> None:
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setStyle(tickFont=tick_font())
        axis.enableAutoSIPrefix(False)  # levels read as given (η 0.05, not 50 ×0.001)


def models_legend_html(names) -> str:
    """"● control  ● slept" with each dot in its model's colour."""
    return "&nbsp;&nbsp;".join(f"<span style='color:{model_color(i).name()}'>●</span>&nbsp;{name}"
                               for i, name in enumerate(names))


class _Grid(pg.GraphicsLayout):
    """A grid of plots, one per distortion, under a legend line; rebuilt when the distortions or models change."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plots: dict[str, pg.PlotItem] = {}
        self._key: tuple = ()
        self._legend = None

    def clear_plots(self) -> None:
        self.clear()
        self.plots, self._key, self._legend = {}, (), None

    def _ensure(self, snapshot: RobustnessSnapshot, left: str, y_range) -> bool:
        key = (tuple(r.name for r in snapshot.distortions), tuple(snapshot.model_names),
               tuple(len(r.levels) for r in snapshot.distortions))
        if key == self._key:
            return False
        self.clear_plots()
        self._key = key
        columns = _columns(len(snapshot.distortions))
        self._legend = self.addLabel(models_legend_html(snapshot.model_names), row=0, col=0, colspan=columns,
                                     color=TEXT_COLOR, size="10pt")
        for index, result in enumerate(snapshot.distortions):
            plot = self.addPlot(row=1 + index // columns, col=index % columns, enableMenu=False)
            style_plot(plot, result.label, left, result.level_name)
            _style_ticks(plot)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setXRange(*_level_range(result.levels), padding=0)
            plot.setYRange(*y_range, padding=0)
            plot.getAxis("left").setTicks([[(v, f"{v + 0.0:g}") for v in np.arange(-1.0, 1.01, 0.2).round(1)
                                            if y_range[0] <= v <= y_range[1]]])  # + 0.0: no "-0"
            self.plots[result.name] = plot
        return True


CENSORED_SYMBOLS = {"inside": "d", "above": "t2", "below": "t3"}  # diamond; arrows right / left at the grid's end


class CurvesFigure(_Grid):
    """Accuracy against level, one plot per distortion: points with 95% bars, fitted curve, threshold diamond."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: dict[str, list] = {}

    def clear_plots(self) -> None:
        super().clear_plots()
        self._items = {}

    def show_snapshot(self, snapshot: RobustnessSnapshot) -> None:
        if self._ensure(snapshot, ACCURACY_LABEL, (-0.02, 1.05)):
            for result in snapshot.distortions:
                plot = self.plots[result.name]
                chance = pg.InfiniteLine(snapshot.chance, angle=0, pen=CHANCE_PEN, movable=False, label="chance",
                                         labelOpts={"position": 0.95, "color": (90, 90, 90),
                                                    "anchors": [(1, 1), (1, 1)]})
                plot.addItem(chance)
                items = []
                for m in range(len(snapshot.model_names)):
                    color = model_color(m)
                    bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), pen=pg.mkPen(color, width=1), beam=0)
                    plot.addItem(bars)
                    fit = plot.plot([], [], pen=pg.mkPen(color, width=2))
                    points = plot.plot([], [], pen=None, symbol="o", symbolSize=6 if len(result.levels) > 30 else 8,
                                       symbolBrush=color, symbolPen=pg.mkPen("w", width=0.6))
                    mark = pg.ScatterPlotItem(symbol="d", size=14, brush=pg.mkBrush(color),
                                              pen=pg.mkPen(TEXT_COLOR, width=1))
                    mark.setZValue(5)
                    plot.addItem(mark)
                    items.append((bars, fit, points, mark))
                self._items[result.name] = items
            if self._legend is not None:
                self._legend.setText(models_legend_html(snapshot.model_names) + "&nbsp;&nbsp;·&nbsp;&nbsp;"
                                     + html.escape(snapshot.images_text) + "; ▶/◀: threshold beyond the levels",
                                     color=TEXT_COLOR)
        for result in snapshot.distortions:
            for m, (bars, fit, points, mark) in enumerate(self._items[result.name]):
                x, y = result.levels, result.accuracy[m]
                have = np.isfinite(y)
                points.setData(x[have], y[have])
                bars.setData(x=x[have], y=y[have], top=(result.accuracy_high[m] - y)[have],
                             bottom=(y - result.accuracy_low[m])[have])
                curve = result.fits[m]
                if curve is None or curve.fit is None:
                    fit.setData([], [])
                    mark.setData([], [])
                    continue
                grid = np.linspace(result.levels[0], result.levels[-1], FIT_SAMPLES)
                style = Qt.PenStyle.DashLine if curve.flags else Qt.PenStyle.SolidLine
                fit.setPen(pg.mkPen(model_color(m), width=2, style=style))
                fit.setData(grid, curve.accuracy(grid))
                # A censored threshold is drawn as an arrow at the grid's end it lies beyond, not at its fitted value.
                where = curve.censored
                edge = {"inside": curve.threshold, "above": result.levels[-1], "below": result.levels[0]}.get(where)
                mark.setSymbol(CENSORED_SYMBOLS.get(where, "d"))
                mark.setData([] if edge is None else [edge], [] if edge is None else [curve.target])
        for result in snapshot.distortions:
            title = result.label if result.complete.all() else \
                f"{result.label} · {int(result.complete.sum())}/{result.complete.size} levels"
            masked = [snapshot.model_names[m] for m, text in enumerate(result.masking) if text]
            chance = [snapshot.model_names[m] for m, flag in enumerate(result.at_chance) if flag]
            if masked:
                title += f" · gradient masking suspected: {', '.join(masked)}"
            if chance:
                title += f" · at chance: {', '.join(chance)}"
            self.plots[result.name].setTitle(title, color=TEXT_COLOR, size=TITLE_SIZE)

    def curve(self, distortion: str, model: int) -> tuple[np.ndarray, np.ndarray]:
        """The fitted curve drawn for a model (empty without a fit)."""
        x, y = self._items[distortion][model][1].getData()
        return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


class KappaCurvesFigure(_Grid):
    """κ against level for every pair of models, one plot per distortion (0: errors as independent as chance
    predicts; 1: the same errors)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: dict[str, list] = {}

    def clear_plots(self) -> None:
        super().clear_plots()
        self._items = {}

    def show_snapshot(self, snapshot: RobustnessSnapshot) -> None:
        pairs = [(a, b) for a in range(len(snapshot.model_names)) for b in range(a + 1, len(snapshot.model_names))]
        if self._ensure(snapshot, KAPPA_LABEL, (-0.3, 1.05)):
            for result in snapshot.distortions:
                plot = self.plots[result.name]
                plot.addItem(pg.InfiniteLine(0.0, angle=0, pen=CHANCE_PEN, movable=False))
                items = []
                for a, b in pairs:
                    # A pair's line in the first model's colour, its symbols in the second's.
                    items.append(plot.plot([], [], pen=pg.mkPen(model_color(a), width=2), symbol="o", symbolSize=8,
                                           symbolBrush=model_color(b), symbolPen=pg.mkPen("w", width=0.6)))
                self._items[result.name] = items
            if self._legend is not None:
                self._legend.setText(models_legend_html(snapshot.model_names) + "&nbsp;&nbsp;·&nbsp;&nbsp;" + (
                    "a pair: line in the first model's colour, dots in the second's" if pairs else
                    "κ needs at least two models"), color=TEXT_COLOR)
        for result in snapshot.distortions:
            for (a, b), item in zip(pairs, self._items[result.name]):
                y = result.kappa[:, a, b]
                have = np.isfinite(y)
                item.setData(result.levels[have], y[have])


class KappaMatrixFigure(pg.PlotItem):
    """The κ matrix of every pair of models at one level, as an image with its values written in."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.invertY(True)
        self.setAspectLocked(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(colormap_table(COLORMAP_NAME))
        self.addItem(self.image)
        self._labels: list[pg.TextItem] = []
        style_plot(self, KAPPA_LABEL, "", "")
        _style_ticks(self)

    def show_matrix(self, kappa: np.ndarray, names, title: str) -> None:
        for label in self._labels:
            self.removeItem(label)
        self._labels = []
        values = np.asarray(kappa, dtype=np.float32)
        shown = np.where(np.isfinite(values), values, 0.0).astype(np.float32)
        self.image.setImage(np.ascontiguousarray(shown), autoLevels=False, levels=(-1.0, 1.0))
        count = len(names)
        ticks = [(i + 0.5, name) for i, name in enumerate(names)]
        for side in ("left", "bottom"):
            self.getAxis(side).setTicks([ticks])
            self.getAxis(side).setStyle(hideOverlappingLabels=False)  # names near the ends are kept
        from PySide6.QtGui import QFontMetrics

        metrics = QFontMetrics(tick_font())
        self.getAxis("left").setWidth(max((metrics.horizontalAdvance(str(n)) for n in names), default=0) + 16)
        for a in range(count):
            for b in range(count):
                text = "–" if not np.isfinite(values[a, b]) else f"{values[a, b]:.2f}"
                label = pg.TextItem(text, color=TEXT_COLOR, anchor=(0.5, 0.5))
                label.setPos(b + 0.5, a + 0.5)
                self.addItem(label)
                self._labels.append(label)
        self.setXRange(0, max(count, 1), padding=0.02)
        self.setYRange(0, max(count, 1), padding=0.02)
        self.setTitle(title, color=TEXT_COLOR, size=TITLE_SIZE)

    def clear_matrix(self) -> None:
        for label in self._labels:
            self.removeItem(label)
        self._labels = []
        self.image.clear()


def example_montage(result: DistortionResult, level: int) -> np.ndarray:
    """The example images at one level side by side, (H, E·(W+1) − 1) grey or (H, ·, 3) colour, float in [0, 1]."""
    if result.examples is None:
        return np.zeros((1, 1), dtype=np.float32)
    images = result.examples[level]  # (E, C, H, W)
    count, channels, height, width = images.shape
    out = np.ones((height, count * (width + 1) - 1, channels), dtype=np.float32)
    for i in range(count):
        out[:, i * (width + 1):i * (width + 1) + width] = np.moveaxis(images[i], 0, -1)
    return out[..., 0] if channels == 1 else out


def _aspect(snapshot: RobustnessSnapshot) -> tuple[int, int]:
    """(width, height) proportions: PLOT_CELL per plot, two plots a row, plus the legend line."""
    count = len(snapshot.distortions)
    columns = _columns(count)
    rows = -(-count // columns)
    return PLOT_CELL[0] * columns, PLOT_CELL[1] * rows + 40


def save_curves(snapshot: RobustnessSnapshot, path: str | Path) -> Path:
    """The accuracy curves, as the panel draws them, written headless (.png, .pdf or .svg, figures.page size)."""
    ensure_gui_application()
    return write_scene(CurvesFigure(), _aspect(snapshot), Path(path), lambda figure: figure.show_snapshot(snapshot))


def save_kappa_curves(snapshot: RobustnessSnapshot, path: str | Path) -> Path:
    """κ against level for every pair of models, written headless (.png, .pdf or .svg)."""
    ensure_gui_application()
    return write_scene(KappaCurvesFigure(), _aspect(snapshot), Path(path),
                       lambda figure: figure.show_snapshot(snapshot))


__all__ = ["BACKGROUND", "CurvesFigure", "KappaCurvesFigure", "KappaMatrixFigure", "example_montage",
           "model_color", "models_legend_html", "save_curves", "save_kappa_curves"]
