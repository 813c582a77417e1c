"""Publication figures of classification-image grids, painted with Qt (no matplotlib).

Shared by the desktop app and the `wna export` command, and usable headless: a
QApplication on the offscreen platform is created when none exists (_qt.py). Figures
are laid out across a physical width (figures.page: journal columns, fonts ≥ 7 pt);
tiles keep their native pixels (embedded losslessly, never smoothed), 1-channel
maps share one diverging colour scale with symmetric, robust limits so tiles are
comparable, and empty classes are drawn as empty rather than as flat maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._qt import ensure_gui_application
from .page import (TEXT_PT, TITLE_PT, check_suffix, figure_size, painted_image, points, wrap_flags,
                   write_painted)

MAP_VIEW_LABELS = {"mean": "mean noise n̄ₖ", "centered": "n̄ₖ − n̄ (grand mean)", "zmap": "z-score"}
COLORMAP_NAME = "CET-D1"
# Diverging maps (perceptually uniform, colour-blind safe first) and one grey ramp for printing.
COLORMAPS = {"CET-D1": "blue–white–red", "CET-D3": "green–white–red",
             "CET-D6": "blue–grey–yellow (colour-blind)",
             "CET-D8": "blue–grey–red", "CET-L1": "greys (linear)"}
EMPTY_TILE_GREY = (200, 200, 200)
# A grid of more maps than this is unreadable: 1000-class models show their most frequent classes.
MAX_TILES = 20


def shown_classes(counts: np.ndarray, max_tiles: int = MAX_TILES) -> np.ndarray:
    """All classes, or the ``max_tiles`` most frequent ones (in class order) when there are more: those noise
    reached (a 1000-class model's empty classes would fill the grid with blank tiles), else the first."""
    if counts.size <= max_tiles:
        return np.arange(counts.size)
    top = np.argsort(-counts, kind="stable")[:max_tiles]
    reached = top[counts[top] > 0]
    return np.sort(reached if reached.size else top)


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


# A class sets the shared colour limits only with at least this share of the largest class's samples (and 2):
# a class seen once or twice is almost pure noise and would otherwise wash out every other map.
MIN_CLASS_SHARE = 0.01
ROBUST_PERCENTILE = 99.5  # limits from this percentile of |map − centre|: a few extreme pixels saturate


def informative_classes(counts) -> np.ndarray:
    """(K,) bool: the classes whose maps set the shared colour limits (see MIN_CLASS_SHARE)."""
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64), nan=0.0)
    if counts.size == 0 or counts.max() <= 0:
        return np.zeros(counts.shape, dtype=bool)
    return counts >= max(2.0, MIN_CLASS_SHARE * counts.max())


def levels_caption(counts=None, limit: float | None = None) -> str:
    """How the colour limits were chosen, for a figure's caption or the panel."""
    if limit is not None:
        return f"colour limits set by hand: centre ± {limit:.3g}"
    rule = f"{ROBUST_PERCENTILE:g}th percentile of |map − centre|"
    if counts is None:
        return f"one colour scale for all maps: {rule}"
    return (f"one colour scale: {rule} over classes with ≥ {MIN_CLASS_SHARE:.0%} of the largest class's "
            "samples")


