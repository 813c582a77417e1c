"""Psychometric figures: one experiment's curves, and the small-multiples grid (Figs. 9, 23–25).

Both are pyqtgraph graphics items, not widgets: the app's plot widgets host them
on screen (wna_gui.app.psychometric_plots), and save_curves_plot / save_grid_plot
paint them headless to .png or .svg for `wna export` (a scene of their own,
painted with QPainter; no window is shown or grabbed). One drawing code path for
both. They only draw the snapshots they are given. One colour per k on a ramp
from slate blue (k = 0) to red (largest k), as in the paper.

The curves plot marks both thresholds of each curve: an open triangle at the
midpoint α (F = ½, on the curve) and a diamond where the curve crosses the
performance level (dotted line). A curve whose fit has an estimate stuck at a
limit of the search is drawn dashed and its legend entry carries ⚠.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ._qt import ensure_gui_application
from .page import write_scene
from .style import TEXT_COLOR, TITLE_SIZE, style_plot

if TYPE_CHECKING:  # only names: importing the engine would load it for every figure
    from ..core.psychometric import PsychometricConfig, PsychometricSnapshot

K_RAMP = pg.ColorMap([0.0, 0.5, 1.0], [(70, 105, 160), (150, 75, 140), (210, 30, 30)])
FIT_SAMPLES = 200  # points along each fitted curve
CHANCE_PEN = pg.mkPen((120, 120, 120), width=1, style=Qt.PenStyle.DashLine)
LEVEL_PEN = pg.mkPen((90, 90, 90), width=1, style=Qt.PenStyle.DotLine)
MARK_GREY = (110, 110, 110)
ALPHA_SYMBOL, LEVEL_SYMBOL = "t1", "d"  # triangle up: midpoint α; diamond: γ at the performance level
GAMMA_LABEL = "stimulus strength γ (signal fraction)"
RESPONSE_LABEL = "P(target)"
CURVES_TITLE = "Psychometric curves"
EXPORT_SIZE = (960, 640)  # pixels of the headless curves plot
GRID_EXPORT_CELL = (260, 150)  # pixels per small plot of the headless grid
PLOT_FORMATS = (".png", ".pdf", ".svg")
BACKGROUND = "w"


# In pixels (1/96 inch): point sizes in a legend's HTML follow the painting device, not the page.
LEGEND_TEXT_SIZE = "11px"
K_LEGEND_MAX = 4  # more k values than this are keyed by a colour bar, not legend entries


def k_colors(k_values) -> list:
    """A QColor per k: its place between 0 and the largest k on the ramp."""
    k_values = np.asarray(k_values, dtype=float)
    top = k_values.max() if k_values.size and k_values.max() > 0 else 1.0
    return [K_RAMP.map(k / top, mode="qcolor") for k in k_values]


def k_legend_html(k_values) -> str:
    """"k = 0 ● 5 ● 10 ●" with each dot in its curve's colour, for labels outside a plot."""
    dots = " ".join(f"{k:g}&nbsp;<span style='color:{color.name()}'>●</span>"
                    for k, color in zip(k_values, k_colors(k_values)))
    return f"k = {dots}"


def _fit_curve(snapshot: PsychometricSnapshot, condition: int) -> tuple[np.ndarray, np.ndarray]:
    fit = snapshot.fits[condition]
    if fit is None:
        return np.array([]), np.array([])
    x = np.linspace(snapshot.gammas[0], snapshot.gammas[-1], FIT_SAMPLES)
    return x, fit.predict(x)


def _warned(snapshot: PsychometricSnapshot, condition: int) -> bool:
    """Whether the condition's fit has an estimate held by a limit of the search (drawn dashed)."""
    return bool(snapshot.flags) and bool(snapshot.warnings(condition))


def threshold_marks(snapshot: PsychometricSnapshot) -> tuple[list, list]:
    """Per fitted k in the γ range: (condition, α, ψ(α)) and (condition, γ at the level, level)."""
    alpha, level = [], []
    for condition, fit in enumerate(snapshot.fits):
        if fit is None:
            continue
        if snapshot.thresholds_in_range[condition]:
            alpha.append((condition, fit.threshold, float(fit.predict(fit.threshold))))
        if snapshot.performance_in_range[condition]:
            level.append((condition, float(snapshot.performance_thresholds[condition]), snapshot.performance_level))
    return alpha, level


