"""One writer per session file: an OS-level lock beside the session, naming its holder.

``SessionLock(path, command).acquire()`` takes an flock on ``.<name>.lock``
next to the session (the maintained ``filelock`` package) and writes into it
who holds it (pid, host, start time, command). A second writer fails at once
with a one-line ``SessionLocked`` that names the holder. The kernel drops the
lock when the holder's process dies, however it dies, so a crash never leaves
a session locked. Qt-free: the CLI, torchrun's rank 0 and the app use it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import filelock

from .session import SessionError


class SessionLocked(SessionError):
    """Another process holds the session's write lock; the message names it and what to do."""


def lock_path(path: str | Path) -> Path:
    """The lock file of the session at ``path`` (symlinks resolved: every name of a file shares one lock)."""
    path = Path(path).resolve()
    return path.with_name(f".{path.name}.lock")


def _since(started: float) -> str:
    then = time.localtime(started)
    return time.strftime("%H:%M" if then[:3] == time.localtime()[:3] else "%Y-%m-%d %H:%M", then)


class SessionLock:
    """The write lock of one session file; ``hint`` ends the message a second writer gets."""

    def __init__(self, path: str | Path, command: str, hint: str = "use another --out") -> None:
        self.path, self.command, self.hint = Path(path), command, hint
        self._lock = filelock.FileLock(lock_path(path), timeout=0, thread_local=False,
                                       on_acquired=self._write_holder)

    def _write_holder(self, fd: int) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)

    def holder(self) -> dict:
        """Who holds the lock, as its holder wrote it ({} while it is being written or unreadable)."""
        try:
            holder = json.loads(lock_path(self.path).read_text())
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def describe_holder(self) -> str:
        holder = self.holder()
        try:
            return (f"process {int(holder['pid'])} on host {holder['host']} since {_since(float(holder['since']))} "
                    f"({holder['command']})")
        except (KeyError, TypeError, ValueError, OverflowError):
            return "another process"

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> "SessionLock":
        try:
            lock_path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except filelock.Timeout:
            raise SessionLocked(f"session {self.path.name} is being written by {self.describe_holder()}; "
                                f"{self.hint}") from None
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise SessionError(f"cannot lock {self.path.name} for writing: {reason} "
                               f"({lock_path(self.path).parent})") from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> "SessionLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
