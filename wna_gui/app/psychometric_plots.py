"""Plots of psychometric curves: one experiment's curves, and the small-multiples grid (Figs. 9, 23–25).

Like plots.py they only draw the snapshots they are given. One colour per k on
a ramp from slate blue (k = 0) to red (largest k), as in the paper. Both plots
also render headless for `wna export` (save_curves_plot, save_grid_plot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from ..core.psychometric_report import stimulation_text
from ..core.psychometric import PsychometricConfig, PsychometricSnapshot
from ..figures import ensure_gui_application
from .plots import TEXT_COLOR, export_view, style_plot

K_RAMP = pg.ColorMap([0.0, 0.5, 1.0], [(70, 105, 160), (150, 75, 140), (210, 30, 30)])
FIT_SAMPLES = 200  # points along each fitted curve
CHANCE_PEN = pg.mkPen((120, 120, 120), width=1, style=Qt.PenStyle.DashLine)
GAMMA_LABEL = "stimulus strength γ (signal fraction)"
RESPONSE_LABEL = "P(target)"
EXPORT_SIZE = (960, 640)  # pixels of the headless curves plot
GRID_EXPORT_CELL = (260, 150)  # pixels per small plot of the headless grid


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


def _measured(snapshot: PsychometricSnapshot, condition: int) -> tuple[np.ndarray, np.ndarray]:
    y = snapshot.fraction_correct[condition]
    finite = np.isfinite(y)
    return snapshot.gammas[finite], y[finite]


class PsychometricPlot(pg.PlotWidget):
    """Fraction classified as the target against γ: points per k as they come in, fitted ψ over them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        style_plot(self, "Psychometric curves", RESPONSE_LABEL, GAMMA_LABEL)
        item = self.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.showGrid(x=True, y=True, alpha=0.15)
        self.setXRange(-0.02, 1.02, padding=0)
        self.setYRange(-0.02, 1.02, padding=0)
        # Bottom right: the curves rise to the top right, so that corner stays empty.
        self._legend = item.addLegend(offset=(-10, -10), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 220))
        self._chance = pg.InfiniteLine(angle=0, pen=CHANCE_PEN, movable=False, label="chance 1/K",
                                       labelOpts={"position": 0.04, "color": (90, 90, 90), "anchors": [(0, 1), (0, 1)]})
        self.addItem(self._chance)
        self._points: list[pg.PlotDataItem] = []
        self._fits: list[pg.PlotDataItem] = []
        self._key: tuple = ()

    def clear_curves(self) -> None:
        for item in (*self._points, *self._fits):
            self.removeItem(item)
        self._points, self._fits, self._key = [], [], ()
        self._legend.clear()
        self._chance.hide()
        self.getPlotItem().setTitle("Psychometric curves", color=TEXT_COLOR, size="11pt")

    def show_snapshot(self, snapshot: PsychometricSnapshot) -> None:
        key = (tuple(snapshot.k_values), snapshot.layer, len(snapshot.class_names))
        if key != self._key:
            self._rebuild(snapshot)
            self._key = key
        for condition in range(len(snapshot.k_values)):
            self._points[condition].setData(*_measured(snapshot, condition))
            self._fits[condition].setData(*_fit_curve(snapshot, condition))
        stimulation = stimulation_text(snapshot.layer, snapshot.sign, snapshot.lambda_)
        progress = "" if snapshot.finished else f" · {snapshot.cells_done}/{snapshot.cells_total} (k, γ) points"
        self.getPlotItem().setTitle(f"Class {snapshot.target_name} · {stimulation} · {snapshot.n_images} images "
                                    f"per point{progress}", color=TEXT_COLOR, size="11pt")

    def _rebuild(self, snapshot: PsychometricSnapshot) -> None:
        self.clear_curves()
        colors = k_colors(snapshot.k_values)
        for k, color in zip(snapshot.k_values, colors):
            name = "unstimulated" if snapshot.layer is None else f"k = {k:g}"
            self._fits.append(self.plot([], [], pen=pg.mkPen(color, width=2)))
            self._points.append(self.plot([], [], pen=None, symbol="o", symbolSize=7, symbolBrush=color,
                                          symbolPen=pg.mkPen("w", width=0.8), name=name))
        self._legend.setColumnCount(2 if len(colors) > 6 else 1)
        self._chance.setValue(1.0 / len(snapshot.class_names))
        self._chance.show()

    def points(self, condition: int) -> tuple[np.ndarray, np.ndarray]:
        """The measured points on screen for the condition-th k."""
        x, y = self._points[condition].getData()
        return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))

    def fitted(self, condition: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._fits[condition].getData()
        return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


class SmallMultiplesPlot(pg.GraphicsLayoutWidget):
    """A grid of small curve plots: rows = target classes, columns = stimulated layer and sign (Fig. 23)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self._cells: dict[tuple[int, int], tuple[pg.PlotItem, list, list, pg.TextItem]] = {}
        self._key: tuple = ()

    def show_runs(self, configs: tuple[PsychometricConfig, ...], snapshots: tuple[PsychometricSnapshot | None, ...],
                  class_names: tuple[str, ...]) -> None:
        """A grid's runs (PsychometricGridState.configs order), one row per target, one column per layer and sign."""
        columns = list(dict.fromkeys((config.layer, config.sign) for config in configs))
        rows = sorted({config.target for config in configs})
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
        for cell, (plot, points, fits, shift_label) in self._cells.items():
            snapshot = snapshots.get(cell)
            for condition in range(len(points)):
                measured = _measured(snapshot, condition) if snapshot is not None else ([], [])
                curve = _fit_curve(snapshot, condition) if snapshot is not None else ([], [])
                points[condition].setData(*measured)
                fits[condition].setData(*curve)
            shift_label.setText(self._shift_text(snapshot))

    @staticmethod
    def _shift_text(snapshot: PsychometricSnapshot | None) -> str:
        """Threshold shift of the largest k against k = 0, when both thresholds were measured in range."""
        if snapshot is None or not snapshot.finished:
            return ""
        top = int(np.argmax(snapshot.k_values))
        reference = np.flatnonzero(snapshot.k_values == 0)
        shift = snapshot.threshold_shifts[top]
        if reference.size == 0:
            return "no k = 0 to compare"
        if not np.isfinite(shift):
            unfitted = top if snapshot.fit_errors[top] else reference[0]
            return f"no fit at k = {snapshot.k_values[unfitted]:g}"
        if not (snapshot.thresholds_in_range[top] and snapshot.thresholds_in_range[reference[0]]):
            return "Δ out of range"
        return f"Δ {shift:+.2f}"

    def clear_grid(self) -> None:
        self.ci.clear()
        self._cells, self._key = {}, ()

    def _rebuild(self, rows: list[str], columns: list[str], k_values) -> None:
        self.clear_grid()
        colors = k_colors(k_values)
        layout = self.ci
        layout.addLabel(k_legend_html(k_values) + "&nbsp;&nbsp;·&nbsp;&nbsp;Δ: threshold shift of the largest k",
                        row=0, col=1, colspan=len(columns), color=TEXT_COLOR, size="9pt")
        for col, name in enumerate(columns):
            layout.addLabel(f"<b>{name}</b>", row=1, col=col + 1, color=TEXT_COLOR, size="10pt")
        for row, name in enumerate(rows):
            layout.addLabel(f"<b>{name}</b>", row=row + 2, col=0, color=TEXT_COLOR, size="10pt")
            for col in range(len(columns)):
                self._cells[row, col] = self._make_cell(row + 2, col + 1, colors,
                                                        first_column=col == 0, last_row=row == len(rows) - 1)
        layout.addLabel(f"{GAMMA_LABEL}, 0 → 1  (y: {RESPONSE_LABEL}, 0 → 1)", row=len(rows) + 2, col=1,
                        colspan=len(columns), color=TEXT_COLOR, size="9pt")
        layout.layout.setColumnStretchFactor(0, 0)
        for col in range(len(columns)):
            layout.layout.setColumnStretchFactor(col + 1, 1)

    def _make_cell(self, row: int, col: int, colors, first_column: bool, last_row: bool):
        plot = self.ci.addPlot(row=row, col=col, enableMenu=False)
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
        x, y = self._cells[row, col][1][condition].getData()
        return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


def save_curves_plot(snapshot: PsychometricSnapshot, path: str | Path) -> Path:
    """The panel's curves plot of ``snapshot``, written headless as .png or .svg."""
    ensure_gui_application()
    plot = PsychometricPlot()
    plot.resize(*EXPORT_SIZE)
    plot.show_snapshot(snapshot)
    try:
        return export_view(plot, Path(path))
    finally:
        plot.deleteLater()


def save_grid_plot(configs: tuple[PsychometricConfig, ...], snapshots: tuple[PsychometricSnapshot | None, ...],
                   class_names: tuple[str, ...], path: str | Path) -> Path:
    """The panel's small-multiples plot of a grid's runs, written headless as .png or .svg."""
    ensure_gui_application()
    plot = SmallMultiplesPlot()
    n_rows = len({config.target for config in configs})
    n_columns = len({(config.layer, config.sign) for config in configs})
    # At least the curves plot's width: the legend and axis captions span the whole grid.
    plot.resize(max(EXPORT_SIZE[0], GRID_EXPORT_CELL[0] * n_columns + 80), GRID_EXPORT_CELL[1] * n_rows + 100)
    plot.show_runs(configs, snapshots, class_names)
    try:
        return export_view(plot, Path(path))
    finally:
        # Deleted now: a grabbed layout widget left for deleteLater crashes the interpreter's exit.
        shiboken6.delete(plot)
