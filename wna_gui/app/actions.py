"""The one registry of the window's actions and their keyboard shortcuts.

Menus, the toolbar and the Help > Keyboard shortcuts dialog all read from
here; adding a command means adding one line to ACTIONS and connecting it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str  # menu text (with & mnemonic)
    description: str  # what the shortcuts dialog and tooltips say
    shortcut: str = ""
    icon: QStyle.StandardPixmap | None = None


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("new", "&New", "New session (keeps the model)", "Ctrl+N"),
    ActionSpec("open", "&Open…", "Open a session file", "Ctrl+O"),
    ActionSpec("save", "&Save", "Save the session", "Ctrl+S"),
    ActionSpec("save_as", "Save &As…", "Save the session under a new name", "Ctrl+Shift+S"),
    ActionSpec("export", "&Export…", "Export plots, figures or data", "Ctrl+E"),
    ActionSpec("export_all", "Export &all results…", "Export every run's results to a folder, as wna export does",
               "Ctrl+Shift+E"),
    ActionSpec("session_info", "Session &info", "What `wna info` prints about the session: model, runs, warnings",
               "Ctrl+I"),
    ActionSpec("reset_layout", "&Reset layout", "Put the window's size, toolbar and plot splitters back as at the "
                                               "first launch"),
    ActionSpec("quit", "&Quit", "Quit wna-gui", "Ctrl+Q"),
    ActionSpec("start_pause", "&Start", "Start, pause or resume the run", "Space",
               QStyle.StandardPixmap.SP_MediaPlay),
    ActionSpec("stop", "S&top", "Stop the run (it can be continued later)", "Esc",
               QStyle.StandardPixmap.SP_MediaStop),
    ActionSpec("copy_command", "Copy as `wna` &command",
               "Copy the wna command that runs the current settings without the app", "Ctrl+Shift+C"),
    ActionSpec("guide", "&User guide", "What each panel measures, how to read its plots, a glossary", "F1"),
    ActionSpec("shortcuts", "&Keyboard shortcuts", "List the keyboard shortcuts", "Ctrl+F1"),
    ActionSpec("about", "&About wna-gui", "About wna-gui"),
    ActionSpec("compare_runs", "&Compare runs…",
               "Two runs (or two models or estimators of one run) side by side on one scale, and their difference",
               "Ctrl+Shift+D"),
    ActionSpec("trusted_models", "&Trusted models…",
               "TorchScript models allowed to run (their code is in the file): list and revoke"),
    ActionSpec("restore_defaults", "&Restore defaults…",
               "Forget the window layout, device, panel settings, recent files and export choices (trusted models "
               "are kept)"),
    ActionSpec("open_log_folder", "Open &log folder", "Show the folder of the log file (attach it to a bug report)"),
)


class ActionRegistry:
    """Creates one QAction per spec, owned by ``window`` so shortcuts work anywhere in it."""

    def __init__(self, window: QWidget) -> None:
        self.specs = {spec.name: spec for spec in ACTIONS}
        self._actions: dict[str, QAction] = {}
        for spec in ACTIONS:
            action = QAction(spec.text, window)
            action.setObjectName(f"action_{spec.name}")
            action.setToolTip(f"{spec.description} ({spec.shortcut})" if spec.shortcut else spec.description)
            action.setStatusTip(spec.description)
            if spec.shortcut:
                action.setShortcut(QKeySequence(spec.shortcut))
                action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if spec.icon is not None:
                action.setIcon(window.style().standardIcon(spec.icon))
            window.addAction(action)
            self._actions[spec.name] = action

    def __getitem__(self, name: str) -> QAction:
        return self._actions[name]

    def shortcut_table(self) -> list[tuple[str, str]]:
        """(shortcut as the platform writes it, description) for every action that has one."""
        return [(self._actions[spec.name].shortcut().toString(QKeySequence.SequenceFormat.NativeText),
                 spec.description) for spec in ACTIONS if spec.shortcut]


class ShortcutsDialog(QDialog):
    def __init__(self, registry: ActionRegistry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = registry.shortcut_table()
        table = QTableWidget(len(rows), 2, self)
        table.setHorizontalHeaderLabels(["Shortcut", "Action"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for row, (keys, description) in enumerate(rows):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(description))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(460, 340)