def _measured(snapshot: PsychometricSnapshot, condition: int) -> tuple[np.ndarray, np.ndarray]:
    y = snapshot.fraction_correct[condition]
    finite = np.isfinite(y)
    return snapshot.gammas[finite], y[finite]


def _data(item: pg.PlotDataItem) -> tuple[np.ndarray, np.ndarray]:
    x, y = item.getData()
    return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


class CurvesFigure(pg.PlotItem):
    """Fraction classified as the target against γ: points per k as they come in, fitted ψ over them,
    each curve's midpoint α (triangle) and performance threshold (diamond on the level line)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        style_plot(self, CURVES_TITLE, RESPONSE_LABEL, GAMMA_LABEL)
        self.setMouseEnabled(x=False, y=False)
        self.showGrid(x=True, y=True, alpha=0.15)
        self.setXRange(-0.02, 1.02, padding=0)
        self.setYRange(-0.02, 1.02, padding=0)
        # Bottom right: the curves rise to the top right, so that corner stays empty.
        self._legend = self.addLegend(offset=(-10, -10), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 220),
                                      labelTextSize=LEGEND_TEXT_SIZE)
        self._chance = pg.InfiniteLine(angle=0, pen=CHANCE_PEN, movable=False, label="chance 1/K",
                                       labelOpts={"position": 0.04, "color": (90, 90, 90), "anchors": [(0, 1), (0, 1)]})
        self.addItem(self._chance)
        self._level = pg.InfiniteLine(angle=0, pen=LEVEL_PEN, movable=False, label="",
                                      labelOpts={"position": 0.97, "color": (70, 70, 70), "anchors": [(1, 1), (1, 1)]})
        self.addItem(self._level)
        self._points: list[pg.PlotDataItem] = []
        self._fits: list[pg.PlotDataItem] = []
        self._alpha_marks = pg.ScatterPlotItem(symbol=ALPHA_SYMBOL, size=11, pxMode=True)
        self._level_marks = pg.ScatterPlotItem(symbol=LEVEL_SYMBOL, size=10, pxMode=True)
        for marks in (self._alpha_marks, self._level_marks):
            marks.setZValue(5)  # added with the curves (_rebuild), removed with them (clear_curves)
        self._key: tuple = ()
        self._colors: list = []
        # Many k values: a colour bar for k instead of a legend entry per curve (near-identical shades).
        self.k_bar = pg.ColorBarItem(values=(0, 1), colorMap=K_RAMP, interactive=False, width=10,
                                     colorMapMenu=False)
        self.k_bar.setLabel("right", "stimulation k", color=TEXT_COLOR)  # beside its numbers
        self.k_bar.axis.setTextPen(TEXT_COLOR)
        self.k_bar.axis.setPen(TEXT_COLOR)
        self.layout.addItem(self.k_bar, 2, 3)
        self.k_bar.hide()
        self._chance.hide()
        self._level.hide()

    def clear_curves(self) -> None:
        for item in (*self._points, *self._fits):
            self.removeItem(item)
        self._points, self._fits, self._key, self._colors = [], [], (), []
        self._legend.clear()
        for marks in (self._alpha_marks, self._level_marks):
            marks.clear()
            if marks in self.items:
                self.removeItem(marks)
        self._chance.hide()
        self._level.hide()
        self.setTitle(CURVES_TITLE, color=TEXT_COLOR, size=TITLE_SIZE)

    def show_snapshot(self, snapshot: PsychometricSnapshot) -> None:
        from ..core.psychometric_report import stimulation_text  # here: importing the figures must not load the engine

        key = (tuple(snapshot.k_values), snapshot.layer, len(snapshot.class_names), snapshot.performance_level,
               tuple(_warned(snapshot, c) for c in range(len(snapshot.k_values))))
        if key != self._key:
            self._rebuild(snapshot)
            self._key = key
        for condition in range(len(snapshot.k_values)):
            self._points[condition].setData(*_measured(snapshot, condition))
            self._fits[condition].setData(*_fit_curve(snapshot, condition))
        self._draw_marks(snapshot)
        stimulation = stimulation_text(snapshot.layer, snapshot.sign, snapshot.lambda_)
        trials = (f"{snapshot.n_images} images × {snapshot.repeats} noise samples" if snapshot.repeats > 1
                  else f"{snapshot.n_images} images")
        progress = "" if snapshot.finished else f" · {snapshot.cells_done}/{snapshot.cells_total} cells"
        self.setTitle(f"Class {snapshot.target_name} · {stimulation} · {trials} per point{progress}",
                      color=TEXT_COLOR, size=TITLE_SIZE)

    def _draw_marks(self, snapshot: PsychometricSnapshot) -> None:
        alpha, level = threshold_marks(snapshot)
        for marks, points, filled in ((self._alpha_marks, alpha, False), (self._level_marks, level, True)):
            marks.setData(
                x=[x for _, x, _ in points], y=[y for _, _, y in points],
                brush=[pg.mkBrush(self._colors[c]) if filled else pg.mkBrush(255, 255, 255, 230) for c, _, _ in points],
                pen=[pg.mkPen(self._colors[c], width=1.6) if not filled else pg.mkPen("w", width=0.8)
                     for c, _, _ in points])

    def _rebuild(self, snapshot: PsychometricSnapshot) -> None:
        self.clear_curves()
        colors = k_colors(snapshot.k_values)
        self._colors = colors
        use_bar = snapshot.layer is not None and len(colors) > K_LEGEND_MAX
        self.k_bar.setVisible(use_bar)
        if use_bar:
            self.k_bar.setLevels((0.0, float(max(max(snapshot.k_values), 1e-9))))
        for condition, (k, color) in enumerate(zip(snapshot.k_values, colors)):
            warned = _warned(snapshot, condition)
            name = "unstimulated" if snapshot.layer is None else f"k = {k:g}"
            style = Qt.PenStyle.DashLine if warned else Qt.PenStyle.SolidLine
            self._fits.append(self.plot([], [], pen=pg.mkPen(color, width=2, style=style)))
            listed = not use_bar or warned  # with the colour bar only warned fits get an entry
            self._points.append(self.plot([], [], pen=None, symbol="o", symbolSize=7, symbolBrush=color,
                                          symbolPen=pg.mkPen("w", width=0.8),
                                          name=(name + (" ⚠" if warned else "")) if listed else None))
        for marks in (self._alpha_marks, self._level_marks):
            self.addItem(marks)
        # Legend entries for the two threshold marks (items never drawn in the plot).
        level = snapshot.performance_level
        for symbol, label, brush in ((ALPHA_SYMBOL, "α: midpoint, F = ½", (255, 255, 255)),
                                     (LEVEL_SYMBOL, f"γ at P = {level:.2f}", MARK_GREY)):
            sample = pg.PlotDataItem([], [], pen=None, symbol=symbol, symbolSize=10, symbolBrush=brush,
                                     symbolPen=pg.mkPen(MARK_GREY, width=1.4))
            self._legend.addItem(sample, label)
        entries = (0 if use_bar else len(colors)) + 2
        self._legend.setColumnCount(3 if entries > 10 else 2 if entries > 6 else 1)
        self._chance.setValue(1.0 / len(snapshot.class_names))
        self._chance.show()
        self._level.setValue(level)
        self._level.label.setFormat(f"P = {level:.2f}")
        self._level.show()

    def points(self, condition: int) -> tuple[np.ndarray, np.ndarray]:
        """The measured points drawn for the condition-th k."""
        return _data(self._points[condition])

    def fitted(self, condition: int) -> tuple[np.ndarray, np.ndarray]:
        """The fitted curve drawn for the condition-th k (empty without a fit)."""
        return _data(self._fits[condition])

    def marks(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The drawn α marks and performance-threshold marks, as (x, y) each."""
        alpha, level = ((np.asarray(m.data["x"]), np.asarray(m.data["y"]))
                        for m in (self._alpha_marks, self._level_marks))
        return alpha, level

    def is_dashed(self, condition: int) -> bool:
        return self._fits[condition].opts["pen"].style() == Qt.PenStyle.DashLine