def map_levels(maps: np.ndarray, view: str, center: float | None = None, counts=None,
               limit: float | None = None) -> tuple[float, float]:
    """Display limits symmetric about ``center``, one pair for all tiles so they are comparable.

    ``center`` is the noise mean for the mean view (default: the median of the maps,
    which sits at the noise mean) and 0 for the centred and z views. The half-range is
    ``limit`` when given (the user's), else a robust percentile of |map − centre| over the
    maps of the classes with enough samples (``counts``: see :func:`informative_classes`).
    z-maps span at least ±3 so pure noise does not look like signal.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if counts is not None:
        use = informative_classes(counts)
        if use.shape == maps.shape[:1] and use.any():
            maps = maps[use]
    finite = maps[np.isfinite(maps)]
    if center is None:
        center = float(np.median(finite)) if view == "mean" and finite.size else 0.0
    if limit is not None and limit > 0:
        return center - float(limit), center + float(limit)
    deviation = np.abs(finite - center)
    half = float(np.percentile(deviation, ROBUST_PERCENTILE)) if deviation.size else 0.0
    if view == "zmap":
        half = max(3.0, half)
    half = half if half > 0 else 1e-6
    return center - half, center + half


def colormap_table(name: str = COLORMAP_NAME) -> np.ndarray:
    """A colour map as a (256, 3) uint8 lookup table (256 entries: pyqtgraph's fast path)."""
    import pyqtgraph as pg

    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    return np.ascontiguousarray(pg.colormap.get(name).getLookupTable(nPts=256, alpha=False), dtype=np.uint8)


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
                  note: str = "no samples", colormap: str = COLORMAP_NAME, caption: str | None = None) -> Path:
    """Write a grid of per-class maps (K, C, H, W) as .png, .pdf or .svg (chosen by the suffix).

    The figure is as wide as :func:`figures.page.figure_size` says (fonts ≥ 7 pt at that size, maps
    embedded at their native pixels). NaN maps (classes without samples) are drawn as grey tiles marked
    ``note``. ``label`` captions the colour bar (default: the view's hard-label caption); ``caption`` is a
    line under the grid (how the colour limits were chosen, say). Returns the path written.
    """
    path = Path(path)
    check_suffix(path, "a map grid")
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"maps must be (classes, channels, height, width), got shape {maps.shape}")
    if len(titles) != maps.shape[0]:
        raise ValueError(f"{len(titles)} titles for {maps.shape[0]} maps")
    ensure_gui_application()
    figure = MapGridFigure(maps, titles, view, title, levels or map_levels(maps, view), columns, label, note,
                         colormap, caption)
    return figure.write(path)


@dataclass(frozen=True)
class MapRow:
    """One row of a map-rows figure: its label (lines split at "\n"), maps (K, C, H, W) and the centre of its
    symmetric colour scale (the noise mean for mean noise images, else 0); ``support`` (K,) the samples or
    weight behind each map, so classes with too few do not set the row's scale."""

    label: str
    maps: np.ndarray
    center: float = 0.0
    view: str = "centered"
    support: np.ndarray | None = None


def save_map_rows(rows: list[MapRow], column_titles: list[str], path, *, title: str | None = None,
                  caption: str | None = None) -> Path:
    """Write rows of per-class maps, one column per class, as .png, .pdf or .svg.

    For maps that do not share units or scales: the estimators side by side, or one estimator at
    increasing sample counts (paper Figs. 4, 14). Each row has its own colour scale, symmetric about its
    centre and written at its right; NaN maps are grey tiles.
    """
    path = Path(path)
    check_suffix(path, "a map figure")
    if not rows:
        raise ValueError("a map-rows figure needs at least one row")
    shape = np.asarray(rows[0].maps).shape
    if any(np.asarray(row.maps).ndim != 4 or np.asarray(row.maps).shape[:2] != shape[:2] for row in rows):
        raise ValueError("every row must hold maps (classes, channels, height, width) of as many classes and "
                         "channels")
    if len(column_titles) != shape[0]:
        raise ValueError(f"{len(column_titles)} column titles for {shape[0]} maps per row")
    ensure_gui_application()
    return _RowsFigure(rows, list(column_titles), title, caption).write(path)


class Canvas:
    """A figure laid out in logical units (1/96 inch) across the current figure width and drawn by
    ``paint(painter)``; written at its physical size by figures.page.write_painted."""

    width: float
    height: float
    title: str | None

    def paint(self, painter) -> None:
        raise NotImplementedError

    def write(self, path: Path) -> Path:
        return write_painted(path, (self.width, self.height), self.paint, self.title or "Classification images")

    def to_qimage(self, scale: float = 1.0):
        """The figure as a QImage at ``scale`` device pixels per logical unit (the app's figure views)."""
        ensure_gui_application()
        return painted_image((self.width, self.height), self.paint, scale)


def _fonts():
    """(text font, bold title font, line height) at the figure's point sizes."""
    from PySide6.QtGui import QFont, QFontMetricsF

    font = QFont("DejaVu Sans")
    font.setPixelSize(round(points(TEXT_PT)))
    title_font = QFont(font)
    title_font.setPixelSize(round(points(TITLE_PT)))
    title_font.setBold(True)
    return font, title_font, math.ceil(QFontMetricsF(font).height() * 1.15)


