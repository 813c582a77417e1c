"""The run screen of the human observer: a full-screen window where a person answers noise trials with keys.

Instructions → optional practice with feedback → trials (fixation, stimulus for a fixed time or until the
answer, inter-trial interval) with a break every N trials showing progress → a closing screen. Esc pauses
at any moment: the trial on screen is shown again from its fixation when the person goes on, so no trial is
lost or answered blind. Stimuli are drawn scaled by an integer factor with nearest-neighbour pixels on a
background at the noise's mean grey.

Response times come from a monotonic clock (``time.perf_counter_ns``), from the paint of the stimulus to the
key press. Qt gives no frame-locked presentation: a paint reaches the screen at the next vsync at best
(docs/human-observer.md gives the latency measured here). Every answer is written to the journal (fsynced)
before the next trial shows, so a crash loses at most the trial on screen.

Keys are one table (``response_keys``), not a chain of ifs: a simulated observer answers through the same
key events (``SimulatedKeyboard``, tests and demos).
"""

from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QPainter,
    QPen,
)
from PySide6.QtWidgets import QApplication, QWidget

from ..core.human_observer import (
    NETWORK_BATCH,
    HumanObserverState,
    Stimuli,
    TemplateObserver,
    Trial,
    TrialJournal,
    fill_network_answers,
)
from ..core.runtime import Runtime

DIGIT_KEYS = {getattr(Qt.Key, f"Key_{d}"): str(d) for d in range(10)}
FEEDBACK_MS = 600


def response_keys(stimuli: Stimuli) -> dict[Qt.Key, int]:
    """Key → answer: the digit keys name classes (n-way, yes/no; ← and → also pick the pair's first and second);
    2IFC: ← or 1 the left interval, → or 2 the right one."""
    cfg = stimuli.config
    if cfg.task == "2ifc":
        return {Qt.Key.Key_Left: 0, Qt.Key.Key_1: 0, Qt.Key.Key_Right: 1, Qt.Key.Key_2: 1}
    names = stimuli.class_names
    keys = {key: names.index(name) for key, name in DIGIT_KEYS.items() if name in names}
    if cfg.task == "yes-no":
        first, second = stimuli.pair
        keys = {key: answer for key, answer in keys.items() if answer in (first, second)}
        keys.update({Qt.Key.Key_Left: first, Qt.Key.Key_Right: second})
    return keys


def instructions(stimuli: Stimuli) -> str:
    cfg, names = stimuli.config, stimuli.class_names
    if cfg.task == "n-way":
        what = ("Each image is noise, and a digit may be hidden in it. Press the digit key (0–9) of the digit you "
                "see, or think you see. Guess when unsure.")
    elif cfg.task == "yes-no":
        first, second = (names[c] for c in stimuli.pair)
        what = (f"Each image hides a {first} or a {second} in noise. Press {first} (or ←) for {first}, {second} "
                f"(or →) for {second}. Guess when unsure.")
    else:
        what = (f"Two images appear side by side. Press ← (or 1) if the left one looks more like a "
                f"{names[stimuli.pair[1]]}, → (or 2) if the right one does. There is no wrong answer.")
    timing = "until you answer" if cfg.presentation_ms == 0 else f"for {cfg.presentation_ms} ms"
    return (f"{what}\n\nLook at the cross in the middle; the image shows {timing}. Answer as fast as you can "
            f"while staying accurate.\n\nEsc pauses at any time.\n\n"
            + (f"First {cfg.practice} practice trials, with feedback.\n\n" if cfg.practice else "")
            + "Press Space to start.")


