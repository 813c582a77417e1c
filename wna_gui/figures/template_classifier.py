"""Figures of the template-matching classifier (paper Fig. 2C), painted with QPainter, renderable headless.

- accuracy bars per template source with their Wilson 95% intervals, the chance level as a dashed line and,
  where the test images are MNIST digits, the paper's full-MNIST accuracy as a marker;
- confusion matrices (row = true class, column = predicted), each cell shaded by the share of its row and
  labelled with its count; classes without a template are marked "no map" (never predicted);
- the templates of every source, one row each (their units differ: each row has its own colour scale).

The same painters draw the app's views (``canvas_image``) and the exported .png/.pdf/.svg files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._qt import ensure_gui_application
from .maps import MapRow, _Canvas, save_map_rows

if TYPE_CHECKING:
    from ..core.template_classifier import TemplateSnapshot

BAR_COLORS = {"estimator": (76, 114, 176), "reference": (221, 132, 82)}
CHANCE_COLOR = (120, 120, 120)
PAPER_COLOR = (20, 20, 20)
NO_MAP_GREY = (215, 215, 215)
FONT_PX = 12
MAX_CONFUSION_COLUMNS = 3


def _font(pixels: int = FONT_PX, bold: bool = False):
    from PySide6.QtGui import QFont

    font = QFont("DejaVu Sans")
    font.setPixelSize(pixels)
    font.setBold(bold)
    return font


def _is_reference(source: str) -> bool:
    from ..core.template_classifier import BASELINES

    return source in BASELINES


def canvas_image(canvas: _Canvas, scale: float = 1.0):
    """The figure as a QImage at ``scale`` device pixels per layout unit (the app's views)."""
    from PySide6.QtGui import QImage, QPainter

    ensure_gui_application()
    image = QImage(max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale)),
                   QImage.Format.Format_RGB32)
    painter = QPainter(image)
    try:
        painter.scale(scale, scale)
        canvas.paint(painter)
    finally:
        painter.end()
    return image


