"""Human observer: set up a session, open the full-screen run screen, and set the person beside the network.

Settings on the left (participant code, task, γ procedure, trials, run-screen timing and geometry). Start
opens the run screen (app/human_screen.py) on the chosen screen for a person; the simulated observer runs in
the engine like any experiment. On the right: the γ track trial by trial (live during a session) with the
accuracy per γ and its fitted psychometric curve, the person's and the network's smoothed z-maps on the same
trials with their cosine and the pixels past the family-wise bound outlined, and κ and double-pass numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.experiment import plan_run
from ...core.human_observer import (
    KIND,
    HumanObserverSnapshot,
    Stimuli,
    TrialJournal,
    journal_path,
    new_state,
    report,
    state_from_journal,
)
from ...core.runtime import Runtime
from ...figures.style import TEXT_COLOR
from ..human_screen import HumanRunScreen
from .base import Panel

MAX_ROWS = 10


def journal_folder() -> Path:
    """Where trial journals go: the app's data folder (one file per participant, task and seed)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or str(Path.home())
    folder = Path(base) / "human-observer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class HumanObserverPanel(Panel):
    title = "Human observer"

    def build_views(self) -> QWidget:
        views = QWidget()
        layout = QVBoxLayout(views)
        buttons = QHBoxLayout()
        self.recover_button = QPushButton("Recover from journal…")
        self.recover_button.setToolTip("rebuild a session from its trial journal (every answer is written there "
                                       "the moment it is given)")
        self.recover_button.clicked.connect(self.recover_dialog)
        buttons.addWidget(self.recover_button)
        self.journal_label = QLabel()
        self.journal_label.setObjectName("journal_label")
        buttons.addWidget(self.journal_label, 1)
        layout.addLayout(buttons)

        self.track = pg.GraphicsLayoutWidget()
        self.track.setBackground("w")
        self.track_plot = self.track.addPlot(title="γ per trial")
        self.track_plot.setLabel("bottom", "trial")
        self.track_plot.setLabel("left", "γ")
        self.track_line = self.track_plot.plot(pen=pg.mkPen((60, 60, 60), width=1))
        self.right_dots = self.track_plot.plot(pen=None, symbol="o", symbolSize=4, symbolBrush=(30, 130, 60),
                                               symbolPen=None)
        self.wrong_dots = self.track_plot.plot(pen=None, symbol="x", symbolSize=6, symbolBrush=(200, 40, 40),
                                               symbolPen=(200, 40, 40))
        self.fit_plot = self.track.addPlot(row=1, col=0, title="accuracy against γ (levels with ≥ 10 trials)")
        self.fit_plot.setLabel("bottom", "γ")
        self.fit_plot.setLabel("left", "fraction correct")
        self.fit_plot.setYRange(0, 1)
        self.level_dots = self.fit_plot.plot(pen=None, symbol="o", symbolSize=6, symbolBrush=(40, 90, 200))
        self.fit_curve = self.fit_plot.plot(pen=pg.mkPen((40, 90, 200), width=2))
        self.target_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((120, 120, 120), style=pg.QtCore.Qt.DashLine))
        self.fit_plot.addItem(self.target_line)
        for plot in (self.track_plot, self.fit_plot):
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)

        self.maps = pg.GraphicsLayoutWidget()
        self.maps.setBackground("w")
        self.maps.setObjectName("human_maps")
        plots = QHBoxLayout()
        plots.addWidget(self.track, 2)
        plots.addWidget(self.maps, 3)
        layout.addLayout(plots, 1)
        self.report_label = QLabel()
        self.report_label.setObjectName("human_report")
        self.report_label.setWordWrap(True)
        layout.addWidget(self.report_label)
        self.screen_window: HumanRunScreen | None = None
        self.journal_dir: Path | None = None  # None: journal_folder()
        self.clear_views()
        return views

    # --- a person's session ---

    def start_in_panel(self, model, device: str) -> bool:
        kind = self.active_kind()
        try:
            config = self.forms[kind].config()
        except (ValueError, TypeError) as exc:
            QMessageBox.warning(self, "Cannot start", str(exc))
            return True
        if config.observer != "person":
            return False  # the simulated observer runs in the engine, like `wna run`
        state = self.states.get(kind)
        plan = plan_run(self.specs[kind], state, config)
        if plan.action == "refit":  # new analysis settings: nothing to ask the person
            assert state is not None  # plan_run plans a new run where there is none
            self.states[kind] = state = state.refitted(config)
            self.show_snapshot(state.snapshot(), kind)
            if state.finished:
                return True
        try:
            if plan.action == "new":
                state = new_state(model, config)
            elif not plan.runnable:
                raise ValueError(plan.message)
            assert state is not None  # plan_run plans a new run where there is none
            stimuli = Stimuli(state.config, model)
            path = journal_path(self.journal_dir or journal_folder(), state.config)
            if plan.action == "new" and path.exists():
                raise ValueError(f"{path} already holds a session of participant {config.participant} with this "
                                 "task and seed: recover it, or choose another participant code or seed")
            journal = TrialJournal(path, state)
        except (ValueError, OSError) as exc:
            QMessageBox.warning(self, "Cannot start", str(exc))
            return True
        self.states[kind] = state
        self.journal_label.setText(f"journal: {path}")
        screen = HumanRunScreen(state, stimuli, Runtime(model, "cpu"), journal)
        screen.trial_recorded.connect(self._trial_recorded)
        screen.session_closed.connect(self._session_closed)
        self.screen_window = screen
        self.set_running(True)
        screen.show_on_screen()
        return True

    def _trial_recorded(self, _done: int) -> None:
        state = self.states.get(KIND)
        if state is not None:
            self._draw_track(np.asarray(state.trials["gamma"]), state.correct())

    def _session_closed(self) -> None:
        self.set_running(False)
        self.screen_window = None
        state = self.states.get(KIND)
        if state is not None:
            self.show_snapshot(state.snapshot(), KIND)

    def recover_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Recover a session from its trial journal", str(journal_folder()),
                                              "Trial journals (*.trials.jsonl)")
        if path:
            self.recover(path)

    def recover(self, path) -> None:
        """Adopt the session a journal holds (after a crash); the network's pending answers are computed now."""
        try:
            state = state_from_journal(path)
            if self.model is not None:
                from ...core.human_observer import fill_network_answers

                fill_network_answers(state, Stimuli(state.config, self.model), Runtime(self.model, "cpu"))
        except (ValueError, OSError) as exc:
            QMessageBox.warning(self, "Cannot recover", str(exc))
            return
        self.states[KIND] = state
        self.forms[KIND].set_config(state.config)
        self.journal_label.setText(f"journal: {path}")
        self.show_snapshot(state.snapshot(), KIND)
        self.plan_label.setText(self.plan_text())

    # --- drawing ---

    def _draw_track(self, gammas: np.ndarray, correct: np.ndarray) -> None:
        trials = np.arange(1, len(gammas) + 1)
        self.track_line.setData(trials, gammas)
        self.right_dots.setData(trials[correct == 1], gammas[correct == 1])
        self.wrong_dots.setData(trials[correct == 0], gammas[correct == 0])

    def draw(self, kind: str, snapshot: HumanObserverSnapshot) -> None:
        self._draw_track(snapshot.trials["gamma"], snapshot.human_correct)
        self.target_line.setValue(snapshot.target)
        fit = snapshot.fit
        if fit:
            levels, n = np.asarray(fit["levels"]), np.asarray(fit["n"])
            shown = n >= 10  # a level the staircase touched once says nothing on its own (the fit uses all)
            self.level_dots.setData(levels[shown], (np.asarray(fit["correct"]) / n)[shown])
            from ...core.psyfit import PsychometricFit

            curve = PsychometricFit.from_dict(fit["fit"])
            x = np.linspace(levels.min(), levels.max(), 200)
            self.fit_curve.setData(x, curve.predict(x))
        else:
            self.level_dots.setData([], [])
            self.fit_curve.setData([], [])
        self._draw_maps(snapshot)
        self.report_label.setText("\n".join(report(snapshot)) if snapshot.samples_done else "")

    def _draw_maps(self, snapshot: HumanObserverSnapshot) -> None:
        self.maps.clear()
        rows = snapshot.row_pairs()[:MAX_ROWS] or list(range(min(len(snapshot.human.labels), MAX_ROWS)))
        if not snapshot.samples_done:
            return
        shape = snapshot.image_shape[-2:]
        bound = snapshot.z_bound
        levels = (-1.5 * bound, 1.5 * bound)
        cmap = pg.colormap.get("CET-D1")
        what = "smoothed z" if snapshot.smoothing > 0 else "z"
        for col, r in enumerate(rows):
            cos = snapshot.cosines[r]
            title = f"{snapshot.human.labels[r]}" + (f"  cos {cos:.2f}" if np.isfinite(cos) else "")
            self.maps.addLabel(title, row=0, col=col + 1, color=TEXT_COLOR, size="9pt")
            for line, (who, maps) in enumerate((("person", snapshot.human), ("network", snapshot.network))):
                if col == 0:
                    self.maps.addLabel(f"{who} ({what})", row=line + 1, col=0, angle=-90, color=TEXT_COLOR,
                                       size="9pt")
                view = self.maps.addViewBox(row=line + 1, col=col + 1, lockAspect=True, invertY=True,
                                            enableMouse=False, enableMenu=False)
                z = maps.smoothed_z[r].reshape(-1, *shape)[0]
                item = pg.ImageItem(np.nan_to_num(z).astype(np.float32), axisOrder="row-major", levels=levels)
                item.setLookupTable(cmap.getLookupTable(nPts=256))
                view.addItem(item)
                significant = maps.significant[r].reshape(-1, *shape)[0]
                if significant.any():
                    view.addItem(pg.IsocurveItem(significant.astype(np.float32), level=0.5,
                                                 pen=pg.mkPen((0, 0, 0), width=1), axisOrder="row-major"))

    def clear_views(self) -> None:
        for item in (self.track_line, self.right_dots, self.wrong_dots, self.level_dots, self.fit_curve):
            item.setData([], [])
        self.maps.clear()
        self.report_label.setText("Start opens the full-screen run screen for a person (Esc pauses it); the "
                                  "simulated observer runs here. Answers are journalled as they are given.")


PANEL = HumanObserverPanel
