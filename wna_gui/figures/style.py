"""Plot styling shared by the figures and the app's plots: dark text and axes on white."""

from __future__ import annotations

import pyqtgraph as pg

TEXT_COLOR = "#202020"
TITLE_SIZE = "11pt"


def style_plot(plot: pg.PlotItem | pg.PlotWidget, title: str, left: str, bottom: str) -> None:
    """Title, axis captions and axes in TEXT_COLOR; no context menu. Takes a PlotItem or a PlotWidget."""
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    item.setTitle(title, color=TEXT_COLOR, size=TITLE_SIZE)
    for side, text in (("left", left), ("bottom", bottom)):
        axis = item.getAxis(side)
        axis.setPen(TEXT_COLOR)
        axis.setTextPen(TEXT_COLOR)
        item.setLabel(side, text, color=TEXT_COLOR)
    item.setMenuEnabled(False)
