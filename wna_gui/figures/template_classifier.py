"""Figures of the template-matching classifier (paper Fig. 2C), painted with QPainter, renderable headless.

- accuracy bars per template source with their Wilson 95% intervals, the chance level as a dashed line and,
  where the test images are MNIST digits, the paper's full-MNIST accuracy as a marker;
- confusion matrices (row = true class, column = predicted), each cell shaded by the share of its row and
  labelled with its count; classes without a template are marked "no map" (never predicted);
- the templates of every source, one row each (their units differ: each row has its own colour scale).

The same painters draw the app's views (``to_qimage``) and the exported .png/.pdf/.svg files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._qt import ensure_gui_application
from .maps import Canvas, MapRow, save_map_rows
from .page import MIN_FONT_PT, TEXT_PT, TITLE_PT, figure_size, points, wrap_flags, wrapped_height

if TYPE_CHECKING:
    from ..core.template_classifier import TemplateSnapshot

BAR_COLORS = {"estimator": (76, 114, 176), "reference": (221, 132, 82)}
CHANCE_COLOR = (120, 120, 120)
PAPER_COLOR = (20, 20, 20)
NO_MAP_GREY = (215, 215, 215)
CONFUSION_CELL_MIN = 22.0  # logical units (1/96 in): narrower cells have no room for a count at 7 pt


def _font(pt: float = TEXT_PT, bold: bool = False):
    from PySide6.QtGui import QFont

    font = QFont("DejaVu Sans")
    font.setPixelSize(round(points(pt)))
    font.setBold(bold)
    return font


def _is_reference(source: str) -> bool:
    from ..core.template_classifier import BASELINES

    return source in BASELINES


class AccuracyFigure(Canvas):
    """Vertical bars, one per source, on a 0–100 % axis, across the figure width."""

    def __init__(self, snapshot: TemplateSnapshot, title: str | None = None) -> None:
        from PySide6.QtGui import QFontMetricsF

        self.snapshot = snapshot
        self.sources = list(snapshot.results)
        self.title = title or (f"Template matching: accuracy on {snapshot.test_images.get('count', 0):,} test "
                               f"images ({snapshot.similarity})")
        self.line = QFontMetricsF(_font()).height() * 1.15
        self.width = figure_size().logical_width
        self.title_h = wrapped_height(_font(TITLE_PT, bold=True), self.title, self.width) + self.line / 2
        self.left, self.top = 4.5 * self.line, self.title_h + 1.2 * self.line
        self.legend_w = QFontMetricsF(_font()).horizontalAdvance("paper (full MNIST)") + 2.6 * self.line
        # A narrow figure (a single column) puts the legend under the bars, in two columns, so the bars keep room.
        self.legend_below = self.legend_w > 0.3 * self.width
        self.slot = (self.width - self.left - (self.line if self.legend_below else self.legend_w)) \
            / max(1, len(self.sources))
        self.plot_h = min(0.42 * self.width, 16 * self.line)
        self.names_h = max([wrapped_height(_font(), self.source_label(s), self.slot) for s in self.sources] + [0.0])
        self.legend_h = 3 * 1.3 * self.line if self.legend_below else 0.0
        self.height = max(self.top + self.plot_h + self.names_h + self.line + self.legend_h,
                          self.top + 5 * 1.3 * self.line)

    def source_label(self, source: str) -> str:
        """A bar's name, and how many classes its templates lack."""
        missing = int((~self.snapshot.results[source].has_template).sum())
        return source + (f"\n{missing} no map" if missing else "")

    def y_of(self, value: float) -> float:
        return self.top + self.plot_h * (1 - value)

    def paint(self, painter) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPen

        snapshot, line = self.snapshot, self.line
        # Past the edges too: a PNG's last pixel row, rounded up, is never left unpainted.
        painter.fillRect(QRectF(-1, -1, self.width + 2, self.height + 2), QColor("white"))
        painter.setPen(QColor("black"))
        painter.setFont(_font(TITLE_PT, bold=True))
        painter.drawText(QRectF(0, 0, self.width, self.title_h), Qt.AlignmentFlag.AlignLeft |
                         Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap, self.title)
        painter.setFont(_font())
        right = self.left + max(1, len(self.sources)) * self.slot
        for tick in range(0, 101, 20):
            y = self.y_of(tick / 100)
            painter.setPen(QPen(QColor(225, 225, 225), 0.75))
            painter.drawLine(QPointF(self.left, y), QPointF(right, y))
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(0, y - line / 2, self.left - line / 3, line), Qt.AlignmentFlag.AlignRight |
                             Qt.AlignmentFlag.AlignVCenter, f"{tick}%")
        painter.setPen(QPen(QColor("black"), 0.75))
        painter.drawLine(QPointF(self.left, self.top), QPointF(self.left, self.y_of(0)))
        painter.drawLine(QPointF(self.left, self.y_of(0)), QPointF(right, self.y_of(0)))
        for i, source in enumerate(self.sources):
            result = snapshot.results[source]
            bar_w = 0.6 * self.slot
            x0 = self.left + i * self.slot + 0.2 * self.slot
            centre = x0 + bar_w / 2
            accuracy = result.accuracy if np.isfinite(result.accuracy) else 0.0
            color = BAR_COLORS["reference" if _is_reference(source) else "estimator"]
            painter.fillRect(QRectF(x0, self.y_of(accuracy), bar_w, self.y_of(0) - self.y_of(accuracy)),
                             QBrush(QColor(*color)))
            low, high = result.interval
            if np.isfinite(low):
                painter.setPen(QPen(QColor("black"), 1.0))
                painter.drawLine(QPointF(centre, self.y_of(low)), QPointF(centre, self.y_of(high)))
                for end in (low, high):
                    painter.drawLine(QPointF(centre - bar_w / 8, self.y_of(end)),
                                     QPointF(centre + bar_w / 8, self.y_of(end)))
            reference = snapshot.paper_reference(source)
            if reference is not None:
                y = self.y_of(reference[0])
                painter.setPen(QPen(QColor(*PAPER_COLOR), 2.0))
                painter.drawLine(QPointF(x0 - bar_w / 10, y), QPointF(x0 + bar_w * 1.1, y))
            painter.setPen(QColor("black"))
            top_value = max(high if np.isfinite(high) else accuracy, reference[0] if reference else 0.0)
            painter.setFont(_font(MIN_FONT_PT))  # a value per bar: the smallest legible size keeps them apart
            painter.drawText(QRectF(x0 - 0.2 * self.slot, self.y_of(top_value) - 1.2 * line, self.slot, line),
                             Qt.AlignmentFlag.AlignCenter,
                             f"{result.accuracy:.1%}" if np.isfinite(result.accuracy) else "—")
            painter.setFont(_font())
            name = self.source_label(source)
            painter.drawText(QRectF(x0 - 0.2 * self.slot, self.y_of(0) + line / 4, self.slot, self.names_h),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop |
                             wrap_flags(QFontMetricsF(_font()), name, self.slot), name)
        chance = snapshot.chance
        if np.isfinite(chance):
            painter.setPen(QPen(QColor(*CHANCE_COLOR), 1.0, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(self.left, self.y_of(chance)), QPointF(right, self.y_of(chance)))
        x, y = right + line / 2, self.top
        if self.legend_below:
            x, y = self.left, self.y_of(0) + line / 4 + self.names_h + line / 2
        entries = [("bar", BAR_COLORS["estimator"], "bias maps (noise)"),
                   ("bar", BAR_COLORS["reference"], "trained on images"),
                   ("dash", CHANCE_COLOR, f"chance {chance:.0%}"), ("err", (0, 0, 0), "Wilson 95% CI")]
        if any(snapshot.paper_reference(s) for s in self.sources):
            entries.append(("paper", PAPER_COLOR, "paper (full MNIST)"))
        for kind, color, text in entries:
            mark = QRectF(x, y + 0.2 * line, 1.2 * line, 0.6 * line)
            if kind == "bar":
                painter.fillRect(mark, QColor(*color))
            else:
                style = Qt.PenStyle.DashLine if kind == "dash" else Qt.PenStyle.SolidLine
                painter.setPen(QPen(QColor(*color), 2.0 if kind == "paper" else 1.0, style))
                if kind == "err":
                    painter.drawLine(QPointF(mark.center().x(), y), QPointF(mark.center().x(), y + line))
                else:
                    painter.drawLine(QPointF(mark.left(), mark.center().y()), QPointF(mark.right(), mark.center().y()))
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(x + 1.6 * line, y, self.legend_w, line),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
            if self.legend_below and x == self.left:  # two entries a row: left, then right
                x = self.left + (self.width - self.left) / 2
            else:
                x, y = (self.left, y + 1.3 * line) if self.legend_below else (x, y + 1.3 * line)


class ConfusionFigure(Canvas):
    """One confusion matrix per source, in a grid across the figure width; cells shaded by their share of the
    row, counts written where the cells leave room (≥ 7 pt)."""

    def __init__(self, snapshot: TemplateSnapshot, sources: list[str] | None = None) -> None:
        from PySide6.QtGui import QFontMetricsF

        self.snapshot = snapshot
        self.sources = sources if sources is not None else list(snapshot.results)
        k = snapshot.n_classes
        metrics = QFontMetricsF(_font())
        self.line = metrics.height() * 1.15
        self.width = figure_size().logical_width
        self.label_w = metrics.horizontalAdvance("00000") if k <= 30 else 0.0
        gap = self.line
        # As many matrices per row as leave room for counts in the cells (at least one).
        fits = int((self.width + gap) // (self.label_w + k * CONFUSION_CELL_MIN + gap))
        self.columns = max(1, min(len(self.sources), fits, 3))
        self.block_w = (self.width - (self.columns - 1) * gap) / self.columns
        self.gap = gap
        self.cell = (self.block_w - self.label_w) / max(k, 1)
        self.with_counts = self.cell >= CONFUSION_CELL_MIN
        self.matrix = k * self.cell
        self.block_h = 3 * self.line + self.matrix + 1.6 * self.line
        self.rows = max(1, math.ceil(len(self.sources) / self.columns))
        self.title = "Confusion matrices (row: true class, column: predicted; shade: share of the row)"
        self.title_h = wrapped_height(_font(TITLE_PT, bold=True), self.title, self.width) + 0.2 * self.line
        self.height = self.title_h + self.rows * self.block_h

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor

        # Past the edges too: a PNG's last pixel row, rounded up, is never left unpainted.
        painter.fillRect(QRectF(-1, -1, self.width + 2, self.height + 2), QColor("white"))
        painter.setPen(QColor("black"))
        painter.setFont(_font(TITLE_PT, bold=True))
        painter.drawText(QRectF(0, 0, self.width, self.title_h), Qt.AlignmentFlag.AlignLeft |
                         Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap, self.title)
        for i, source in enumerate(self.sources):
            row, col = divmod(i, self.columns)
            self.paint_matrix(painter, source, col * (self.block_w + self.gap), self.title_h + row * self.block_h)

    def paint_matrix(self, painter, source: str, x: float, y: float) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QPen

        snapshot, line = self.snapshot, self.line
        result = snapshot.results[source]
        k, cell = snapshot.n_classes, self.cell
        low, high = result.interval
        painter.setFont(_font(TEXT_PT, bold=True))
        painter.drawText(QRectF(x, y, self.block_w, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         f"{source}: {result.accuracy:.1%} [{low:.1%}, {high:.1%}]")
        painter.setFont(_font(MIN_FONT_PT))
        left, top = x + self.label_w, y + 3 * line
        painter.drawText(QRectF(left, y + line, self.matrix, line), Qt.AlignmentFlag.AlignCenter, "predicted →")
        totals = np.maximum(result.confusion.sum(1), 1)
        if self.label_w:
            for j in range(k):
                name = str(snapshot.class_names[j])
                painter.drawText(QRectF(left + j * cell, top - line, cell, line), Qt.AlignmentFlag.AlignCenter,
                                 name[:4])
                painter.drawText(QRectF(x, top + j * cell, self.label_w - line / 4, cell),
                                 Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name[:5])
        for t in range(k):
            for p in range(k):
                rect = QRectF(left + p * cell, top + t * cell, cell, cell)
                count = int(result.confusion[t, p])
                if not result.has_template[p]:
                    painter.fillRect(rect, QColor(*NO_MAP_GREY))
                    continue
                share = count / totals[t]
                shade = int(round(255 * (1 - 0.85 * share)))
                painter.fillRect(rect, QColor(shade, shade + (255 - shade) // 3, 255))
                if self.with_counts and count:
                    painter.setPen(QColor("white") if share > 0.55 else QColor("black"))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(count))
                    painter.setPen(QColor("black"))
        painter.setPen(QPen(QColor(90, 90, 90), 0.75))
        painter.drawRect(QRectF(left, top, self.matrix, self.matrix))
        painter.setPen(QColor("black"))
        missing = result.no_map(snapshot.class_names)
        note = f"rows: true class; grey: no map ({', '.join(missing)})" if missing else "rows: true class"
        painter.drawText(QRectF(x, top + self.matrix + line / 4, self.block_w, line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, note)


def save_accuracy_figure(snapshot: TemplateSnapshot, path) -> Path:
    ensure_gui_application()
    return AccuracyFigure(snapshot).write(Path(path))


def save_confusion_figure(snapshot: TemplateSnapshot, path) -> Path:
    ensure_gui_application()
    return ConfusionFigure(snapshot).write(Path(path))


def save_templates_figure(snapshot: TemplateSnapshot, path) -> Path:
    """Every source's templates minus their mean over classes (what tells the classes apart), one row per
    source on its own colour scale; grey: no map."""
    from ..core.template_classifier import prepared_templates

    shape = snapshot.image_shape
    rows = []
    for source, result in snapshot.results.items():
        shown = prepared_templates(snapshot.templates[source], "dot", True)
        rows.append(MapRow(f"{source}\n{result.accuracy:.1%}", shown.reshape(-1, *shape), 0.0, "centered"))
    return save_map_rows(rows, list(snapshot.class_names), Path(path),
                         title="Templates (each minus the mean template over classes)",
                         caption="each row on its own colour scale; grey: no map for that class")


__all__ = ["AccuracyFigure", "ConfusionFigure", "save_accuracy_figure", "save_confusion_figure",
           "save_templates_figure"]