def _native_image(image: np.ndarray, levels, lut: np.ndarray):
    """One map at its native pixels as a QImage (the painter scales it without smoothing), or None for a map
    without a value (an empty class). NaN pixels (a layer's units padded onto a square grid) are grey."""
    from PySide6.QtGui import QImage

    finite = np.isfinite(image).all(axis=0)
    if not finite.any():
        return None
    rgb = tile_rgb(np.where(finite[None], image, 0.0), levels, lut)
    rgb = np.ascontiguousarray(np.where(finite[..., None], rgb, np.asarray(EMPTY_TILE_GREY, np.uint8)))
    height, width, _ = rgb.shape
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def _wrapped_title(painter, font, title: str, left: float, top: float, width: float, height: float) -> None:
    from PySide6.QtCore import QRectF, Qt

    painter.setFont(font)
    painter.drawText(QRectF(left, top, width, height),
                     Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap, title)


def _title_height(font, title: str | None, width: float) -> float:
    """Height of a title wrapped to ``width`` (0 without one)."""
    if not title:
        return 0.0
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QFontMetricsF

    metrics = QFontMetricsF(font)
    box = metrics.boundingRect(QRectF(0, 0, width, 10_000), int(Qt.TextFlag.TextWordWrap), title)
    return math.ceil(box.height() + metrics.height() * 0.5)


# Narrower tiles than this (logical units, ~15 mm) wrap the grid onto more rows.
MIN_TILE_WIDTH = 56.0


