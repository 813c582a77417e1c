"""Robustness lab: accuracy of several models under noise, blur and gradient attacks, as psychometric curves.

Settings (built from the declaration) on the left. On the right, on top: one
accuracy plot per distortion, a colour per model, measured points with 95%
bars, the fitted curve and the threshold (the level at half-way accuracy
between clean and chance). Below, three tabs: the threshold table with
intervals and paired differences against the control, the error-consistency
matrix (Cohen's κ) at a chosen level, and example distorted images at that
level with each model's answers. A distortion picker and a level slider
choose what the lower tabs show.
"""

from __future__ import annotations

import copy
import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QBrush, QTextOption
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.censoring import INSIDE, censored_text
from ...core.models import recorded_heldout_accuracy
from ...core.robustness import DISTORTIONS, KIND, RobustnessSnapshot, incompatibility
from ...figures.robustness import (
    BACKGROUND,
    CurvesFigure,
    KappaMatrixFigure,
    example_montage,
    model_color,
)
from ..plots import FIGURE_FORMATS, export_view
from .base import ExportTarget, Panel, scrolled

TABS = ("thresholds", "kappa", "examples")
TAB_TITLES = {"thresholds": "Thresholds", "kappa": "Error consistency (κ)", "examples": "Example images"}
COLUMNS = ("Distortion", "Model", "Loss", "Clean acc.", "Threshold", "95% CI", "Δ vs {ref}", "95% CI of Δ",
           "Floor acc.", "Note")
TABLE_NOTE = ("Threshold: the level at which the fitted accuracy falls halfway from the clean accuracy to chance "
              "(1/K). Intervals: bootstrap over test images; the same resamples for every model, so Δ is paired. "
              "Floor: the fitted accuracy at strong distortion. ⚠: an estimate held by a limit of the search.")
KAPPA_NOTE = ("Cohen's κ on which trials each model gets right, beyond the agreement their accuracies predict "
              "(Geirhos et al. 2020): 0 = independent errors, 1 = the same errors. Noise images are the same for "
              "every model; an attack is made against each model's own gradient.")


