"""Defended models of the robustness lab: train one, watch its curves (and its sleep), list the models made.

Start trains the chosen method and stores the network in the session under
its model name, where the robustness run and every other panel can pick it.
The plots are the export figure's items (figures.defences), drawn live.
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from ...core.defences import KIND, METHODS, DefenceSnapshot
from ...core.registry import spec_for_state
from ...figures.defences import DefenceFigure
from .base import Panel, scrolled


PLOT_MIN_HEIGHT = 140  # px of data area per plot: curves, raster and histograms stay readable; a lower window
# scrolls the panel instead of squeezing them (a sleep run: three rows of plots and their notes, ~880 px)


class DefencesPanel(Panel):
    def build_views(self) -> QWidget:
        self.figure = DefenceFigure()
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.canvas.setCentralItem(self.figure)
        # On this panel's figure only: an export lays the figure out on its own page size.
        for plot in (self.figure.loss, self.figure.accuracy, self.figure.raster, *self.figure.histograms):
            plot.vb.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.phase_label = QLabel()
        self.phase_label.setObjectName("defence_phase")
        self.phase_label.setWordWrap(True)
        self.models_label = QLabel()
        self.models_label.setObjectName("defence_models")
        self.models_label.setWordWrap(True)
        self.models_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._other_models: dict[str, str] = {}  # models other defence runs of the session made → how
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.phase_label)
        side_layout.addWidget(self.models_label, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.canvas)
        splitter.addWidget(scrolled(side))
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        return splitter

    def draw(self, kind: str, snapshot: DefenceSnapshot) -> None:
        self.figure.show_run(snapshot)
        self._fit_canvas()
        self.phase_label.setText(f"{METHODS[snapshot.method]} → model “{snapshot.model_name}”: {snapshot.phase}"
                                 + (f" · control: {snapshot.base}" if snapshot.base else ""))
        made = {name: f"{snapshot.architecture if name == snapshot.model_name else 'tadros_fc'}, this run"
                for name in snapshot.models}
        accuracy = ", ".join(f"{k} {v:.3f}" + (" <b>(at chance)</b>" if k in snapshot.at_chance else "")
                             for k, v in snapshot.accuracy.items())
        self._list_models(made, accuracy, snapshot.notes)

    def _list_models(self, made: dict[str, str], accuracy: str = "", notes: tuple[str, ...] = ()) -> None:
        rows = {**self._other_models, **made}
        lines = ["<b>Models made</b> (stored in the session; the robustness run compares them)"]
        lines += [f"• {name} — {how}" for name, how in rows.items()] or ["• none yet"]
        if accuracy:
            lines.append(f"Held-out accuracy of this run: {accuracy}")
        lines += [html.escape(note) for note in notes]
        self.models_label.setText("<br>".join(lines))

    def _fit_canvas(self) -> None:
        """Text wrapped at the visible width, and the canvas as tall as its rows need (plots, raster, histograms
        and notes): the panel scrolls down rather than squeeze the plots."""
        self.fit_figure(self.canvas, self.figure)
        need = int(self.figure.effectiveSizeHint(Qt.SizeHint.MinimumSize).height()) + 4
        if need != self.canvas.minimumHeight():
            self.canvas.setMinimumHeight(need)

    def clear_views(self) -> None:
        self.figure.show_run(_empty_snapshot())
        self._fit_canvas()
        self.phase_label.clear()
        self._list_models({})

    def restore(self, runs, model, inputs=None) -> None:
        self._other_models = {}
        for name, state in runs.items():
            if spec_for_state(state).kind == KIND and name != KIND:
                for made in state.made_models():
                    self._other_models[made] = f"{METHODS[state.config.method]} (run “{name}”)"
        super().restore(runs, model, inputs)


def _empty_snapshot() -> DefenceSnapshot:
    import numpy as np

    return DefenceSnapshot(samples_done=0, samples_total=0, samples_per_second=0.0, seconds=0.0, finished=False,
                           phase="", method="control", model_name="", architecture="", base="", stage_titles=(),
                           loss_log=np.zeros((0, 4)), epoch_log=np.zeros((0, 4)), spike_log=np.zeros((0, 5)),
                           raster=(), raster_start=0, histograms={}, sleep_alphas=(), accuracy={}, models=(),
                           class_names=())


PANEL = DefencesPanel
