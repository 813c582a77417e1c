"""Two-class classification images (Ahumada; paper §2.1, Fig. 1): a binary CNN answers signal-plus-noise trials.

Settings on the left (the pair, the γ grid, the trials); on the right, per γ, the mean stimulus of each
(stimulus → response) cell with its count, the stimulus difference between the answers, the classification
image c and its z-map, and the response-only image, drawn by the exported figure's painter; below, the counts
and fraction correct per γ.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ...core.two_class import KIND, TwoClassSnapshot, report
from ...figures.two_class import TwoClassFigure
from .base import ExportTarget, Panel
from .template_classifier import FigureView


class TwoClassPanel(Panel):
    title = "Two-class images"

    def build_views(self) -> QWidget:
        self.figure = FigureView("Start trains a binary CNN for the pair (unless the model has two classes) and "
                                 "shows it digits through noise at each γ.")
        self.report_label = QLabel()
        self.report_label.setObjectName("two_class_report")
        self.report_label.setWordWrap(True)
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        views = QWidget()
        layout = QVBoxLayout(views)
        layout.addWidget(self.figure, 1)
        layout.addWidget(self.report_label)
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
