"""The main window: menus, toolbar, status bar, experiment panels as tabs, sessions and autosave.

The window owns the model, the device choice, the engine thread and the session
file. Panels (one per panel module the registry names) own their settings and plots.
Slow work (loading models and sessions, saving) runs in the engine thread; the
GUI keeps only the latest snapshot and repaints at most REPAINT_HZ times a second,
and less often when drawing would take more than GUI_CPU_BUDGET of the GUI
thread (large models, slow machines): the engine keeps the CPU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from PySide6.QtCore import QEvent, QSettings, QStandardPaths, Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStyle,
    QTableWidget,
    QTabWidget,
    QToolBar,
    QToolButton,
)

from .. import __version__
from ..core.control import format_duration, pick_device
from ..core.models import LoadedModel, load_default, load_model
from ..figures.page import FigureSize, sized
from ..core.session import (
    Session,
    SessionError,
    autosave_path,
    load_session,
    made_models,
    save_session,
)
from ..cli import command_for
from ..core.experiment import export_runs
from .actions import ActionRegistry, ShortcutsDialog
from .guide import GuideDialog
from .dialogs import MODEL_SOURCES, ExportDialog, ModelDialog
from .panels import Panel, build_panels
from .worker import EngineThread, describe_error

ORGANIZATION = "wna-gui"
APPLICATION = "wna-gui"
SESSION_FILTER = "wna-gui sessions (*.h5 *.hdf5);;All files (*)"
SESSION_SUFFIXES = (".h5", ".hdf5")
MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".bin")
REPAINT_HZ = 30
GUI_CPU_BUDGET = 0.10  # share of the GUI thread's time that drawing snapshots may take during a run
MAX_REPAINT_DELAY_SECONDS = 1.0  # however slow drawing is, the plots refresh at least this often
AUTOSAVE_SECONDS = 60
MAX_RECENT_FILES = 8


def selection_text(table: QTableWidget) -> str:
    """The selected cells as tab-separated rows (the whole table with its header when nothing is selected)."""
    cells = sorted((index.row(), index.column()) for index in table.selectedIndexes())
    if not cells:
        header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
        cells = [(r, c) for r in range(table.rowCount()) for c in range(table.columnCount())]
        lines = ["\t".join(header)]
    else:
        lines = []
    rows = sorted({r for r, _ in cells})
    columns = sorted({c for _, c in cells})
    for r in rows:
        lines.append("\t".join((table.item(r, c).text() if table.item(r, c) else "") for c in columns))
    return "\n".join(lines)


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


class MainWindow(QMainWindow):
    """``settings`` and ``data_dir`` default to the user's; tests pass temporary ones."""

    def __init__(self, settings: QSettings | None = None, data_dir: str | Path | None = None,
                 model: LoadedModel | None = None) -> None:
        super().__init__()
        self.store = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)
        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        self.autosave_file = autosave_path(data_dir if data_dir is not None else location)
        self.model = model or load_default()
        self.session_path: Path | None = None
        self._created: str | None = None  # creation time of the opened session, kept across saves
        self._dirty = False
        self._pending_snapshot: Any = None
        self._last_draw = (0.0, 0.0)  # (wall clock, GUI thread CPU time) when the last snapshot was drawn
        self._running_panel: Panel | None = None
        self._progress: dict[Panel, Any] = {}  # per tab, the snapshot its status bar shows
        self.error_dialog: QMessageBox | None = None
        self.export_dialog: ExportDialog | None = None
        self.shortcuts_dialog: ShortcutsDialog | None = None

        self.engine = EngineThread(self)
        self.commands = ActionRegistry(self)  # not "actions": that would hide QWidget.actions()
        self.panels: list[Panel] = build_panels()
        self._other_runs: dict = {}  # runs of the open session no panel shows: kept, saved back
        self._other_models: dict = {}
        self._other_inputs: dict = {}
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for panel in self.panels:
            self.tabs.addTab(panel, panel.title)
            panel.restore({}, self.model)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()

        self.repaint_timer = QTimer(self)
        self.repaint_timer.setInterval(1000 // REPAINT_HZ)
        self.repaint_timer.timeout.connect(self._repaint_within_budget)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_SECONDS * 1000)
        self.autosave_timer.timeout.connect(self.autosave)

        self.engine.snapshot.connect(self._on_snapshot)
        self.engine.run_finished.connect(lambda snap: self._run_ended(snap, "Run finished"))
        self.engine.run_cancelled.connect(lambda snap: self._run_ended(snap, "Run stopped; Start continues it"))
        self.engine.run_failed.connect(self._run_failed)
        self.engine.task_failed.connect(self._task_failed)
        self.engine.busy_changed.connect(self._busy_changed)

        self.setAcceptDrops(True)
        self._install_key_filters()
        self._restore_settings()
        self._show_model()
        self._update_actions()
        self._update_title()

    # --- construction ---

    def _build_menus(self) -> None:
        actions = self.commands
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(actions["new"])
        file_menu.addAction(actions["open"])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(actions["save"])
        file_menu.addAction(actions["save_as"])
        file_menu.addAction(actions["export"])
        file_menu.addAction(actions["export_all"])
        file_menu.addSeparator()
        file_menu.addAction(actions["quit"])
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(actions["start_pause"])
        run_menu.addAction(actions["stop"])
        run_menu.addSeparator()
        run_menu.addAction(actions["copy_command"])
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(actions["guide"])
        help_menu.addAction(actions["shortcuts"])
        help_menu.addAction(actions["about"])

        actions["new"].triggered.connect(self.new_session)
        actions["open"].triggered.connect(self.open_dialog)
        actions["save"].triggered.connect(self.save)
        actions["save_as"].triggered.connect(self.save_as)
        actions["export"].triggered.connect(self.open_export_dialog)
        actions["export_all"].triggered.connect(self.export_all_dialog)
        actions["copy_command"].triggered.connect(self.copy_command)
        actions["guide"].triggered.connect(self.show_guide)
        actions["quit"].triggered.connect(self.close)
        actions["start_pause"].triggered.connect(self.toggle_run)
        actions["stop"].triggered.connect(self.stop_run)
        actions["shortcuts"].triggered.connect(self.show_shortcuts)
        actions["about"].triggered.connect(self.show_about)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Run")
        toolbar.setObjectName("run_toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.commands["start_pause"])
        toolbar.addAction(self.commands["stop"])
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Model "))
        self.model_button = QToolButton()
        self.model_button.setObjectName("model_button")
        self.model_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.model_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        model_menu = QMenu(self.model_button)
        model_menu.addAction("Bundled MNIST CNN", lambda: self.choose_model("default"))
        for source, label in MODEL_SOURCES.items():
            model_menu.addAction(f"{label}…", lambda source=source: self.choose_model(source))
        self.model_button.setMenu(model_menu)
        toolbar.addWidget(self.model_button)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Device "))
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("device_combo")
        self.device_combo.addItem(f"auto ({pick_device('auto').type})", "auto")
        self.device_combo.addItem("cpu", "cpu")
        if torch.cuda.is_available():
            self.device_combo.addItem("cuda", "cuda")
        self.device_combo.currentIndexChanged.connect(self._update_device_label)
        toolbar.addWidget(self.device_combo)
        self.addToolBar(toolbar)

    def _build_status_bar(self) -> None:
        self.samples_label = QLabel()
        self.rate_label = QLabel()
        self.eta_label = QLabel()
        self.device_label = QLabel()
        for label in (self.samples_label, self.rate_label, self.eta_label, self.device_label):
            label.setContentsMargins(8, 0, 8, 0)
            self.statusBar().addPermanentWidget(label)
        self._show_progress(None)
        self._update_device_label()

    # --- model and device ---

    def device(self) -> str:
        return self.device_combo.currentData()

    def _update_device_label(self) -> None:
        self.device_label.setText(f"Device: {pick_device(self.device()).type}")

    def choose_model(self, source: str, file: str | None = None) -> None:
        """Load another model (in the engine thread); it replaces the current session's results."""
        if not self._confirm_discard():
            return
        if source == "default":
            spec, weights, options = "default", None, {}
        else:
            dialog = ModelDialog(source, self)
            saved = self.store.value("model_dialog", "")
            dialog.set_entries(json.loads(saved) if saved else {}, source)
            if file is not None:
                dialog.set_entries({"zoo_weights": file, "script_file": file}, source)
            accepted = dialog.exec() == ModelDialog.DialogCode.Accepted
            self.store.setValue("model_dialog", json.dumps(dialog.entries()))  # offered again, even after an error
            if not accepted:
                return
            spec, weights, options = dialog.request()
        self.statusBar().showMessage("Loading the model…")
        self.engine.submit(lambda: load_model(spec, weights, **options), on_done=self.set_model,
                           failure_title="Could not load the model")

    def set_model(self, model: LoadedModel) -> None:
        """Use ``model`` for a new, empty session."""
        self.model = model
        self._reset_session()
        self._show_model()
        self.statusBar().showMessage(f"Model: {model.display_name}", 5000)

    def _show_model(self) -> None:
        shape = "×".join(str(s) for s in self.model.input_spec.shape)
        self.model_button.setText(f"{self.model.display_name}  ")
        self.model_button.setToolTip(f"{self.model.display_name}: {self.model.n_classes} classes, input {shape}. "
                                     "Click to choose another model.")

    # --- keys and drops ---

    def _install_key_filters(self) -> None:
        """Space reaches Start/Pause from spin boxes and combo boxes (they have no use for it); Ctrl+C in a table
        copies its selection, not one cell."""
        for widget in (*self.findChildren(QAbstractSpinBox), *self.findChildren(QComboBox)):
            widget.installEventFilter(self)
            if isinstance(widget, QAbstractSpinBox):
                widget.findChild(QLineEdit).installEventFilter(self)
        for table in self.findChildren(QTableWidget):
            table.installEventFilter(self)
        # After a menu closes with Esc the menu bar keeps the keyboard, and would swallow the next Esc (Stop).
        self.menuBar().installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.menuBar() and event.type() == QEvent.Type.KeyPress \
                and event.key() == Qt.Key.Key_Escape and QApplication.activePopupWidget() is None:
            self.menuBar().setActiveAction(None)
            self.menuBar().clearFocus()
            if self.engine.running:
                self.stop_run()
            return True
        if (event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Space
                and event.modifiers() == Qt.KeyboardModifier.NoModifier):
            return True  # not accepted by the field: the window's Space shortcut fires
        if event.type() == QEvent.Type.KeyPress and isinstance(watched, QTableWidget) \
                and event.matches(QKeySequence.StandardKey.Copy):
            QApplication.clipboard().setText(selection_text(watched))
            return True
        return super().eventFilter(watched, event)

    def dragEnterEvent(self, event) -> None:
        if self._dropped_file(event) is not None and not self.engine.running:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = self._dropped_file(event)
        if path is None:
            return
        event.acceptProposedAction()
        if path.suffix.lower() in SESSION_SUFFIXES:
            if self._confirm_discard():
                self.open_session(path)
        else:
            self.choose_model("torchscript" if path.suffix.lower() == ".ts" else "zoo", str(path))

    @staticmethod
    def _dropped_file(event) -> Path | None:
        """The first local session or model file among the dropped ones."""
        for url in event.mimeData().urls() if event.mimeData().hasUrls() else ():
            path = Path(url.toLocalFile())
            if url.isLocalFile() and path.suffix.lower() in (*SESSION_SUFFIXES, *MODEL_SUFFIXES):
                return path
        return None

    # --- runs ---

    def current_panel(self) -> Panel:
        return self.tabs.currentWidget()

    @Slot()
    def toggle_run(self) -> None:
        """Space: start when idle, otherwise pause or resume."""
        if not self.engine.running:
            self.start_run()
        elif self.engine.paused:
            self.engine.resume()
            self._running_panel.set_paused(False)
            self.statusBar().clearMessage()
        else:
            self.engine.pause()
            self._running_panel.set_paused(True)
            self.statusBar().showMessage("Paused")
            self.rate_label.setText("paused")
            self.eta_label.setText("ETA —")
        self._update_actions()

    def start_run(self) -> None:
        panel = self.current_panel()
        if panel.plan().action == "new" and panel.has_results() and not self._confirm_discard(
                "Start a new run", "Start begins a new run and replaces the current results, which are not "
                "saved."):
            return
        try:
            factory = panel.experiment_factory(self.model, self.device(), self.current_session())
        except ValueError as exc:
            self.show_error("Cannot start", str(exc))
            return
        self._running_panel = panel
        panel.set_running(True)
        self.engine.start_run(factory)
        self.statusBar().showMessage("Running…")

    @Slot()
    def stop_run(self) -> None:
        if self.engine.running:
            self.engine.cancel()
            self.statusBar().showMessage("Stopping after this batch…")

    @Slot(object)
    def _on_snapshot(self, snapshot: Any) -> None:
        self._pending_snapshot = snapshot  # older ones are dropped: only the latest is drawn

    def _repaint_within_budget(self) -> None:
        if self._pending_snapshot is None:
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        since_wall, since_cpu = wall - self._last_draw[0], cpu - self._last_draw[1]
        if since_cpu > GUI_CPU_BUDGET * since_wall and since_wall < MAX_REPAINT_DELAY_SECONDS:
            return  # drawing (and painting) the last snapshot took too long: skip a tick
        self._last_draw = (wall, cpu)
        self._draw_pending()

    def _draw_pending(self) -> None:
        snapshot, self._pending_snapshot = self._pending_snapshot, None
        if snapshot is not None and self._running_panel is not None:
            self._running_panel.show_snapshot(snapshot)
            self._progress[self._running_panel] = snapshot
            if self._running_panel is self.current_panel() and not self.engine.paused:
                self._show_progress(snapshot)

    def _run_ended(self, snapshot: Any, message: str) -> None:
        self._pending_snapshot = snapshot
        self._draw_pending()
        self._running_panel.set_running(False)
        self._running_panel = None
        self.eta_label.setText("ETA —")
        self.dirty = True
        self.autosave()
        self.statusBar().showMessage(message, 10000)

    @Slot(str, str)
    def _run_failed(self, message: str, details: str) -> None:
        self._pending_snapshot = None
        self._running_panel.set_running(False)
        self._running_panel = None
        self.statusBar().showMessage("Run failed", 10000)
        self.show_error("Run failed", message, details)

    @Slot(bool)
    def _busy_changed(self, busy: bool) -> None:
        for timer in (self.repaint_timer, self.autosave_timer):
            timer.start() if busy else timer.stop()
        self._update_actions()

    def _update_actions(self) -> None:
        running, paused = self.engine.running, self.engine.paused
        start = self.commands["start_pause"]
        start.setText("&Resume" if paused else "&Pause" if running else "&Start")
        icon = QStyle.StandardPixmap.SP_MediaPause if running and not paused else QStyle.StandardPixmap.SP_MediaPlay
        start.setIcon(self.style().standardIcon(icon))
        self.commands["stop"].setEnabled(running)
        for name in ("new", "open"):
            self.commands[name].setEnabled(not running)
        self.recent_menu.setEnabled(not running)
        self.model_button.setEnabled(not running)
        self.device_combo.setEnabled(not running)

    def _show_progress(self, snapshot: Any) -> None:
        """The status bar: progress of the shown tab's run, in its unit (samples, stimuli…)."""
        unit = self.current_panel().progress_unit()
        if snapshot is None:
            self.samples_label.setText(f"{unit.capitalize()} —")
            self.rate_label.setText(f"— {unit}/s")
            self.eta_label.setText("ETA —")
            return
        self.samples_label.setText(f"{unit.capitalize()} {snapshot.samples_done:,} / {snapshot.samples_total:,}")
        running_here = self.engine.running and self._running_panel is self.current_panel()
        self.rate_label.setText(f"{snapshot.samples_per_second:,.0f} {unit}/s" if running_here else f"— {unit}/s")
        done = snapshot.samples_done >= snapshot.samples_total
        self.eta_label.setText("ETA —" if done or not running_here else f"ETA {format_duration(snapshot.eta_seconds)}")

    def _tab_changed(self) -> None:
        self._show_progress(self._progress.get(self.current_panel()))

    # --- sessions ---

    @property
    def dirty(self) -> bool:
        """The session has results that are not in its file."""
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._dirty = value
        self._update_title()

    def _update_title(self) -> None:
        name = self.session_path.name if self.session_path else "Untitled"
        self.setWindowTitle(f"{name}[*] — wna-gui")
        self.setWindowModified(self._dirty)

    def _confirm_discard(self, title: str = "Unsaved results",
                         text: str = "The current results are not saved.") -> bool:
        """Whether to go on where unsaved results would be lost: Save (then go on), Discard, or Cancel."""
        if not self._dirty:
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self, title, f"{text} Save them first?",
                                      buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == buttons.Save:
            path = self.session_path or self._ask_save_path()
            if path is None:
                return False
            try:  # no run is between units here: the GUI thread may write the session itself
                self._saved(self._session_writer(path)())
            except Exception as exc:
                self.show_error("Could not save the session", describe_error(exc)[0])
                return False
            return True
        return answer == buttons.Discard

    def _reset_session(self) -> None:
        self._other_runs, self._other_models, self._other_inputs = {}, {}, {}
        for panel in self.panels:
            panel.restore({}, self.model)
        self.session_path, self._created = None, None
        self._progress = {}
        self._show_progress(None)
        self.dirty = False

    @Slot()
    def new_session(self) -> None:
        if self._confirm_discard():
            self._reset_session()

    @Slot()
    def open_dialog(self) -> None:
        if not self._confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self._session_dir(), SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path, recovered: bool = False) -> None:
        """Load a session in the engine thread; a recovered autosave opens as an unsaved session."""
        path = Path(path)
        self.statusBar().showMessage(f"Opening {path.name}…")
        self.engine.submit(lambda: load_session(path), on_done=lambda session: self._session_loaded(session, recovered),
                           failure_title="Could not open the session")

    def _session_loaded(self, session: Session, recovered: bool) -> None:
        self.model = session.model
        self._show_model()
        shown = set()
        for panel in self.panels:
            panel.restore(session.runs, self.model, session.inputs)
            shown |= {id(state) for state in panel.session_states().values()}
        self._other_runs = {name: state for name, state in session.runs.items() if id(state) not in shown}
        self._other_models, self._other_inputs = session.models, session.inputs
        for panel in self.panels:
            preview = panel.preview_factory(self.model)
            if preview is not None:
                self.engine.submit(preview, on_done=lambda shown, panel=panel: self._show_restored(panel, shown),
                                   failure_title="Could not show the session")
        # A recovered autosave continues the file it was autosaving (Save writes there again).
        self.session_path = (Path(session.origin) if session.origin else None) if recovered else session.path
        self._created = session.created
        self.dirty = recovered
        if not recovered:
            self._remember_recent(session.path)
        self.statusBar().showMessage(f"Opened {session.path.name}", 5000)

    def _show_restored(self, panel: Panel, snapshots: list) -> None:
        for kind, snapshot in snapshots:
            panel.show_snapshot(snapshot, kind)
        self._progress[panel] = snapshots[-1][1]
        if panel is self.current_panel():
            self._show_progress(snapshots[-1][1])

    def current_session(self) -> Session:
        """The window's runs (every panel's and those no panel shows), models and inputs, as a Session."""
        runs = {**self._other_runs,
                **{name: state for panel in self.panels for name, state in panel.session_states().items()}}
        inputs = {**self._other_inputs,
                  **{name: roles for panel in self.panels for name, roles in panel.session_inputs().items()}}
        session = Session(self.model, runs, models={**self._other_models, **made_models(runs)},
                          inputs={name: roles for name, roles in inputs.items() if name in runs},
                          origin=str(self.session_path or ""))
        if self._created:
            session.created = self._created
        return session

    def _session_writer(self, path: Path) -> Callable[[], Path]:
        """A callable that writes the session; run it where no run is between batches (engine thread)."""
        session = self.current_session()
        return lambda: save_session(session, path)

    @Slot()
    def save(self) -> None:
        if self.session_path is None:
            self.save_as()
        else:
            self.save_to(self.session_path)

    @Slot()
    def save_as(self) -> None:
        path = self._ask_save_path()
        if path is not None:
            self.save_to(path)

    def _ask_save_path(self) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", self._session_dir(), SESSION_FILTER)
        if not path:
            return None
        path = Path(path)
        return path if path.suffix.lower() in SESSION_SUFFIXES else path.with_name(path.name + SESSION_SUFFIXES[0])

    def save_to(self, path: str | Path) -> None:
        """Save in the engine thread (mid-run: between batches, so the file is consistent)."""
        self.engine.submit(self._session_writer(Path(path)), on_done=self._saved,
                           failure_title="Could not save the session")

    def _saved(self, path: Path) -> None:
        self.session_path = path
        self.dirty = self.engine.running
        self._remember_recent(path)
        self.autosave_file.unlink(missing_ok=True)
        self.statusBar().showMessage(f"Saved {path.name}", 5000)

    @Slot()
    def autosave(self) -> None:
        if any(panel.session_states() for panel in self.panels):
            self.engine.submit(self._session_writer(self.autosave_file), failure_title="Autosave failed")

    def offer_recovery(self) -> bool:
        """After a crash, offer the autosaved session. Returns whether it is being recovered."""
        if not self.autosave_file.exists():
            return False
        answer = QMessageBox.question(
            self, "Recover session", f"wna-gui did not close cleanly last time. {recovery_text(self.autosave_file)} "
            "Recover it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            self.autosave_file.unlink(missing_ok=True)
            return False
        self.open_session(self.autosave_file, recovered=True)
        return True

    def _session_dir(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def recent_files(self) -> list[str]:
        value = self.store.value("recent_files", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _remember_recent(self, path: Path) -> None:
        path_text = str(Path(path).resolve())
        recent = [path_text] + [p for p in self.recent_files() if p != path_text]
        self.store.setValue("recent_files", recent[:MAX_RECENT_FILES])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(path, lambda path=path: self._open_recent(path))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: self.store.setValue("recent_files", []))
        else:
            self.recent_menu.addAction("No recent sessions").setEnabled(False)

    def _open_recent(self, path: str) -> None:
        if self._confirm_discard():
            self.open_session(path)

    # --- export, help, errors ---

    @Slot()
    def open_export_dialog(self) -> None:
        directory = self.store.value("export_dir", "") or self._session_dir()
        stem = self.session_path.name.split(".")[0] if self.session_path else "unsaved"
        self.export_dialog = ExportDialog(self.current_panel().export_targets(), directory, self, stem,
                                          self.export_size())
        self.export_dialog.exported.connect(self._exported)
        self.export_dialog.open()

    def export_size(self) -> FigureSize:
        """The figure size last chosen in the export dialog (default: double column, 300 dpi)."""
        try:
            return FigureSize(float(self.store.value("export_width_mm", FigureSize().width_mm)),
                              int(self.store.value("export_dpi", FigureSize().dpi)))
        except (TypeError, ValueError):
            return FigureSize()

    def _exported(self, path: Path) -> None:
        self.store.setValue("export_dir", str(path.parent))
        size = self.export_dialog.figure_size()
        self.store.setValue("export_width_mm", size.width_mm)
        self.store.setValue("export_dpi", size.dpi)
        self.statusBar().showMessage(f"Exported {path} ({size.describe()})", 5000)

    @Slot()
    def export_all_dialog(self) -> None:
        directory = QFileDialog.getExistingDirectory(self, "Export all results to a folder",
                                                     self.store.value("export_dir", "") or self._session_dir())
        if directory:
            self.export_all(Path(directory))

    def export_all(self, folder: Path) -> None:
        """Every run's artefacts into ``folder`` (the files `wna export` writes), in the engine thread."""
        runs = {name: state for panel in self.panels for name, state in panel.session_states().items()}
        runs = {**self._other_runs, **runs}
        if not runs:
            self.show_error("Nothing to export", "No run has results yet: start one or open a session.")
            return
        existing = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        if existing and QMessageBox.question(
                self, "Export all results", f"{folder} is not empty ({len(existing)} items); files with the same "
                "names will be replaced. Export there?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel) != QMessageBox.StandardButton.Yes:
            return
        model, size = self.model, self.export_size()

        def write() -> list:
            with sized(size):  # the figure size last chosen in the export dialog
                return export_runs(runs, model, folder)

        self.statusBar().showMessage(f"Exporting to {folder} ({size.describe()})…")
        self.engine.submit(write, on_done=lambda written: self._exported_all(
            folder, written), failure_title="Could not export")

    def _exported_all(self, folder: Path, written: list) -> None:
        self.store.setValue("export_dir", str(folder))
        self.statusBar().showMessage(f"Exported {len(written)} files to {folder}", 8000)

    @Slot()
    def copy_command(self) -> None:
        """The `wna run` command for the settings shown, on the clipboard (so a GUI run can be repeated headless)."""
        panel = self.current_panel()
        kind = panel.active_kind()
        try:
            config = panel.current_config()
        except (ValueError, TypeError) as exc:
            self.show_error("Cannot copy the command", f"Invalid settings: {exc}")
            return
        out = self.session_path.name if self.session_path else "session.h5"
        command = command_for(panel.specs[kind], config, self.model, out)
        QApplication.clipboard().setText(command)
        self.statusBar().showMessage(f"Copied: {command}", 8000)

    @Slot()
    def show_guide(self) -> None:
        self.guide_dialog = GuideDialog(self)
        self.guide_dialog.open()

    @Slot()
    def show_shortcuts(self) -> None:
        self.shortcuts_dialog = ShortcutsDialog(self.commands, self)
        self.shortcuts_dialog.open()

    @Slot()
    def show_about(self) -> None:
        QMessageBox.about(self, "About wna-gui", (
            f"<b>wna-gui {__version__}</b><p>White-noise analysis of neural networks: classification images "
            "from noise, after Borji &amp; Lin, <i>White Noise Analysis of Neural Networks</i>, ICLR 2020.</p>"))

    @Slot(str, str, str)
    def _task_failed(self, title: str, message: str, details: str) -> None:
        self.statusBar().clearMessage()  # "Loading the model…" / "Opening …" must not outlive a failure
        self.show_error(title, message, details)

    @Slot(str, str, str)
    def show_error(self, title: str, message: str, details: str = "") -> None:
        """A window-modal box that does not block the event loop; the app stays usable."""
        icon = QMessageBox.Icon.Critical if details else QMessageBox.Icon.Warning
        box = QMessageBox(icon, title, message, QMessageBox.StandardButton.Ok, self)
        # Return and Esc close the box (with details shown, Return would otherwise toggle them).
        box.setDefaultButton(QMessageBox.StandardButton.Ok)
        box.setEscapeButton(QMessageBox.StandardButton.Ok)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_dialog = box

    # --- persistence and closing ---

    def _restore_settings(self) -> None:
        store = self.store
        if store.contains("window/geometry"):
            self.restoreGeometry(store.value("window/geometry"))
        else:
            self.resize(1400, 900)
        if store.contains("window/state"):
            self.restoreState(store.value("window/state"))
        device_index = self.device_combo.findData(store.value("device", "auto"))
        self.device_combo.setCurrentIndex(max(device_index, 0))
        for panel in self.panels:
            saved = store.value(f"panels/{panel.name}/settings")
            if saved:
                try:
                    panel.apply_settings(json.loads(saved))
                except (ValueError, TypeError):
                    pass  # settings from another version: keep the defaults
            for splitter in panel.findChildren(QSplitter):
                state = store.value(f"panels/{panel.name}/{splitter.objectName()}")
                if state is not None:
                    splitter.restoreState(state)
        self.tabs.setCurrentIndex(int(store.value("window/tab", 0)))

    def _store_settings(self) -> None:
        store = self.store
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState())
        store.setValue("window/tab", self.tabs.currentIndex())
        store.setValue("device", self.device())
        for panel in self.panels:
            store.setValue(f"panels/{panel.name}/settings", json.dumps(panel.settings()))
            for splitter in panel.findChildren(QSplitter):
                store.setValue(f"panels/{panel.name}/{splitter.objectName()}", splitter.saveState())
        store.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Offer to save, stop the engine thread (a run stops between batches), then close."""
        answer = QMessageBox.StandardButton.Discard
        if self._dirty or self.engine.running:
            note = " The run in progress will be stopped." if self.engine.running else ""
            answer = QMessageBox.question(
                self, "Quit wna-gui", f"Save the session before closing?{note}",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Cancel:
            event.ignore()
            return
        path = None
        if answer == QMessageBox.StandardButton.Save:
            path = self.session_path or self._ask_save_path()
            if path is None:
                event.ignore()
                return
        self.engine.shutdown()
        self.repaint_timer.stop()
        self.autosave_timer.stop()
        saved = True
        if path is not None:
            try:
                self._session_writer(path)()
            except Exception as exc:
                saved = False
                QMessageBox.critical(self, "Could not save the session",
                                     f"{describe_error(exc)[0]}. The last autosave is kept for recovery "
                                     "at the next launch.")
        if saved:
            self.autosave_file.unlink(missing_ok=True)
        self._store_settings()
        event.accept()
