"""Figures at a physical size: journal column widths, a chosen DPI, fonts that stay readable.

Every figure is laid out in *logical* units of 1/96 inch (Qt's screen unit, so
pyqtgraph items and their fonts come out at their point sizes) across the
chosen width, then written:

- PNG: rendered at the chosen DPI (width_mm / 25.4 × dpi pixels), which it declares;
- PDF: a page of exactly the chosen size, fonts embedded; images embedded
  losslessly at their native resolution (QPainter.LosslessImageRendering: no JPEG);
- SVG: width and height declared in millimetres, the same physical size; text
  as glyph outlines (an SVG cannot carry its fonts portably), each keeping its
  words in ``aria-label``.

Two kinds of figure go through :func:`write_painted`: canvases that paint
themselves with QPainter (figures.maps.Canvas and its kin) and pyqtgraph scenes
(:func:`write_scene` for `wna export`, :func:`write_view` for a plot of the app,
which is laid out afresh at the width and put back as it was). On paper a
plot's legend sits under it, never over the data.

The size comes from :func:`figure_size`, set for a block of exports by
``with sized(FigureSize(85, 300)):`` (the app's export dialog, a plot's
right-click "Export this plot" and `wna export --width-mm/--dpi`), so the
renderers and the artefacts' writers keep their signatures.
"""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

LOGICAL_DPI = 96.0
MIN_FONT_PT = 7.0
TEXT_PT = 8.0  # captions, ticks, colour-bar numbers
TITLE_PT = 9.0
# Column widths of the common journals (Nature, Cell, Elsevier, IEEE all within a few mm).
WIDTH_PRESETS_MM = {"single column": 85.0, "1.5 columns": 114.0, "double column": 174.0}
DPI_CHOICES = (150, 300, 600)
FIGURE_FORMATS = (".png", ".pdf", ".svg")


@dataclass(frozen=True)
class FigureSize:
    width_mm: float = WIDTH_PRESETS_MM["double column"]
    dpi: int = 300

    def __post_init__(self) -> None:
        if not 20.0 <= self.width_mm <= 600.0:
            raise ValueError(f"figure width must be between 20 and 600 mm, got {self.width_mm:g}")
        if not 50 <= self.dpi <= 2400:
            raise ValueError(f"figure resolution must be between 50 and 2400 dpi, got {self.dpi}")

    @property
    def logical_width(self) -> float:
        return self.width_mm / 25.4 * LOGICAL_DPI

    def describe(self) -> str:
        return f"{self.width_mm:g} mm wide, PNG at {self.dpi} dpi"


_SIZE: ContextVar[FigureSize] = ContextVar("figure_size", default=FigureSize())  # noqa: B039 (frozen)


def figure_size() -> FigureSize:
    """The size figures are written at now (default: double column, 300 dpi)."""
    return _SIZE.get()


@contextmanager
def sized(size: FigureSize) -> Iterator[FigureSize]:
    """Write the figures of this block at ``size``."""
    token = _SIZE.set(size)
    try:
        yield size
    finally:
        _SIZE.reset(token)


def points(pt: float) -> float:
    """A font size in points as logical units (pixel size of a QFont in the layout)."""
    return pt * LOGICAL_DPI / 72.0


def wrap_flags(metrics, text: str, width: float):
    """Qt's text flags that keep ``text`` within ``width`` (a canvas's label column, a tile): wrapped at spaces
    and hyphens, or anywhere when one word is wider than that."""
    from PySide6.QtCore import QRectF, Qt

    words = Qt.TextFlag.TextWordWrap
    if metrics.boundingRect(QRectF(0, 0, width, 1e4), int(words), text).width() <= width:
        return words
    return Qt.TextFlag.TextWrapAnywhere


def wrapped_height(font, text: str, width: float) -> float:
    """The height ``text`` takes wrapped to ``width`` (by :func:`wrap_flags`); 0 for no text."""
    if not text:
        return 0.0
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QFontMetricsF

    metrics = QFontMetricsF(font)
    return metrics.boundingRect(QRectF(0, 0, width, 1e4), int(wrap_flags(metrics, text, width)), text).height()


def check_suffix(path: Path, what: str = "a figure") -> str:
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"cannot write {what} as {suffix or 'a file without suffix'}; use .png, .pdf or .svg")
    return suffix