class AccuracyFigure(_Canvas):
    """Vertical bars, one per source, on a 0–100 % axis."""

    BAR_SLOT = 96
    PLOT_H = 300

    def __init__(self, snapshot: TemplateSnapshot, title: str | None = None) -> None:
        self.snapshot = snapshot
        self.sources = list(snapshot.results)
        self.title = title or (f"Template matching: accuracy on {snapshot.test_images.get('count', 0):,} test "
                               f"images ({snapshot.similarity})")
        self.left, self.top = 64, 44
        self.width = self.left + max(1, len(self.sources)) * self.BAR_SLOT + 150
        self.height = self.top + self.PLOT_H + 70

    def y_of(self, value: float) -> float:
        return self.top + self.PLOT_H * (1 - value)

    def paint(self, painter) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QBrush, QColor, QPen

        snapshot = self.snapshot
        painter.setRenderHint(painter.RenderHint.Antialiasing, True)
        painter.fillRect(QRectF(0, 0, self.width, self.height), QColor("white"))
        painter.setPen(QColor("black"))
        painter.setFont(_font(13, bold=True))
        painter.drawText(QRectF(12, 8, self.width - 24, 26), Qt.AlignmentFlag.AlignLeft, self.title)
        painter.setFont(_font())
        right = self.left + max(1, len(self.sources)) * self.BAR_SLOT
        for tick in range(0, 101, 20):
            y = self.y_of(tick / 100)
            painter.setPen(QPen(QColor(225, 225, 225), 1))
            painter.drawLine(QPointF(self.left, y), QPointF(right, y))
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(0, y - 9, self.left - 8, 18), Qt.AlignmentFlag.AlignRight |
                             Qt.AlignmentFlag.AlignVCenter, f"{tick}%")
        painter.drawLine(QPointF(self.left, self.top), QPointF(self.left, self.y_of(0)))
        painter.drawLine(QPointF(self.left, self.y_of(0)), QPointF(right, self.y_of(0)))
        for i, source in enumerate(self.sources):
            result = snapshot.results[source]
            x0 = self.left + i * self.BAR_SLOT + 18
            bar_w = self.BAR_SLOT - 36
            accuracy = result.accuracy if np.isfinite(result.accuracy) else 0.0
            color = BAR_COLORS["reference" if _is_reference(source) else "estimator"]
            painter.fillRect(QRectF(x0, self.y_of(accuracy), bar_w, self.y_of(0) - self.y_of(accuracy)),
                             QBrush(QColor(*color)))
            low, high = result.interval
            centre = x0 + bar_w / 2
            if np.isfinite(low):
                painter.setPen(QPen(QColor("black"), 1.5))
                painter.drawLine(QPointF(centre, self.y_of(low)), QPointF(centre, self.y_of(high)))
                for end in (low, high):
                    painter.drawLine(QPointF(centre - 6, self.y_of(end)), QPointF(centre + 6, self.y_of(end)))
            painter.setPen(QColor("black"))
            reference = snapshot.paper_reference(source)
            top_value = max(high if np.isfinite(high) else accuracy, reference[0] if reference else 0.0)
            label_y = self.y_of(top_value) - 22
            painter.drawText(QRectF(x0 - 14, label_y, bar_w + 28, 18), Qt.AlignmentFlag.AlignCenter,
                             f"{result.accuracy:.1%}" if np.isfinite(result.accuracy) else "—")
            if reference is not None:
                y = self.y_of(reference[0])
                painter.setPen(QPen(QColor(*PAPER_COLOR), 2.5))
                painter.drawLine(QPointF(x0 - 4, y), QPointF(x0 + bar_w + 4, y))
            painter.setPen(QColor("black"))
            missing = int((~result.has_template).sum())
            name = source + (f"\n{missing} no map" if missing else "")
            painter.drawText(QRectF(x0 - 18, self.y_of(0) + 4, bar_w + 36, 36),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        chance = snapshot.chance
        if np.isfinite(chance):
            painter.setPen(QPen(QColor(*CHANCE_COLOR), 1.5, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(self.left, self.y_of(chance)), QPointF(right, self.y_of(chance)))
        # Legend, right of the bars.
        x, y = right + 14, self.top + 4
        painter.setFont(_font(11))
        entries = [("bar", BAR_COLORS["estimator"], "bias maps (noise)"),
                   ("bar", BAR_COLORS["reference"], "trained on images"),
                   ("dash", CHANCE_COLOR, f"chance {chance:.0%}"), ("err", (0, 0, 0), "Wilson 95% CI")]
        if any(snapshot.paper_reference(s) for s in self.sources):
            entries.append(("paper", PAPER_COLOR, "paper (full MNIST)"))
        for kind, color, text in entries:
            if kind == "bar":
                painter.fillRect(QRectF(x, y + 3, 14, 12), QColor(*color))
            else:
                style = Qt.PenStyle.DashLine if kind == "dash" else Qt.PenStyle.SolidLine
                painter.setPen(QPen(QColor(*color), 2.5 if kind == "paper" else 1.5, style))
                if kind == "err":
                    painter.drawLine(QPointF(x + 7, y + 2), QPointF(x + 7, y + 16))
                else:
                    painter.drawLine(QPointF(x, y + 9), QPointF(x + 16, y + 9))
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(x + 22, y, 120, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             text)
            y += 22


class ConfusionFigure(_Canvas):
    """One confusion matrix per source, in a grid; cells shaded by their share of the row, counts written."""

    def __init__(self, snapshot: TemplateSnapshot, sources: list[str] | None = None, columns: int | None = None
                 ) -> None:
        self.snapshot = snapshot
        self.sources = sources if sources is not None else list(snapshot.results)
        k = snapshot.n_classes
        self.cell = max(6, min(34, 420 // max(k, 1)))
        self.with_counts = self.cell >= 22
        self.label_w = 44 if k <= 30 else 8
        self.matrix = k * self.cell
        self.block_w = self.label_w + self.matrix + 24
        self.block_h = 58 + self.matrix + 32
        self.columns = columns or max(1, min(MAX_CONFUSION_COLUMNS, len(self.sources)))
        self.rows = max(1, math.ceil(len(self.sources) / self.columns))
        self.title = "Confusion matrices (row: true class, column: predicted; shade: share of the row)"
        self.width = 24 + self.columns * self.block_w
        self.height = 40 + self.rows * self.block_h

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor

        painter.fillRect(QRectF(0, 0, self.width, self.height), QColor("white"))
        painter.setPen(QColor("black"))
        painter.setFont(_font(13, bold=True))
        painter.drawText(QRectF(12, 8, self.width - 24, 24), Qt.AlignmentFlag.AlignLeft, self.title)
        for i, source in enumerate(self.sources):
            row, col = divmod(i, self.columns)
            self.paint_matrix(painter, source, 12 + col * self.block_w, 40 + row * self.block_h)

    def paint_matrix(self, painter, source: str, x: float, y: float) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor

        snapshot = self.snapshot
        result = snapshot.results[source]
        k, cell = snapshot.n_classes, self.cell
        low, high = result.interval
        painter.setFont(_font(12, bold=True))
        painter.drawText(QRectF(x, y, self.block_w - 8, 20), Qt.AlignmentFlag.AlignLeft,
                         f"{source}: {result.accuracy:.1%} [{low:.1%}, {high:.1%}]")
        painter.setFont(_font(10))
        left, top = x + self.label_w, y + 58
        painter.drawText(QRectF(left, y + 20, self.matrix, 18), Qt.AlignmentFlag.AlignCenter, "predicted →")
        totals = np.maximum(result.confusion.sum(1), 1)
        for j in range(k):
            if self.label_w > 10:
                painter.drawText(QRectF(left + j * cell, top - 18, cell, 18),
                                 Qt.AlignmentFlag.AlignCenter, str(snapshot.class_names[j])[:4])
                painter.drawText(QRectF(x, top + j * cell, self.label_w - 4, cell),
                                 Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                                 str(snapshot.class_names[j])[:5])
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
        painter.setPen(QColor(90, 90, 90))
        painter.drawRect(QRectF(left, top, self.matrix, self.matrix))
        painter.setPen(QColor("black"))
        missing = result.no_map(snapshot.class_names)
        note = f"true class ↓; grey: no map ({', '.join(missing)})" if missing else "true class ↓"
        painter.drawText(QRectF(x, top + self.matrix + 4, self.block_w - 8, 20),
                         Qt.AlignmentFlag.AlignLeft, note)


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


__all__ = ["AccuracyFigure", "ConfusionFigure", "canvas_image", "save_accuracy_figure", "save_confusion_figure",
           "save_templates_figure"]
