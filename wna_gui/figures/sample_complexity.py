"""Sample-complexity figures (paper Figs. 4, 14, 15): maps against samples, reliability against samples.

- ``save_maps_figure``: rows stimulus × estimator, columns the sample counts maps were kept at; each tile
  holds every class's map side by side (a montage), each class scaled to its own peak so weak classes show.
- ``ReliabilityFigure``: one plot per stimulus type, mean split-half reliability (Spearman–Brown) of each
  estimator against samples on a log axis; the app's panel hosts it and ``save_reliability_plot`` writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ._qt import ensure_gui_application
from .maps import MapRow, grid_columns, save_map_rows
from .style import TEXT_COLOR, style_plot

if TYPE_CHECKING:
    from ..core.sample_complexity import SampleComplexitySnapshot

ESTIMATOR_COLORS = {"hard": (31, 119, 180), "logit": (214, 39, 40), "prob": (44, 160, 44),
                    "gradient": (148, 103, 189)}
TARGET_PEN = pg.mkPen((110, 110, 110), width=1, style=Qt.PenStyle.DashLine)
PLOT_COLUMNS = 3
EXPORT_ASPECT_PER_ROW = (3.0, 1.0)


def montage(maps: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(K, C, H, W) class maps → one (C, rows·(H+1) − 1, columns·(W+1) − 1) image, each class divided by its
    peak |value| (so every class is visible whatever its strength); classes without a map and the one-pixel
    gaps stay 0 (the colour scale's centre)."""
    maps = np.asarray(maps, dtype=np.float64)
    k, c, h, w = maps.shape
    columns = columns or grid_columns(k)
    rows = -(-k // columns)
    out = np.zeros((c, rows * (h + 1) - 1, columns * (w + 1) - 1))
    for i, image in enumerate(maps):
        if not np.isfinite(image).all():
            continue
        peak = np.abs(image).max()
        r, col = divmod(i, columns)
        out[:, r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = image / peak if peak > 0 else 0.0
    return out


def _count(n: int) -> str:
    return f"{n:,}" if n < 10_000 else f"1e{np.log10(n):.0f}" if np.log10(n).is_integer() else f"{n:.2g}"


def map_rows(snapshot: "SampleComplexitySnapshot", view: str = "centered") -> tuple[list[MapRow], list[str]]:
    """The figure's rows (stimulus × estimator) and column titles (sample counts)."""
    from ..core.estimators import ESTIMATORS
    from ..core.sample_complexity import STIMULUS_TITLES

    counts = snapshot.checkpoint_counts()
    shape = snapshot.image_shape
    n_classes = len(snapshot.class_names)
    rows = []
    for stimulus, result in snapshot.results.items():
        for estimator in snapshot.estimators:
            kept = result.checkpoint_maps(estimator)
            tiles = []
            for n in counts:
                maps = kept.get(n)
                tiles.append(montage(maps.of(view).reshape(n_classes, *shape)) if maps is not None else None)
            blank = next((t for t in tiles if t is not None), None)
            if blank is None:
                continue
            filled = [t if t is not None else np.full_like(blank, np.nan) for t in tiles]
            rows.append(MapRow(f"{STIMULUS_TITLES[stimulus]}\n{ESTIMATORS[estimator].label}", np.stack(filled),
                               0.0, "centered"))
    return rows, [_count(n) for n in counts]


def save_maps_figure(snapshot: "SampleComplexitySnapshot", path, view: str = "centered") -> Path:
    rows, columns = map_rows(snapshot, view)
    if not rows:
        raise ValueError("no maps have been kept yet")
    names = ", ".join(snapshot.class_names[:10]) + (" …" if len(snapshot.class_names) > 10 else "")
    caption = (f"Each tile: the maps of every class ({names}, row by row), each scaled to its own peak; "
               "blank: no map yet (the hard label only maps the classes noise is called); grey: not reached")
    return save_map_rows(rows, columns, path, title="Classification maps against samples", caption=caption)


class ReliabilityFigure(pg.GraphicsLayout):
    """One plot per stimulus type: mean split-half reliability of each estimator against samples (solid), beside
    the same curve of a signal-free observer on the same noise (dashed): only the gap between them is signal."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._key: tuple = ()

    def show_snapshot(self, snapshot: "SampleComplexitySnapshot | None") -> None:
        from ..core.estimators import ESTIMATORS
        from ..core.sample_complexity import RELIABILITY_TARGET, STIMULUS_TITLES

        if snapshot is None:
            self.clear()
            self._key = ()
            return
        key = (snapshot.stimuli, snapshot.estimators)
        if key != self._key:
            self.clear()
            self._plots: dict[str, Any] = {}
            self._curves: dict[tuple[str, ...], Any] = {}  # (stimulus, estimator[, "null"]): its curve
            for i, stimulus in enumerate(snapshot.stimuli):
                plot = self.addPlot(row=i // PLOT_COLUMNS, col=i % PLOT_COLUMNS, enableMenu=False)
                style_plot(plot, STIMULUS_TITLES[stimulus], "reliability", "samples")
                plot.hideButtons()
                plot.setYRange(-0.05, 1.02, padding=0)
                plot.showGrid(x=True, y=True, alpha=0.15)
                plot.setMouseEnabled(x=False, y=False)
                # x is log10(samples), with explicit ticks: fixed labels, sized like the other figures'.
                plot.getAxis("bottom").setTicks([[(float(e), f"1e{e}") for e in range(2, 10)]])
                plot.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]])
                plot.addItem(pg.InfiniteLine(pos=RELIABILITY_TARGET, angle=0, pen=TARGET_PEN))
                if i == 0:
                    plot.addLegend(offset=(10, 10), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 220))
                self._plots[stimulus] = plot
                for estimator in snapshot.estimators:
                    color = ESTIMATOR_COLORS.get(estimator, (0, 0, 0))
                    self._curves[stimulus, estimator] = plot.plot(
                        [], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=4, symbolBrush=color,
                        symbolPen=None, name=ESTIMATORS[estimator].label if i == 0 else None)
                    self._curves[stimulus, estimator, "null"] = plot.plot(
                        [], [], pen=pg.mkPen(color, width=1.2, style=Qt.PenStyle.DashLine),
                        name="same, signal-free observer" if i == 0 and estimator == snapshot.estimators[-1] else None)
            self._key = key
        top = max(snapshot.samples, 100)
        for stimulus, result in snapshot.results.items():
            self._plots[stimulus].setXRange(2, np.log10(top), padding=0.02)
            for estimator in snapshot.estimators:
                for curve, (samples, values) in ((self._curves[stimulus, estimator], result.reliability(estimator)),
                                                 (self._curves[stimulus, estimator, "null"],
                                                  result.observer_reliability("null", estimator))):
                    keep = (samples > 0) & np.isfinite(values)
                    curve.setData(np.log10(samples[keep]), values[keep])


class _ReliabilityCanvas:
    """The reliability plots painted with QPainter for exports (small multiples: one plot per stimulus type)."""

    def __init__(self, snapshot: "SampleComplexitySnapshot") -> None:
        from ..core.estimators import ESTIMATORS
        from ..core.sample_complexity import RELIABILITY_TARGET, STIMULUS_TITLES
        from PySide6.QtGui import QFontMetricsF

        from .maps import _fonts
        from .page import figure_size, wrapped_height

        self.snapshot, self.target = snapshot, RELIABILITY_TARGET
        self.titles, self.labels = STIMULUS_TITLES, {e: ESTIMATORS[e].label for e in snapshot.estimators}
        self.font, self.title_font, self.line_h = _fonts()
        self.width = figure_size().logical_width
        self.margin, self.gap = 8.0, 14.0
        self.columns = min(PLOT_COLUMNS, len(snapshot.stimuli))
        self.rows = -(-len(snapshot.stimuli) // self.columns)
        self.cell_w = (self.width - 2 * self.margin - (self.columns - 1) * self.gap) / self.columns
        self.cell_h = self.cell_w * 0.75
        self.title = ("Split-half reliability against samples (Spearman–Brown, mean over classes; dashed: a "
                      "signal-free observer on the same noise)")
        self.title_h = wrapped_height(self.title_font, self.title, self.width - 2 * self.margin)
        # Legend: one swatch per estimator, and the target level, flowing onto more lines in a narrow figure.
        metrics = QFontMetricsF(self.font)
        self.legend, x, y = [], self.margin, self.title_h
        for estimator, label in [*self.labels.items(), ("", f"reliability {self.target:g}")]:
            entry_w = 22 + metrics.horizontalAdvance(label)
            if x > self.margin and x + entry_w > self.width - self.margin:
                x, y = self.margin, y + self.line_h
            self.legend.append((estimator, label, x, y))
            x += entry_w + 16
        self.header_h = y + 1.5 * self.line_h
        self.height = 2 * self.margin + self.header_h + self.rows * self.cell_h + (self.rows - 1) * self.gap \
            + self.line_h
        top = max(snapshot.samples, 100)
        self.decades = (2, max(3, int(np.ceil(np.log10(top)))))

    def paint(self, painter) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetricsF, QPen

        painter.setFont(self.title_font)
        painter.setPen(QColor(TEXT_COLOR))
        painter.drawText(QRectF(self.margin, self.margin, self.width - 2 * self.margin, self.title_h),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap,
                         self.title)
        painter.setFont(self.font)
        metrics = QFontMetricsF(self.font)
        for estimator, label, x, y in self.legend:
            y += self.margin
            color = QColor(*ESTIMATOR_COLORS.get(estimator, (110, 110, 110)))
            pen = QPen(color, 2.0 if estimator else 1.0)
            pen.setStyle(Qt.PenStyle.SolidLine if estimator else Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(x, y + self.line_h / 2), QPointF(x + 18, y + self.line_h / 2))
            painter.setPen(QColor(TEXT_COLOR))
            painter.drawText(QRectF(x + 22, y, self.width, self.line_h), Qt.AlignmentFlag.AlignVCenter, label)
        axis_w = metrics.horizontalAdvance("0.8") + 6
        low, high = self.decades
        for i, stimulus in enumerate(self.snapshot.stimuli):
            r, c = divmod(i, self.columns)
            left = self.margin + c * (self.cell_w + self.gap)
            top = self.margin + self.header_h + r * (self.cell_h + self.gap)
            box = QRectF(left + axis_w, top + self.line_h, self.cell_w - axis_w - 4, self.cell_h - 2.5 * self.line_h)

            def at(samples: float, value: float, box=box) -> QPointF:
                fx = (np.log10(samples) - low) / (high - low)
                return QPointF(box.left() + fx * box.width(), box.bottom() - (value + 0.05) / 1.1 * box.height())

            painter.setPen(QColor(TEXT_COLOR))
            painter.drawText(QRectF(box.left(), top, box.width(), self.line_h), Qt.AlignmentFlag.AlignHCenter,
                             self.titles[stimulus])
            grid = QPen(QColor(225, 225, 225), 0.7)
            for value in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
                painter.setPen(grid)
                painter.drawLine(at(10**low, value), at(10**high, value))
                painter.setPen(QColor(TEXT_COLOR))
                p = at(10**low, value)
                painter.drawText(QRectF(left, p.y() - self.line_h / 2, axis_w - 3, self.line_h),
                                 Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{value:g}")
            for e in range(low, high + 1):
                p = at(10**e, -0.05)
                painter.setPen(grid)
                painter.drawLine(at(10**e, -0.05), at(10**e, 1.05))
                painter.setPen(QColor(TEXT_COLOR))
                painter.drawText(QRectF(p.x() - 20, p.y() + 1, 40, self.line_h), Qt.AlignmentFlag.AlignHCenter,
                                 f"1e{e}")
            painter.setPen(QColor(TEXT_COLOR))
            painter.drawRect(box)
            dashed = QPen(QColor(110, 110, 110), 1.0)
            dashed.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(dashed)
            painter.drawLine(at(10**low, self.target), at(10**high, self.target))
            result = self.snapshot.results.get(stimulus)
            for estimator in self.snapshot.estimators:
                if result is None:
                    continue
                color = QColor(*ESTIMATOR_COLORS.get(estimator, (0, 0, 0)))
                samples, values = result.observer_reliability("null", estimator)
                keep = (samples > 0) & np.isfinite(values)
                null_points = [at(n, v) for n, v in zip(samples[keep], values[keep])]
                null_pen = QPen(color, 1.0)
                null_pen.setStyle(Qt.PenStyle.DashLine)
                painter.setPen(null_pen)
                for a, b in zip(null_points[:-1], null_points[1:]):
                    painter.drawLine(a, b)
                samples, values = result.reliability(estimator)
                keep = (samples > 0) & np.isfinite(values)
                points = [at(n, v) for n, v in zip(samples[keep], values[keep])]
                painter.setPen(QPen(color, 1.8))
                for a, b in zip(points[:-1], points[1:]):
                    painter.drawLine(a, b)
                painter.setBrush(color)
                for p in points:
                    painter.drawEllipse(p, 1.8, 1.8)
                painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QColor(TEXT_COLOR))
        painter.drawText(QRectF(self.margin, self.height - self.margin - self.line_h, self.width - 2 * self.margin,
                                self.line_h), Qt.AlignmentFlag.AlignHCenter, "samples (log scale)")


def save_reliability_plot(snapshot: "SampleComplexitySnapshot", path) -> Path:
    """Reliability against samples, one plot per stimulus type, as .png, .pdf or .svg."""
    from .page import write_painted

    ensure_gui_application()
    canvas = _ReliabilityCanvas(snapshot)
    return write_painted(path, (canvas.width, canvas.height), canvas.paint, "Sample complexity: reliability")
