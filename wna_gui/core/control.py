"""Cooperative pause / resume / cancel for experiments, and engine errors.

Experiments call :meth:`RunControl.checkpoint` between batches; a pause
blocks there and a cancel raises :class:`Cancelled`, so a batch is never left
half-merged. Thread-safe, Qt-free: the GUI's worker thread and the CLI both use it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch


class Cancelled(Exception):
    """The run was cancelled between batches; its state is consistent."""


class EngineError(RuntimeError):
    """A run failed for a reason the user can act on; the message is one line."""


# Errors whose message is written for the user (ModelError, SessionError and DatasetError are ValueErrors);
# anything else is a bug and is reported as one.
USER_ERRORS = (EngineError, ValueError, OSError)


def csv_number(value) -> str:
    """A number for a CSV cell: 6 significant digits, empty for a missing or non-finite value."""
    return "" if value is None or value != value or value in (float("inf"), float("-inf")) else f"{float(value):.6g}"


def format_duration(seconds: float | None) -> str:
    """h:mm:ss or mm:ss; "--:--" when unknown."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class RunControl:
    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._cancelled = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()  # wake a paused run so it can stop

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def checkpoint(self) -> None:
        """Block while paused; raise Cancelled if a cancel was requested."""
        self._running.wait()
        if self._cancelled.is_set():
            raise Cancelled()


def pick_device(requested: str | None = None) -> torch.device:
    """``auto`` (or None) picks CUDA when present; otherwise the named device, checked."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        device = None
    if device is not None and device.type == "mps":
        # Not picked by auto either: the runs reduce each batch on the device in float64 (and draw Gaussian noise
        # in float64), which Apple's MPS backend does not support.
        raise EngineError("the Apple GPU (mps) cannot run wna: its runs need float64 on the device, which MPS "
                          "lacks; use --device cpu")
    if device is None or device.type not in ("cpu", "cuda"):
        raise EngineError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineError("CUDA was requested but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise EngineError(f"there is no {requested}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


@contextmanager
def friendly_errors(batch_size: int):
    """Turn out-of-memory into a one-line EngineError that says what to change."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise EngineError(f"out of GPU memory at batch size {batch_size}; lower the batch size") from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
            raise EngineError(f"out of memory at batch size {batch_size}; lower the batch size") from None
        raise
