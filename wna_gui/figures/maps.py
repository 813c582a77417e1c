"""Publication figures of classification-image grids, painted with Qt (no matplotlib).

Shared by the desktop app and the `wna export` command, and usable headless: a
QApplication on the offscreen platform is created when none exists (_qt.py). Tiles
keep their native pixels (nearest-neighbour upscaling, never smoothing), 1-channel
maps share one diverging colour scale with symmetric limits so tiles are
comparable, and empty classes are drawn as empty rather than as flat maps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._qt import ensure_gui_application

MAP_VIEW_LABELS = {"mean": "mean noise n̄ₖ", "centered": "n̄ₖ − n̄ (grand mean)", "zmap": "z-score"}
COLORMAP_NAME = "CET-D1"
FIGURE_FORMATS = (".png", ".pdf", ".svg")
# Native map pixels are upscaled so tiles come out about this many pixels wide.
TARGET_TILE_PIXELS = 224
EMPTY_TILE_GREY = (200, 200, 200)
# A grid of more maps than this is unreadable: 1000-class models show their most frequent classes.
MAX_TILES = 20


def shown_classes(counts: np.ndarray, max_tiles: int = MAX_TILES) -> np.ndarray:
    """All classes, or the ``max_tiles`` most frequent ones (in class order) when there are more."""
    if counts.size <= max_tiles:
        return np.arange(counts.size)
    return np.sort(np.argsort(-counts, kind="stable")[:max_tiles])


def grid_columns(n_tiles: int) -> int:
    """About twice as wide as tall: 10 classes → 5 columns × 2 rows."""
    return min(n_tiles, max(1, math.ceil(math.sqrt(n_tiles * 1.8))))


def map_titles(class_names, counts, predictions=None) -> list[str]:
    """Fig. 2A-style tile titles: "class · map→class the model gives the map · n=count"."""
    titles = []
    for k, name in enumerate(class_names):
        count = int(counts[k])
        if count == 0:
            titles.append(f"{name} · no samples")
        elif predictions is not None and int(predictions[k]) >= 0:
            titles.append(f"{name} · map→{class_names[int(predictions[k])]} · n={count:,}")
        else:
            titles.append(f"{name} · n={count:,}")
    return titles


def map_levels(maps: np.ndarray, view: str, center: float | None = None) -> tuple[float, float]:
    """Display limits symmetric about ``center``, one pair for all tiles so they are comparable.

    ``center`` is the noise mean for the mean view (default: the median of the maps,
    which sits at the noise mean) and 0 for the centred and z views. z-maps span at
    least ±3 so pure noise does not look like signal.
    """
    finite = np.asarray(maps, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if center is None:
        center = float(np.median(finite)) if view == "mean" and finite.size else 0.0
    deviation = np.abs(finite - center)
    if view == "zmap":
        half = max(3.0, float(np.percentile(deviation, 99.5))) if deviation.size else 3.0
    else:
        half = float(deviation.max()) if deviation.size else 0.0
        half = half if half > 0 else 1e-6
    return center - half, center + half


def colormap_table() -> np.ndarray:
    """The diverging colour map as a (256, 3) uint8 lookup table (256 entries: pyqtgraph's fast path)."""
    import pyqtgraph as pg

    return np.ascontiguousarray(pg.colormap.get(COLORMAP_NAME).getLookupTable(nPts=256, alpha=False), dtype=np.uint8)


def rgb_display(image: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """An RGB map (3, H, W) as (H, W, 3) floats in [0, 1], scaled symmetrically about the levels' centre."""
    low, high = levels
    return np.clip((np.moveaxis(image, 0, -1) - low) / (high - low), 0.0, 1.0).astype(np.float32)


def tile_rgb(image: np.ndarray, levels: tuple[float, float], lut: np.ndarray) -> np.ndarray:
    """One map (C, H, W) → (H, W, 3) uint8: colour-mapped if 1-channel, RGB otherwise."""
    if image.shape[0] == 1:
        low, high = levels
        index = np.clip((image[0] - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)
        return lut[index]
    return (rgb_display(image, levels) * 255.0 + 0.5).astype(np.uint8)


def save_map_grid(maps: np.ndarray, titles: list[str], path, *, view: str = "centered", title: str | None = None,
                  levels: tuple | None = None, columns: int | None = None) -> Path:
    """Write a grid of per-class maps (K, C, H, W) as .png, .pdf or .svg (chosen by the suffix).

    NaN maps (classes without samples) are drawn as grey tiles marked "no samples".
    Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"cannot write a map grid as {suffix or 'a file without suffix'}; use .png, .pdf or .svg")
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"maps must be (classes, channels, height, width), got shape {maps.shape}")
    if len(titles) != maps.shape[0]:
        raise ValueError(f"{len(titles)} titles for {maps.shape[0]} maps")
    ensure_gui_application()
    figure = _GridFigure(maps, titles, view, title, levels or map_levels(maps, view), columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    {".png": figure.write_png, ".pdf": figure.write_pdf, ".svg": figure.write_svg}[suffix](path)
    return path


class _GridFigure:
    """Layout in pixels of the PNG; the PDF and SVG reuse it as their coordinate system."""

    PDF_DPI = 300

    def __init__(self, maps, titles, view, title, levels, columns) -> None:
        from PySide6.QtGui import QFont

        self.maps, self.titles, self.view, self.title = maps, titles, view, title
        self.levels = (float(levels[0]), float(levels[1]))
        count, channels, height, width = maps.shape
        self.columns = columns or grid_columns(count)
        self.rows = math.ceil(count / self.columns)
        self.scale = max(1, TARGET_TILE_PIXELS // max(height, width))
        self.tile_w, self.tile_h = width * self.scale, height * self.scale
        unit = max(self.tile_w, self.tile_h)
        self.font = QFont("DejaVu Sans")
        self.font.setPixelSize(max(11, round(unit * 0.07)))
        self.title_font = QFont(self.font)
        self.title_font.setPixelSize(round(self.font.pixelSize() * 1.3))
        self.title_font.setBold(True)
        line = round(self.font.pixelSize() * 1.35)
        self.caption_h = 2 * line
        self.gap = max(8, round(unit * 0.06))
        self.margin = 2 * self.gap
        self.header_h = round(self.title_font.pixelSize() * 2.0) if title else 0
        self.with_colorbar = channels == 1
        self.bar_w = max(12, round(unit * 0.08)) if self.with_colorbar else 0
        self.bar_text_w = round(self.font.pixelSize() * 5) if self.with_colorbar else 0
        grid_w = self.columns * self.tile_w + (self.columns - 1) * self.gap
        self.grid_h = self.rows * (self.caption_h + self.tile_h) + (self.rows - 1) * self.gap
        self.width = self.margin * 2 + grid_w + (self.gap * 2 + self.bar_w + self.bar_text_w if self.with_colorbar else 0)
        self.height = self.margin * 2 + self.header_h + self.grid_h
        self.grid_right = self.margin + grid_w
        self.lut = colormap_table()

    def tile_image(self, k: int):
        """Tile k upscaled by whole pixels (nearest neighbour), or None for an empty class."""
        from PySide6.QtGui import QImage

        image = self.maps[k]
        if not np.isfinite(image).all():
            return None
        rgb = tile_rgb(image, self.levels, self.lut)
        rgb = np.ascontiguousarray(np.repeat(np.repeat(rgb, self.scale, 0), self.scale, 1))
        height, width, _ = rgb.shape
        return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetrics

        painter.setRenderHint(painter.RenderHint.SmoothPixmapTransform, False)
        painter.setRenderHint(painter.RenderHint.TextAntialiasing, True)
        painter.fillRect(QRectF(0, 0, self.width, self.height), QColor("white"))
        painter.setPen(QColor("black"))
        if self.title:
            painter.setFont(self.title_font)
            painter.drawText(QRectF(self.margin, self.margin, self.width - 2 * self.margin, self.header_h),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.title)
        painter.setFont(self.font)
        metrics = QFontMetrics(self.font)
        top = self.margin + self.header_h
        for k, caption in enumerate(self.titles):
            row, col = divmod(k, self.columns)
            x = self.margin + col * (self.tile_w + self.gap)
            y = top + row * (self.caption_h + self.tile_h + self.gap)
            lines = _caption_lines(caption, metrics, self.tile_w)
            line_h = self.caption_h / 2
            for i, text in enumerate(lines):
                baseline_box = QRectF(x, y + (2 - len(lines) + i) * line_h, self.tile_w, line_h)
                painter.drawText(baseline_box, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, text)
            tile = QRectF(x, y + self.caption_h, self.tile_w, self.tile_h)
            image = self.tile_image(k)
            if image is None:
                painter.fillRect(tile, QColor(*EMPTY_TILE_GREY))
                painter.drawText(tile, Qt.AlignmentFlag.AlignCenter, "no samples")
            else:
                painter.drawImage(tile, image)
        if self.with_colorbar:
            self.paint_colorbar(painter, top)

    def paint_colorbar(self, painter, top: float) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QColor, QImage

        x = self.grid_right + self.gap * 2
        bar_top, bar_h = top + self.caption_h, self.grid_h - self.caption_h
        gradient = np.ascontiguousarray(self.lut[::-1][:, None, :].repeat(8, 1))
        image = QImage(gradient.data, 8, 256, 24, QImage.Format.Format_RGB888).copy()
        bar = QRectF(x, bar_top, self.bar_w, bar_h)
        painter.drawImage(bar, image)
        painter.setPen(QColor("black"))
        painter.drawRect(bar)
        low, high = self.levels
        text_x = x + self.bar_w + self.gap / 2
        for value, fraction in ((high, 0.0), ((low + high) / 2, 0.5), (low, 1.0)):
            y = bar_top + fraction * bar_h
            painter.drawLine(QPointF(x + self.bar_w, y), QPointF(x + self.bar_w + self.gap / 3, y))
            box = QRectF(text_x, y - self.font.pixelSize(), self.bar_text_w, 2 * self.font.pixelSize())
            painter.drawText(box, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{value:.3g}")
        painter.save()
        painter.translate(text_x + self.bar_text_w - self.font.pixelSize() * 0.2, bar_top + bar_h / 2)
        painter.rotate(-90)
        painter.drawText(QRectF(-bar_h / 2, -self.font.pixelSize() * 1.4, bar_h, self.font.pixelSize() * 1.4),
                         Qt.AlignmentFlag.AlignCenter, MAP_VIEW_LABELS.get(self.view, self.view))
        painter.restore()

    def write_png(self, path: Path) -> None:
        from PySide6.QtGui import QImage, QPainter

        image = QImage(self.width, self.height, QImage.Format.Format_RGB32)
        painter = QPainter(image)
        try:
            self.paint(painter)
        finally:
            painter.end()
        if not image.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")

    def write_pdf(self, path: Path) -> None:
        from PySide6.QtCore import QMarginsF, QSizeF
        from PySide6.QtGui import QPageLayout, QPageSize, QPainter, QPdfWriter

        writer = QPdfWriter(str(path))
        writer.setResolution(self.PDF_DPI)
        points = QSizeF(self.width * 72 / self.PDF_DPI, self.height * 72 / self.PDF_DPI)
        writer.setPageLayout(QPageLayout(QPageSize(points, QPageSize.Unit.Point, "map grid"),
                                         QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
        writer.setTitle(self.title or "Classification images")
        writer.setCreator("wna-gui")
        painter = QPainter()
        if not painter.begin(writer):
            raise OSError(f"could not write {path}")
        try:  # the page is exactly the PNG's size at PDF_DPI, so the layout's pixels are device pixels
            self.paint(painter)
        finally:
            painter.end()

    def write_svg(self, path: Path) -> None:
        from PySide6.QtCore import QRect, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(QSize(self.width, self.height))
        generator.setViewBox(QRect(0, 0, self.width, self.height))
        generator.setTitle(self.title or "Classification images")
        painter = QPainter()
        if not painter.begin(generator):
            raise OSError(f"could not write {path}")
        try:
            self.paint(painter)
        finally:
            painter.end()


def _caption_lines(caption: str, metrics, width: float) -> list[str]:
    """One line if it fits, else the class name over the rest, each elided to the tile width."""
    from PySide6.QtCore import Qt

    if metrics.horizontalAdvance(caption) <= width:
        return [caption]
    head, _, rest = caption.partition(" · ")
    return [metrics.elidedText(text, Qt.TextElideMode.ElideRight, int(width)) for text in (head, rest) if text]
