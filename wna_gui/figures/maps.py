"""Publication figures of classification-image grids, painted with Qt (no matplotlib).

Shared by the desktop app and the `wna export` command, and usable headless: a
QApplication on the offscreen platform is created when none exists (_qt.py). Tiles
keep their native pixels (nearest-neighbour upscaling, never smoothing), 1-channel
maps share one diverging colour scale with symmetric limits so tiles are
comparable, and empty classes are drawn as empty rather than as flat maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


# Per estimator: what a tile without a map says.
EMPTY_NOTES = {"hard": "no samples yet", "prob": "no weight yet", "logit": "needs two samples",
               "gradient": "no gradient block yet", "signal": "no answers yet"}


def _amount(value: float) -> str:
    """A weight sum, readable: 12,345 · 12.3 · 0.0012."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def estimator_titles(estimator: str, class_names, support, predictions=None, reliability=None) -> list[str]:
    """Tile titles for one estimator's maps.

    hard: "class · map→j · n=count" (Fig. 2A); prob: Σp instead of n; signal: n = trials answered k;
    logit and gradient (every sample informs every class): the split-half reliability r when known.
    """
    support = np.asarray(support, dtype=np.float64)
    if estimator == "hard":
        if not np.isfinite(support).all():  # a checkpoint of an old session: counts not recorded
            return [str(name) for name in class_names]
        return map_titles(class_names, support.astype(np.int64), predictions)
    titles = []
    for k, name in enumerate(class_names):
        parts = [str(name)]
        value = support[k] if k < support.size else np.nan
        if estimator in ("prob", "signal") and np.isfinite(value) and value <= 0:
            parts.append("no weight" if estimator == "prob" else "no answers")
        else:
            if predictions is not None and int(predictions[k]) >= 0:
                parts.append(f"map→{class_names[int(predictions[k])]}")
            if estimator == "prob" and np.isfinite(value):
                parts.append(f"Σp={_amount(value)}")
            elif estimator == "signal" and np.isfinite(value):
                parts.append(f"n={int(value):,}")
            elif reliability is not None and np.isfinite(reliability[k]):
                parts.append(f"r={reliability[k]:.2f}")
        titles.append(" · ".join(parts))
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
                  levels: tuple | None = None, columns: int | None = None, label: str | None = None,
                  note: str = "no samples") -> Path:
    """Write a grid of per-class maps (K, C, H, W) as .png, .pdf or .svg (chosen by the suffix).

    NaN maps (classes without samples) are drawn as grey tiles marked ``note``. ``label`` captions the
    colour bar (default: the view's hard-label caption). Returns the path written.
    """
    path = Path(path)
    _check_suffix(path)
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"maps must be (classes, channels, height, width), got shape {maps.shape}")
    if len(titles) != maps.shape[0]:
        raise ValueError(f"{len(titles)} titles for {maps.shape[0]} maps")
    ensure_gui_application()
    figure = _GridFigure(maps, titles, view, title, levels or map_levels(maps, view), columns, label, note)
    return figure.write(path)


@dataclass(frozen=True)
class MapRow:
    """One row of a map-rows figure: its label (lines split at "\n"), maps (K, C, H, W) and the centre of its
    symmetric colour scale (the noise mean for mean noise images, else 0)."""

    label: str
    maps: np.ndarray
    center: float = 0.0
    view: str = "centered"


def save_map_rows(rows: list[MapRow], column_titles: list[str], path, *, title: str | None = None,
                  caption: str | None = None) -> Path:
    """Write rows of per-class maps, one column per class, as .png, .pdf or .svg.

    For maps that do not share units or scales: the estimators side by side, or one estimator at
    increasing sample counts (paper Figs. 4, 14). Each row has its own colour scale, symmetric about its
    centre and written at its right; NaN maps are grey tiles.
    """
    path = Path(path)
    _check_suffix(path)
    if not rows:
        raise ValueError("a map-rows figure needs at least one row")
    shape = np.asarray(rows[0].maps).shape
    if any(np.asarray(row.maps).ndim != 4 or np.asarray(row.maps).shape != shape for row in rows):
        raise ValueError("every row must hold maps of one shape (classes, channels, height, width)")
    if len(column_titles) != shape[0]:
        raise ValueError(f"{len(column_titles)} column titles for {shape[0]} maps per row")
    ensure_gui_application()
    return _RowsFigure(rows, list(column_titles), title, caption).write(path)


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"cannot write a map grid as {suffix or 'a file without suffix'}; use .png, .pdf or .svg")
    return suffix


class _Canvas:
    """A figure laid out in pixels (``width`` × ``height``) and drawn by ``paint(painter)``: written as PNG at
    those pixels, or as PDF and SVG using them as the coordinate system."""

    PDF_DPI = 300
    width: int
    height: int
    title: str | None

    def paint(self, painter) -> None:
        raise NotImplementedError

    def write(self, path: Path) -> Path:
        path = Path(path)
        suffix = _check_suffix(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        {".png": self.write_png, ".pdf": self.write_pdf, ".svg": self.write_svg}[suffix](path)
        return path

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


def _tile_image(image: np.ndarray, levels, lut: np.ndarray, scale: int):
    """One map upscaled by whole pixels (nearest neighbour) as a QImage, or None for a map with NaN."""
    from PySide6.QtGui import QImage

    if not np.isfinite(image).all():
        return None
    rgb = tile_rgb(image, levels, lut)
    rgb = np.ascontiguousarray(np.repeat(np.repeat(rgb, scale, 0), scale, 1))
    height, width, _ = rgb.shape
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class _GridFigure(_Canvas):
    """Layout in pixels of the PNG; the PDF and SVG reuse it as their coordinate system."""

    def __init__(self, maps, titles, view, title, levels, columns, label=None, note="no samples") -> None:
        from PySide6.QtGui import QFont

        self.maps, self.titles, self.view, self.title = maps, titles, view, title
        self.label = label or MAP_VIEW_LABELS.get(view, view)
        self.note = note
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
        return _tile_image(self.maps[k], self.levels, self.lut, self.scale)

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
                painter.drawText(tile, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.note)
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
                         Qt.AlignmentFlag.AlignCenter, self.label)
        painter.restore()