class GridFigure(pg.GraphicsLayout):
    """A grid of small curve plots: rows = target classes, columns = stimulated layer and sign (Fig. 23).

    Cells are added and removed through the scene, so the item must be in one
    (a view's, or the export's) before it shows a grid.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._cells: dict[tuple[int, int], tuple[pg.PlotItem, list, list, pg.TextItem]] = {}
        self._key: tuple = ()

    def show_runs(self, configs: tuple[PsychometricConfig, ...], snapshots: tuple[PsychometricSnapshot | None, ...],
                  class_names: tuple[str, ...]) -> None:
        """A grid's runs (PsychometricGridState.configs order), one row per target, one column per layer and sign."""
        rows, columns = grid_axes(configs)
        cells = {(rows.index(config.target), columns.index((config.layer, config.sign))): snapshot
                 for config, snapshot in zip(configs, snapshots)}
        self.show_grid([class_names[target] for target in rows],
                       [f"{layer} · {'excite' if sign > 0 else 'inhibit'}" for layer, sign in columns],
                       configs[0].k_values, cells)

    def show_grid(self, rows: list[str], columns: list[str], k_values,
                  snapshots: dict[tuple[int, int], PsychometricSnapshot | None]) -> None:
        """``snapshots[row, column]``: that cell's run, or None while it waits for its turn."""
        key = (tuple(rows), tuple(columns), tuple(k_values))
        if key != self._key:
            self._rebuild(rows, columns, k_values)
            self._key = key
        for cell, (_plot, points, fits, shift_label) in self._cells.items():
            snapshot = snapshots.get(cell)
            for condition in range(len(points)):
                measured = _measured(snapshot, condition) if snapshot is not None else ([], [])
                curve = _fit_curve(snapshot, condition) if snapshot is not None else ([], [])
                points[condition].setData(*measured)
                fits[condition].setData(*curve)
                warned = snapshot is not None and _warned(snapshot, condition)
                pen = fits[condition].opts["pen"]
                if (pen.style() == Qt.PenStyle.DashLine) != warned:
                    fits[condition].setPen(pg.mkPen(pen.color(), width=1.5,
                                                    style=Qt.PenStyle.DashLine if warned else Qt.PenStyle.SolidLine))
            shift_label.setText(shift_text(snapshot))

    def clear_grid(self) -> None:
        self.clear()
        self._cells, self._key = {}, ()

    def _rebuild(self, rows: list[str], columns: list[str], k_values) -> None:
        self.clear_grid()
        colors = k_colors(k_values)
        self.addLabel(k_legend_html(k_values) + "&nbsp;&nbsp;·&nbsp;&nbsp;largest k vs k = 0: Δα midpoint shift, "
                      f"ΔP shift of γ at the performance level&nbsp;&nbsp;·&nbsp;&nbsp;{WARNING_MARK} dashed: an "
                      "estimate at a limit", row=0, col=1, colspan=len(columns), color=TEXT_COLOR, size="9pt")
        for col, name in enumerate(columns):
            self.addLabel(f"<b>{name}</b>", row=1, col=col + 1, color=TEXT_COLOR, size="10pt")
        for row, name in enumerate(rows):
            self.addLabel(f"<b>{name}</b>", row=row + 2, col=0, color=TEXT_COLOR, size="10pt")
            for col in range(len(columns)):
                self._cells[row, col] = self._make_cell(row + 2, col + 1, colors,
                                                        first_column=col == 0, last_row=row == len(rows) - 1)
        self.addLabel(f"{GAMMA_LABEL}, 0 → 1  (y: {RESPONSE_LABEL}, 0 → 1)", row=len(rows) + 2, col=1,
                      colspan=len(columns), color=TEXT_COLOR, size="9pt")
        self.layout.setColumnStretchFactor(0, 0)
        for col in range(len(columns)):
            self.layout.setColumnStretchFactor(col + 1, 1)

    def _make_cell(self, row: int, col: int, colors, first_column: bool, last_row: bool):
        plot = self.addPlot(row=row, col=col, enableMenu=False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setXRange(0, 1, padding=0.04)
        plot.setYRange(0, 1, padding=0.06)
        for side, labelled in (("left", first_column), ("bottom", last_row)):
            axis = plot.getAxis(side)
            axis.setPen(TEXT_COLOR)
            axis.setTextPen(TEXT_COLOR)
            axis.setTicks([[(0.0, "0"), (0.5, ".5" if labelled else ""), (1.0, "1")]])
            axis.setStyle(showValues=labelled, tickLength=-3)
        fits = [plot.plot([], [], pen=pg.mkPen(color, width=1.5)) for color in colors]
        points = [plot.plot([], [], pen=None, symbol="o", symbolSize=4, symbolBrush=color, symbolPen=None)
                  for color in colors]
        # Bottom right is where curves rarely are (they rise to the right); the fill keeps it readable if they are.
        shift_label = pg.TextItem("", color=TEXT_COLOR, anchor=(1, 1), fill=(255, 255, 255, 200))
        shift_label.setPos(1.0, 0.0)
        plot.addItem(shift_label)
        return plot, points, fits, shift_label

    def cell_points(self, row: int, col: int, condition: int) -> tuple[np.ndarray, np.ndarray]:
        """The measured points drawn in the plot at (row, col) for the condition-th k."""
        return _data(self._cells[row, col][1][condition])


def grid_axes(configs) -> tuple[list[int], list[tuple[str | None, int]]]:
    """A grid's rows (target classes, ascending) and columns ((layer, sign) in run order)."""
    columns = list(dict.fromkeys((config.layer, config.sign) for config in configs))
    rows = sorted({config.target for config in configs})
    return rows, columns


WARNING_MARK = "⚠"


def _shift_words(snapshot: PsychometricSnapshot, shifts, in_range, top: int, reference: int, name: str) -> str:
    shift = shifts[top]
    if not np.isfinite(shift):
        return f"{name} n/a"
    if not (in_range[top] and in_range[reference]):
        return f"{name} out of range"
    return f"{name} {shift:+.2f}".replace("-", "−")


def shift_text(snapshot: PsychometricSnapshot | None) -> str:
    """Shifts of the largest k against k = 0: the midpoint α's and the performance threshold's (when both
    are measured in range), and ⚠ when an estimate of either curve sits at a limit."""
    if snapshot is None or not snapshot.finished:
        return ""
    top = int(np.argmax(snapshot.k_values))
    zeros = np.flatnonzero(np.asarray(snapshot.k_values) == 0)
    if zeros.size == 0:
        return "no k = 0 to compare"
    reference = int(zeros[0])
    if snapshot.fits[top] is None or snapshot.fits[reference] is None:
        unfitted = top if snapshot.fits[top] is None else reference
        return f"no fit at k = {snapshot.k_values[unfitted]:g}"
    alpha = _shift_words(snapshot, snapshot.threshold_shifts, snapshot.thresholds_in_range, top, reference, "Δα")
    performance = _shift_words(snapshot, snapshot.performance_shifts, snapshot.performance_in_range, top,
                               reference, "ΔP")
    # With one width, guess and lapse for every k the two shifts are one number: say it once.
    lines = [alpha.replace("Δα", "Δα = ΔP")] if performance[2:] == alpha[2:] else [alpha, performance]
    warned = snapshot.flags and (snapshot.warnings(top) or snapshot.warnings(reference))
    return "\n".join(lines) + (f" {WARNING_MARK}" if warned else "")


def grid_export_size(configs) -> tuple[int, int]:
    """Pixels of the headless grid: GRID_EXPORT_CELL per small plot, at least the curves plot's width."""
    rows, columns = grid_axes(configs)
    # At least the curves plot's width: the legend and axis captions span the whole grid.
    return (max(EXPORT_SIZE[0], GRID_EXPORT_CELL[0] * len(columns) + 80),
            GRID_EXPORT_CELL[1] * len(rows) + 100)


def save_curves_plot(snapshot: PsychometricSnapshot, path: str | Path) -> Path:
    """The curves plot of ``snapshot``, as the app draws it, written headless as .png or .svg (EXPORT_SIZE)."""
    path = Path(path)
    ensure_gui_application()
    return write_scene(CurvesFigure(), EXPORT_SIZE, path, lambda figure: figure.show_snapshot(snapshot))


def save_small_multiples(snapshot, path: str | Path) -> Path:
    """A small-multiples run's plot (a core.psychometric_grid GridSnapshot): its artefact's figure writer."""
    return save_grid_plot(snapshot.configs, snapshot.snapshots, snapshot.class_names, path)


def save_grid_plot(configs: tuple[PsychometricConfig, ...], snapshots: tuple[PsychometricSnapshot | None, ...],
                   class_names: tuple[str, ...], path: str | Path) -> Path:
    """The small-multiples plot of a grid's runs, as the app draws it, written headless as .png or .svg."""
    path = Path(path)
    ensure_gui_application()
    return write_scene(GridFigure(), grid_export_size(configs), path,
                   lambda figure: figure.show_runs(configs, snapshots, class_names))


