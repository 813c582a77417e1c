"""The Panel base class: one experiment's settings, plots, session state and exports.

A panel is a thin view over one engine experiment kind. The main window owns
the model, the device, the engine thread and the session file; a panel only
turns its settings into an experiment factory, draws snapshots and restores
itself from a saved state. To add a panel, subclass Panel in a new module and
list it in ``wna_gui.app.panels.PANELS``.

Snapshots are the engine's immutable snapshot objects; the window's status bar
reads ``samples_done``, ``samples_total``, ``samples_per_second`` and
``eta_seconds`` from them, so every experiment's snapshot must have these.

Sessions hold one state per experiment kind. A panel saves and restores a
dict kind → state: usually just its own ``kind``, but a panel may save more
than one kind (the psychometric panel saves its curves under ``psychometric``
and its small-multiples grid under ``psychometric_grid``). Every kind must be
registered in ``core.session``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PySide6.QtWidgets import QWidget

from ...core.control import RunControl
from ...core.models import LoadedModel
from ..plots import export_view

ExperimentFactory = Callable[[RunControl], Any]  # runs in the engine thread; returns an object with run()/snapshot()


@dataclass(frozen=True)
class ExportTarget:
    """Something a panel can export; ``write(path)`` picks the format from the path's suffix."""

    label: str
    suffixes: tuple[str, ...]
    write: Callable[[Path], object]


class Panel(QWidget):
    kind: str = ""  # the panel's experiment kind: its key in session files and in the remembered settings
    title: str = ""  # the tab's title

    # --- running (called in the GUI thread) ---

    def experiment_factory(self, model: LoadedModel, device: str) -> ExperimentFactory:
        """Read the settings and return a factory the engine thread calls to build the experiment.

        Raises ValueError with a one-line message when the settings cannot run.
        The factory must not touch widgets: it runs in the engine thread.
        """
        raise NotImplementedError

    def preview_factory(self, model: LoadedModel) -> Callable[[], list] | None:
        """A callable (run in the engine thread) returning snapshots of the restored states, or None.

        They are shown in order; the status bar shows the last one's progress.
        """
        raise NotImplementedError

    def show_snapshot(self, snapshot: Any) -> None:
        raise NotImplementedError

    def set_running(self, running: bool) -> None:
        """Lock the settings that cannot change during a run."""
        raise NotImplementedError

    # --- sessions ---

    def session_states(self) -> dict[str, Any]:
        """kind → engine state to save, for each kind with something to save.

        Read the states only when no run is between batches.
        """
        raise NotImplementedError

    def restore(self, states: dict[str, Any], model: LoadedModel) -> None:
        """Adopt the saved states of this panel's kinds (settings included) to show and continue.

        ``states`` is a session's kind → state; the panel takes its own kinds from
        it, and an empty dict resets the panel for ``model``.
        """
        raise NotImplementedError

    def settings(self) -> dict:
        """The settings widgets' values, JSON-friendly, remembered between launches."""
        raise NotImplementedError

    def apply_settings(self, values: dict) -> None:
        raise NotImplementedError

    # --- export ---

    def export_targets(self) -> list[ExportTarget]:
        """What File > Export offers for this panel. Subclasses extend the list."""
        return [ExportTarget("Whole panel (as on screen)", (".png", ".svg"), lambda path: export_view(self, path))]
