"""Plot widgets: the per-class map grid, the class-frequency bars and the estimators' convergence race.

They only draw what they are given (numpy arrays from a snapshot); they hold no
experiment logic. Levels are fixed by the caller for each repaint, never
auto-scaled per frame, so frames and tiles stay comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from typing import Callable

from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QCursor, QPainter, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QLabel,
    QMenu,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .. import figures
from ..figures.page import FIGURE_FORMATS, check_suffix, write_painted, write_view
from ..figures.style import TEXT_COLOR, style_plot

EMPTY_TILE_COLOR = (205, 205, 205)
TITLE_SIZE = "10pt"
TITLE_HEIGHT = 26


@dataclass(frozen=True)
class MapTile:
    """What one tile shows: a (C, H, W) map, or None with a note saying why it is empty."""

    class_index: int
    class_name: str
    title: str
    image: np.ndarray | None
    note: str = "no samples yet"


class _TileView:
    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int) -> None:
        self.label = layout.addLabel("", row=2 * row, col=col, color=TEXT_COLOR, size=TITLE_SIZE)
        # Titles take their text height; the maps get the rest.
        layout.layout.setRowMaximumHeight(2 * row, TITLE_HEIGHT)
        layout.layout.setRowStretchFactor(2 * row + 1, 1)
        self.view = layout.addViewBox(row=2 * row + 1, col=col, lockAspect=True, invertY=True,
                                      enableMouse=False, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.note = pg.TextItem("", color=TEXT_COLOR, anchor=(0.5, 0.5))
        self.view.addItem(self.note)
        self.values: np.ndarray | None = None  # what the hover read-out reports
        self.class_name = ""

    def show(self, tile: MapTile, levels: tuple[float, float], lut: np.ndarray) -> None:
        self.class_name = tile.class_name
        self.label.setText(tile.title)
        self.values = tile.image
        if tile.image is None:
            # A grey tile of the map's own shape: an empty class must not look like a flat map.
            self.image.setLookupTable(None)
            self.image.setImage(self._empty, autoLevels=False, levels=(0, 255))
            self.note.setText(tile.note)
            self.note.show()
            return
        channels = tile.image.shape[0]
        self.note.hide()
        if channels == 1:
            self.image.setLookupTable(lut)
            self.image.setImage(np.ascontiguousarray(tile.image[0], dtype=np.float32), autoLevels=False,
                                levels=levels)
        else:
            self.image.setLookupTable(None)
            self.image.setImage(figures.rgb_display(tile.image, levels), autoLevels=False, levels=(0.0, 1.0))

    def frame(self, height: int, width: int) -> None:
        self._empty = np.full((height, width, 3), EMPTY_TILE_COLOR, dtype=np.uint8)
        self.note.setPos(width / 2, height / 2)
        self.view.setRange(xRange=(0, width), yRange=(0, height), padding=0)


class MapGrid(pg.GraphicsLayoutWidget):
    """Per-class maps with titles, one shared symmetric colour scale and a colour bar (1-channel maps)."""

    hovered = Signal(str)  # "class 8 · x=3, y=14 · 0.512", or "" off the maps

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self._lut = figures.colormap_table()
        self._tiles: list[_TileView] = []
        self._key: tuple = ()
        self._shape: tuple[int, ...] = (1, 1, 1)  # kept while every tile is empty
        self.levels: tuple[float, float] = (-1.0, 1.0)  # the colour limits on screen
        self._colormap = figures.COLORMAP_NAME
        self._colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get(figures.COLORMAP_NAME),
                                         interactive=False, width=14, colorMapMenu=False)
        self._colorbar.axis.setTextPen(TEXT_COLOR)
        self._colorbar.axis.setPen(TEXT_COLOR)
        self._label = ""
        self._view = ""
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.scene().sigMouseClicked.connect(self._mouse_clicked)
        self.enlarged: QDialog | None = None
        add_plot_menu(self, lambda: self._menu_actions())
        self.setToolTip("Click a map to enlarge it; right-click to copy its values or export the grid")

    def show_maps(self, tiles: list[MapTile], levels: tuple[float, float], view: str, label: str | None = None,
                  colormap: str = figures.COLORMAP_NAME) -> None:
        if colormap != self._colormap:
            self._colormap, self._lut = colormap, figures.colormap_table(colormap)
            self._colorbar.setColorMap(pg.colormap.get(colormap))
        self.levels = (float(levels[0]), float(levels[1]))
        self._tile_data, self._label, self._view = list(tiles), label or "", view
        shape = next((t.image.shape for t in tiles if t.image is not None), self._shape)
        key = (tuple(t.class_index for t in tiles), shape)
        if key != self._key:
            self._rebuild(len(tiles), shape)
            self._key, self._shape = key, shape
        for view_item, tile in zip(self._tiles, tiles):
            view_item.show(tile, levels, self._lut)
        if shape[0] == 1 and any(t.image is not None for t in tiles):
            self._colorbar.setLevels(levels)
            self._colorbar.setLabel("left", label or figures.MAP_VIEW_LABELS.get(view, view), color=TEXT_COLOR)
            self._colorbar.show()
        else:
            self._colorbar.hide()

    def _rebuild(self, n_tiles: int, shape: tuple[int, ...]) -> None:
        self.ci.clear()
        columns = figures.grid_columns(n_tiles)
        rows = math.ceil(n_tiles / columns)
        self._tiles = [_TileView(self.ci, *divmod(i, columns)) for i in range(n_tiles)]
        for tile in self._tiles:
            tile.frame(*shape[1:])
        self.ci.addItem(self._colorbar, row=0, col=columns, rowspan=2 * rows)

    def _mouse_moved(self, position: QPointF) -> None:
        for tile in self._tiles:
            if tile.values is None or not tile.view.sceneBoundingRect().contains(position):
                continue
            point = tile.view.mapSceneToView(position)
            col, row = math.floor(point.x()), math.floor(point.y())
            _, height, width = tile.values.shape
            if 0 <= row < height and 0 <= col < width:
                pixel = tile.values[:, row, col]
                value = f"{pixel[0]:.4g}" if pixel.size == 1 else "(" + ", ".join(f"{v:.3g}" for v in pixel) + ")"
                self.hovered.emit(f"class {tile.class_name} · x={col}, y={row} · {value}")
                return
        self.hovered.emit("")


    def tile_at(self, position: QPointF) -> MapTile | None:
        """The tile whose map is under ``position`` (scene coordinates)."""
        for view_item, tile in zip(self._tiles, getattr(self, "_tile_data", [])):
            if view_item.view.sceneBoundingRect().contains(position):
                return tile
        return None

    def _mouse_clicked(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            tile = self.tile_at(event.scenePos())
            if tile is not None and tile.image is not None:
                self.enlarge(tile)

    def enlarge(self, tile: MapTile) -> QDialog:
        """Show one map large, on the grid's colour scale, in a window of its own (hover works there too)."""
        dialog = QDialog(self.window())
        dialog.setWindowTitle(tile.title)
        grid = MapGrid(dialog)
        grid.setObjectName("enlarged_map")
        grid.show_maps([tile], self.levels, self._view, self._label, self._colormap)
        readout = QLabel("Hover over the map to read its pixel values.")
        grid.hovered.connect(lambda text: readout.setText(text or "Hover over the map to read its pixel values."))
        layout = QVBoxLayout(dialog)
        layout.addWidget(grid, 1)
        layout.addWidget(readout)
        dialog.resize(560, 560)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.enlarged = dialog
        return dialog

    def write_figure(self, path: Path) -> Path:
        """The grid as the paper figure `wna export` writes (figures.save_map_grid): the maps, titles and colour
        limits on screen, at the figure size (export_view)."""
        tiles = getattr(self, "_tile_data", [])
        if not tiles:
            raise ValueError("the map grid shows no maps yet")
        maps = np.stack([np.asarray(t.image, dtype=np.float64) if t.image is not None
                         else np.full(self._shape, np.nan) for t in tiles])
        note = next((t.note for t in tiles if t.image is None), "no samples")
        return figures.save_map_grid(maps, [t.title for t in tiles], path, view=self._view, levels=self.levels,
                                     label=self._label or None, note=note, colormap=self._colormap)

    def _menu_actions(self) -> list:
        position = self.mapToScene(self.mapFromGlobal(QCursor.pos()))
        tile = self.tile_at(position)
        actions: list[tuple[str, Callable[[], object]]] = []
        if tile is not None and tile.image is not None:
            image = tile.image  # the map the menu was opened on
            actions.append((f"Enlarge the map of {tile.class_name}", lambda: self.enlarge(tile)))
            actions.append((f"Copy the values of {tile.class_name}'s map", lambda: copy_text(map_csv(image))))
        return actions


