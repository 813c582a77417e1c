"""The one log of `wna` and the app: Python `logging` into a rotating file in the user's log folder.

Folder: ``$WNA_GUI_LOG_DIR`` when set, else the platform's place for an app's
logs: ``$XDG_STATE_HOME/wna-gui/logs`` (``~/.local/state/wna-gui/logs``) on
Linux, ``~/Library/Logs/wna-gui`` on macOS, ``%LOCALAPPDATA%\\wna-gui\\logs`` on
Windows. The file is ``wna-gui.log``, rotated at 1 MB with three old copies
kept. Tracebacks of internal errors go there (not to the terminal), so an error
stays one line that names the file.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import tempfile
from pathlib import Path

LOG_FILE_NAME = "wna-gui.log"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3
LOGGER_NAME = "wna_gui"
FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(LOGGER_NAME)
# Until setup_logging runs (the engine used as a library, a warning while parsing), records go nowhere rather
# than to logging's last-resort stderr printer, which would break one-line errors.
log.addHandler(logging.NullHandler())


def log_directory() -> Path:
    explicit = os.environ.get("WNA_GUI_LOG_DIR")
    if explicit:
        return Path(explicit)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "wna-gui" / "logs"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / "wna-gui"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "wna-gui" / "logs"


def default_log_file() -> Path:
    return log_directory() / LOG_FILE_NAME


class _OurHandler:
    """Marks the handlers setup_logging installed, so a second call (tests, the app after the CLI) replaces them."""


def _remove_our_handlers() -> None:
    for handler in list(log.handlers):
        if isinstance(handler, _OurHandler):
            log.removeHandler(handler)
            handler.close()


class _FileHandler(_OurHandler, logging.handlers.RotatingFileHandler):
    pass


class _ConsoleHandler(_OurHandler, logging.StreamHandler):
    pass


def setup_logging(verbosity: int = 0, log_file: str | Path | None = None) -> Path | None:
    """Log everything (DEBUG) to ``log_file`` (default: the log folder's wna-gui.log; the temp folder when that
    cannot be written) and, with ``verbosity`` 1 or 2, INFO or DEBUG lines to stderr too. Returns the file, or
    None when no file could be opened (logging then goes nowhere but the optional console)."""
    _remove_our_handlers()
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the root logger's handlers (pytest's, a host app's) get nothing twice
    candidates = [Path(log_file)] if log_file else [default_log_file(),
                                                      Path(tempfile.gettempdir()) / f"wna-gui-{_user()}.log"]
    path = None
    for candidate in candidates:
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            handler = _FileHandler(candidate, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
        except OSError:
            continue
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.setLevel(logging.DEBUG)
        log.addHandler(handler)
        path = candidate
        break
    if verbosity > 0:
        console = _ConsoleHandler(sys.stderr)
        console.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(console)
    return path


def current_log_file() -> Path | None:
    """The file the log is being written to (after setup_logging), else None."""
    for handler in log.handlers:
        if isinstance(handler, _FileHandler):
            return Path(handler.baseFilename)
    return None


def _user() -> str:
    try:
        return os.getlogin()
    except OSError:
        return str(os.getuid()) if hasattr(os, "getuid") else "user"