class MapGridFigure(Canvas):
    """A grid of maps with captions (wrapped at " · ", never cutting n) and one colour bar, laid out across the
    figure width."""

    def __init__(self, maps, titles, view, title, levels, columns, label=None, note="no samples",
                 colormap: str = COLORMAP_NAME, caption: str | None = None) -> None:
        from PySide6.QtGui import QFontMetricsF

        self.maps, self.titles, self.view, self.title = maps, titles, view, title
        self.label = label or MAP_VIEW_LABELS.get(view, view)
        self.note, self.caption = note, caption
        self.levels = (float(levels[0]), float(levels[1]))
        count, channels, height, width = maps.shape
        self.font, self.title_font, self.line = _fonts()
        metrics = QFontMetricsF(self.font)
        self.width = figure_size().logical_width
        self.gap = 6.0
        self.margin = 8.0
        self.with_colorbar = channels == 1
        self.bar_w = 8.0 if self.with_colorbar else 0.0
        ticks = (self.levels[0], sum(self.levels) / 2, self.levels[1])  # as paint_colorbar writes them
        self.bar_text_w = (max(metrics.horizontalAdvance(f"{value:.3g}") for value in ticks) + self.line
                           + self.gap) if self.with_colorbar else 0.0
        side = (2 * self.gap + self.bar_w + self.bar_text_w) if self.with_colorbar else 0.0
        room = self.width - 2 * self.margin - side
        # An empty tile says why inside it ("no samples"), not also in its caption.
        self.captions = [t.replace(f" · {note}", "") if not np.isfinite(m).any() else t for t, m in zip(titles, maps)]
        # A tile is at least as wide as its captions' widest part ("n=123,456"): n is never cut off.
        widest = max([0.0, *(metrics.horizontalAdvance(part) for t in self.captions for part in t.split(" · "))])
        self.columns = columns or grid_columns(count)
        while columns is None and self.columns > 1 and \
                (room - (self.columns - 1) * self.gap) / self.columns < max(MIN_TILE_WIDTH, widest + 2):
            self.columns -= 1
        self.rows = math.ceil(count / self.columns)
        self.tile_w = (room - (self.columns - 1) * self.gap) / self.columns
        self.tile_h = self.tile_w * height / width
        # Every tile's caption fits above it, on as many lines as the narrowest layout needs.
        self.caption_h = self.line * max([1, *(len(caption_lines(t, metrics, self.tile_w)) for t in self.captions)])
        self.header_h = _title_height(self.title_font, title, self.width - 2 * self.margin)
        self.grid_h = self.rows * (self.caption_h + self.tile_h) + (self.rows - 1) * self.gap
        self.footer_h = _title_height(self.font, caption, self.width - 2 * self.margin) if caption else 0.0
        self.height = self.margin * 2 + self.header_h + self.grid_h + self.footer_h
        self.grid_right = self.margin + self.columns * self.tile_w + (self.columns - 1) * self.gap
        self.lut = colormap_table(colormap)

    def tile_rect(self, k: int):
        """Where tile k's map is drawn (logical units)."""
        from PySide6.QtCore import QRectF

        row, col = divmod(k, self.columns)
        x = self.margin + col * (self.tile_w + self.gap)
        y = self.margin + self.header_h + row * (self.caption_h + self.tile_h + self.gap) + self.caption_h
        return QRectF(x, y, self.tile_w, self.tile_h)

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetricsF

        painter.setPen(QColor("black"))
        if self.title:
            _wrapped_title(painter, self.title_font, self.title, self.margin, self.margin,
                           self.width - 2 * self.margin, self.header_h)
        painter.setFont(self.font)
        metrics = QFontMetricsF(self.font)
        for k, caption in enumerate(self.captions):
            tile = self.tile_rect(k)
            lines = caption_lines(caption, metrics, self.tile_w)
            for i, text in enumerate(lines):
                box = QRectF(tile.x(), tile.y() - (len(lines) - i) * self.line, self.tile_w, self.line)
                painter.drawText(box, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, text)
            image = _native_image(self.maps[k], self.levels, self.lut)
            if image is None:
                painter.fillRect(tile, QColor(*EMPTY_TILE_GREY))
                painter.drawText(tile, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.note)
            else:
                painter.drawImage(tile, image)
        if self.with_colorbar:
            self.paint_colorbar(painter, self.margin + self.header_h)
        if self.caption:
            _wrapped_title(painter, self.font, self.caption, self.margin, self.height - self.margin - self.footer_h,
                           self.width - 2 * self.margin, self.footer_h)

    def paint_colorbar(self, painter, top: float) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetricsF, QImage

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
            box = QRectF(text_x, y - self.line / 2, self.bar_text_w - self.line, self.line)
            painter.drawText(box, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{value:.3g}")
        painter.save()
        painter.translate(x + self.bar_w + self.bar_text_w, bar_top + bar_h / 2)
        painter.rotate(-90)
        label = QFontMetricsF(self.font).elidedText(self.label, Qt.TextElideMode.ElideRight, bar_h)  # a short bar
        painter.drawText(QRectF(-bar_h / 2, -self.line, bar_h, self.line), Qt.AlignmentFlag.AlignCenter, label)
        painter.restore()


class _RowsFigure(Canvas):
    """Rows of per-class maps, each row on its own colour scale (see save_map_rows)."""

    def __init__(self, rows: list[MapRow], column_titles, title, caption) -> None:
        from PySide6.QtCore import QRectF
        from PySide6.QtGui import QFontMetricsF

        self.rows, self.column_titles, self.title = rows, column_titles, title
        self.maps = [np.asarray(row.maps, dtype=np.float64) for row in rows]
        self.levels = [map_levels(maps, row.view, row.center, row.support) for maps, row in zip(self.maps, rows)]
        self.caption = caption or "each row on its own colour scale: its centre ± the value at its right"
        count, channels, height, width = self.maps[0].shape
        self.font, self.title_font, self.line_h = _fonts()
        metrics = QFontMetricsF(self.font)
        self.width = figure_size().logical_width
        self.gap = 4.0
        self.margin = 8.0
        self.header_h = _title_height(self.title_font, title, self.width - 2 * self.margin)
        natural = max(metrics.horizontalAdvance(line) for row in rows for line in row.label.split("\n")) + self.gap
        # A narrow figure (a single column) writes each row's label on a line above its maps, which then get the
        # whole width; a wider one puts the labels left of the rows, wrapped onto more lines where long.
        self.label_above = natural > 0.2 * self.width
        if self.label_above:
            self.labels, self.label_w = [row.label.replace("\n", " · ") for row in rows], 0.0
            wrap_w = self.width - 2 * self.margin
        else:
            self.labels, self.label_w = [row.label for row in rows], min(natural, 0.3 * self.width)
            wrap_w = self.label_w - self.gap
        self.label_flags = [wrap_flags(metrics, text, wrap_w) for text in self.labels]
        box = QRectF(0, 0, wrap_w, 1e4)
        self.label_h = label_h = max(metrics.boundingRect(box, int(flags), text).height()
                                     for text, flags in zip(self.labels, self.label_flags))
        self.scale_w = metrics.horizontalAdvance("±0.00e−00") + self.gap
        self.columns = count
        self.tile_w = (self.width - 2 * self.margin - self.label_w - self.gap - self.scale_w
                       - (count - 1) * self.gap) / count
        # Column titles wider than a tile (class names of a narrow figure) stand upright, at most 30% tall.
        widest = max(metrics.horizontalAdvance(str(text)) for text in column_titles)
        self.upright = widest > self.tile_w
        self.column_h = min(widest + self.gap, 0.3 * self.width) if self.upright else self.line_h
        # Rows may differ in map shape (layers of a network): each map fits a tile_w × tile_h box.
        self.tile_h = self.tile_w * min(1.5, max(m.shape[2] / m.shape[3] for m in self.maps))
        self.grid_w = count * self.tile_w + (count - 1) * self.gap
        # A row is as tall as its tiles and the label above them, or as its tiles or the label beside them,
        # whichever is taller (labels never overlap).
        self.row_h = self.tile_h + label_h if self.label_above else max(self.tile_h, label_h)
        self.grid_h = len(rows) * self.row_h + (len(rows) - 1) * self.gap
        self.channels = channels
        self.caption_h = _title_height(self.font, self.caption, self.width - 2 * self.margin - self.label_w)
        self.legend_h = (2 * self.line_h if channels == 1 else 0.0) + self.caption_h
        self.height = 2 * self.margin + self.header_h + self.column_h + self.grid_h + self.gap + self.legend_h
        self.lut = colormap_table()

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetricsF, QImage

        painter.setPen(QColor("black"))
        if self.title:
            _wrapped_title(painter, self.title_font, self.title, self.margin, self.margin,
                           self.width - 2 * self.margin, self.header_h)
        painter.setFont(self.font)
        metrics = QFontMetricsF(self.font)
        left = self.margin + self.label_w
        top = self.margin + self.header_h
        for col, text in enumerate(self.column_titles):
            x = left + col * (self.tile_w + self.gap)
            if self.upright:
                elided = metrics.elidedText(str(text), Qt.TextElideMode.ElideRight, self.column_h - self.gap)
                painter.save()
                painter.translate(x + self.tile_w / 2, top + self.column_h)
                painter.rotate(-90)
                painter.drawText(QRectF(0, -self.line_h / 2, self.column_h - self.gap / 2, self.line_h),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, elided)
                painter.restore()
            else:
                painter.drawText(QRectF(x, top, self.tile_w, self.line_h),
                                 Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, str(text))
        top += self.column_h
        for r, (_row, maps, levels) in enumerate(zip(self.rows, self.maps, self.levels)):
            y = top + r * (self.row_h + self.gap)
            if self.label_above:
                painter.drawText(QRectF(self.margin, y, self.width - 2 * self.margin, self.label_h),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | self.label_flags[r],
                                 self.labels[r])
                y, row_h = y + self.label_h, self.tile_h
            else:
                painter.drawText(QRectF(self.margin, y, self.label_w - self.gap, self.row_h),
                                 Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter | self.label_flags[r],
                                 self.labels[r])
                row_h = self.row_h
            height, width = maps.shape[2:]
            scale = min(self.tile_w / width, self.tile_h / height)
            for col in range(self.columns):
                x = left + col * (self.tile_w + self.gap)
                tile = QRectF(x + (self.tile_w - width * scale) / 2, y + (row_h - height * scale) / 2,
                              width * scale, height * scale)
                image = _native_image(maps[col], levels, self.lut)
                if image is None:
                    painter.fillRect(tile, QColor(*EMPTY_TILE_GREY))
                else:
                    painter.drawImage(tile, image)
            half = (levels[1] - levels[0]) / 2
            painter.drawText(QRectF(left + self.grid_w + self.gap, y, self.scale_w, row_h),
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
        _wrapped_title(painter, self.font, self.caption, left, caption_top, self.width - left - self.margin,
                       self.caption_h)


def caption_lines(caption: str, metrics, width: float) -> list[str]:
    """The caption's " · " parts packed onto as few lines of ``width`` as they fit (a narrow figure gets more
    lines, so n is never cut off); only a single part wider than a line is elided."""
    from PySide6.QtCore import Qt

    lines: list[str] = []
    for part in caption.split(" · "):
        joined = f"{lines[-1]} · {part}" if lines else part
        if lines and metrics.horizontalAdvance(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(part)
    return [metrics.elidedText(line, Qt.TextElideMode.ElideRight, width) for line in lines]
