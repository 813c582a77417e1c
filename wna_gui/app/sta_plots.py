"""Plot widgets of the receptive-fields panel: filter grids, split-half curves, kernel cosines, STC spectrum,
class distances.

They only draw the arrays they are given. Levels are set by the caller per
repaint and shared by all tiles of a grid, never auto-scaled per tile, so
tiles stay comparable. The STC spectrum and the class distances are the
graphics items of wna_gui.figures.sta, the same ones `wna export` paints.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from .. import figures
from ..figures.sta import BACKGROUND, DistanceFigure, SpectrumFigure
from ..figures.style import TEXT_COLOR, style_plot
from .plots import log_ticks

PICKED_PEN = pg.mkPen((214, 39, 40), width=3, cosmetic=True)
TILE_TITLE_SIZE = "8pt"
EMPTY_TILE_COLOR = (205, 205, 205)


class _Tile:
    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int) -> None:
        self.label = layout.addLabel("", row=2 * row, col=col, color=TEXT_COLOR, size=TILE_TITLE_SIZE)
        layout.layout.setRowMaximumHeight(2 * row, 18)
        layout.layout.setRowStretchFactor(2 * row + 1, 1)
        self.view = layout.addViewBox(row=2 * row + 1, col=col, lockAspect=True, invertY=True, enableMouse=False,
                                      enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.outline = QGraphicsRectItem()  # around the image itself (the view box is wider or taller)
        self.outline.setPen(PICKED_PEN)
        self.outline.setZValue(10)
        self.outline.hide()
        self.view.addItem(self.outline)
        self.values: np.ndarray | None = None
        self.key = -1

    def show(self, image: np.ndarray | None, title: str, levels, lut) -> None:
        if title != self.label.text:
            self.label.setText(title)
            self.label.setMinimumWidth(0)  # a long title may overhang; it must not widen the grid past the view
        self.values = image
        if image is None or not np.isfinite(image).any():
            self.values = None
            self.image.setLookupTable(None)
            self.image.setImage(self._empty, autoLevels=False, levels=(0, 255))
            return
        image = np.nan_to_num(image)
        if image.shape[0] == 1:
            self.image.setLookupTable(lut)
            self.image.setImage(np.ascontiguousarray(image[0], dtype=np.float32), autoLevels=False, levels=levels)
        else:
            self.image.setLookupTable(None)
            self.image.setImage(figures.rgb_display(image, levels), autoLevels=False, levels=(0.0, 1.0))

    def frame(self, height: int, width: int) -> None:
        self._empty = np.full((height, width, 3), EMPTY_TILE_COLOR, dtype=np.uint8)
        self.outline.setRect(QRectF(0, 0, width, height))
        self.view.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)

    def set_picked(self, picked: bool) -> None:
        self.outline.setVisible(picked)


class FilterGrid(pg.GraphicsLayoutWidget):
    """Images (N, C, h, w) as titled tiles with one symmetric colour scale and a colour bar; a click picks a tile."""

    picked = Signal(int)  # the key of the tile clicked
    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None, colorbar: bool = True) -> None:
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        self._lut = figures.colormap_table()
        self._tiles: list[_Tile] = []
        self._layout_key: tuple = ()
        self._picked = -1
        self._with_colorbar = colorbar
        self._colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get(figures.COLORMAP_NAME),
                                         interactive=False, width=12, colorMapMenu=False)
        self._colorbar.axis.setTextPen(TEXT_COLOR)
        self._colorbar.axis.setPen(TEXT_COLOR)
        self._message = pg.TextItem("", color=TEXT_COLOR, anchor=(0.5, 0.5))
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.scene().sigMouseClicked.connect(self._mouse_clicked)

    def show_tiles(self, images: list[np.ndarray | None], titles: list[str], keys: list[int],
                   levels: tuple[float, float], label: str = "", picked: int = -1, shape=None) -> None:
        """``images`` (C, h, w) or None (a grey tile) per tile, ``keys`` what a click on each reports."""
        shape = shape or next((image.shape for image in images if image is not None), (1, 1, 1))
        layout_key = (len(images), tuple(shape))
        if layout_key != self._layout_key:
            self._rebuild(len(images), shape)
            self._layout_key = layout_key
        for tile, image, title, key in zip(self._tiles, images, titles, keys):
            tile.key = key
            tile.show(image, title, levels, self._lut)
        if self._with_colorbar and shape[0] == 1 and images:
            self._colorbar.setLevels(levels)
            self._colorbar.setLabel("left", label, color=TEXT_COLOR)
            self._colorbar.show()
        else:
            self._colorbar.hide()
        self.set_picked(picked)

    def show_message(self, text: str) -> None:
        self.ci.clear()
        self._tiles, self._layout_key = [], ()
        label = self.ci.addLabel(text, color=TEXT_COLOR, size="10pt")
        label.setMinimumHeight(40)

    def set_picked(self, key: int) -> None:
        self._picked = key
        for tile in self._tiles:
            tile.set_picked(tile.key == key and key >= 0)

    def _rebuild(self, count: int, shape) -> None:
        self.ci.clear()
        columns = figures.grid_columns(max(count, 1))
        rows = math.ceil(count / columns) if count else 1
        self._tiles = [_Tile(self.ci, *divmod(i, columns)) for i in range(count)]
        for tile in self._tiles:
            tile.frame(*shape[1:])
        for column in range(columns):  # tiles share the width evenly
            self.ci.layout.setColumnStretchFactor(column, 1)
        if self._with_colorbar:
            self.ci.addItem(self._colorbar, row=0, col=columns, rowspan=2 * rows)
            self.ci.layout.setColumnStretchFactor(columns, 0)

    def tile_at(self, position: QPointF) -> _Tile | None:
        for tile in self._tiles:
            if tile.view.sceneBoundingRect().contains(position):
                return tile
        return None

    def _mouse_clicked(self, event) -> None:
        tile = self.tile_at(event.scenePos())
        if tile is not None and tile.key >= 0:
            self.picked.emit(tile.key)

    def _mouse_moved(self, position: QPointF) -> None:
        tile = self.tile_at(position)
        if tile is None or tile.values is None:
            self.hovered.emit("")
            return
        point = tile.view.mapSceneToView(position)
        col, row = math.floor(point.x()), math.floor(point.y())
        _, height, width = tile.values.shape
        if 0 <= row < height and 0 <= col < width:
            pixel = tile.values[:, row, col]
            value = f"{pixel[0]:.4g}" if pixel.size == 1 else "(" + ", ".join(f"{v:.3g}" for v in pixel) + ")"
            self.hovered.emit(f"{tile.label.text} · x={col}, y={row} · {value}")
        else:
            self.hovered.emit("")

    def tile_count(self) -> int:
        return len(self._tiles)

    def tile_values(self, index: int) -> np.ndarray | None:
        return self._tiles[index].values


class ReliabilityPlot(pg.PlotWidget):
    """Split-half reliability of the STAs against samples: the mean over units and the picked unit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=BACKGROUND)
        style_plot(self, "Split-half reliability", "r (even vs odd blocks)", "samples")
        item = self.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setMouseEnabled(x=False, y=False)
        self.setYRange(-0.2, 1.02, padding=0)
        self._legend = item.addLegend(offset=(8, -8), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 200))
        self._mean = self.plot([], [], pen=pg.mkPen(TEXT_COLOR, width=2.5), name="mean over units")
        self._unit = self.plot([], [], pen=pg.mkPen((214, 39, 40), width=1.5), name="picked unit")
        self._x_range = (2.0, 5.0)
        self.getPlotItem().getAxis("bottom").setTicks(log_ticks(5.0))
        self.setXRange(*self._x_range, padding=0.02)

    def show_reliability(self, samples: np.ndarray, reliability: np.ndarray, mean: np.ndarray, unit: int) -> None:
        if samples.size == 0:
            self._mean.setData([], [])
            self._unit.setData([], [])
            return
        finite = np.isfinite(mean)
        self._mean.setData(samples[finite], mean[finite])
        column = reliability[:, unit] if 0 <= unit < reliability.shape[1] else np.full(len(samples), np.nan)
        finite = np.isfinite(column)
        self._unit.setData(samples[finite], column[finite])
        right = max(3.0, math.ceil(math.log10(max(int(samples[-1]), 1000)) * 2) / 2)
        x_range = (min(math.log10(max(int(samples[0]), 100)), right - 1), right)
        if x_range != self._x_range:  # axis repaints are costly: only when the range grows
            self._x_range = x_range
            self.getPlotItem().getAxis("bottom").setTicks(log_ticks(right))
            self.setXRange(*x_range, padding=0.02)

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._mean.getData()
        return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


