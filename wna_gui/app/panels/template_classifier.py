"""Template classifier (paper §3.1, Fig. 2C): real images classified by the bias maps of a classification-image
run of the window's session, beside class-mean images and logistic-regression weights.

Settings on the left (the maps run is the session's classification-image run); on the right the accuracy
bars (Wilson 95% intervals, chance, the paper's full-MNIST values) or the confusion matrices with their
counts, or the templates, all drawn by the same painters as the exported figures, and the run's report.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QWidget

from ...core.template_classifier import KIND, TemplateSnapshot, report
from ...figures.template_classifier import AccuracyFigure, ConfusionFigure
from ..plots import figure_with_report
from .base import ExportTarget, Panel

VIEWS = {"accuracy": "Accuracy per template source", "confusion": "Confusion matrices"}
HELP = ("Each test image gets the class whose template has the largest similarity with it. Templates: the maps "
        "of the session's classification-image run (one source per estimator) and, trained on real images, "
        "class means and logistic-regression weights. A class without a map (grey) is never predicted; its "
        "test images still count, as misses.")


class TemplateClassifierPanel(Panel):
    title = "Template classifier"

    def build_views(self) -> QWidget:
        self.view = QComboBox()
        self.view.setObjectName("template_view")
        self.view.setToolTip("Accuracy bars, confusion matrices, or the templates themselves")
        for key, label in VIEWS.items():
            self.view.addItem(label, key)
        self.view.currentIndexChanged.connect(self._redraw)
        display = QGroupBox("Display")
        form = QFormLayout(display)
        form.addRow("Show", self.view)
        note = QLabel(HELP)
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(placeholder-text)")
        form.addRow(note)
        self.extra_settings.addWidget(display)
        views, self.figure, self.report_label = figure_with_report(
            "Run a classification-image experiment, then Start here (or open a session) to classify the test images "
            "by its maps.", "template_report")
        return views

    def view_settings(self) -> dict:
        return {"view": self.view.currentData()}

    def apply_view_settings(self, values: dict) -> None:
        index = self.view.findData(values.get("view"))
        if index >= 0:
            self.view.setCurrentIndex(index)

    def draw(self, kind: str, snapshot: TemplateSnapshot) -> None:
        self._redraw()

    def clear_views(self) -> None:
        self.figure.clear_canvas()
        self.report_label.setText("")

    def shown_canvas(self):
        snapshot = self.snapshots.get(KIND)
        if snapshot is None or not snapshot.results:
            return None
        return AccuracyFigure(snapshot) if self.view.currentData() == "accuracy" else ConfusionFigure(snapshot)

    def _redraw(self) -> None:
        canvas = self.shown_canvas()
        snapshot = self.snapshots.get(KIND)
        if canvas is None:
            self.figure.clear_canvas("Classifying…" if snapshot is not None else None)
            self.report_label.setText("")
            return
        assert snapshot is not None  # shown_canvas() draws one only
        self.figure.show_canvas(canvas)
        self.report_label.setText("\n".join(report(snapshot)))

    def view_exports(self) -> list[ExportTarget]:
        def write_shown(path):
            canvas = self.shown_canvas()
            if canvas is None:
                raise ValueError("nothing to export yet: run the template classifier or open a session")
            return canvas.write(path)

        return [ExportTarget("Figure shown: publication figure", (".png", ".pdf", ".svg"), write_shown),
                *super().view_exports()]


PANEL = TemplateClassifierPanel
