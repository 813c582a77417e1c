"""Psychometric curves and microstimulation, the paper's §3.4 (Figs. 9, 23–25).

Two experiments in one tab. "Curves": one target class and one stimulated
layer, the fraction of stimuli t = γ·s + (1 − γ)·n classified as the target
against γ, one colour per k, fitted ψ and a table of thresholds and shifts.
"Small multiples": every class × layer (× sign), Fig. 23 style. Start runs
the view on top; settings forms come from the two declarations.
"""

from __future__ import annotations

from typing import cast

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
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
from ...core.psychometric_report import (
    COLUMN_NOTES,
    PSYCHOMETRIC_COLUMNS,
    column_headers,
    flag_notes,
    model_lines,
    psychometric_table,
)
from ..plots import FIGURE_FORMATS, export_view
from ..psychometric_plots import PsychometricPlot, SmallMultiplesPlot, k_colors
from .base import ExportTarget, Panel

TABLE_NOTE = ("α: where the sigmoid F is halfway (psignifit's threshold) · γ at P: where P(target) itself reaches "
              "the performance level · 95% intervals: bootstrap over images, shifts paired · ⚠: an estimate held by "
              "a search limit · hover a header or a cell for more")
COMBO_CHARACTERS = 16  # combo boxes of the settings show this much of their choice (the list shows it all)
WARNING_BACKGROUND = QColor(255, 226, 190)
WARNING_TEXT = QColor(170, 80, 0)
SHARED_COLUMNS = {"width": 6, "guess": 7, "lapse": 8}
FLAGGED_COLUMNS = {"threshold": 1, "width": 6, "guess": 7, "lapse": 8}
VIEWS = (KIND, GRID_KIND)  # tab order