def _number(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _interval(interval) -> str:
    if interval is None or not np.all(np.isfinite(np.asarray(interval, dtype=float))):
        return "–"
    return f"[{interval[0]:.3g}, {interval[1]:.3g}]"


CURVES_MIN_HEIGHT = 400  # px: two rows of accuracy plots stay readable; a lower window scrolls the panel
PLOT_MIN_WIDTH = 320  # px: a narrower accuracy plot crowds its points and ticks; two columns need twice this
PLOT_ROW_HEIGHT = 190  # px: the least height of one row of accuracy plots
TITLE_ROW_HEIGHT = 30  # px: pyqtgraph's one-line title row
TITLE_SLACK = 8  # px: the plot's own margins beside its title
CENTRED = QTextOption(Qt.AlignmentFlag.AlignHCenter)


class RobustnessPanel(Panel):
    title = "Robustness"

    def __init__(self, specs, parent=None) -> None:
        super().__init__(specs, parent)
        # The plots reflow when the room they are shown in changes width (the window, not the data).
        view_area = self.findChild(QScrollArea, "view_area")
        assert view_area is not None  # the base panel's
        self.view_port = view_area.viewport()
        self.view_port.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view_port and event.type() == QEvent.Type.Resize:
            self._fit_curves()
        return super().eventFilter(watched, event)

    def build_views(self) -> QWidget:
        self._level = 0
        self._build_model_picker()
        self.curves = pg.GraphicsLayoutWidget()
        self.curves.setMinimumHeight(CURVES_MIN_HEIGHT)
        self.curves.setBackground(BACKGROUND)
        self.figure = CurvesFigure()
        self.curves.setCentralItem(self.figure)

        self.distortion = QComboBox()
        self.distortion.setObjectName("robustness_distortion")
        self.distortion.setToolTip("The distortion whose κ matrix and example images are shown")
        for key, label in DISTORTIONS.items():
            self.distortion.addItem(label, key)
        self.distortion.currentIndexChanged.connect(self._redraw_level)
        self.level = QSlider(Qt.Orientation.Horizontal)
        self.level.setObjectName("robustness_level")
        self.level.setToolTip("The distortion level of the κ matrix and the example images")
        self.level.setRange(0, 0)
        self.level.valueChanged.connect(self._level_moved)
        self.level_label = QLabel()
        picker = QHBoxLayout()
        picker.addWidget(QLabel("Distortion"))
        picker.addWidget(self.distortion)
        picker.addWidget(QLabel("Level"))
        picker.addWidget(self.level, 1)
        picker.addWidget(self.level_label)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("threshold_table")
        self.table.setHorizontalHeaderLabels([c.format(ref="control") for c in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        table_note = QLabel(TABLE_NOTE)
        table_note.setWordWrap(True)
        table_note.setStyleSheet("color: palette(placeholder-text)")
        thresholds = QWidget()
        thresholds_layout = QVBoxLayout(thresholds)
        thresholds_layout.setContentsMargins(0, 0, 0, 0)
        thresholds_layout.addWidget(self.table, 1)
        thresholds_layout.addWidget(table_note)

        self.kappa_view = pg.GraphicsLayoutWidget()
        self.kappa_view.setBackground(BACKGROUND)
        self.kappa_figure = KappaMatrixFigure()
        self.kappa_view.addItem(self.kappa_figure)
        self.kappa_bar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get("CET-D1"), interactive=False,
                                         width=12)
        self.kappa_bar.setImageItem(self.kappa_figure.image)
        self.kappa_view.addItem(self.kappa_bar)
        kappa_note = QLabel(KAPPA_NOTE)
        kappa_note.setWordWrap(True)
        kappa_note.setStyleSheet("color: palette(placeholder-text)")
        kappa = QWidget()
        kappa_layout = QVBoxLayout(kappa)
        kappa_layout.setContentsMargins(0, 0, 0, 0)
        kappa_layout.addWidget(self.kappa_view, 1)
        kappa_layout.addWidget(kappa_note)

        self.examples_view = pg.GraphicsLayoutWidget()
        self.examples_view.setBackground(BACKGROUND)
        self.examples_box = self.examples_view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.examples_image = pg.ImageItem(axisOrder="row-major")
        self.examples_box.addItem(self.examples_image)
        self.answers = QLabel()
        self.answers.setObjectName("example_answers")
        self.answers.setTextFormat(Qt.TextFormat.RichText)
        self.answers.setWordWrap(True)
        examples = QWidget()
        examples_layout = QVBoxLayout(examples)
        examples_layout.setContentsMargins(0, 0, 0, 0)
        examples_layout.addWidget(self.examples_view, 1)
        examples_layout.addWidget(self.answers)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("robustness_tabs")
        for key, widget in zip(TABS, (thresholds, kappa, examples)):
            self.tabs.addTab(widget, TAB_TITLES[key])
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addLayout(picker)
        lower_layout.addWidget(self.tabs, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.curves)
        splitter.addWidget(scrolled(lower))  # its notes scroll: the curves keep their height
        splitter.setSizes([520, 380])
        return splitter

    # --- the models compared ---

    def _build_model_picker(self) -> None:
        """The session's models with their task and held-out accuracy; those of another task cannot be ticked."""
        self.model_list = QListWidget()
        self.model_list.setObjectName("robustness_models")
        self.model_list.setToolTip("The models a new run measures: the session's model always, and the ticked "
                                   "ones of the same task (input shape and classes)")
        self.model_list.setWordWrap(True)
        self.model_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.model_list.setMaximumHeight(170)
        self.model_list.itemChanged.connect(self._model_ticked)
        self._unticked: set[str] = set()  # models the user unticked (kept unticked when the list is rebuilt)
        box = QGroupBox("Models compared")
        box_layout = QVBoxLayout(box)
        box_layout.addWidget(self.model_list)
        self.extra_settings.addWidget(box)
        self.model_box = box

    def session_changed(self, session) -> None:
        self.model_list.blockSignals(True)
        self.model_list.clear()
        primary = session.model
        self._add_model_item(f"{primary.display_name} (the session's model, always measured)", None, primary,
                             None)
        for name, other in session.models.items():
            self._add_model_item(name, name, other, incompatibility(other, primary))
        self.model_list.blockSignals(False)

    def _add_model_item(self, label: str, name: str | None, model, reason: str | None) -> None:
        shape = "×".join(str(s) for s in model.input_spec.shape)
        accuracy = recorded_heldout_accuracy(model)
        task = f"input {shape}, {model.n_classes} classes, held-out accuracy " + (
            "not recorded" if accuracy is None else f"{accuracy:.1%}")
        item = QListWidgetItem(f"{label}\n    {task}" + (f"\n    not comparable: {reason}" if reason else ""))
        item.setData(Qt.ItemDataRole.UserRole, name)
        item.setToolTip(f"{label}: {task}" + (f". It cannot be compared with the session's model: {reason}"
                                                if reason else ""))
        if name is None:  # the session's model: measured in every run
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            item.setCheckState(Qt.CheckState.Checked)
        elif reason:
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            item.setCheckState(Qt.CheckState.Unchecked)
        else:
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if name in self._unticked else Qt.CheckState.Checked)
        self.model_list.addItem(item)

    def _model_ticked(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        if name is not None:
            (self._unticked.add if item.checkState() == Qt.CheckState.Unchecked else self._unticked.discard)(name)

    def picked_models(self) -> list[str]:
        """The extra models ticked (the session's model is measured anyway)."""
        items = (self.model_list.item(row) for row in range(self.model_list.count()))
        return [item.data(Qt.ItemDataRole.UserRole) for item in items
                if item.data(Qt.ItemDataRole.UserRole) is not None and item.flags() & Qt.ItemFlag.ItemIsEnabled
                and item.checkState() == Qt.CheckState.Checked]

    def experiment_factory(self, model, device, session=None):
        if session is not None and self.plan().action == "new":  # a new run measures the models ticked
            picked = set(self.picked_models())
            session = copy.copy(session)
            session.models = {name: other for name, other in session.models.items() if name in picked}
        return super().experiment_factory(model, device, session)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.model_box.setEnabled(not running)

    # --- view settings ---

    def view_settings(self) -> dict:
        return {"tab": TABS[self.tabs.currentIndex()], "distortion": self.distortion.currentData(),
                "level": int(self._level)}

    def apply_view_settings(self, values: dict) -> None:
        if values.get("tab") in TABS:
            self.tabs.setCurrentIndex(TABS.index(values["tab"]))
        if values.get("distortion") in DISTORTIONS:
            self.distortion.setCurrentIndex(list(DISTORTIONS).index(values["distortion"]))
        if isinstance(values.get("level"), int) and values["level"] >= 0:
            self._level = values["level"]
            self._redraw_level()

    # --- drawing ---

    @property
    def snapshot(self) -> RobustnessSnapshot | None:
        return self.snapshots.get(KIND)

    def clear_views(self) -> None:
        self.figure.clear_plots()
        self.table.setRowCount(0)
        self.kappa_figure.clear_matrix()
        self.examples_image.clear()
        self.answers.clear()
        self.level_label.clear()

    def draw(self, kind: str, snapshot: RobustnessSnapshot) -> None:
        self.figure.show_snapshot(snapshot)
        self._fit_curves()
        self._fill_table(snapshot)
        self._redraw_level()

    def _fit_curves(self) -> None:
        """The accuracy plots in two columns where two readable ones fit the visible width, else in one under
        each other (the panel scrolls down); a title longer than its plot wraps. Nothing scrolls sideways."""
        figure = self.figure
        plots = list(figure.plots.values())
        if not plots:
            self.fit_figure(self.curves, figure)
            return
        legends = [item for item in figure.items if isinstance(item, pg.LabelItem)]
        left, top, right, bottom = figure.layout.getContentsMargins()
        spacing = figure.layout.horizontalSpacing()
        room = self.view_port.width() - 16 - round(left + right)  # as fit_figure gives the legend
        columns = 2 if len(plots) > 1 and 2 * PLOT_MIN_WIDTH + spacing <= room else 1
        placed = 1 + max(column for plot in plots for _, column in figure.items[plot])
        if placed != columns:
            for item in (*legends, *plots):
                figure.removeItem(item)
            for item in legends:
                figure.addItem(item, row=0, col=0, colspan=columns)
            for index, plot in enumerate(plots):
                figure.addItem(plot, row=1 + index // columns, col=index % columns)
        cell = (room - spacing * (columns - 1)) / columns
        for plot in plots:
            self._wrap_title(plot, cell)
        self.fit_figure(self.curves, figure)  # the legend wraps to the room too
        # Tall enough for every row of plots at a readable height, however many lines the texts took.
        titles = [plot.titleLabel.maximumHeight() - TITLE_ROW_HEIGHT for plot in plots]
        rows = [PLOT_ROW_HEIGHT + max(titles[start:start + columns]) for start in range(0, len(plots), columns)]
        legend = sum(item.effectiveSizeHint(Qt.SizeHint.MinimumSize).height() for item in legends)
        need = top + bottom + legend + sum(rows) + figure.layout.verticalSpacing() * len(rows)
        self.curves.setMinimumHeight(max(CURVES_MIN_HEIGHT, math.ceil(need)))

    @staticmethod
    def _wrap_title(plot: pg.PlotItem, cell: float) -> None:
        """The title on as many centred lines as a plot ``cell`` px wide needs (pyqtgraph gives it one line)."""
        label = plot.titleLabel
        text = label.item
        text.setTextWidth(-1)  # its natural width first
        beside = plot.getAxis("left").minimumWidth() + TITLE_SLACK  # the title spans the plot less its axis
        if text.boundingRect().width() > cell - beside:
            text.setTextWidth(max(cell - beside, 1.0))
            text.document().setDefaultTextOption(CENTRED)
        label.updateMin()
        height = max(TITLE_ROW_HEIGHT, math.ceil(text.boundingRect().height()))
        label.setMaximumHeight(height)
        plot.layout.setRowFixedHeight(0, height)

    def _result(self):
        snapshot = self.snapshot
        if snapshot is None:
            return None, None
        name = self.distortion.currentData()
        names = [result.name for result in snapshot.distortions]
        if name not in names:  # a distortion this run did not measure: show its first
            name = names[0]
        return snapshot, snapshot.distortion(name)

    def _level_moved(self, value: int) -> None:
        if self.snapshot is not None:
            self._level = int(value)
        self._redraw_level()

    def _redraw_level(self, *_) -> None:
        snapshot, result = self._result()
        if result is None:
            return
        last = len(result.levels) - 1
        level = min(self._level, last)
        self.level.blockSignals(True)
        self.level.setRange(0, last)
        self.level.setValue(level)
        self.level.blockSignals(False)
        self.level_label.setText(f"{result.level_name} = {result.levels[level]:g}")
        names = snapshot.model_names
        title = f"{result.label}, {result.level_name} = {result.levels[level]:g}"
        if len(names) > 1:
            self.kappa_figure.show_matrix(result.kappa[level], names, title)
        else:
            self.kappa_figure.clear_matrix()
            self.kappa_figure.setTitle("κ needs at least two models: add models to the session")
        self.examples_image.setImage(example_montage(result, level), autoLevels=False, levels=(0.0, 1.0))
        self.answers.setText(self._answers_html(snapshot, result, level))

    def _answers_html(self, snapshot: RobustnessSnapshot, result, level: int) -> str:
        labels = snapshot.example_labels
        classes = snapshot.class_names
        rows = ["true: " + " ".join(html.escape(classes[int(c)]) for c in labels)]
        for m, name in enumerate(snapshot.model_names):
            answers = []
            for predicted, truth in zip(result.example_predictions[m, level], labels):
                if predicted < 0:
                    answers.append("·")
                elif predicted == truth:
                    answers.append(html.escape(classes[int(predicted)]))
                else:
                    answers.append(f"<b style='color:#c03000'>{html.escape(classes[int(predicted)])}</b>")
            color = model_color(m).name()
            rows.append(f"<span style='color:{color}'>●</span> {html.escape(name)}: " + " ".join(answers))
        note = " (images as the session's model saw them; attacks differ per model)" if result.name in (
            "fgsm", "ifgsm") else ""
        return "<br>".join(rows) + f"<br><small>wrong answers in red{note}</small>"

    def _fill_table(self, snapshot: RobustnessSnapshot) -> None:
        reference = snapshot.reference
        self.table.setHorizontalHeaderLabels([c.format(ref=snapshot.model_names[reference]) for c in COLUMNS])
        rows = []
        for result in snapshot.distortions:
            for m, name in enumerate(snapshot.model_names):
                curve = result.fits[m]
                if curve is None:
                    measured = int(result.complete[m].sum())
                    rows.append([result.label, name, snapshot.losses[m], _number(result.accuracy[m, 0]),
                                 f"{measured}/{len(result.levels)} levels", "", "", "", "", ""])
                    continue
                masking = result.masking[m] if result.masking else ""
                if curve.fit is None:
                    rows.append([result.label, name, snapshot.losses[m], _number(curve.clean),
                                 curve.threshold_text(), "", "", "", "", "; ".join(t for t in (curve.note, masking)
                                                                                  if t)])
                    continue
                inside = curve.censored == INSIDE  # outside the grid: a bound ("> 0.9"), no interval or Δ
                delta, delta_ci = "", ""
                if m != reference and inside:
                    delta = _number(result.differences[m, reference])
                    delta_ci = _interval(result.difference_ci[m, reference])
                note = ("⚠ " + ", ".join(curve.flags)) if curve.flags else ""
                if not inside:
                    note = (note + f" fitted {_number(curve.threshold)}, outside the levels measured").strip()
                if masking:
                    note = (note + " ⚠ " + masking).strip()
                rows.append([result.label, name, snapshot.losses[m], _number(curve.clean),
                             censored_text(curve.threshold, *curve.grid, ".3g"),
                             _interval(curve.threshold_ci) if inside else "", delta, delta_ci,
                             _number(curve.fit.lapse), note])
        self.table.setRowCount(len(rows))
        for r, texts in enumerate(rows):
            for c, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if c == 1:
                    item.setForeground(QBrush(model_color(snapshot.model_names.index(texts[1]))))
                self.table.setItem(r, c, item)

    # --- export ---

    def view_exports(self) -> list[ExportTarget]:
        return [
            ExportTarget("Accuracy curves (as on screen)", FIGURE_FORMATS, lambda path: export_view(self.curves, path)),
            ExportTarget("κ matrix at the chosen level (as on screen)", FIGURE_FORMATS,
                         lambda path: export_view(self.kappa_view, path)),
            *super().view_exports(),
        ]


PANEL = RobustnessPanel
