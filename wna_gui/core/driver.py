"""The one loop that runs every experiment.

An experiment splits its work into *units* (a noise block, a group of γ
points, an epoch…) and the driver runs them: it honours pause and cancel
between units (``RunControl.checkpoint``), measures the rate over active time
(pauses excluded), yields an immutable snapshot every ``snapshot_seconds``
and one at the end, and calls an optional autosave between units. The CLI
and the GUI's engine thread both iterate :func:`drive`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol

from .control import RunControl, friendly_errors

if TYPE_CHECKING:
    from .state import RunState


@dataclass(frozen=True)
class Progress:
    """How far a run is, in its experiment's progress unit (samples, stimuli, epochs…)."""

    done: int
    total: int
    per_second: float = 0.0  # of the run measuring it; 0 when none is
    finished: bool = False
    seconds: float = 0.0  # compute time spent so far

    @property
    def eta_seconds(self) -> float | None:
        if self.per_second <= 0:
            return None
        return (self.total - self.done) / self.per_second

    def snapshot_fields(self) -> dict:
        """This progress as a snapshot's fields (:class:`ProgressView`'s readings; core.state.RunSnapshot)."""
        return {"samples_done": self.done, "samples_total": self.total, "samples_per_second": self.per_second,
                "finished": self.finished, "seconds": self.seconds}


class ProgressView:
    """What every snapshot tells a progress bar: ``samples_done`` of ``samples_total`` (in the experiment's
    progress unit: samples, stimuli…), ``samples_per_second``, ``finished`` and ``seconds`` of compute time, and
    from them :attr:`progress`, one :class:`Progress` value."""

    if TYPE_CHECKING:  # read only: a snapshot holds them as fields or computes them (properties)
        @property
        def samples_done(self) -> int: ...

        @property
        def samples_total(self) -> int: ...

        @property
        def finished(self) -> bool: ...
    else:  # annotations only at run time: a property (or a value) here would be a dataclass field's default
        samples_done: int
        samples_total: int
        finished: bool
    samples_per_second: float
    seconds: float  # compute time spent so far

    @property
    def progress(self) -> Progress:
        return Progress(int(self.samples_done), int(self.samples_total), float(self.samples_per_second),
                        bool(self.finished), float(self.seconds))

    @property
    def eta_seconds(self) -> float | None:
        # from the three readings a progress bar has always had: a plugin's snapshot without ``seconds`` has one
        return Progress(self.samples_done, self.samples_total, self.samples_per_second).eta_seconds


class Work(Protocol):
    """What an experiment offers the driver."""

    state: RunState  # its run's state; the driver adds the active seconds to it
    control: RunControl
    rate: float  # progress units per second of the active run, set by the driver

    def prepare(self) -> None: ...  # checks and catch-up before the first unit (may raise EngineError)

    def pending(self) -> Iterable: ...  # the units still to do, in order

    def run_unit(self, unit) -> None: ...  # do one unit and record it in the state

    def after_unit(self) -> None: ...  # bookkeeping after a unit (fits, convergence records)

    @property
    def progress_done(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def snapshot(self): ...


def drive(work: Work, snapshot_seconds: float = 0.2, autosave: Callable[[], object] | None = None,
          autosave_seconds: float = 0.0, batch_size_hint: int = 0) -> Iterator:
    """Run ``work``'s pending units, yielding snapshots; ``Cancelled`` propagates with the state consistent."""
    state = work.state
    work.prepare()
    started = last_yield = last_save = time.perf_counter()
    start_done = work.progress_done
    paused_for = 0.0
    for unit in work.pending():
        pause_began = time.perf_counter()
        work.control.checkpoint()
        paused_for += time.perf_counter() - pause_began
        unit_start = time.perf_counter()
        with friendly_errors(batch_size_hint):
            work.run_unit(unit)
        work.after_unit()
        now = time.perf_counter()
        state.seconds += now - unit_start
        active = now - started - paused_for
        work.rate = (work.progress_done - start_done) / active if active > 0 else 0.0
        if autosave is not None and autosave_seconds and now - last_save >= autosave_seconds:
            autosave()
            last_save = time.perf_counter()
        if now - last_yield >= snapshot_seconds and not work.finished:
            last_yield = now
            yield work.snapshot()
    yield work.snapshot()