class PsychometricPanel(Panel):
    title = "Psychometric curves"

    def __init__(self, specs, parent: QWidget | None = None) -> None:
        super().__init__(specs, parent)
        # Long choice labels (noise generator, noise blocks, images) would widen the settings column and
        # squeeze the table: the closed combo shows the start of its choice, the open list all of it.
        for form in self.forms.values():
            for combo in form.findChildren(QComboBox):
                combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                combo.setMinimumContentsLength(COMBO_CHARACTERS)
                # Qt keeps the minimum size hint it computed from the longest choice until a style change.
                QApplication.sendEvent(combo, QEvent(QEvent.Type.StyleChange))
        self._fit_settings_width()

    def _fit_settings_width(self, *_) -> None:
        """The settings column as wide as the shown form needs (the class check boxes arrive with a model): the
        grid's row of class check boxes would otherwise take the curves table's width."""
        for form in self.forms.values():
            for widget in form.findChildren(QWidget):  # layouts cache their items' size hints until told
                widget.updateGeometry()
            for widget in (*form.groups, form):
                layout = widget.layout()
                assert layout is not None  # the form and its group boxes are built with their layouts
                layout.invalidate()
        self.settings_area.setFixedWidth(self.forms[self.active_kind()].sizeHint().width() + 40)

    def build_views(self) -> QWidget:
        self._layer = None  # the layer λ was last set for
        self.plot = PsychometricPlot()
        self.table = QTableWidget(0, len(PSYCHOMETRIC_COLUMNS))
        self.table.setObjectName("fit_table")
        self._set_headers(list(PSYCHOMETRIC_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        # Spare width goes to the flags, the last column, not to the narrow p-values.
        header.setStretchLastSection(True)
        self.model_label = QLabel()
        self.model_label.setObjectName("fit_model")
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.flags_label = QLabel()
        self.flags_label.setObjectName("fit_flags")
        self.flags_label.setWordWrap(True)
        self.flags_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        table_note = QLabel(TABLE_NOTE)
        table_note.setWordWrap(True)
        table_note.setStyleSheet("color: palette(placeholder-text)")
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.model_label)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.flags_label)
        table_layout.addWidget(table_note)
        curves = QSplitter(Qt.Orientation.Vertical)
        curves.setObjectName("curves_splitter")
        curves.addWidget(self.plot)
        curves.addWidget(table_box)
        curves.setStretchFactor(0, 1)
        curves.setStretchFactor(1, 1)
        curves.setSizes([450, 420])  # in proportion: the table shows a sweep of 11 k without scrolling

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
        self.views.currentChanged.connect(self._fit_settings_width)
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
        layer = self._layer_editor().currentData()
        if layer != self._layer:
            self._layer = layer
            if layer is not None:
                lambda_editor = cast(QDoubleSpinBox, self.forms[KIND].editor("lambda"))  # a float param's
                lambda_editor.setValue(default_lambda(self.model, layer))

    def _layer_editor(self) -> QComboBox:
        return cast(QComboBox, self.forms[KIND].editor("layer"))  # a choice param's

    def restored(self) -> None:
        """The curves show when the session has curves, else the grid when it has one."""
        self._fit_settings_width()
        self._layer = self._layer_editor().currentData()
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
        self.table.clearSpans()
        self.table.setRowCount(0)
        self._set_headers(list(PSYCHOMETRIC_COLUMNS))
        self.model_label.clear()
        self.flags_label.clear()
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

    def _set_headers(self, headers: list[str]) -> None:
        for column, (text, note) in enumerate(zip(headers, COLUMN_NOTES)):
            item = self.table.horizontalHeaderItem(column)
            if item is None or item.text() != text:
                item = QTableWidgetItem(text)
                item.setToolTip(note)
                self.table.setHorizontalHeaderItem(column, item)

    def _fill_table(self, snapshot: PsychometricSnapshot) -> None:
        rows = psychometric_table(snapshot)
        self._set_headers(column_headers(snapshot))
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for row, (texts, color) in enumerate(zip(rows, k_colors(snapshot.k_values))):
            fit = snapshot.fits[row]
            for col, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setForeground(QBrush(color))
                    item.setFont(bold)
                self.table.setItem(row, col, item)
            if fit is None:  # its note (no fit: why, or progress) spans the numbers
                self.table.setSpan(row, 1, 1, len(PSYCHOMETRIC_COLUMNS) - 1)
                self._cell(row, 1).setToolTip(texts[1])
                continue
            self._annotate_row(snapshot, row, fit)
        self._span_shared(snapshot)
        lines = model_lines(snapshot, detail=False)
        self.model_label.setText("\n".join(lines))
        self.model_label.setToolTip("\n".join(model_lines(snapshot)))
        self.model_label.setVisible(bool(lines))
        notes = flag_notes(snapshot)
        self.flags_label.setText("\n".join(notes))
        self.flags_label.setVisible(bool(notes))
        warned = any(snapshot.warnings(c) for c in range(len(rows))) if snapshot.flags else False
        self.flags_label.setStyleSheet(f"color: {WARNING_TEXT.name()}" if warned else "")

    def _annotate_row(self, snapshot: PsychometricSnapshot, row: int, fit) -> None:
        """Tooltips with the intervals a cell leaves out, and flagged estimates marked."""
        tips = {6: fit.width_ci and f"width {fit.width:.3f}, 95% CI [{fit.width_ci[0]:.3f}, {fit.width_ci[1]:.3f}]",
                7: fit.guess_ci and f"guess {fit.guess:.3f}, 95% CI [{fit.guess_ci[0]:.3f}, {fit.guess_ci[1]:.3f}]",
                8: fit.lapse_ci and f"lapse {fit.lapse:.3f}, 95% CI [{fit.lapse_ci[0]:.3f}, {fit.lapse_ci[1]:.3f}]"}
        for col, tip in tips.items():
            if tip:
                self._cell(row, col).setToolTip(tip)
        flags = snapshot.flags[row] if snapshot.flags else ()
        reasons = []
        for flag in flags:
            reasons.append(("⚠ " if flag.severity == "warning" else "") + flag.reason)
            if flag.severity == "warning":
                cell = self._cell(row, FLAGGED_COLUMNS[flag.parameter])
                cell.setBackground(QBrush(WARNING_BACKGROUND))
                cell.setToolTip(flag.reason)
        flag_cell = self._cell(row, len(PSYCHOMETRIC_COLUMNS) - 1)
        if reasons:
            flag_cell.setToolTip("\n".join(reasons))
        if any(flag.severity == "warning" for flag in flags):
            flag_cell.setForeground(QBrush(WARNING_TEXT))

    def _cell(self, row: int, col: int) -> QTableWidgetItem:
        item = self.table.item(row, col)
        assert item is not None  # _fill_table sets every cell
        return item

    def _span_shared(self, snapshot: PsychometricSnapshot) -> None:
        """A parameter the model shares across k is one cell spanning the rows, so the table shows it once."""
        model = snapshot.fit_model or {}
        shared = model.get("shared") or () if "error" not in model else ()
        if snapshot.preliminary or len(snapshot.fits) < 2 or any(fit is None for fit in snapshot.fits):
            return
        for name in shared:
            col = SHARED_COLUMNS[name]
            self.table.setSpan(0, col, len(snapshot.fits), 1)
            item = self._cell(0, col)
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            tip = item.toolTip()
            item.setToolTip(f"shared across k{': ' + tip if tip else ''}")

    # --- export ---

    def view_exports(self) -> list[ExportTarget]:
        return [
            ExportTarget("Psychometric curves plot (as on screen)", FIGURE_FORMATS,
                         lambda path: export_view(self.plot, path)),
            ExportTarget("Small multiples plot (as on screen)", FIGURE_FORMATS,
                         lambda path: export_view(self.grid_plot, path)),
            *super().view_exports(),
        ]


PANEL = PsychometricPanel