def map_csv(image: np.ndarray) -> str:
    """A (C, H, W) map as CSV text: one row per image row (channels one after another)."""
    rows = [",".join(f"{v:.6g}" for v in row) for channel in image for row in channel]
    return "\n".join(rows) + "\n"


def copy_text(text: str) -> None:
    QApplication.clipboard().setText(text)


def add_plot_menu(widget: QWidget, extra: Callable[[], list] | None = None,
                  data: Callable[[], str] | None = None) -> None:
    """A right-click menu on a plot: ``extra()`` actions (label, callable), Copy data (``data()``: CSV text)
    and Export this plot… (PNG, PDF or SVG at the export size, as File > Export writes it)."""

    def show(point) -> None:
        menu = QMenu(widget)
        for label, action in (extra() if extra else []):
            menu.addAction(label, action)
        if data is not None:
            menu.addAction("Copy data (CSV)", lambda: copy_text(data()))
        menu.addAction("Export this plot…", lambda: _export_plot(widget))
        menu.exec(widget.mapToGlobal(point))

    widget.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    widget.customContextMenuRequested.connect(show)


def _export_plot(widget: QWidget) -> QDialog:
    """File > Export's dialog for this plot alone: the same width, DPI and formats, written by export_view."""
    from .dialogs import ExportDialog, ExportTarget  # the panels import this module and the dialogs

    window = widget.window()
    size = window.export_size() if hasattr(window, "export_size") else figures.figure_size()
    store = getattr(window, "store", None)  # the main window's settings; a detached plot has none
    directory = store and store.value("export_dir", "")
    target = ExportTarget("This plot", FIGURE_FORMATS, lambda path: export_view(widget, path))
    dialog = ExportDialog([target], directory or str(Path.home()), widget, widget.objectName() or "plot", size)
    dialog.setWindowTitle("Export this plot")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


