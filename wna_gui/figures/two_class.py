"""Figure of two-class classification images (paper Fig. 1B/C), painted with QPainter, renderable headless.

One row per γ: the mean stimulus of each (stimulus → response) cell with its trial count (correct cells
1→1 and 2→2, incorrect 1→2 and 2→1), the mean stimulus answered 2 minus the mean stimulus answered 1, the
classification image c = (n̄12 + n̄22) − (n̄11 + n̄21) from the noise alone and its z-map, and the mean noise
answered 2 minus answered 1 (the paper's Eq. 2 reduction, defined once both answers occur) and its z-map.
The cells of a row share one colour scale about their median; the differences, c and z each have their own,
symmetric about 0 (z spans at least ±3 so noise does not look like signal). Grey tiles: no trials (c needs
all four cells). Laid out across the page width of figures.page (physical size, fonts ≥ 7 pt).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._qt import ensure_gui_application
from .maps import Canvas, colormap_table, tile_rgb
from .page import MIN_FONT_PT, TITLE_PT, figure_size, points, wrapped_height

if TYPE_CHECKING:
    from ..core.two_class import TwoClassSnapshot

EMPTY_GREY = (205, 205, 205)


def _font(pt: float, bold: bool = False):
    from PySide6.QtGui import QFont

    font = QFont("DejaVu Sans")
    font.setPixelSize(round(points(pt)))
    font.setBold(bold)
    return font


def symmetric_levels(maps: np.ndarray, center: float = 0.0, at_least: float = 0.0) -> tuple[float, float]:
    """Limits symmetric about ``center`` holding every finite value (at least ±``at_least``)."""
    values = np.abs(np.asarray(maps, dtype=np.float64) - center)
    values = values[np.isfinite(values)]
    half = max(float(values.max()) if values.size else 0.0, at_least)
    half = half if half > 0 else 1e-6
    return center - half, center + half


class TwoClassFigure(Canvas):
    """Rows of γ, nine columns, across the figure width (logical units: see figures.page)."""

    FOOTNOTE = ("✓ correct, ✗ incorrect (stimulus → response): mean stimulus, one colour scale per row about its "
                "median. Differences, c and z: each its own scale, symmetric about 0 (z at least ±3); captions: "
                "half-range. Grey: no trials; c needs all four cells, the differences both answers.")

    def __init__(self, snapshot: TwoClassSnapshot) -> None:
        from PySide6.QtGui import QFontMetricsF

        self.snapshot = snapshot
        first, second = snapshot.class_names
        self.headers = [f"{snapshot.cell_label(c)}\n" + ("✓" if c in (0, 3) else "✗") for c in range(4)]
        self.headers += [f"stimuli\n{second} − {first}", "c\n(4 cells)", "z of c", f"noise\n{second} − {first}",
                         "its z"]
        self.columns = len(self.headers)
        metrics = QFontMetricsF(_font(MIN_FONT_PT))
        self.line = metrics.height() * 1.1
        self.width = figure_size().logical_width
        self.label_w = metrics.horizontalAdvance("100.0% correct") + self.line / 2
        # A narrow figure (a single column) writes each row's label on a line above it: the nine tiles get the
        # whole width, so their captions ("n=1,234", "±0.081") do not run into each other.
        self.label_above = self.label_w > 0.15 * self.width
        if self.label_above:
            self.label_w = 0.0
        self.gap = max(2.0, self.width / 200)
        self.tile = (self.width - self.label_w - (self.columns - 1) * self.gap) / self.columns
        self.row_h = self.line * (2 if self.label_above else 1) + self.tile + self.gap
        self.title = (f"Two-class classification images, {first} vs {second}, {snapshot.samples_done:,} trials per "
                      f"γ: c = (n̄12 + n̄22) − (n̄11 + n̄21), positive: evidence for {second}")
        # Title and footnote take the lines they wrap onto at this width.
        self.title_h = wrapped_height(_font(TITLE_PT, bold=True), self.title, self.width) + self.line / 2
        self.footnote_h = wrapped_height(_font(MIN_FONT_PT), self.FOOTNOTE, self.width) + self.line / 2
        # Column headers wrap within their column (+ a gap each side), as many lines as the longest needs.
        self.header_h = max([wrapped_height(_font(MIN_FONT_PT), header, self.tile + 2 * self.gap)
                             for header in self.headers] + [2 * self.line])
        self.height = self.title_h + self.header_h + len(snapshot.gammas) * self.row_h + self.footnote_h
        self.lut = colormap_table()

    def tiles(self, g: int) -> list[tuple[np.ndarray, str, tuple[float, float]]]:
        """(map (C, H, W), caption, levels) of each column of row ``g``."""
        snapshot, shape = self.snapshot, self.snapshot.image_shape
        image = snapshot.images[g]
        cells = snapshot.stimulus_means[g]
        finite = cells[np.isfinite(cells).all(1)]
        center = float(np.median(finite)) if finite.size else snapshot.noise_mean
        cell_levels = symmetric_levels(finite, center)
        out = [(cells[c].reshape(shape), f"n={int(image.counts[c]):,}", cell_levels) for c in range(4)]
        for values, at_least in ((snapshot.stimulus_difference[g], 0.0), (image.image, 0.0), (image.zmap, 3.0),
                                 (image.response_image, 0.0), (image.response_zmap, 3.0)):
            levels = symmetric_levels(values, 0.0, at_least)
            out.append((values.reshape(shape), f"±{levels[1]:.2g}" if np.isfinite(values).all() else "", levels))
        return out

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QImage

        snapshot, line = self.snapshot, self.line
        # Past the edges too: a PNG's last pixel row, rounded up, is never left unpainted.
        painter.fillRect(QRectF(-1, -1, self.width + 2, self.height + 2), QColor("white"))
        painter.setRenderHint(painter.RenderHint.SmoothPixmapTransform, False)
        painter.setPen(QColor("black"))
        painter.setFont(_font(TITLE_PT, bold=True))
        painter.drawText(QRectF(0, 0, self.width, self.title_h), Qt.AlignmentFlag.AlignLeft |
                         Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap, self.title)
        painter.setFont(_font(MIN_FONT_PT))
        top = self.title_h
        for col, header in enumerate(self.headers):
            x = self.label_w + col * (self.tile + self.gap)
            painter.drawText(QRectF(x - self.gap, top, self.tile + 2 * self.gap, self.header_h),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom | Qt.TextFlag.TextWordWrap,
                             header)
        top += self.header_h
        for g, gamma in enumerate(snapshot.gammas):
            y = top + g * self.row_h
            correct = snapshot.correct(g)
            label = f"γ = {gamma:g}\n" + (f"{correct:.1%} correct" if np.isfinite(correct) else "no trials")
            if self.label_above:
                painter.drawText(QRectF(0, y, self.width, line), Qt.AlignmentFlag.AlignVCenter |
                                 Qt.AlignmentFlag.AlignLeft, label.replace("\n", " · "))
                y += line
            else:
                painter.drawText(QRectF(0, y + line, self.label_w, self.tile),
                                 Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, label)
            for col, (values, caption, levels) in enumerate(self.tiles(g)):
                x = self.label_w + col * (self.tile + self.gap)
                painter.drawText(QRectF(x - self.gap, y, self.tile + 2 * self.gap, line),
                                 Qt.AlignmentFlag.AlignCenter, caption)
                tile = QRectF(x, y + line, self.tile, self.tile)
                if not np.isfinite(values).all():
                    painter.fillRect(tile, QColor(*EMPTY_GREY))
                    continue
                rgb = np.ascontiguousarray(tile_rgb(values, levels, self.lut))
                h, w, _ = rgb.shape
                painter.drawImage(tile, QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())
        painter.drawText(QRectF(0, self.height - self.footnote_h + line / 3, self.width, self.footnote_h - line / 3),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                         self.FOOTNOTE)


def save_two_class_figure(snapshot: TwoClassSnapshot, path) -> Path:
    ensure_gui_application()
    return TwoClassFigure(snapshot).write(Path(path))


__all__ = ["TwoClassFigure", "save_two_class_figure", "symmetric_levels"]
