"""Plot widgets of psychometric curves: one experiment's curves, and the small-multiples grid (Figs. 9, 23–25).

Thin hosts: the drawing is wna_gui.figures.psychometric's graphics items
(CurvesFigure, GridFigure), the same ones `wna export` renders headless, so the
screen and the exported figures come from one code path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from ..figures.psychometric import BACKGROUND, CurvesFigure, GridFigure, k_colors, k_legend_html

if TYPE_CHECKING:
    from ..core.psychometric import PsychometricConfig, PsychometricSnapshot

__all__ = ["PsychometricPlot", "SmallMultiplesPlot", "k_colors", "k_legend_html"]


class PsychometricPlot(pg.PlotWidget):
    """Fraction classified as the target against γ: points per k as they come in, fitted ψ over them, and each
    curve's two thresholds marked (midpoint α; γ at the performance level)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.figure = CurvesFigure()
        super().__init__(parent, background=BACKGROUND, plotItem=self.figure)

    def clear_curves(self) -> None:
        self.figure.clear_curves()

    def show_snapshot(self, snapshot: PsychometricSnapshot) -> None:
        self.figure.show_snapshot(snapshot)

    def points(self, condition: int) -> tuple[np.ndarray, np.ndarray]:
        """The measured points on screen for the condition-th k."""
        return self.figure.points(condition)

    def fitted(self, condition: int) -> tuple[np.ndarray, np.ndarray]:
        return self.figure.fitted(condition)

    def marks(self):
        """The drawn threshold marks: ((α x, y), (performance threshold x, y))."""
        return self.figure.marks()

    def is_dashed(self, condition: int) -> bool:
        """Whether the condition-th curve is drawn dashed (an estimate of its fit at a limit)."""
        return self.figure.is_dashed(condition)


class SmallMultiplesPlot(pg.GraphicsLayoutWidget):
    """A grid of small curve plots: rows = target classes, columns = stimulated layer and sign (Fig. 23)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        # The figure takes the place of the default central layout (and of its forwarded methods).
        self.figure = self.ci = GridFigure()
        self.setCentralItem(self.figure)
        for name in ("nextRow", "nextCol", "nextColumn", "addPlot", "addViewBox", "addItem", "getItem",
                     "addLayout", "addLabel", "removeItem", "itemIndex", "clear"):
            setattr(self, name, getattr(self.figure, name))

    def show_runs(self, configs: tuple[PsychometricConfig, ...], snapshots: tuple[PsychometricSnapshot | None, ...],
                  class_names: tuple[str, ...]) -> None:
        """A grid's runs (PsychometricGridState.configs order), one row per target, one column per layer and sign."""
        self.figure.show_runs(configs, snapshots, class_names)

    def show_grid(self, rows: list[str], columns: list[str], k_values,
                  snapshots: dict[tuple[int, int], PsychometricSnapshot | None]) -> None:
        """``snapshots[row, column]``: that cell's run, or None while it waits for its turn."""
        self.figure.show_grid(rows, columns, k_values, snapshots)

    def clear_grid(self) -> None:
        self.figure.clear_grid()

    def cell_points(self, row: int, col: int, condition: int) -> tuple[np.ndarray, np.ndarray]:
        return self.figure.cell_points(row, col, condition)