class ClassFrequencyPlot(pg.PlotWidget):
    """How often the model assigns each class to noise (the paper's Fig. 2B histogram)."""

    MAX_TICK_LABELS = 20

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        style_plot(self, "How the model labels noise", "samples", "class")
        self.getPlotItem().setMouseEnabled(x=False, y=False)
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.75, brush="#4c72b0", pen=None)
        self.addItem(self._bars)
        self._names: tuple[str, ...] = ()
        self._top = 0.0
        add_plot_menu(self, data=self.csv)

    def csv(self) -> str:
        """class,count per class, as on screen."""
        heights = self.heights()
        return "class,count\n" + "".join(f"{name},{int(h)}\n" for name, h in zip(self._names, heights))

    def show_counts(self, counts: np.ndarray, class_names: tuple[str, ...]) -> None:
        if class_names != self._names:
            self._names = class_names
            ticks = [(k, name) for k, name in enumerate(class_names)] if len(class_names) <= self.MAX_TICK_LABELS else None
            self.getPlotItem().getAxis("bottom").setTicks([ticks] if ticks else None)
            self.setXRange(-0.6, len(class_names) - 0.4, padding=0)
        self._bars.setOpts(x=np.arange(len(counts)), height=np.asarray(counts, dtype=np.float64), width=0.75)
        # Rescale in steps, not every frame: a range change repaints the axes, the costliest part of a frame.
        highest = max(1.0, float(np.max(counts, initial=0)))
        if not self._top / 4 < highest <= self._top:
            self._top = highest * 1.25
            self.setYRange(0, self._top, padding=0)

    def heights(self) -> np.ndarray:
        """The bar heights on screen."""
        return np.asarray(self._bars.opts["height"])


# The chosen estimator's classes, behind the race's curves.
CLASS_CURVE_COLOR = (150, 150, 150, 120)
# One colour per estimator in the convergence race (the hard label, the paper's, in dark grey).
ESTIMATOR_COLORS = {"hard": "#404040", "logit": "#1f77b4", "prob": "#ff7f0e", "gradient": "#2ca02c",
                    "signal": "#9467bd"}


@dataclass(frozen=True)
class RaceCurve:
    """One estimator's curve in the convergence race: reliability (mean over classes) against its samples."""

    estimator: str
    label: str
    samples: np.ndarray
    reliability: np.ndarray


