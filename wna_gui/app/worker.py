"""The engine thread: one long-lived QThread that owns the torch device.

It runs one experiment at a time by iterating the engine's ``run()`` generator
and emits each snapshot (immutable numpy copies) as a signal; it never touches
a widget. Other slow work (loading models, saving and opening sessions) goes
in as *tasks*. While a run is active, tasks run at the engine's checkpoints
between batches, where the experiment's state is consistent, so a session can
be saved mid-run (autosave) or while paused without stopping the run.
"""

from __future__ import annotations

import queue
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.control import USER_ERRORS, Cancelled, RunControl
# How often a paused run looks for queued tasks.
PAUSED_POLL_SECONDS = 0.05


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(one-line message for the dialog, full traceback for its details)."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    first_line = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, USER_ERRORS) and first_line:
        return first_line, details
    return f"Unexpected error: {type(exc).__name__}: {first_line}".rstrip(": "), details


@dataclass(frozen=True)
class Task:
    """Work for the engine thread; ``on_done(result)`` is then called in the GUI thread."""

    work: Callable[[], Any]
    on_done: Callable[[Any], None] | None
    failure_title: str


class _Worker(QObject):
    """Lives in the engine thread. Talks to the GUI only through signals."""

    snapshot = Signal(object)
    run_finished = Signal(object)  # the final snapshot
    run_cancelled = Signal(object)  # a snapshot of the state where the run stopped
    run_failed = Signal(str, str)  # message, details
    task_done = Signal(object, object)  # task, result
    task_failed = Signal(object, str, str)  # task, message, details

    def __init__(self, tasks: queue.Queue) -> None:
        super().__init__()
        self._tasks = tasks

    @Slot(object, object)
    def run_experiment(self, factory: Callable[[RunControl], Any], control: RunControl) -> None:
        try:
            experiment = factory(control)
            last = None
            try:
                for last in experiment.run():
                    self.snapshot.emit(last)
            except Cancelled:
                self.run_cancelled.emit(experiment.snapshot())
            else:
                self.run_finished.emit(last if last is not None else experiment.snapshot())
        except Exception as exc:  # the thread must survive any failure of a run
            self.run_failed.emit(*describe_error(exc))
        self.run_queued_tasks()

    @Slot()
    def run_queued_tasks(self, wait_seconds: float = 0.0) -> None:
        """Run every queued task; wait up to ``wait_seconds`` for the first one."""
        try:
            task = self._tasks.get(timeout=wait_seconds) if wait_seconds else self._tasks.get_nowait()
        except queue.Empty:
            return
        while True:
            try:
                self.task_done.emit(task, task.work())
            except Exception as exc:
                self.task_failed.emit(task, *describe_error(exc))
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return


class _CheckpointControl(RunControl):
    """RunControl whose checkpoints (between batches) also run queued tasks, even while paused."""

    def __init__(self, worker: _Worker) -> None:
        super().__init__()
        self._worker = worker

    def checkpoint(self) -> None:
        self._worker.run_queued_tasks()
        while self.paused and not self.cancelled:
            self._worker.run_queued_tasks(wait_seconds=PAUSED_POLL_SECONDS)
        if self.cancelled:
            raise Cancelled()


class EngineThread(QObject):
    """GUI-side handle of the engine thread: start/pause/resume/cancel runs, submit tasks.

    Signals arrive in the GUI thread. Run outcomes: ``run_finished(snapshot)``,
    ``run_cancelled(snapshot)``, ``run_failed(message, details)``;
    ``task_failed(title, message, details)`` for tasks.
    """

    snapshot = Signal(object)
    run_finished = Signal(object)
    run_cancelled = Signal(object)
    run_failed = Signal(str, str)
    task_failed = Signal(str, str, str)
    busy_changed = Signal(bool)  # a run started (True) or ended (False)

    _request_run = Signal(object, object)
    _request_tasks = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: queue.Queue[Task] = queue.Queue()
        self._thread = QThread()
        self._thread.setObjectName("wna-engine")
        self._worker = _Worker(self._tasks)
        self._worker.moveToThread(self._thread)
        self._control: _CheckpointControl | None = None
        self._request_run.connect(self._worker.run_experiment)
        self._request_tasks.connect(self._worker.run_queued_tasks)
        self._worker.snapshot.connect(self.snapshot)
        # Bound slots of this GUI-thread object, so Qt queues them into the GUI thread.
        self._worker.run_finished.connect(self._finished)
        self._worker.run_cancelled.connect(self._cancelled)
        self._worker.run_failed.connect(self._failed)
        self._worker.task_done.connect(self._task_done)
        self._worker.task_failed.connect(self._task_failed)
        self._thread.start()

    @property
    def running(self) -> bool:
        """A run was started and its outcome has not reached the GUI yet."""
        return self._control is not None

    @property
    def paused(self) -> bool:
        return self._control is not None and self._control.paused

    def start_run(self, factory: Callable[[RunControl], Any]) -> None:
        """``factory(control)`` builds the experiment in the engine thread; its ``run()`` is iterated there."""
        if self.running:
            raise RuntimeError("a run is already in progress")
        self._control = _CheckpointControl(self._worker)
        self._request_run.emit(factory, self._control)
        self.busy_changed.emit(True)

    def pause(self) -> None:
        if self._control is not None:
            self._control.pause()

    def resume(self) -> None:
        if self._control is not None:
            self._control.resume()

    def cancel(self) -> None:
        if self._control is not None:
            self._control.cancel()

    def submit(self, work: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
               failure_title: str = "Task failed") -> None:
        """Run ``work()`` in the engine thread (between batches if a run is active)."""
        self._tasks.put(Task(work, on_done, failure_title))
        self._request_tasks.emit()

    def shutdown(self) -> None:
        """Cancel any run and stop the thread; returns once it has exited."""
        self.cancel()
        self._thread.quit()
        self._thread.wait()

    @Slot(object)
    def _finished(self, snapshot) -> None:
        self._control = None
        self.run_finished.emit(snapshot)
        self.busy_changed.emit(False)

    @Slot(object)
    def _cancelled(self, snapshot) -> None:
        self._control = None
        self.run_cancelled.emit(snapshot)
        self.busy_changed.emit(False)

    @Slot(str, str)
    def _failed(self, message: str, details: str) -> None:
        self._control = None
        self.run_failed.emit(message, details)
        self.busy_changed.emit(False)

    @Slot(object, object)
    def _task_done(self, task: Task, result: Any) -> None:
        if task.on_done is not None:
            task.on_done(result)

    @Slot(object, str, str)
    def _task_failed(self, task: Task, message: str, details: str) -> None:
        self.task_failed.emit(task.failure_title, message, details)