class _RowsFigure(_Canvas):
    """Rows of per-class maps, each row on its own colour scale (see save_map_rows)."""

    TILE_PIXELS = 112

    def __init__(self, rows: list[MapRow], column_titles, title, caption) -> None:
        from PySide6.QtGui import QFont, QFontMetrics

        self.rows, self.column_titles, self.title = rows, column_titles, title
        self.maps = [np.asarray(row.maps, dtype=np.float64) for row in rows]
        self.levels = [map_levels(maps, row.view, row.center) for maps, row in zip(self.maps, rows)]
        self.caption = caption or "each row on its own colour scale: its centre ± the value at its right"
        count, channels, height, width = self.maps[0].shape
        self.scale = max(1, self.TILE_PIXELS // max(height, width))
        self.tile_w, self.tile_h = width * self.scale, height * self.scale
        unit = max(self.tile_w, self.tile_h)
        self.font = QFont("DejaVu Sans")
        self.font.setPixelSize(max(11, round(unit * 0.11)))
        self.title_font = QFont(self.font)
        self.title_font.setPixelSize(round(self.font.pixelSize() * 1.3))
        self.title_font.setBold(True)
        metrics = QFontMetrics(self.font)
        self.line_h = round(self.font.pixelSize() * 1.35)
        self.gap = max(6, round(unit * 0.06))
        self.margin = 2 * self.gap
        self.header_h = round(self.title_font.pixelSize() * 2.0) if title else 0
        self.label_w = max(metrics.horizontalAdvance(line) for row in rows for line in row.label.split("\n")) \
            + self.gap
        self.scale_w = metrics.horizontalAdvance("±0.000e-00") + self.gap
        self.columns = count
        self.grid_w = count * self.tile_w + (count - 1) * self.gap
        self.grid_h = len(rows) * self.tile_h + (len(rows) - 1) * self.gap
        self.channels = channels
        self.legend_h = (3 if channels == 1 else 1) * self.line_h
        self.width = 2 * self.margin + self.label_w + max(self.grid_w + self.gap + self.scale_w,
                                                         metrics.horizontalAdvance(self.caption))
        self.height = 2 * self.margin + self.header_h + self.line_h + self.grid_h + self.gap + self.legend_h
        self.lut = colormap_table()

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetrics, QImage

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
        left = self.margin + self.label_w
        top = self.margin + self.header_h
        for col, text in enumerate(self.column_titles):
            x = left + col * (self.tile_w + self.gap)
            elided = metrics.elidedText(str(text), Qt.TextElideMode.ElideRight, int(self.tile_w))
            painter.drawText(QRectF(x, top, self.tile_w, self.line_h),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, elided)
        top += self.line_h
        for r, (row, maps, levels) in enumerate(zip(self.rows, self.maps, self.levels)):
            y = top + r * (self.tile_h + self.gap)
            lines = row.label.split("\n")
            block_top = y + (self.tile_h - len(lines) * self.line_h) / 2
            for i, text in enumerate(lines):
                painter.drawText(QRectF(self.margin, block_top + i * self.line_h, self.label_w - self.gap,
                                        self.line_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                                 text)
            for col in range(self.columns):
                tile = QRectF(left + col * (self.tile_w + self.gap), y, self.tile_w, self.tile_h)
                image = _tile_image(maps[col], levels, self.lut, self.scale)
                if image is None:
                    painter.fillRect(tile, QColor(*EMPTY_TILE_GREY))
                else:
                    painter.drawImage(tile, image)
            half = (levels[1] - levels[0]) / 2
            painter.drawText(QRectF(left + self.grid_w + self.gap, y, self.scale_w, self.tile_h),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"±{half:.3g}")
        legend_top = top + self.grid_h + self.gap
        if self.channels == 1:
            bar_w = min(self.grid_w, 16 * self.line_h)
            gradient = np.ascontiguousarray(self.lut[None, :, :].repeat(4, 0))
            image = QImage(gradient.data, 256, 4, 256 * 3, QImage.Format.Format_RGB888).copy()
            bar = QRectF(left, legend_top, bar_w, self.line_h * 0.8)
            painter.drawImage(bar, image)
            painter.drawRect(bar)
            quarter = bar_w / 4
            for text, x, width, align in (("−", left, quarter, Qt.AlignmentFlag.AlignLeft),
                                          ("centre", left + quarter, 2 * quarter, Qt.AlignmentFlag.AlignHCenter),
                                          ("+", left + 3 * quarter, quarter, Qt.AlignmentFlag.AlignRight)):
                painter.drawText(QRectF(x, legend_top + self.line_h, width, self.line_h),
                                 align | Qt.AlignmentFlag.AlignVCenter, text)
            caption_top = legend_top + 2 * self.line_h
        else:
            caption_top = legend_top
        painter.drawText(QRectF(left, caption_top, self.width - left - self.margin, self.line_h),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.caption)


def _caption_lines(caption: str, metrics, width: float) -> list[str]:
    """One line if it fits, else the class name over the rest, each elided to the tile width."""
    from PySide6.QtCore import Qt

    if metrics.horizontalAdvance(caption) <= width:
        return [caption]
    head, _, rest = caption.partition(" · ")
    return [metrics.elidedText(text, Qt.TextElideMode.ElideRight, int(width)) for text in (head, rest) if text]
