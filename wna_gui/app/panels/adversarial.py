"""Adversarial uses of bias maps (paper §3.2, Figs. 6, 7, 17–21): one tab, a view per experiment.

"Bias-map attack": fooling rate against γ of noise or digits plus a bias map or a mean image, the paper's
Table 2 dashed beside it, per target or averaged, and example stimuli. "Backdoor": the poisoned model's
confusion matrices, clean and poisoned classification images with the patch outlined, the mean gradients
and the data-side baseline. "Activation injection": misclassification toward the injected class against γ,
one curve per layer. Start runs the view on top.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QPainter, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
import pyqtgraph as pg

from ...figures.adversarial import PANEL_VIEWS, ConfusionFigure, FoolingFigure, LineFigure, TileFigure, example_rows
from .base import Panel, scrolled

PLOT_MIN_HEIGHT = 200  # px: the curves keep a readable data area; a lower window scrolls the page instead
# Screen px per figure unit, fitted to the pane between these: 8 pt captions ~13 px (the window's own text size) at
# the least, a 28 px digit as a 168 px tile at the most. A pane too narrow at the least lays the figures out narrower.
FIGURE_SCALE = 1.2
LARGEST_FIGURE_SCALE = 1.5
RESIZE_SETTLE_MS = 150  # a resize redraws the figures once it pauses this long, not at every step of a drag
VIEW_ORDER = ("bias_attack", "backdoor", "activation_injection")
VIEW_TITLES = {"bias_attack": "Bias-map attack", "backdoor": "Backdoor detection",
               "activation_injection": "Activation injection"}


def _wrapped(note: str) -> str:
    """A report's lines (HTML <pre>) wrapped at the panel's width: a long line must not widen the window."""
    if note.startswith("<pre>") and note.endswith("</pre>"):
        return f"<p style='white-space: pre-wrap; font-family: monospace'>{note[5:-6]}</p>"
    return note


class FigurePane(QScrollArea):
    """The figures one below the other, drawn to the pane's width (scaled within FIGURE_SCALE and
    LARGEST_FIGURE_SCALE, else laid out narrower), drawn again once a resize settles; exports keep the figure width.
    The pane never shrinks below the first figure's title and first row of tiles (the page scrolls instead), so a
    short window still shows what they are about."""

    def __init__(self) -> None:
        super().__init__()
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setWidget(self.label)
        self.setWidgetResizable(True)
        self.figures: list[TileFigure | ConfusionFigure] = []
        self.drawn_width: int | None = None  # the available width of the last drawing made while visible
        self.settle = QTimer(self)
        self.settle.setSingleShot(True)
        self.settle.timeout.connect(self.redraw)

    def available_width(self) -> int:
        # A vertical scroll bar's room is kept either way: its appearing must not push the figures past the edge.
        return self.width() - 2 * self.frameWidth() - self.verticalScrollBar().sizeHint().width()

    def show_figures(self, figures: list[TileFigure | ConfusionFigure]) -> None:
        self.figures = figures
        self.redraw()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.figures and self.available_width() != self.drawn_width:
            # Drawn while hidden: once the layout that shows the pane settles (it may resize it twice), not later.
            self.settle.start(0 if self.drawn_width is None else RESIZE_SETTLE_MS)

    def redraw(self) -> None:
        self.settle.stop()
        if not self.figures:
            self.label.clear()
            self.setMinimumHeight(0)
            self.drawn_width = None
            return
        available = max(self.available_width(), 1)
        fitted = [_fitted(figure, available) for figure in self.figures]
        images = [figure.to_qimage(scale) for figure, scale in fitted]
        canvas = QPixmap(max(image.width() for image in images), sum(image.height() for image in images))
        canvas.fill(Qt.GlobalColor.white)
        painter = QPainter(canvas)
        top = 0
        for image in images:
            painter.drawImage(0, top, image)
            top += image.height()
        painter.end()
        self.label.setPixmap(canvas)
        # Scroll bars that fit the new picture at once, not a layout pass later (a grab right after shows no stale one).
        QApplication.sendPostedEvents(self.viewport(), QEvent.Type.LayoutRequest)
        first, scale = fitted[0]
        head = first.head_height if isinstance(first, TileFigure) else first.height
        self.setMinimumHeight(min(round(scale * head), canvas.height()) + 2 * self.frameWidth())
        self.drawn_width = available if self.isVisible() else None


def _fitted(figure: TileFigure | ConfusionFigure, available: int) -> tuple[TileFigure | ConfusionFigure, float]:
    """(figure, scale) ``available`` px wide: scaled down to FIGURE_SCALE, then laid out narrower (tiles wrap onto
    more lines, confusion matrices one per row); a pane too narrow even for that scrolls sideways."""
    scale = min(LARGEST_FIGURE_SCALE, max(FIGURE_SCALE, available / figure.width))
    if figure.width * scale > available:
        figure = figure.laid_out(available / scale)
    return figure, scale


class AdversarialPanel(Panel):
    title = "Adversarial"

    def build_views(self) -> QWidget:
        self._wanted_target = 0  # 0: the mean over targets; i: the i-th target
        self.kinds = [kind for kind in VIEW_ORDER if kind in self.specs] + \
            [kind for kind in self.specs if kind not in VIEW_ORDER]
        self.views = QTabWidget()
        self.views.setObjectName("adversarial_views")
        self.pages: dict[str, dict] = {}
        for kind in self.kinds:
            page, widgets = self._build_page(kind)
            self.pages[kind] = widgets
            self.views.addTab(page, VIEW_TITLES.get(kind, kind))
        self.views.currentChanged.connect(self._show_active_form)
        return self.views

    def _build_page(self, kind: str) -> tuple[QWidget, dict]:
        page = QWidget()
        layout = QVBoxLayout(page)
        widgets: dict = {"note": QLabel()}
        widgets["note"].setWordWrap(True)
        widgets["note"].setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        if kind == "bias_attack":
            widgets["target"] = QComboBox()
            widgets["target"].setObjectName("attack_target")
            widgets["target"].setToolTip("Whose fooling-rate curves to show: the mean over targets or one target class")
            widgets["target"].addItem("mean over targets", None)
            widgets["target"].currentIndexChanged.connect(lambda index: self._target_chosen(kind, index))
            row.addWidget(QLabel("Curves of"))
            row.addWidget(widgets["target"])
            row.addStretch(1)
            plot = pg.GraphicsLayoutWidget()
            plot.setBackground("w")
            widgets["plot"] = FoolingFigure()
            plot.addItem(widgets["plot"])
        else:
            plot = pg.GraphicsLayoutWidget()
            plot.setBackground("w")
            title = "Misclassification toward the injected class" if kind == "activation_injection" else \
                "Training loss per epoch"
            left = "misclassification ratio" if kind == "activation_injection" else "loss"
            bottom = "γ (weight of the real activation)" if kind == "activation_injection" else "epoch"
            widgets["plot"] = LineFigure(title, left, bottom)
            # Top right: losses and misclassification toward the injected class fall to the right, leaving it free.
            widgets["plot"].legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-10, 10))
            plot.addItem(widgets["plot"])
        area = FigurePane()
        layout.addLayout(row)
        # Plot, report and figures share the height by a splitter; a long report scrolls instead of squeezing them.
        parts = QSplitter(Qt.Orientation.Vertical)
        parts.setObjectName(f"{kind}_parts")
        plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        parts.addWidget(plot)
        parts.addWidget(scrolled(widgets["note"]))
        parts.addWidget(area)
        widgets["figures"] = area
        shares = (3, 2, 3)
        for index, stretch in enumerate(shares):
            parts.setStretchFactor(index, stretch)
        # The first split by these shares too (sizes above every minimum, scaled to the room): a plot's size hint is
        # its current size, so a split by size hints gave the plot everything and the figures their 70 px minimum.
        parts.setSizes([100 * share for share in shares])
        layout.addWidget(parts, 1)
        return page, widgets

    def active_kind(self) -> str:
        return self.kinds[self.views.currentIndex()] if hasattr(self, "views") else next(iter(self.specs))

    def view_settings(self) -> dict:
        return {"view": self.active_kind(), "target": self._wanted_target}

    def apply_view_settings(self, values: dict) -> None:
        if values.get("view") in self.kinds:
            self.views.setCurrentIndex(self.kinds.index(values["view"]))
        self._wanted_target = int(values.get("target", 0))
        combo = self.pages.get("bias_attack", {}).get("target")
        if combo is not None and self._wanted_target < combo.count():
            combo.setCurrentIndex(self._wanted_target)

    def _target_chosen(self, kind: str, index: int) -> None:
        """The curves of one target or their mean; the choice is remembered (applied once the run has targets)."""
        self._wanted_target = max(index, 0)
        self._redraw(kind)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.views.tabBar().setEnabled(not running)

    def restored(self) -> None:
        for kind in self.kinds:
            if kind in self.states:
                self.views.setCurrentIndex(self.kinds.index(kind))
                break

    def clear_views(self) -> None:
        for kind, widgets in self.pages.items():
            if kind == "bias_attack":
                widgets["plot"].clear_curves()
                combo = widgets["target"]
                combo.blockSignals(True)
                while combo.count() > 1:
                    combo.removeItem(1)
                combo.blockSignals(False)
            else:
                widgets["plot"].show_lines([], {})
            widgets["note"].clear()
            widgets["figures"].show_figures([])

    def _redraw(self, kind: str) -> None:
        snapshot = self.snapshots.get(kind)
        if snapshot is not None:
            self.draw(kind, snapshot)

    def draw(self, kind: str, snapshot) -> None:
        widgets = self.pages[kind]
        if kind == "bias_attack":
            self._draw_attack(widgets, snapshot)
        else:
            x, curves, low, high, y_range, note, figures = PANEL_VIEWS[kind](snapshot)
            widgets["plot"].show_lines(x, curves, low, high, y_range or (None if curves else (-0.02, 1.02)))
            widgets["note"].setText(_wrapped(note))
            widgets["figures"].show_figures(figures)

    def _draw_attack(self, widgets: dict, snapshot) -> None:
        from ...core.bias_attack import report

        combo = widgets["target"]
        names = [f"target {snapshot.class_names[t]}" for t in snapshot.targets]
        if [combo.itemText(i) for i in range(1, combo.count())] != names:
            combo.blockSignals(True)
            while combo.count() > 1:
                combo.removeItem(1)
            for i, name in enumerate(names):
                combo.addItem(name, i)
            combo.setCurrentIndex(self._wanted_target if self._wanted_target < combo.count() else 0)
            combo.blockSignals(False)
        target = combo.currentData()
        if snapshot.targets_done == 0:
            widgets["plot"].clear_curves()
        else:
            widgets["plot"].show_snapshot(snapshot, target if target is None or target < snapshot.targets_done
                                          else None)
        widgets["note"].setText(_wrapped("<pre>" + "\n".join(report(snapshot)) + "</pre>"))
        if snapshot.targets_done:
            widgets["figures"].show_figures([TileFigure(example_rows(snapshot), "Example stimuli (tile title: the "
                                                        "class the model gives it; ✓ the target)")])


PANEL = AdversarialPanel