class HumanRunScreen(QWidget):
    """One session of trials for ``state`` (continued from where it stands)."""

    trial_recorded = Signal(int)  # trials done
    session_closed = Signal()

    def __init__(self, state: HumanObserverState, stimuli: Stimuli, runtime: Runtime | None = None,
                 journal: TrialJournal | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Human observer: participant {state.config.participant}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.state, self.stimuli, self.runtime, self.journal = state, stimuli, runtime, journal
        self.config = state.config
        self.keys = response_keys(stimuli)
        self.phase = "instructions"  # instructions | practice_done | fixation | stimulus | blank | feedback | break
        #                              | paused | done
        self.message = instructions(stimuli)
        self.trial: Trial | None = None
        self.practice_left = self.config.practice
        self.practice_done = 0
        self._shown_ns = 0  # when the stimulus was painted (monotonic clock)
        self.requested_ns = 0  # when it was asked to show (the paint follows in the event loop)
        self._painted = False
        self._answerable = False  # a key press now answers the trial on screen
        self._unanswered = False  # the trial on screen (or about to show) has no answer yet
        self._resume = ("instructions", self.message, False)  # where Esc paused
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._timer_done)
        self._next_step = None
        grey = int(round(255 * min(max(stimuli.noise_mean, 0.0), 1.0)))
        self.background = QColor(grey, grey, grey)
        self.scale = self.config.scale or 1
        self.state.display = self.display_info()

    # --- geometry ---

    def show_on_screen(self) -> None:
        """Fill the chosen screen (the primary when that screen is not attached)."""
        screens = QGuiApplication.screens()
        screen = screens[self.config.screen] if self.config.screen < len(screens) else QGuiApplication.primaryScreen()
        self.setScreen(screen)
        self.setGeometry(screen.geometry())
        self.showFullScreen()
        self.activateWindow()
        self.setFocus()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        height = self.stimuli.shape[-2]
        self.scale = self.config.scale or max(1, (self.height() // 2) // height)
        self.state.display = self.display_info()

    def display_info(self) -> dict:
        """The stimulus size in screen pixels and, given the viewing distance and screen width, in degrees."""
        height, width = self.stimuli.shape[-2:]
        screen = self.screen() or QGuiApplication.primaryScreen()
        screen_px = screen.geometry().width() if screen is not None else 0
        width_cm = self.config.screen_width_cm or (screen.physicalSize().width() / 10 if screen is not None else 0)
        info = {"scale": self.scale, "stimulus_px": [height * self.scale, width * self.scale],
                "screen_px": screen_px, "screen_width_cm": round(width_cm, 2),
                "viewing_distance_cm": self.config.viewing_distance_cm}
        if screen_px and width_cm:
            size_cm = width * self.scale * width_cm / screen_px
            info["stimulus_deg"] = round(math.degrees(2 * math.atan(size_cm / (2 * self.config.viewing_distance_cm))),
                                         3)
        return info

    def size_text(self) -> str:
        info = self.display_info()
        height, width = self.stimuli.shape[-2:]
        text = f"stimulus {width}×{height} px × {self.scale} = {info['stimulus_px'][1]} screen px"
        if "stimulus_deg" in info:
            text += f" = {info['stimulus_deg']:.2f}° at {self.config.viewing_distance_cm:g} cm"
        return text

    # --- the flow ---

    def _after(self, ms: int, step) -> None:
        if ms <= 0:
            step()
        else:
            self._next_step = step
            self._timer.start(ms)

    def _timer_done(self) -> None:
        step, self._next_step = self._next_step, None
        if step is not None and self.phase != "paused":
            step()

    def _show(self, phase: str, message: str = "") -> None:
        self.phase, self.message = phase, message
        self.update()

    def begin(self) -> None:
        """From the instructions (or practice's end): practice first if any is left, else the session."""
        if self.practice_left > 0:
            self._start_trial()
        elif self.state.finished:
            self._finish()
        else:
            self._start_trial()

    def _start_trial(self) -> None:
        if self.practice_left > 0:
            index = self.practice_done
            self.trial = self.stimuli.trial(index, index, -1, self.config.gamma, practice=True)
        else:
            self.trial = self.state.next_trial(self.stimuli)
        self._answerable = False
        self._unanswered = True
        self._show("fixation")
        self._after(self.config.fixation_ms, self._present)

    def _present(self) -> None:
        self._painted = False
        self._answerable = True
        self.requested_ns = self._shown_ns = time.perf_counter_ns()  # _shown_ns: replaced by the paint's time
        self._show("stimulus")
        if self.config.presentation_ms > 0:
            self._after(self.config.presentation_ms, lambda: self._show("blank"))

    def answer(self, response: int) -> None:
        """The person's answer to the trial on screen (from a key press)."""
        if not self._answerable or self.trial is None:
            return
        rt_ms = (time.perf_counter_ns() - self._shown_ns) / 1e6
        self._answerable = self._unanswered = False
        self._timer.stop()
        trial = self.trial
        if trial.practice:
            self.practice_left -= 1
            self.practice_done += 1
            self._show("feedback", self._feedback(trial, response))
            self._after(FEEDBACK_MS, self._after_practice)
            return
        row = self.state.record(trial, response, rt_ms)
        if self.journal is not None:
            self.journal.append(row)
        self.trial_recorded.emit(self.state.trials_done)
        if self.state.finished:
            self._finish()
            return
        every = self.config.break_every
        if every and self.state.trials_done % every == 0:
            self.fill_network_answers()
            self._show("break", f"Break. {self.state.trials_done} of {self.state.progress_total} trials done "
                                f"({self.state.trials_done / self.state.progress_total:.0%}).\n\n"
                                "Press Space when you are ready to go on.")
            return
        self._show("blank")
        if self.runtime is not None and sum(a < 0 for a in self.state.trials["network_answer"]) >= NETWORK_BATCH:
            self.fill_network_answers()  # within the inter-trial interval
        self._after(self.config.iti_ms, self._start_trial)

    def _feedback(self, trial: Trial, response: int) -> str:
        if trial.signal_class < 0:
            return "Answer recorded."
        name = self.stimuli.class_names[trial.signal_class]
        return "Correct." if response == trial.signal_class else f"Wrong: it was a {name}."

    def _after_practice(self) -> None:
        if self.practice_left > 0:
            self._after(self.config.iti_ms, self._start_trial)
        else:
            self._show("practice_done", "Practice done. The session begins now: no more feedback.\n\n"
                                        "Press Space to start.")

    def fill_network_answers(self) -> None:
        if self.runtime is not None:
            fill_network_answers(self.state, self.stimuli, self.runtime)

    def pause(self) -> None:
        """Esc: stop the trial on screen unanswered; it is shown again, from its fixation, on resuming."""
        if self.phase in ("paused", "done"):
            return
        self._timer.stop()
        self._next_step = None
        self._resume = (self.phase, self.message, self.trial is not None and self._unanswered)
        self._answerable = False
        self.fill_network_answers()
        self._show("paused", f"Paused. {self.state.trials_done} of {self.state.progress_total} trials done.\n\n"
                             "Space: go on.   Q: end here (every answer so far is kept).")

    def resume(self) -> None:
        phase, message, unanswered = self._resume
        if unanswered:  # the same trial again, from its fixation
            self._show("fixation")
            self._unanswered = True
            self._after(self.config.fixation_ms, self._present)
        elif phase == "feedback":
            self._after_practice()
        elif phase in ("instructions", "practice_done", "break"):
            self._show(phase, message)
        else:  # the inter-trial interval
            self._start_trial()

    @property
    def waiting_for_answer(self) -> bool:
        return self._answerable

    @property
    def paint_latency_ms(self) -> float | None:
        """From the request to show the stimulus to its paint (None: not painted yet)."""
        return (self._shown_ns - self.requested_ns) / 1e6 if self._painted else None

    def _finish(self) -> None:
        self.fill_network_answers()
        self._show("done", f"Done: {self.state.trials_done} trials. Thank you!\n\nPress Space to close.")

    # --- keys and painting ---

    def key_for(self, response: int) -> Qt.Key:
        """The key that gives ``response`` (a simulated observer presses it)."""
        return next(key for key, answer in self.keys.items() if answer == response)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = Qt.Key(event.key())
        if key == Qt.Key.Key_Escape:
            self.pause()
        elif self.phase == "paused":
            if key == Qt.Key.Key_Space:
                self.resume()
            elif key == Qt.Key.Key_Q:
                self.close()
        elif key == Qt.Key.Key_Space and self.phase in ("instructions", "practice_done", "break"):
            self.begin()
        elif key == Qt.Key.Key_Space and self.phase == "done":
            self.close()
        elif key in self.keys and not event.isAutoRepeat():
            self.answer(self.keys[key])
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        self._timer.stop()
        self.fill_network_answers()
        self.session_closed.emit()
        super().closeEvent(event)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.background)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # nearest-neighbour pixels
        if self.phase == "stimulus" and self.trial is not None:
            self._paint_stimuli(painter)
            if not self._painted:
                self._painted = True
                self._shown_ns = time.perf_counter_ns()
        elif self.phase in ("fixation", "blank"):
            self._paint_fixation(painter)
        else:
            self._paint_text(painter)
        painter.end()

    def _paint_fixation(self, painter: QPainter) -> None:
        arm = max(6, self.scale * 2)
        centre = self.rect().center()
        painter.setPen(QPen(QColor(0, 0, 0), max(2, self.scale // 3)))
        painter.drawLine(centre.x() - arm, centre.y(), centre.x() + arm, centre.y())
        painter.drawLine(centre.x(), centre.y() - arm, centre.x(), centre.y() + arm)

    def _paint_stimuli(self, painter: QPainter) -> None:
        assert self.trial is not None  # painted only while a trial is shown
        stimuli = self.trial.stimuli
        height, width = stimuli.shape[-2:]
        w, h = width * self.scale, height * self.scale
        gap = w // 2 if len(stimuli) == 2 else 0
        total = len(stimuli) * w + gap * (len(stimuli) - 1)
        left, top = (self.width() - total) // 2, (self.height() - h) // 2
        for i, image in enumerate(stimuli):
            painter.drawImage(QRect(left + i * (w + gap), top, w, h), grey_image(image))

    def _paint_text(self, painter: QPainter) -> None:
        painter.setPen(QColor(0, 0, 0))
        font = QFont(painter.font())
        font.setPointSize(16)
        painter.setFont(font)
        box = self.rect().adjusted(self.width() // 6, self.height() // 6, -self.width() // 6, -self.height() // 6)
        text = self.message
        if self.phase == "instructions":
            text += f"\n\n({self.size_text()})"
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), text)


def grey_image(image: np.ndarray) -> QImage:
    """A (C, H, W) [0, 1] stimulus as an 8-bit grey QImage (the first channel of a colour one as grey)."""
    pixels = np.ascontiguousarray(np.clip(np.round(image[0] * 255), 0, 255).astype(np.uint8))
    height, width = pixels.shape
    return QImage(pixels.data, width, height, width, QImage.Format.Format_Grayscale8).copy()


class SimulatedKeyboard:
    """Answers the run screen's trials as ``observer`` would, by posting its key presses (demos)."""

    def __init__(self, screen: HumanRunScreen, observer: TemplateObserver, interval_ms: int = 50) -> None:
        self.screen, self.observer = screen, observer
        self.timer = QTimer(screen)
        self.timer.timeout.connect(self._tick)
        self.timer.start(interval_ms)

    def _tick(self) -> None:
        screen = self.screen
        if screen.phase in ("instructions", "practice_done", "break"):
            key = Qt.Key.Key_Space
        elif screen.waiting_for_answer:
            assert screen.trial is not None  # an answer is awaited only while a trial is shown
            key = screen.key_for(self.observer.respond(screen.trial))
        else:
            return
        for kind in (QKeyEvent.Type.KeyPress, QKeyEvent.Type.KeyRelease):
            QApplication.postEvent(screen, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier))
