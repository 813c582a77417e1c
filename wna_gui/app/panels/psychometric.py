"""Psychometric curves and microstimulation, the paper's §3.4 (Figs. 9, 23–25).

Two experiments in one tab. "Curves": one target class and one stimulated
layer, the fraction of stimuli t = γ·s + (1 − γ)·n classified as the target
against γ, one colour per k, fitted ψ and a table of thresholds and shifts.
"Small multiples": every class × layer (× sign), Fig. 23 style. Start runs
the view on top; settings forms come from the two declarations.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.psychometric import KIND, PsychometricSnapshot, default_lambda
from ...core.psychometric_grid import KIND as GRID_KIND
from ...core.psychometric_grid import GridSnapshot
from ...core.psychometric_report import PSYCHOMETRIC_COLUMNS, psychometric_table
from ..plots import export_view
from ..psychometric_plots import PsychometricPlot, SmallMultiplesPlot, k_colors
from .base import ExportTarget, Panel

TABLE_NOTE = ("Threshold: γ where the sigmoid is halfway; width: γ span from 5% to 95% of it; 95% intervals "
              "bootstrap the images. A threshold outside the γ range is an extrapolation and is not given as a "
              "number; neither are shifts that involve one.")
VIEWS = (KIND, GRID_KIND)  # tab order


class PsychometricPanel(Panel):
    title = "Psychometric curves"

    def build_views(self) -> QWidget:
        self._layer = None  # the layer λ was last set for
        self.plot = PsychometricPlot()
        self.table = QTableWidget(0, len(PSYCHOMETRIC_COLUMNS))
        self.table.setObjectName("fit_table")
        self.table.setHorizontalHeaderLabels(list(PSYCHOMETRIC_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Spare width goes to the shift column, the widest text, not to the narrow p-value.
        header.setSectionResizeMode(PSYCHOMETRIC_COLUMNS.index("Δthreshold vs k=0 [95% CI]"),
                                    QHeaderView.ResizeMode.Stretch)
        table_note = QLabel(TABLE_NOTE)
        table_note.setWordWrap(True)
        table_note.setStyleSheet("color: palette(placeholder-text)")
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(table_note)
        curves = QSplitter(Qt.Orientation.Vertical)
        curves.setObjectName("curves_splitter")
        curves.addWidget(self.plot)
        curves.addWidget(table_box)
        curves.setStretchFactor(0, 3)
        curves.setStretchFactor(1, 2)

        self.grid_plot = SmallMultiplesPlot()
        self.grid_note = QLabel()
        self.grid_note.setWordWrap(True)
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.grid_plot, 1)
        grid_layout.addWidget(self.grid_note)

        self.views = QTabWidget()
        self.views.setObjectName("psychometric_views")
        self.views.addTab(curves, "Curves")
        self.views.addTab(grid_box, "Small multiples")
        self.views.currentChanged.connect(self._show_active_form)
        return self.views

    def active_kind(self) -> str:
        return VIEWS[self.views.currentIndex()] if hasattr(self, "views") else KIND

    def show_view(self, kind: str) -> None:
        self.views.setCurrentIndex(VIEWS.index(kind))

    def view_settings(self) -> dict:
        return {"view": self.active_kind()}

    def apply_view_settings(self, values: dict) -> None:
        if values.get("view") in VIEWS:
            self.show_view(values["view"])

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.views.tabBar().setEnabled(not running)

    def form_changed(self, kind: str) -> None:
        """A newly chosen layer gets its paper λ (0.01 fully connected, 0.1 first conv, 1 deeper conv)."""
        if kind != KIND or self.model is None:
            return
        layer = self.forms[KIND].editor("layer").currentData()
        if layer != self._layer:
            self._layer = layer
            if layer is not None:
                self.forms[KIND].editor("lambda").setValue(default_lambda(self.model, layer))

    def restored(self) -> None:
        """The curves show when the session has curves, else the grid when it has one."""
        self._layer = self.forms[KIND].editor("layer").currentData()
        if KIND in self.states:
            self.show_view(KIND)
        elif GRID_KIND in self.states:
            self.show_view(GRID_KIND)

    # --- drawing ---

    @property
    def snapshot(self) -> PsychometricSnapshot | None:
        return self.snapshots.get(KIND)

    @property
    def grid_snapshot(self) -> GridSnapshot | None:
        return self.snapshots.get(GRID_KIND)

    def clear_views(self) -> None:
        self.plot.clear_curves()
        self.table.setRowCount(0)
        self.grid_plot.clear_grid()
        self.grid_note.clear()

    def draw(self, kind: str, snapshot) -> None:
        if kind == GRID_KIND:
            self.grid_plot.show_runs(snapshot.configs, snapshot.snapshots, snapshot.class_names)
            self.grid_note.setText(f"{snapshot.plots_done} of {len(snapshot.configs)} plots done · rows: target "
                                   "class · columns: stimulated layer and sign, each with its paper λ")
            return
        self.plot.show_snapshot(snapshot)
        self._fill_table(snapshot)

    def _fill_table(self, snapshot: PsychometricSnapshot) -> None:
        rows = psychometric_table(snapshot)
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for row, (texts, color) in enumerate(zip(rows, k_colors(snapshot.k_values))):
            for col, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setForeground(QBrush(color))
                    item.setFont(bold)
                self.table.setItem(row, col, item)
            if snapshot.fits[row] is None:  # its note (no fit: why, or progress) spans the numbers
                self.table.setSpan(row, 1, 1, len(PSYCHOMETRIC_COLUMNS) - 1)
                self.table.item(row, 1).setToolTip(texts[1])

    # --- export ---

    def view_exports(self) -> list[ExportTarget]:
        return [
            ExportTarget("Psychometric curves plot (as on screen)", (".png", ".svg"),
                         lambda path: export_view(self.plot, path)),
            ExportTarget("Small multiples plot (as on screen)", (".png", ".svg"),
                         lambda path: export_view(self.grid_plot, path)),
            *super().view_exports(),
        ]


PANEL = PsychometricPanel
