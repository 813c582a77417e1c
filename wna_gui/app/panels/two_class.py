"""Two-class classification images (Ahumada; paper §2.1, Fig. 1): a binary CNN answers signal-plus-noise trials.

Settings on the left (the pair, the γ grid, the trials); on the right, per γ, the mean stimulus of each
(stimulus → response) cell with its count, the stimulus difference between the answers, the classification
image c and its z-map, and the response-only image, drawn by the exported figure's painter; below, the counts
and fraction correct per γ.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from ...core.two_class import KIND, TwoClassSnapshot, report
from ...figures.two_class import TwoClassFigure
from ..plots import figure_with_report
from .base import ExportTarget, Panel


class TwoClassPanel(Panel):
    title = "Two-class images"

    def build_views(self) -> QWidget:
        views, self.figure, self.report_label = figure_with_report(
            "Start trains a binary CNN for the pair (unless the model has two classes) and shows it digits through "
            "noise at each γ.", "two_class_report")
        return views

    def draw(self, kind: str, snapshot: TwoClassSnapshot) -> None:
        if snapshot.samples_done == 0:
            self.figure.clear_canvas("Starting…")
            return
        self.figure.show_canvas(TwoClassFigure(snapshot))
        self.report_label.setText("\n".join(report(snapshot)))

    def clear_views(self) -> None:
        self.figure.clear_canvas()
        self.report_label.setText("")

    def view_exports(self) -> list[ExportTarget]:
        def write_shown(path):
            snapshot = self.snapshots.get(KIND)
            if snapshot is None or snapshot.samples_done == 0:
                raise ValueError("nothing to export yet: run the two-class experiment or open a session")
            return TwoClassFigure(snapshot).write(path)

        return [ExportTarget("Figure shown: publication figure", (".png", ".pdf", ".svg"), write_shown),
                *super().view_exports()]


PANEL = TwoClassPanel