class ConvergencePlot(pg.PlotWidget):
    """The convergence race: each estimator's reliability (mean over all classes) against the samples it
    used, on a log axis; thin grey lines: the chosen estimator's classes."""

    MAX_CLASS_CURVES = 20

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        style_plot(self, "Convergence of the maps", "r (Spearman–Brown)", "samples")
        item = self.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setMouseEnabled(x=False, y=False)
        self.setYRange(-0.2, 1.0, padding=0)
        item.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0.0, 0.5, 1.0)], [(v, "") for v in (-0.25, 0.25, 0.75)]])
        # Top left, where curves that rise to the right leave room; compact so it covers little of a small plot.
        self._legend = item.addLegend(offset=(4, 4), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 200),
                                      labelTextSize="7pt", verSpacing=-8)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._class_curves: dict[int, pg.PlotDataItem] = {}
        self._axis_text = ""
        self._x_range: tuple[float, float] = (0.0, 0.0)
        self._show_x_range((2.0, 5.0))  # 100 to 100k samples until data arrive
        add_plot_menu(self, data=self.csv)

    def csv(self) -> str:
        """estimator,samples,r for each drawn point."""
        lines = ["estimator,samples,r"]
        for estimator, (x, y) in self.curve_data().items():
            lines += [f"{estimator},{int(a)},{b:.6g}" for a, b in zip(x, y)]
        return "\n".join(lines) + "\n"

    def _show_x_range(self, x_range: tuple[float, float]) -> None:
        """Set the log-x range and its ticks; only when it changes (axis repaints are costly)."""
        if x_range != self._x_range:
            self._x_range = x_range
            self.getPlotItem().getAxis("bottom").setTicks(log_ticks(x_range[1]))
            self.setXRange(*x_range, padding=0.02)

    def show_race(self, curves: list[RaceCurve], selected: str, class_samples: np.ndarray,
                  class_values: np.ndarray, class_names: tuple[str, ...], corrected: bool = True) -> None:
        """Draw each estimator's curve (the ``selected`` one thicker) and the selected estimator's classes.

        ``class_values`` is (T, K) at ``class_samples`` (T,); NaN points are left out.
        """
        axis_text = "r (Spearman–Brown)" if corrected else "r (raw split-half)"
        if axis_text != self._axis_text:
            self._axis_text = axis_text
            self.getPlotItem().setLabel("left", axis_text, color=TEXT_COLOR)
        wanted = {curve.estimator for curve in curves}
        for estimator in [e for e in self._curves if e not in wanted]:
            self._legend.removeItem(self._curves[estimator])
            self.removeItem(self._curves.pop(estimator))
        right = 3.0
        first = None
        for curve in curves:
            item = self._curves.get(curve.estimator)
            color = ESTIMATOR_COLORS.get(curve.estimator, TEXT_COLOR)
            if item is None:
                # Markers at the recorded points: an estimator with one point so far (the gradient on every
                # n-th block) still shows.
                item = self._curves[curve.estimator] = self.plot(
                    [], [], name=curve.label, pen=pg.mkPen(color), symbol="o", symbolSize=5,
                    symbolPen=pg.mkPen(color), symbolBrush=pg.mkBrush(color))
                item.setZValue(10)
            item.setPen(pg.mkPen(color, width=3.5 if curve.estimator == selected else 2.0))
            keep = np.isfinite(curve.reliability) & (curve.samples > 0)
            item.setData(curve.samples[keep], curve.reliability[keep])
            if keep.any():
                right = max(right, math.ceil(math.log10(max(int(curve.samples[keep][-1]), 1000)) * 2) / 2)
                low = math.log10(max(int(curve.samples[keep][0]), 100))
                first = low if first is None else min(first, low)
        self._show_class_curves(class_samples, class_values, class_names)
        # The axis grows by half decades, so it is redrawn a few times per run rather than every frame.
        self._show_x_range((min(first if first is not None else 2.0, right - 1), right))

    def _show_class_curves(self, samples: np.ndarray, values: np.ndarray, class_names: tuple[str, ...]) -> None:
        present = (np.flatnonzero(np.isfinite(values).any(0))[: self.MAX_CLASS_CURVES]
                   if values.size else np.zeros(0, dtype=np.int64))
        for k in [k for k in self._class_curves if k not in set(present.tolist())]:
            self._class_curves[k].setData([], [])
        for k in present:
            curve = self._class_curves.get(int(k))
            if curve is None:  # light grey: the estimators' colours are the race's
                curve = self._class_curves[int(k)] = self.plot([], [], pen=pg.mkPen(CLASS_CURVE_COLOR, width=1))
            column = values[:, k]
            keep = np.isfinite(column) & (samples > 0)
            curve.setData(samples[keep], column[keep])

    def curve_data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Estimator → (samples, reliability) as drawn."""
        return {estimator: (item.xData, item.yData) for estimator, item in self._curves.items()
                if item.xData is not None}

    def clear_curves(self) -> None:
        for curve in list(self._curves.values()):
            self._legend.removeItem(curve)
            self.removeItem(curve)
        self._curves.clear()
        for curve in self._class_curves.values():
            self.removeItem(curve)
        self._class_curves.clear()


def _short_count(value: int) -> str:
    for size, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if value >= size:
            return f"{value // size}{suffix}"
    return str(value)


def log_ticks(up_to_exponent: float) -> list[list[tuple[float, str]]]:
    """Readable ticks for a log10 axis from 100: labelled decades, then 2× and 5× in between."""
    major: list[tuple[float, str]] = []
    minor: list[tuple[float, str]] = []
    for exponent in range(2, math.ceil(up_to_exponent) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            (major if mantissa == 1 else minor).append((math.log10(value), _short_count(value)))
    return [major, minor]


def export_view(widget: QWidget, path: Path) -> Path:
    """A plot or view as a paper figure (.png, .pdf or .svg) at the figure size chosen for exports
    (figures.figure_size: width in mm, PNG at its DPI): a view with a paper figure of its own (``write_figure``:
    the map grid) writes that; a pyqtgraph plot is laid out afresh across the width, fonts at their point sizes
    (figures.page.write_view, as `wna export` lays out its plots); any other widget is drawn as on screen,
    scaled to the width."""
    path = Path(path)
    check_suffix(path, "a view")
    write_figure = getattr(widget, "write_figure", None)
    if write_figure is not None:
        return write_figure(path)
    if isinstance(widget, pg.GraphicsView) and widget.centralWidget is not None:
        return write_view(widget, path)
    width = figures.figure_size().logical_width
    scale = width / max(widget.width(), 1)

    def paint(painter: QPainter) -> None:
        painter.scale(scale, scale)
        QWidget.render(widget, painter, QPoint())  # pyqtgraph views override render() to draw the scene

    return write_painted(path, (width, max(widget.height(), 1) * scale), paint, path.stem)


class FigureView(QScrollArea):
    """A painted figure (figures.*: the exported figure's painter) shown at the screen's pixel ratio."""

    def __init__(self, placeholder: str = "") -> None:
        super().__init__()
        self.setObjectName("figure_view")
        self.setWidgetResizable(True)
        self.label = QLabel(placeholder)
        self.label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.label.setWordWrap(True)
        self.setWidget(self.label)
        self.placeholder = placeholder
        self.canvas = None

    def show_canvas(self, canvas) -> None:
        """Paint ``canvas`` as wide as the view (never below its own size: the text stays legible)."""
        self.canvas = canvas
        ratio = self.devicePixelRatioF()
        fit = max(1.0, (self.viewport().width() - 4) / max(canvas.width, 1.0))
        pixmap = QPixmap.fromImage(canvas.to_qimage(fit * ratio))
        pixmap.setDevicePixelRatio(ratio)
        self.label.setPixmap(pixmap)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.canvas is not None:
            self.show_canvas(self.canvas)

    def clear_canvas(self, text: str | None = None) -> None:
        self.canvas = None
        self.label.clear()
        self.label.setText(self.placeholder if text is None else text)


def figure_with_report(placeholder: str, report_name: str) -> tuple[QWidget, FigureView, QLabel]:
    """A painted-figure view over a selectable report line: (the widget, the view, the label)."""
    figure = FigureView(placeholder)
    report = QLabel()
    report.setObjectName(report_name)
    report.setWordWrap(True)
    report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    views = QWidget()
    layout = QVBoxLayout(views)
    layout.addWidget(figure, 1)
    layout.addWidget(report)
    return views, figure, report
