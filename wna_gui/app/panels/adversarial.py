"""Adversarial uses of bias maps (paper §3.2, Figs. 6, 7, 17–21): one tab, a view per experiment.

"Bias-map attack": fooling rate against γ of noise or digits plus a bias map or a mean image, the paper's
Table 2 dashed beside it, per target or averaged, and example stimuli. "Backdoor": the poisoned model's
confusion matrices, clean and poisoned classification images with the patch outlined, the mean gradients
and the data-side baseline. "Activation injection": misclassification toward the injected class against γ,
one curve per layer. Start runs the view on top.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import (
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

from ...figures.adversarial import PANEL_VIEWS, FoolingFigure, LineFigure, TileFigure, example_rows
from ...figures.maps import Canvas
from .base import Panel, scrolled

PLOT_MIN_HEIGHT = 200  # px: the curves keep a readable data area; a lower window scrolls the page instead
FIGURE_SCALE = 1.5  # screen px per figure unit: a 28 px digit as a 168 px tile, its 8 pt captions ~16 px
VIEW_ORDER = ("bias_attack", "backdoor", "activation_injection")
VIEW_TITLES = {"bias_attack": "Bias-map attack", "backdoor": "Backdoor detection",
               "activation_injection": "Activation injection"}


def _wrapped(note: str) -> str:
    """A report's lines (HTML <pre>) wrapped at the panel's width: a long line must not widen the window."""
    if note.startswith("<pre>") and note.endswith("</pre>"):
        return f"<p style='white-space: pre-wrap; font-family: monospace'>{note[5:-6]}</p>"
    return note


def _image_label() -> tuple[QScrollArea, QLabel]:
    label = QLabel()
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    area = QScrollArea()
    area.setWidget(label)
    area.setWidgetResizable(True)
    return area, label


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
        area, widgets["tiles"] = _image_label()
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
            _show_figures(widgets, [])

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
            _show_figures(widgets, figures)

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
            _show_figures(widgets, [TileFigure(example_rows(snapshot), "Example stimuli (tile title: the class the "
                                               "model gives it; ✓ the target)")])


def _show_figures(widgets: dict, figures: list[Canvas]) -> None:
    """The figures one below the other; their pane never shrinks below the first one's title and first row of
    tiles (the page scrolls instead), so a short window still shows what they are about."""
    area, label = widgets["figures"], widgets["tiles"]
    if not figures:
        label.clear()
        area.setMinimumHeight(0)
        return
    images = [figure.to_qimage(FIGURE_SCALE) for figure in figures]
    width = max(image.width() for image in images)
    canvas = QPixmap(width, sum(image.height() for image in images))
    canvas.fill(Qt.GlobalColor.white)
    painter = QPainter(canvas)
    top = 0
    for image in images:
        painter.drawImage(0, top, image)
        top += image.height()
    painter.end()
    label.setPixmap(canvas)
    first = figures[0]
    head = first.head_height if isinstance(first, TileFigure) else first.height
    # Room for a sideways scroll bar too: the figures are wider than the pane at 1024 px.
    frame = 2 * area.frameWidth() + area.horizontalScrollBar().sizeHint().height()
    area.setMinimumHeight(min(round(FIGURE_SCALE * head), canvas.height()) + frame)


PANEL = AdversarialPanel
