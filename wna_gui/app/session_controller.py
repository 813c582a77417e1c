"""The session file behind the main window: open, save, save as, autosave and recovery, unsaved state, the
file's write lock and the recent files.

The window keeps the panels, menus and dialogs; it is the controller's ``SessionHost``: it hands over the
session it shows, adopts a session that was read, and asks the user the questions (a file name, read-only or
not, Save As after a failed save, recover or not). Reading and writing run in the engine thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from PySide6.QtCore import QObject, QSettings, Signal, Slot
from PySide6.QtWidgets import QStatusBar

from ..core.locking import SessionLock, SessionLocked
from ..core.session import (
    Session,
    SessionConflict,
    SessionError,
    file_fingerprint,
    load_session,
    save_session,
)
from .worker import EngineThread, describe_error

MAX_RECENT_FILES = 8


class SessionHost(Protocol):
    """What the controller needs from the window."""

    engine: EngineThread

    def statusBar(self) -> QStatusBar: ...

    def current_session(self) -> Session: ...

    def adopt_session(self, session: Session) -> None:
        """Show a session that was read (its model, runs and inputs)."""

    def show_error(self, title: str, message: str, details: str = "") -> None: ...

    def ask_save_path(self) -> Path | None:
        """Where to save (None: the user cancelled)."""

    def ask_open_read_only(self, reason: str) -> bool:
        """Whether to open a file another process writes read-only (``reason`` names that process)."""

    def ask_save_as_after(self, error: SessionError) -> bool:
        """Whether to save elsewhere after ``error`` stopped a save."""

    def ask_recover(self, description: str) -> bool:
        """Whether to recover the autosave that ``description`` describes."""


def recovery_text(path: Path) -> str:
    """What an autosave holds, for the recovery question: when, which runs how far, which file it continues."""
    from ..core.registry import spec_for_state

    try:
        session = load_session(path)
    except SessionError as exc:
        return f"Its autosave cannot be read ({exc})."
    when = (session.modified or session.created or "at an unknown time").replace("T", " ").split("+")[0]
    runs = [f"{name} ({state.progress_done:,} of {state.progress_total:,} {spec_for_state(state).unit})"
            for name, state in session.runs.items()]
    continuing = f"continuing {session.origin}" if session.origin else "never saved to a file"
    return f"It autosaved at {when} UTC: {', '.join(runs) or 'no runs'}; {continuing}."


class SessionController(QObject):
    """The file the window's session lives in (``path``; None: untitled) and whether its results are saved."""

    title_changed = Signal(str, bool)  # the window title (with Qt's "[*]"), whether there are unsaved results
    saved = Signal(object)  # the Session just written

    def __init__(self, host: SessionHost, store: QSettings, autosave_file: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.host, self.store, self.autosave_file = host, store, autosave_file
        self.path: Path | None = None
        self.created: str | None = None  # creation time of the opened session, kept across saves
        # The file behind ``path``: its write lock (held while the window may write it), the fingerprint it had
        # when read or last written (a change by another program is not overwritten), and whether it is open
        # read-only (another process writes it). New run names come from the session itself (new_run_name).
        self.fingerprint: tuple | None = None
        self.read_only = False
        self._lock: SessionLock | None = None
        self._dirty = False

    # --- unsaved state ---

    @property
    def dirty(self) -> bool:
        """The session has results that are not in its file."""
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._dirty = value
        self.refresh_title()

    def refresh_title(self) -> None:
        name = self.path.name if self.path else "Untitled"
        self.title_changed.emit(f"{name}[*]{' (read-only)' if self.read_only else ''} — wna-gui", self._dirty)

    def reset(self) -> None:
        """An untitled, empty session: no file, no lock."""
        self.path, self.created = None, None
        self.hold_lock(None)
        self.fingerprint, self.read_only = None, False
        self.dirty = False

    # --- the write lock ---

    def lock_for(self, path: Path, hint: str | None = None) -> SessionLock | None:
        """The write lock of ``path``, taken (the one held already when it is that file's). When another process
        writes that file: None after saying so, or, given the ``hint`` that ends the message, SessionLocked."""
        if self._lock is not None and self._lock.path.resolve() == Path(path).resolve():
            return self._lock
        try:
            return SessionLock(path, "wna-gui", hint=hint or "save under another name (Save As)").acquire()
        except SessionError as exc:
            if hint:
                raise
            self.host.show_error("Session in use", str(exc))
            return None

    def hold_lock(self, lock: SessionLock | None) -> None:
        """``lock`` becomes the held one (the lock of the file Save writes); the one held before is released."""
        if self._lock is not None and self._lock is not lock:
            self._lock.release()
        self._lock = lock

    # --- open ---

    def open_session(self, path: str | Path, recovered: bool = False) -> None:
        """Load a session in the engine thread; a recovered autosave opens as an unsaved session."""
        path = Path(path)
        self.host.statusBar().showMessage(f"Opening {path.name}…")
        self.host.engine.submit(lambda: load_session(path),
                                on_done=lambda session: self._session_loaded(session, recovered),
                                failure_title="Could not open the session")

    def _session_loaded(self, session: Session, recovered: bool) -> None:
        # A recovered autosave continues the file it was autosaving (Save writes there again).
        path = (Path(session.origin) if session.origin else None) if recovered else session.path
        lock, read_only = None, False
        if path is not None:
            try:
                lock = self.lock_for(path, "open it read-only? (Save As then keeps your changes in another file)")
            except SessionLocked as exc:
                if not self.host.ask_open_read_only(str(exc)):
                    self.host.statusBar().showMessage(f"Not opened: another process is writing {path.name}", 8000)
                    return
                read_only = True
            except SessionError as exc:  # read-only media, a folder we may not write: nothing can be saved there
                self.host.statusBar().showMessage(f"{path.name} opens read-only: {exc}", 8000)
                read_only = True
        self.hold_lock(lock)
        self.fingerprint = file_fingerprint(path) if recovered and path is not None else session.fingerprint
        self.read_only = read_only
        self.path = path
        self.created = session.created
        self.dirty = recovered
        self.host.adopt_session(session)
        assert session.path is not None  # load_session records where it read from
        if not recovered:
            self.remember_recent(session.path)
        self.host.statusBar().showMessage(f"Opened {session.path.name}", 5000)

    # --- save ---

    def save_path(self) -> Path | None:
        """Where Save writes: the open file, unless there is none or it is open read-only (then Save As asks)."""
        return None if self.read_only else self.path

    def writer(self, path: Path) -> Callable[[], tuple[Session, SessionError | None]]:
        """A callable that writes the session and returns it with the SessionError that stopped the save (None:
        saved); run it where no run is between batches (engine thread)."""
        session = self.host.current_session()

        def write() -> tuple[Session, SessionError | None]:
            try:
                save_session(session, path)
            except SessionError as exc:
                return session, exc
            return session, None

        return write

    @Slot()
    def save(self) -> None:
        path = self.save_path()
        if path is None:
            self.save_as()
        else:
            self.save_to(path)

    @Slot()
    def save_as(self) -> None:
        path = self.host.ask_save_path()
        if path is not None:
            self.save_to(path)

    def save_to(self, path: str | Path) -> None:
        """Save in the engine thread (mid-run: between batches, so the file is consistent)."""
        lock = self.lock_for(Path(path))
        if lock is not None:
            def finished(outcome) -> None:
                self.save_finished(lock, outcome)

            self.host.engine.submit(self.writer(Path(path)), on_done=finished,
                                    failure_title="Could not save the session")

    def save_now(self, path: Path) -> bool:
        """Save in the GUI thread, where no run is between units; whether the results are in a file."""
        lock = self.lock_for(path)
        if lock is None:
            return False
        try:
            return self.save_finished(lock, self.writer(path)())
        except Exception as exc:
            self.host.show_error("Could not save the session", describe_error(exc)[0])
            return False

    def write_before_close(self, path: Path) -> Exception | None:
        """The last save, as the window closes (the engine thread is stopped): the error that stopped it, if any."""
        try:
            self.hold_lock(self.lock_for(path, "nothing was saved there"))
            return self.writer(path)()[1]
        except Exception as exc:
            return exc

    def save_finished(self, lock: SessionLock, outcome: tuple[Session, SessionError | None],
                      offer_save_as: bool = True) -> bool:
        """After a save: whether the results are in a file. A full disk (any write failure) keeps them here and
        offers Save As; a file changed by another program is left alone and the session goes on in the side file
        that received the results."""
        session, error = outcome
        if error is not None and lock is not self._lock:
            lock.release()
        if error is not None and not isinstance(error, SessionConflict):
            if offer_save_as and self.host.ask_save_as_after(error):
                self.save_as()
            return False
        assert session.path is not None  # save_session records where it wrote
        kept: SessionLock | None = lock
        if isinstance(error, SessionConflict):
            try:
                kept = SessionLock(session.path, "wna-gui").acquire()
            except SessionError:
                kept = None
            self.host.show_error("Saved to another file", str(error))
        self.hold_lock(kept)
        self._saved(session)
        return True

    def _saved(self, session: Session) -> None:
        assert session.path is not None  # save_session records where it wrote
        self.path, self.fingerprint = session.path, session.fingerprint
        self.saved.emit(session)
        self.read_only = False
        self.dirty = self.host.engine.running
        self.remember_recent(session.path)
        self.autosave_file.unlink(missing_ok=True)
        self.host.statusBar().showMessage(f"Saved {session.path.name}", 5000)

    # --- autosave and recovery ---

    def autosave(self) -> None:
        """Write the session to the autosave file (engine thread), where a crash leaves it for recovery."""
        session, path = self.host.current_session(), self.autosave_file
        self.host.engine.submit(lambda: save_session(session, path), failure_title="Autosave failed")

    def offer_recovery(self) -> bool:
        """After a crash, offer the autosaved session. Returns whether it is being recovered."""
        if not self.autosave_file.exists():
            return False
        if not self.host.ask_recover(recovery_text(self.autosave_file)):
            self.autosave_file.unlink(missing_ok=True)
            return False
        self.open_session(self.autosave_file, recovered=True)
        return True

    # --- recent files ---

    def recent_files(self) -> list[str]:
        value: Any = self.store.value("recent_files", [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember_recent(self, path: Path) -> None:
        path_text = str(Path(path).resolve())
        recent = [path_text] + [p for p in self.recent_files() if p != path_text]
        self.store.setValue("recent_files", recent[:MAX_RECENT_FILES])

    def clear_recent(self) -> None:
        self.store.setValue("recent_files", [])

    def session_dir(self) -> str:
        """Where the file dialogs start: the folder of the last session opened or saved (else home)."""
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())
