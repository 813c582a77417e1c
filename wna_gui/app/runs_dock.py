"""The Runs dock: every run of the open session, with show, continue, new, rename, duplicate, delete and compare.

A session holds any number of runs per experiment. Each panel shows one of its
kind's runs (the one Start continues); the others wait in the session. The dock
lists them all, and selecting one shows it in its panel. The bookkeeping of which
run a panel shows lives in the main window (``show_run``, ``new_run``,
``rename_run``, ``delete_run``…); this module only presents it.

Collapsed, the dock is one line (how many runs, the shown tab's run, the running
one, and New run), so the plots keep their height on a short screen; "Show list"
brings the table back at the height it had.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.registry import spec_for_state

COLUMNS = ("Run", "Experiment", "Progress", "Created", "Modified", "Model", "Status")
REFRESH_MS = 500  # the progress of a running run is re-read this often (only the changed rows are redrawn)
LIST_HEIGHT = 140  # px: the dock's height when the list is first shown (three rows of the table)
SELECTION_BUTTONS = ("continue", "rename", "duplicate", "delete", "compare")  # act on the rows selected
NO_MAXIMUM = 16_777_215  # QWIDGETSIZE_MAX: no height limit


def short_time(stamp: str | None) -> str:
    """"2026-12-06 14:02" from an ISO 8601 UTC stamp ("—" when unknown)."""
    return stamp.replace("T", " ")[:16] if stamp else "—"


@dataclass(frozen=True)
class RunRow:
    """What the dock shows of one run."""

    name: str
    kind: str
    title: str
    done: int
    total: int
    unit: str
    finished: bool
    created: str
    modified: str
    model: str
    status: str  # "running", "shown" (in its panel), or ""

    @property
    def progress(self) -> str:
        tail = " ✓" if self.finished else ""
        return f"{self.done:,} / {self.total:,} {self.unit}{tail}"

    def cells(self) -> tuple[str, ...]:
        return (self.name, self.title, self.progress, short_time(self.created),
                short_time(self.modified) if self.modified else "not saved", self.model, self.status)


def summary_text(rows: list[RunRow], shown_here: str | None) -> str:
    """The collapsed dock's line: how many runs, the shown tab's run and the running one."""
    parts = [f"{len(rows)} run{'' if len(rows) == 1 else 's'} in the session"]
    by_name = {row.name: row for row in rows}
    here = by_name.get(shown_here) if shown_here is not None else None
    parts.append(f"this tab: {here.name!r}, {here.progress}" if here is not None else "this tab: no results yet")
    parts += [f"running: {row.name!r}, {row.progress}" for row in rows
              if row.status == "running" and row is not here]
    return " · ".join(parts)


def run_rows(window) -> list[RunRow]:
    """One row per run of the window's session, oldest first (a row stays where it is when another run is
    shown or started)."""
    session = window.current_session()
    running = window.running_run()
    rows = []
    for name, state in session.runs.items():
        spec = spec_for_state(state)
        dates = window.run_dates(name)
        read = [part for used in session.inputs.get(name, {}).values() for part in used.split(",")
                if part in session.models]
        made = list(getattr(state, "made_models", dict)())
        model = ", ".join(read) if read else session.model.display_name
        if made:
            model += f" → trains {', '.join(made)}"
        status = "running" if name == running else "shown" if window.shown_run(name) is not None else ""
        rows.append(RunRow(name, spec.kind, spec.title, int(state.progress_done), int(state.progress_total),
                           spec.unit, bool(state.finished), dates.get("created", ""), dates.get("modified", ""),
                           model, status))
    return sorted(rows, key=lambda row: (row.created or "~", row.name))  # ISO stamps sort by time; unknown last


class RunsDock(QDockWidget):
    """Dockable list of the session's runs. ``compare_requested(a, b)`` asks the window to compare two runs."""

    compare_requested = Signal(str, str)

    def __init__(self, window) -> None:
        super().__init__("Runs", window)
        self.setObjectName("runs_dock")
        self.window_ = window
        self._rows: list[RunRow] = []
        self._list_height = LIST_HEIGHT  # the expanded dock's height, given back when the list is shown again
        self.collapsed = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("runs_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setToolTip("Every run of the session. Select one to show it in its panel; select two to "
                              "compare them. F2 renames, Del deletes.")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.toggle = QToolButton()
        self.toggle.setObjectName("runs_toggle")
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.clicked.connect(lambda: self.set_collapsed(not self.collapsed))
        self.summary = QLabel()
        self.summary.setObjectName("runs_summary")
        # Clipped, never wider than the window: a long run name must not widen a 1024 px window.
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.buttons = {}
        self.bar = QWidget()
        bar = QHBoxLayout(self.bar)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.toggle)
        for key, text, tip, slot in (
                ("new", "New run", "An empty new run of the shown panel's experiment (the current run stays)",
                 self.new_run),
                ("continue", "Continue", "Show the selected run in its panel and start it", self.continue_selected),
                ("rename", "Rename…", "Rename the selected run (F2)", self.rename_selected),
                ("duplicate", "Duplicate settings", "A new run with the selected run's settings",
                 self.duplicate_selected),
                ("delete", "Delete…", "Delete the selected runs from the session (asks first; Del)",
                 self.delete_selected),
                ("compare", "Compare…", "Compare the two selected runs side by side", self.compare_selected)):
            button = QPushButton(text)
            button.setObjectName(f"runs_{key}")
            button.setToolTip(tip)
            button.clicked.connect(slot)
            bar.addWidget(button)
            self.buttons[key] = button
        bar.addWidget(self.summary, 1)  # collapsed, the line takes the room the table's buttons leave
        bar.addStretch(0)  # expanded, the buttons stay at the left
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(4, 4, 4, 4)
        self.body_layout.addWidget(self.table, 1)
        self.body_layout.addWidget(self.bar)
        self.setWidget(self.body)
        for keys, slot in ((QKeySequence(Qt.Key.Key_F2), self.rename_selected),
                           (QKeySequence(QKeySequence.StandardKey.Delete), self.delete_selected)):
            shortcut = QShortcut(keys, self.table)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(lambda: self.refresh() if self.isVisible() else None)  # hidden: no work
        self.timer.start()
        self._show_collapsed()
        self.refresh()

    # --- one line or the whole list ---

    def set_collapsed(self, collapsed: bool) -> None:
        """One line (``collapsed``) or the table; the table comes back at the height it had."""
        if collapsed == self.collapsed:
            return
        if collapsed and self.isVisible():
            self._list_height = self.height()
        self.collapsed = collapsed
        self._show_collapsed()
        if not collapsed:
            self._resize_height(self._list_height)

    def _show_collapsed(self) -> None:
        collapsed = self.collapsed
        self.table.setVisible(not collapsed)
        for key in SELECTION_BUTTONS:
            self.buttons[key].setVisible(not collapsed)
        self.summary.setVisible(collapsed)
        self.toggle.setText("Show list" if collapsed else "Hide list")
        self.toggle.setArrowType(Qt.ArrowType.UpArrow if collapsed else Qt.ArrowType.DownArrow)
        self.toggle.setToolTip("Show the table of runs (select, continue, rename, delete, compare)" if collapsed
                               else "Fold the runs into one line: the plots get the height")
        margins = self.body_layout.contentsMargins()
        self.body.setMaximumHeight(self.bar.sizeHint().height() + margins.top() + margins.bottom()
                                   if collapsed else NO_MAXIMUM)
        self._show_summary()

    def _resize_height(self, height: int) -> None:
        window = self.parentWidget()
        if self.isFloating() or not isinstance(window, QMainWindow):
            self.resize(self.width(), height)
        else:
            window.resizeDocks([self], [height], Qt.Orientation.Vertical)

    def _show_summary(self) -> None:
        if not self.collapsed:
            return
        panel = self.window_.current_panel()
        here = (panel, panel.active_kind())
        shown_here = next((row.name for row in self._rows if self.window_.shown_run(row.name) == here), None)
        text = summary_text(self._rows, shown_here)
        if text != self.summary.text():
            self.summary.setText(text)
            self.summary.setToolTip(text)

    # --- the list ---

    def refresh(self) -> None:
        """Re-read the session's runs; rows are rewritten only when what they show changed."""
        rows = run_rows(self.window_)
        if rows == self._rows:
            self._show_summary()  # the tab shown may have changed
            return
        selected = set(self.selected_names())
        self.table.blockSignals(True)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row.cells()):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
                font = item.font()
                font.setBold(row.status in ("shown", "running"))
                item.setFont(font)
            first = self.table.item(r, 0)
            assert first is not None  # set just above
            first.setToolTip(f"{row.title} run {row.name!r}: {row.progress}; model {row.model}")
        self._rows = rows
        self.table.clearSelection()
        self._select_rows(selected)
        self.table.blockSignals(False)
        self._update_buttons()
        self._show_summary()

    def rows(self) -> list[RunRow]:
        return list(self._rows)

    def selected_names(self) -> list[str]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self._rows[r].name for r in rows if r < len(self._rows)]

    def select(self, *names: str) -> None:
        """Select these runs (one: it is shown in its panel)."""
        self.refresh()
        self.table.blockSignals(True)  # one selection change for the lot, not one per row
        self.table.clearSelection()
        self._select_rows(names)
        self.table.blockSignals(False)
        self._selection_changed()

    def _select_rows(self, names) -> None:
        selection = self.table.selectionModel()
        for r, row in enumerate(self._rows):
            if row.name in names:
                selection.select(self.table.model().index(r, 0), QItemSelectionModel.SelectionFlag.Select
                                 | QItemSelectionModel.SelectionFlag.Rows)

    def _selection_changed(self) -> None:
        names = self.selected_names()
        if len(names) == 1:
            self._try(lambda: self.window_.show_run(names[0]), "Cannot show the run", quiet=True)
        self._update_buttons()
        self.refresh()

    def _update_buttons(self) -> None:
        count = len(self.selected_names())
        for key in ("continue", "rename", "duplicate"):
            self.buttons[key].setEnabled(count == 1)
        self.buttons["delete"].setEnabled(count >= 1)
        self.buttons["compare"].setEnabled(count == 2)

    def _context_menu(self, position) -> None:
        menu = QMenu(self)
        for key in ("continue", "rename", "duplicate", "delete", "compare", "new"):
            button = self.buttons[key]
            action = menu.addAction(button.text(), button.click)
            action.setEnabled(button.isEnabled())
        menu.popup(self.table.viewport().mapToGlobal(position))

    def _try(self, call, title: str, quiet: bool = False):
        """Run a window operation; its one-line ValueError goes to the status bar (``quiet``) or a message box."""
        try:
            result = call()
        except ValueError as exc:
            if quiet:
                self.window_.statusBar().showMessage(str(exc), 8000)
            else:
                self.window_.show_error(title, str(exc))
            return None
        self.refresh()
        return result

    # --- actions ---

    def new_run(self) -> None:
        panel = self.window_.current_panel()
        self._try(lambda: self.window_.new_run(panel.active_kind()), "Cannot start a new run")

    def continue_selected(self) -> None:
        names = self.selected_names()
        if len(names) == 1:
            self._try(lambda: self.window_.continue_run(names[0]), "Cannot continue the run")

    def rename_selected(self) -> None:
        names = self.selected_names()
        if len(names) != 1:
            return
        new, accepted = QInputDialog.getText(self, "Rename run", f"New name of run {names[0]!r}:",
                                             QLineEdit.EchoMode.Normal, names[0])
        if accepted and new.strip() != names[0] and self._try(
                lambda: self.window_.rename_run(names[0], new) or True, "Cannot rename the run"):
            self.select(new.strip())

    def duplicate_selected(self) -> None:
        names = self.selected_names()
        if len(names) == 1:
            self._try(lambda: self.window_.duplicate_run(names[0]), "Cannot duplicate the run")

    def delete_selected(self) -> None:
        names = self.selected_names()
        if not names:
            return
        listed = ", ".join(repr(name) for name in names)
        readers = sorted({reader for reader, roles in self.window_.current_session().inputs.items()
                          if reader not in names
                          for used in roles.values() for part in used.split(",") if part in names})
        note = f" {', '.join(map(repr, readers))} read{'s' if len(readers) == 1 else ''} it." if readers else ""
        buttons = QMessageBox.StandardButton
        if QMessageBox.question(self, "Delete runs", f"Delete {listed} from the session? Its results are lost "
                                f"when the session is next saved.{note}", buttons.Yes | buttons.Cancel,
                                buttons.Cancel) != buttons.Yes:
            return
        for name in names:
            if self._try(lambda name=name: self.window_.delete_run(name) or True, "Cannot delete the run") is None:
                break

    def compare_selected(self) -> None:
        names = self.selected_names()
        if len(names) == 2:
            self.compare_requested.emit(*names)