def _paint_on(device, scale: float, logical_size: tuple[float, float], paint: Callable, background: str) -> None:
    """Paint a figure laid out in logical units onto ``device`` at ``scale`` device units per logical unit."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QPainter

    painter = QPainter()
    if not painter.begin(device):
        raise OSError("could not start painting the figure")
    try:
        for hint in (QPainter.RenderHint.Antialiasing, QPainter.RenderHint.TextAntialiasing,
                     QPainter.RenderHint.LosslessImageRendering):
            painter.setRenderHint(hint, True)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # map pixels stay square
        painter.scale(scale, scale)
        painter.fillRect(QRectF(0, 0, *logical_size), QColor(background))
        paint(painter)
    finally:
        painter.end()


def painted_image(logical_size: tuple[float, float], paint: Callable, scale: float = 1.0,
                  background: str = "white"):
    """A figure as a QImage at ``scale`` pixels per logical unit (PNG files and the app's figure views)."""
    from PySide6.QtGui import QColor, QImage

    width, height = logical_size
    image = QImage(max(1, round(width * scale)), max(1, round(height * scale)), QImage.Format.Format_RGB32)
    image.fill(QColor(background))  # the last row or column rounded up is background too
    # Painted at the logical DPI: pyqtgraph's axes replay QPictures, whose text Qt rescales by the device's
    # DPI (tick labels came out dpi/96 times too large); a file then declares its real resolution.
    image.setDotsPerMeterX(round(LOGICAL_DPI / 0.0254))
    image.setDotsPerMeterY(round(LOGICAL_DPI / 0.0254))
    _paint_on(image, scale, logical_size, paint, background)
    return image


def write_painted(path: str | Path, logical_size: tuple[float, float], paint: Callable, title: str = "",
                  background: str = "white") -> Path:
    """Write a figure laid out in logical units as PNG, PDF or SVG at :func:`figure_size`'s physical size.

    ``paint(painter)`` draws in logical coordinates (0..width, 0..height); the
    painter is scaled to each device, so text, lines and images keep their
    physical size everywhere.
    """
    from PySide6.QtCore import QMarginsF, QRect, QSize, QSizeF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter
    from PySide6.QtSvg import QSvgGenerator

    path = Path(path)
    suffix = check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = logical_size
    size = figure_size()
    scale = size.dpi / LOGICAL_DPI

    if suffix == ".png":
        image = painted_image(logical_size, paint, scale, background)
        image.setDotsPerMeterX(round(size.dpi / 0.0254))
        image.setDotsPerMeterY(round(size.dpi / 0.0254))
        if not image.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
    elif suffix == ".pdf":
        writer = QPdfWriter(str(path))
        writer.setResolution(size.dpi)
        page = QSizeF(width * 72.0 / LOGICAL_DPI, height * 72.0 / LOGICAL_DPI)
        writer.setPageLayout(QPageLayout(QPageSize(page, QPageSize.Unit.Point, "figure"),
                                         QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
        writer.setTitle(title or path.stem)
        writer.setCreator("wna-gui")
        _paint_on(writer, scale, logical_size, paint, background)
    else:
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setResolution(round(LOGICAL_DPI))  # logical units are 1/96 inch: the SVG declares mm
        generator.setSize(QSize(round(width), round(height)))
        generator.setViewBox(QRect(0, 0, round(width), round(height)))
        generator.setTitle(title or path.stem)
        _paint_on(generator, 1.0, logical_size, paint, background)
        _finish_svg(path, size, logical_size)
    return path


# QSvgGenerator's <text> element: its attributes and its XML-escaped text.
_SVG_TEXT = re.compile(r"<text\b([^>]*)>(.*?)</text>", re.S)
_SVG_ATTRIBUTE = re.compile(r'([\w:-]+)="([^"]*)"')


def _finish_svg(path: Path, size: FigureSize, logical_size: tuple[float, float]) -> None:
    """Make a QSvgGenerator file paper-ready: the exact width in mm (the generator rounds to whole units) and
    text as outlines, so it looks the same without the fonts (an SVG cannot embed them portably). Each outline
    keeps its text in ``aria-label``: searchable, and readable by screen readers."""
    width, height = logical_size
    text = path.read_text(encoding="utf-8")
    header = re.compile(r'<svg width="[^"]*" height="[^"]*"\s*viewBox="[^"]*"')
    text = header.sub(f'<svg width="{size.width_mm:.6g}mm" height="{height / LOGICAL_DPI * 25.4:.6g}mm" '
                      f'viewBox="0 0 {width:.4f} {height:.4f}"', text, count=1)
    path.write_text(_SVG_TEXT.sub(_text_outline, text), encoding="utf-8")


def _text_outline(match: re.Match) -> str:
    """One <text> element as a <path> of its glyph outlines, in the same font, place and colour."""
    from PySide6.QtGui import QFont, QPainterPath

    attributes = dict(_SVG_ATTRIBUTE.findall(match.group(1)))
    content = html.unescape(match.group(2))
    font = QFont(attributes.get("font-family", "Sans Serif"))
    font.setPixelSize(max(1, round(float(attributes.get("font-size", "12")))))
    font.setWeight(QFont.Weight(int(float(attributes.get("font-weight", "400")))))
    font.setItalic(attributes.get("font-style", "normal") != "normal")
    outline = QPainterPath()
    outline.addText(float(attributes.get("x", "0")), float(attributes.get("y", "0")), font, content)
    commands, curve = [], []
    for i in range(outline.elementCount()):
        element = outline.elementAt(i)
        point = f"{element.x:.2f} {element.y:.2f}"
        if element.type == QPainterPath.ElementType.MoveToElement:
            commands.append(f"M{point}")
        elif element.type == QPainterPath.ElementType.LineToElement:
            commands.append(f"L{point}")
        else:  # a cubic: its control point, then two data points
            curve.append(point)
            if len(curve) == 3:
                commands.append("C" + " ".join(curve))
                curve = []
    rule = "evenodd" if outline.fillRule() == outline.fillRule().OddEvenFill else "nonzero"
    fill = f'fill="{attributes.get("fill", "#000000")}" fill-opacity="{attributes.get("fill-opacity", "1")}"'
    label = html.escape(content, quote=True)
    return f'<path aria-label="{label}" {fill} fill-rule="{rule}" stroke="none" d="{"".join(commands)}"/>'


def write_scene(figure, aspect: tuple[float, float], path: str | Path, draw: Callable) -> Path:
    """Lay a pyqtgraph ``figure`` (a QGraphicsWidget) out across the figure width at ``aspect`` (width,
    height), let ``draw(figure)`` fill it, and write it as PNG, PDF or SVG.

    pyqtgraph items size ticks, symbols and labels in device pixels through their
    scene's view (without one, axes draw nothing), so the scene gets a view that
    is never shown, whose pixels are the layout's logical units: fonts keep their
    point sizes at any physical size. The view, and with it the scene and the
    figure, is deleted before returning, so nothing is left for the interpreter's
    exit.
    """
    import pyqtgraph as pg
    import shiboken6

    path = Path(path)
    check_suffix(path, "a plot")
    view = pg.GraphicsView(background="w")  # never shown: only its pixel mapping is used
    try:
        view.setCentralItem(figure)
        draw(figure)
        return _write_laid_out(view, aspect, path, [])
    finally:
        shiboken6.delete(view)  # and with it its scene, the figure and its items: now, not at exit


def write_view(view, path: str | Path) -> Path:
    """A plot of the app (a pyqtgraph GraphicsView: PlotWidget, GraphicsLayoutWidget) written as the exported
    figures are: laid out afresh across the figure width, fonts at their point sizes, in its on-screen aspect
    (its height kept between half and all of its width), then put back as it was on screen."""
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF
    from PySide6.QtWidgets import QApplication

    path = Path(path)
    check_suffix(path, "a plot")
    size = view.size()
    width = max(size.width(), 1)
    aspect = (width, min(max(size.height(), 0.5 * width), width))
    undo: list[Callable] = []
    try:
        return _write_laid_out(view, aspect, path, undo)
    finally:
        for step in reversed(undo):
            step()
        view.resize(size)
        pg.GraphicsView.setRange(view, QRectF(0, 0, size.width(), size.height()), padding=0, disableAutoPixel=False)
        QApplication.sendPostedEvents()


def _write_laid_out(view, aspect: tuple[float, float], path: Path, undo: list) -> Path:
    """Lay ``view``'s central item out across the figure width at ``aspect``, make its items paper-ready and
    write it; ``undo`` receives what puts each changed item back."""
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtWidgets import QApplication

    figure = view.centralWidget
    width = figure_size().logical_width
    height = width * aspect[1] / aspect[0]
    QApplication.sendPostedEvents()
    # Legends go under their plots; the figure grows by their height, so the plots keep their aspect.
    extra = sum(_legend_below(legend, width, undo) for legend in view.scene().items()
                if isinstance(legend, pg.LegendItem))
    layout_w = _fitting_width(figure, width, undo)
    layout_h = layout_w * aspect[1] / aspect[0] + extra
    height += extra * width / layout_w
    rect = QRectF(0, 0, layout_w, layout_h)
    view.resize(round(layout_w), round(layout_h))
    # What showing the view would do: central item at rect, scene coordinates = logical units.
    pg.GraphicsView.setRange(view, rect, padding=0, disableAutoPixel=False)
    QApplication.sendPostedEvents()  # pending layout requests: every item at its final geometry
    scene = view.scene()
    symbol_scale = figure_size().dpi / LOGICAL_DPI if path.suffix.lower() == ".png" else 1.0
    for item in scene.items():
        undo.append(lambda item=item, mode=item.cacheMode(): item.setCacheMode(mode))
        item.setCacheMode(item.CacheMode.NoCache)  # cached items would be painted at screen resolution
        if isinstance(item, pg.LegendItem):  # a legend keeps its screen size; on paper it scales too
            flag = item.GraphicsItemFlag.ItemIgnoresTransformations
            undo.append(lambda item=item, flag=flag, on=bool(item.flags() & flag): item.setFlag(flag, on))
            item.setFlag(flag, False)
        elif isinstance(item, pg.ScatterPlotItem) and item.opts.get("pxMode") and len(item.data):
            # Symbols are drawn in device pixels: on paper they take their size at the output's resolution.
            undo.append(lambda item=item, sizes=item.data["size"].copy(): item.setSize(sizes))
            sizes = np.where(item.data["size"] < 0, item.opts["size"], item.data["size"])
            item.setSize(sizes * symbol_scale)
        elif isinstance(item, pg.PlotCurveItem) and symbol_scale != 1.0:
            undo.append(lambda item=item, pen=pg.mkPen(item.opts["pen"]): item.setPen(pen))
            pen = pg.mkPen(item.opts["pen"])  # cosmetic: its width is in device pixels too
            pen.setWidthF(max(pen.widthF(), 1.0) * symbol_scale)
            item.setPen(pen)
    target = QRectF(0, 0, width, height)  # a layout wider than the page is scaled down onto it
    return write_painted(path, (width, height), lambda painter: scene.render(
        painter, target, rect, Qt.AspectRatioMode.IgnoreAspectRatio), path.stem)


def _legend_below(legend, width: float, undo: list) -> float:
    """On paper a plot's legend goes under the plot, in two columns where they fit the page: inside it, as on
    screen, it covers curves. Returns the height it takes there (0: left where it was)."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    box = legend.parentItem()
    plot = box.parentItem() if isinstance(box, pg.ViewBox) else None
    if not isinstance(plot, pg.PlotItem) or not legend.items or not legend.isVisible():
        return 0.0
    columns = legend.columnCount
    left, top, right, bottom = plot.layout.getContentsMargins()
    undo.append(lambda: (legend.setColumnCount(columns), legend.setParentItem(box),
                         plot.layout.setContentsMargins(left, top, right, bottom)))
    legend.setColumnCount(2)
    QApplication.sendPostedEvents()
    if legend.boundingRect().width() > 0.95 * width:
        legend.setColumnCount(1)
    legend.setParentItem(plot)
    legend.updateSize()
    plot.layout.setContentsMargins(left, top, right, bottom + legend.boundingRect().height())
    legend.anchor(itemPos=(0, 1), parentPos=(0, 1), offset=(0, -bottom))
    return legend.boundingRect().height()


def _fitting_width(figure, width: float, undo: list) -> float:
    """The layout width: the page's, unless the figure cannot be that narrow. A long plot title is first
    broken at its " · " separators; what is still too wide is laid out wider and scaled onto the page."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    def minimum() -> float:
        QApplication.sendPostedEvents()
        return figure.effectiveSizeHint(Qt.SizeHint.MinimumSize).width()

    title = getattr(figure, "titleLabel", None)
    if minimum() > width and title is not None and " · " in title.text:
        undo.append(lambda text=title.text, opts=dict(title.opts): figure.setTitle(text, **opts))
        lines = title.text.count(" · ") + 1
        title.setText(title.text.replace(" · ", "<br>"), **title.opts)
        height = title.item.boundingRect().height() + 4 * lines
        # PlotItem fixes its title row at one line's height: give it room for every line.
        title.setMaximumHeight(height)
        figure.layout.setRowFixedHeight(0, height)
    return max(width, minimum())