class CosineHistogram(pg.PlotWidget):
    """Distribution of the cosines between each unit's STA and its learned kernel."""

    BINS = np.linspace(-1.0, 1.0, 41)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=BACKGROUND)
        style_plot(self, "cos(STA, kernel) per unit", "units", "cosine")
        self.getPlotItem().setMouseEnabled(x=False, y=False)
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.045, brush="#4c72b0", pen=None)
        self.addItem(self._bars)
        self._mean = pg.InfiniteLine(angle=90, pen=pg.mkPen((214, 39, 40), width=1.5, style=Qt.PenStyle.DashLine),
                                     label="", labelOpts={"position": 0.9, "color": (214, 39, 40),
                                                          "anchors": [(1, 0), (1, 0)]})
        self.addItem(self._mean)
        self._mean.hide()

    def show_cosines(self, cosines: np.ndarray | None) -> None:
        values = np.asarray(cosines if cosines is not None else [], dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            self._bars.setOpts(x=[], height=[])
            self._mean.hide()
            return
        counts, edges = np.histogram(values, self.BINS)
        centres = (edges[:-1] + edges[1:]) / 2
        self._bars.setOpts(x=centres, height=counts, width=0.045)
        low = max(-1.0, min(-0.05, float(values.min()) - 0.1))
        self.setXRange(low, 1.02, padding=0)
        self.setYRange(0, max(1, counts.max()) * 1.15, padding=0)
        self._mean.setValue(float(values.mean()))
        self._mean.label.setFormat(f"mean {values.mean():.3f}")
        self._mean.show()


class SpectrumPlot(pg.PlotWidget):
    """The picked unit's STC spectrum against its shuffle null (figures.sta.SpectrumFigure)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.figure = SpectrumFigure()
        super().__init__(parent, background=BACKGROUND, plotItem=self.figure)

    def show_unit(self, snapshot, unit: int) -> None:
        self.figure.show_unit(snapshot, unit)

    def clear_spectrum(self, message: str = "") -> None:
        self.figure.clear_spectrum(message)


class DistancePlot(pg.PlotWidget):
    """Mean L2 distance between class means per layer, noise and real (figures.sta.DistanceFigure)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.figure = DistanceFigure()
        super().__init__(parent, background=BACKGROUND, plotItem=self.figure)

    def show_maps(self, snapshot) -> None:
        self.figure.show_maps(snapshot)
