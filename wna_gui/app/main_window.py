"""The main window: menus, toolbar, status bar, experiment panels as tabs, sessions and autosave.

The window owns the model, the device choice and the engine thread; the session
file (open, save, autosave, recovery, lock, recent files) is its SessionController's,
and the window asks the questions that need the user. Panels (one per panel module the registry names) own their settings and plots.
Slow work (loading models and sessions, saving) runs in the engine thread; the
GUI keeps only the latest snapshot and repaints at most REPAINT_HZ times a second,
and less often when drawing would take more than GUI_CPU_BUDGET of the GUI
thread (large models, slow machines): the engine keeps the CPU.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from PySide6.QtCore import QEvent, QSettings, QStandardPaths, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QCloseEvent, QDesktopServices, QFontDatabase, QKeySequence
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGraphicsView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QScrollArea,
    QSlider,
    QSplitter,
    QStyle,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
)

from .. import __version__
from ..core.control import format_duration, pick_device
from ..core.models import (
    LoadedModel,
    SealedModel,
    UntrustedModelError,
    load_default,
    load_model,
    unseal,
    untrusted_message,
)
from ..core.trust import remember_trust
from ..figures.page import FigureSize, sized
from ..core.locking import SessionLock
from ..core.session import Session, SessionConflict, SessionError, autosave_path, made_models, save_session, utc_now
from ..cli import command_for
from ..core.runs import export_runs
from .actions import ActionRegistry, ShortcutsDialog
from .guide import GuideDialog
from .dialogs import MODEL_SOURCES, ExportDialog, ModelDialog, TrustedModelsDialog, trust_question
from .panels import Panel, build_panels
from .compare import CompareWindow
from .runs_dock import LIST_HEIGHT, RunsDock
from .session_controller import SessionController
from .worker import EngineThread, describe_error
from .settings_store import APPLICATION, ORGANIZATION, app_settings, reset_app_settings  # noqa: F401 (re-exported)
from ..core.logs import current_log_file, default_log_file, log as _package_log

log = _package_log.getChild("app")
SESSION_FILTER = "wna-gui sessions (*.h5 *.hdf5);;All files (*)"
SESSION_SUFFIXES = (".h5", ".hdf5")
MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".bin")
REPAINT_HZ = 30
GUI_CPU_BUDGET = 0.10  # share of the GUI thread's time that drawing snapshots may take during a run
MAX_REPAINT_DELAY_SECONDS = 1.0  # however slow drawing is, the plots refresh at least this often
AUTOSAVE_SECONDS = 60
NOTIFY_AFTER_SECONDS = 60  # a run that took longer ends with a desktop notification (the user may have left)
DEFAULT_SIZE = (1400, 900)  # the first launch's window (View > Reset layout goes back to it)
COMPACT_SCREEN_HEIGHT = 900  # px of usable screen height below which the Runs list starts as one line
Setting = TypeVar("Setting", str, int, float)


def stored(store: QSettings, key: str, default: Setting) -> Setting:
    """The setting ``key`` as the type of ``default`` (``default`` when unset or unreadable): an .ini store
    gives every value back as text."""
    value = store.value(key, default)
    if value is None:
        return default
    try:
        return type(default)(str(value))
    except ValueError:
        return default


def _text(item: QTableWidgetItem | None) -> str:
    return item.text() if item is not None else ""


def selection_text(table: QTableWidget) -> str:
    """The selected cells as tab-separated rows (the whole table with its header when nothing is selected)."""
    cells = sorted((index.row(), index.column()) for index in table.selectedIndexes())
    if not cells:
        header = [_text(table.horizontalHeaderItem(c)) for c in range(table.columnCount())]
        cells = [(r, c) for r in range(table.rowCount()) for c in range(table.columnCount())]
        lines = ["\t".join(header)]
    else:
        lines = []
    rows = sorted({r for r, _ in cells})
    columns = sorted({c for _, c in cells})
    for r in rows:
        lines.append("\t".join(_text(table.item(r, c)) for c in columns))
    return "\n".join(lines)


class MainWindow(QMainWindow):
    """``settings`` and ``data_dir`` default to the user's; tests pass temporary ones."""

    def __init__(self, settings: QSettings | None = None, data_dir: str | Path | None = None,
                 model: LoadedModel | None = None) -> None:
        super().__init__()
        self.store = settings if settings is not None else app_settings()
        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        self.model = model or load_default()
        self.session_controller = SessionController(
            self, self.store, autosave_path(data_dir if data_dir is not None else location), self)
        self.session_controller.title_changed.connect(self._show_title)
        self.session_controller.saved.connect(self._session_saved)
        self._pending_snapshot: Any = None
        self._last_draw = (0.0, 0.0)  # (wall clock, GUI thread CPU time) when the last snapshot was drawn
        self._running_panel: Panel | None = None
        self._run_started = 0.0  # time.monotonic() at the last Start
        self._tray: QSystemTrayIcon | None = None
        self._progress: dict[Panel, Any] = {}  # per tab, the snapshot its status bar shows
        self.error_dialog: QMessageBox | None = None
        self.export_dialog: ExportDialog | None = None
        self.shortcuts_dialog: ShortcutsDialog | None = None

        self.engine = EngineThread(self)
        self.commands = ActionRegistry(self)  # not "actions": that would hide QWidget.actions()
        self.panels: list[Panel] = build_panels()
        self._other_runs: dict = {}  # runs of the open session no panel shows: kept, saved back
        self._run_names: dict[tuple[str, str], str] = {}  # (panel, kind) → its run's name when not the kind
        self._other_models: dict = {}
        self._other_inputs: dict = {}
        self._run_dates: dict[str, dict[str, str]] = {}  # run name → created/modified (Session.run_dates)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for panel in self.panels:
            self.tabs.addTab(panel, panel.title)
            panel.restore({}, self.model)
        self._default_panel_settings = {panel.name: panel.settings() for panel in self.panels}  # Restore defaults
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)
        self.runs_dock = RunsDock(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.runs_dock)
        self.runs_dock.compare_requested.connect(self.compare_runs)
        self.compare_window: CompareWindow | None = None
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()

        self.repaint_timer = QTimer(self)
        self.repaint_timer.setInterval(1000 // REPAINT_HZ)
        self.repaint_timer.timeout.connect(self._repaint_within_budget)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_SECONDS * 1000)
        self.autosave_timer.timeout.connect(self.autosave)  # the window's: it knows whether a panel has results

        self.engine.snapshot.connect(self._on_snapshot)
        self.engine.run_finished.connect(lambda snap: self._run_ended(snap, "Run finished"))
        self.engine.run_cancelled.connect(lambda snap: self._run_ended(snap, "Run stopped; Start continues it"))
        self.engine.run_failed.connect(self._run_failed)
        self.engine.task_failed.connect(self._task_failed)
        self.engine.busy_changed.connect(self._busy_changed)

        self.setAcceptDrops(True)
        self._install_key_filters()
        self.resize(*DEFAULT_SIZE)
        # On a short screen the Runs list starts as one line: the plots keep the height they need.
        self.runs_dock.set_collapsed(self._short_screen())
        self.resizeDocks([self.runs_dock], [LIST_HEIGHT], Qt.Orientation.Vertical)
        self._default_layout = self._layout_state()  # what View > Reset layout goes back to
        self._restore_settings()
        self._session_models_changed()
        self._show_model()
        self._update_actions()
        self.session_controller.refresh_title()

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
        file_menu.addAction(actions["session_info"])
        file_menu.addSeparator()
        file_menu.addAction(actions["quit"])
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(actions["reset_layout"])
        view_menu.addSeparator()
        runs_action = self.runs_dock.toggleViewAction()
        runs_action.setText("&Runs list")
        view_menu.addAction(runs_action)
        view_menu.addAction(actions["compare_runs"])
        actions["compare_runs"].triggered.connect(lambda: self.compare_runs())
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(actions["start_pause"])
        run_menu.addAction(actions["stop"])
        run_menu.addSeparator()
        run_menu.addAction(actions["copy_command"])
        settings_menu = self.menuBar().addMenu("Se&ttings")
        settings_menu.addAction(actions["trusted_models"])
        settings_menu.addAction(actions["restore_defaults"])
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(actions["guide"])
        help_menu.addAction(actions["shortcuts"])
        help_menu.addAction(actions["open_log_folder"])
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
        actions["trusted_models"].triggered.connect(self.show_trusted_models)
        actions["restore_defaults"].triggered.connect(self.ask_restore_defaults)
        actions["open_log_folder"].triggered.connect(self.open_log_folder)
        actions["session_info"].triggered.connect(self.show_session_info)
        actions["reset_layout"].triggered.connect(self.reset_layout)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Run")
        toolbar.setObjectName("run_toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.commands["start_pause"])
        toolbar.addAction(self.commands["stop"])
        for name in ("start_pause", "stop"):  # Tab reaches them (toolbar buttons take no focus by default)
            toolbar.widgetForAction(self.commands[name]).setFocusPolicy(Qt.FocusPolicy.TabFocus)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Model "))
        self.model_button = QToolButton()
        self.model_button.setObjectName("model_button")
        self.model_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.model_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        model_menu = QMenu(self.model_button)
        model_menu.addAction("Bundled MNIST CNN", lambda: self.choose_model("default"))
        for source, label in MODEL_SOURCES.items():
            model_menu.addAction(f"{label}…", partial(self.choose_model, source))
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
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("run_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setToolTip("Progress of the shown tab's run")
        self.statusBar().addPermanentWidget(self.progress_bar)
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
        options: dict[str, Any] = {}
        spec, weights = "default", None
        if source != "default":
            dialog = ModelDialog(source, self)
            saved = stored(self.store, "model_dialog", "")
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

    def _trust_and_load(self, model: SealedModel) -> bool:
        """Ask whether to trust a code-bearing model read from a session; load it if so (False: not trusted)."""
        sha = model.archive_sha256()
        if sha is None:  # its archive is missing: there is nothing to trust
            self.show_error("Could not load the model", untrusted_message(model))
            return False
        answer = QMessageBox.question(self, "Run code from this file?", trust_question(model),
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self.statusBar().showMessage("Not started: the session's TorchScript model was not trusted", 8000)
            return False
        remember_trust(sha, f"TorchScript model ({model.label})", model.origin)
        try:
            loaded = unseal(model, (sha,))
        except ValueError as exc:
            self.show_error("Could not load the model", str(exc))
            return False
        if model is self.model:
            self.model = loaded
            for panel in self.panels:
                panel.adopt_model(loaded)
            self._show_model()
        self._other_models = {name: loaded if known is model else known for name, known in self._other_models.items()}
        return True

    def show_trusted_models(self) -> None:
        TrustedModelsDialog(self).exec()

    def _show_model(self) -> None:
        shape = "×".join(str(s) for s in self.model.input_spec.shape)
        sealed = " (not loaded: code, asks on Start)" if self.model.sealed else ""
        self.model_button.setText(f"{self.model.display_name}{sealed}  ")
        self.model_button.setToolTip(f"{self.model.display_name}: {self.model.n_classes} classes, input {shape}. "
                                     + ("A TorchScript model stored in the session: it runs code, so it is loaded "
                                        "only when you trust it. " if self.model.sealed else "")
                                     + "Click to choose another model.")

    # --- keys and drops ---

    def _install_key_filters(self) -> None:
        """Space reaches Start/Pause from spin boxes and combo boxes (they have no use for it); Ctrl+C in a table
        copies its selection, not one cell. The mouse wheel changes a value only in the field that has the focus
        (a click or Tab gives it): over any other it scrolls the panel, so scrolling never edits a setting."""
        for widget in (*self.findChildren(QAbstractSpinBox), *self.findChildren(QComboBox),
                       *self.findChildren(QSlider)):
            widget.installEventFilter(self)
            # Wheel-driven values take no focus from the wheel: only a click or Tab focuses them.
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            if isinstance(widget, QAbstractSpinBox):
                field = widget.findChild(QLineEdit)
                if field is not None:
                    field.installEventFilter(self)
        for table in self.findChildren(QTableWidget):
            table.installEventFilter(self)
        # Tab stops only where something visibly takes the keyboard: not the frames that scroll a panel, not plots.
        for area in self.findChildren(QAbstractScrollArea):
            if type(area) is QScrollArea:
                area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            elif isinstance(area, QGraphicsView):
                area.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        # After a menu closes with Esc the menu bar keeps the keyboard, and would swallow the next Esc (Stop).
        self.menuBar().installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, (QAbstractSpinBox, QComboBox, QSlider)) \
                and not watched.hasFocus():
            return self._scroll_instead(watched, event)
        if watched is self.menuBar() and event.type() == QEvent.Type.KeyPress \
                and event.key() == Qt.Key.Key_Escape and QApplication.activePopupWidget() is None:
            self.menuBar().setActiveAction(None)  # type: ignore[arg-type]  # Qt takes nullptr; the stubs omit it
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

    @staticmethod
    def _scroll_instead(widget, event) -> bool:
        """Hand a wheel event over an unfocused value field to the scroll area around it (none: dropped)."""
        area = widget.parent()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parent()
        if area is not None:
            bar = area.horizontalScrollBar() if event.angleDelta().y() == 0 else area.verticalScrollBar()
            QApplication.sendEvent(bar, event)
        return True

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
        return self.panels[self.tabs.currentIndex()]  # the tabs are the panels, in order (not movable)

    def _run_panel(self) -> Panel:
        """The panel whose run the engine runs: start_run sets it before the engine starts a run, and the run's
        end clears it, so it is there whenever the engine runs."""
        panel = self._running_panel
        assert panel is not None, "no run in progress"
        return panel

    @Slot()
    def toggle_run(self) -> None:
        """Space: start when idle, otherwise pause or resume."""
        if not self.engine.running:
            self.start_run()
        elif self.engine.paused:
            self.engine.resume()
            self._run_panel().set_paused(False)
            self.statusBar().clearMessage()
        else:
            self.engine.pause()
            self._run_panel().set_paused(True)
            self.statusBar().showMessage("Paused")
            self.rate_label.setText("paused")
            self.eta_label.setText("ETA —")
        self._update_actions()

    def start_run(self) -> None:
        panel = self.current_panel()
        kind = panel.active_kind()
        # A new run never replaces one, saved or not: the current run stays in the session (Runs dock) under its
        # name and the new run gets a name of its own.
        starts_over = panel.plan().action == "new" and panel.has_results()
        previous = panel.states.get(kind), panel.session_inputs().get(kind)  # before the factory replaces them
        if isinstance(self.model, SealedModel) and not self._trust_and_load(self.model):
            return
        if panel.start_in_panel(self.model, self.device()):  # a person answers in the panel's own run screen
            self.dirty = True
            return
        try:
            factory = panel.experiment_factory(self.model, self.device(), self.current_session())
        except UntrustedModelError as exc:  # an extra model the run reads
            model = getattr(exc, "model", None)  # set where unseal refused it; then the user can trust it
            if not isinstance(model, SealedModel):
                self.show_error("Cannot start", str(exc))
            elif self._trust_and_load(model):
                self.start_run()
            return
        except ValueError as exc:
            self.show_error("Cannot start", str(exc))
            return
        note = self._set_aside(panel, kind, *previous) if starts_over else ""
        self._run_dates.setdefault(self._run_name(panel, kind), {"created": utc_now()})
        self._running_panel = panel
        panel.set_running(True)
        self.engine.start_run(factory)
        self._run_started = time.monotonic()
        self.dirty = True  # a running run is unsaved work from its first unit
        self.statusBar().showMessage(f"Running… {note}".strip())

    def _run_name(self, panel: Panel, kind: str) -> str:
        """The name in the session of ``panel``'s run of ``kind`` (the kind, unless it was named otherwise)."""
        return self._run_names.get((panel.name, kind), kind)

    def _set_aside(self, panel: Panel, kind: str, state, inputs: dict | None) -> str:
        """Keep the panel's current run in the session under its name; the panel's new run gets a fresh name.

        Returns a note for the status bar."""
        name = self._run_name(panel, kind)
        self._other_runs[name] = state
        if inputs:
            self._other_inputs[name] = inputs
        fresh = self.current_session().new_run_name(kind)
        self._run_names[(panel.name, kind)] = fresh
        return f"(new run {fresh!r}; the run {name!r} stays in the session)"

    # --- every run of the session (the Runs dock) ---

    def shown_run(self, name: str) -> tuple[Panel, str] | None:
        """(panel, kind) when run ``name`` is the one its panel shows and Start continues, else None."""
        for panel in self.panels:
            for kind in panel.session_states():
                if self._run_name(panel, kind) == name:
                    return panel, kind
        return None

    def running_run(self) -> str | None:
        """The name of the run in progress (None when none runs)."""
        panel = self._running_panel
        return self._run_name(panel, panel.running_kind) if panel is not None and panel.running_kind else None

    def run_dates(self, name: str) -> dict[str, str]:
        """{"created", "modified"} of a run, as far as known (an unsaved run has no "modified")."""
        return self._run_dates.get(name, {})

    def _refuse_if_running(self, name: str, what: str) -> None:
        if name == self.running_run():
            raise ValueError(f"run {name!r} is running: stop it before you {what} it")

    def _panel_for(self, kind: str) -> Panel:
        return next(panel for panel in self.panels if kind in panel.specs)

    def _keep_current(self, panel: Panel, kind: str) -> None:
        """The panel's run of ``kind`` (if any) joins the runs no panel shows, under its name."""
        state = panel.states.get(kind)
        if state is not None:
            name = self._run_name(panel, kind)
            self._other_runs[name] = state
            inputs = panel.session_inputs().get(kind)
            if inputs:
                self._other_inputs[name] = inputs

    def show_run(self, name: str) -> Panel:
        """Show run ``name`` in its panel (its tab comes forward) as the run Start continues; the run that panel
        showed stays in the session. ValueError (one line) when that panel's run of this kind is running."""
        from ..core.registry import spec_for_state

        shown = self.shown_run(name)
        if shown is None:
            state = self._other_runs[name]
            kind = spec_for_state(state).kind
            panel = self._panel_for(kind)
            if panel is self._running_panel and panel.running_kind == kind:
                raise ValueError(f"run {self.running_run()!r} is running in {panel.title}: stop it to show another")
            self._keep_current(panel, kind)
            del self._other_runs[name]
            panel.adopt_run(kind, state, self._other_inputs.pop(name, None))
            self._run_names[(panel.name, kind)] = name
            self._redraw(panel)
        else:
            panel = shown[0]
        self.tabs.setCurrentWidget(panel)
        return panel

    def _redraw(self, panel: Panel) -> None:
        preview = panel.preview_factory(self.model)
        if preview is not None:
            self.engine.submit(preview, on_done=lambda shown: self._show_restored(panel, shown),
                               failure_title="Could not show the run")

    def continue_run(self, name: str) -> None:
        """Show run ``name`` in its panel and start it when its settings allow (continue, extend or refit)."""
        if self.engine.running:
            raise ValueError("another run is in progress: stop it first")
        panel = self.show_run(name)
        plan = panel.plan()
        if plan.action not in ("continue", "extend", "refit"):
            raise ValueError(f"run {name!r} cannot continue: {plan.message.rstrip('.')}")
        self.start_run()

    def new_run(self, kind: str, config=None) -> str:
        """An empty new run of ``kind`` in its panel (the form shows ``config`` when given); the panel's current
        run stays in the session. Returns the new run's name (it joins the session when Start measures)."""
        panel = self._panel_for(kind)
        if panel is self._running_panel and panel.running_kind == kind:
            raise ValueError(f"run {self.running_run()!r} is running in {panel.title}: stop it first")
        self._keep_current(panel, kind)
        panel.adopt_run(kind, None, None, config)
        name = self.current_session().new_run_name(kind)
        self._run_names[(panel.name, kind)] = name
        self.tabs.setCurrentWidget(panel)
        self.statusBar().showMessage(f"New run {name!r}: Start measures it", 8000)
        return name

    def duplicate_run(self, name: str) -> str:
        """A new empty run with the settings of run ``name``; returns its name."""
        state = self.current_session().runs[name]
        from ..core.registry import spec_for_state

        return self.new_run(spec_for_state(state).kind, state.config)

    def rename_run(self, old: str, new: str) -> None:
        """Rename run ``old``; the runs that read it follow. ValueError (one line) for a name that cannot be."""
        new = new.strip()
        runs = self.current_session().runs
        if not new or "/" in new or new in (".", ".."):
            raise ValueError(f"{new!r} cannot name a run: use letters, digits, '-' or '_' (no '/')")
        if new in runs or new in self._other_models:
            raise ValueError(f"the session already holds a run or model named {new!r}")
        self._refuse_if_running(old, "rename")
        shown = self.shown_run(old)
        if shown is not None:
            self._run_names[(shown[0].name, shown[1])] = new
        else:
            self._other_runs = {new if key == old else key: value for key, value in self._other_runs.items()}
            if old in self._other_inputs:
                self._other_inputs[new] = self._other_inputs.pop(old)
        if old in self._run_dates:
            self._run_dates[new] = self._run_dates.pop(old)

        def renamed(roles: dict) -> dict:
            return {role: ",".join(new if part == old else part for part in used.split(","))
                    for role, used in roles.items()}

        self._other_inputs = {name: renamed(roles) for name, roles in self._other_inputs.items()}
        for panel in self.panels:
            panel.input_names = {kind: renamed(roles) for kind, roles in panel.input_names.items()}
        self.dirty = True

    def compare_runs(self, first: str | None = None, second: str | None = None) -> CompareWindow:
        """The compare window (one, reused) on runs ``first`` and ``second`` (default: the first two runs)."""
        if self.compare_window is None:
            self.compare_window = CompareWindow(self)
        self.compare_window.compare(self.current_session(), first, second)
        self.compare_window.show()
        self.compare_window.activateWindow()
        return self.compare_window

    def delete_run(self, name: str) -> None:
        """Remove run ``name`` from the session (and the models only it trained); the next save drops it."""
        self._refuse_if_running(name, "delete")
        session = self.current_session()
        state = session.runs[name]
        shown = self.shown_run(name)
        if shown is not None:
            panel, kind = shown
            panel.adopt_run(kind, None, None, state.config)
            self._run_names[(panel.name, kind)] = session.new_run_name(kind)  # never a name another run holds
            self._redraw(panel)
        else:
            del self._other_runs[name]
        self._other_inputs.pop(name, None)
        self._run_dates.pop(name, None)
        still_used = {part for roles in self.current_session().inputs.values() for used in roles.values()
                      for part in used.split(",")}
        for model_name in getattr(state, "made_models", dict)():
            if model_name not in still_used:
                self._other_models.pop(model_name, None)
        self.dirty = True

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
        panel = self._run_panel()
        panel.set_running(False)
        title = panel.title
        self._running_panel = None
        self.eta_label.setText("ETA —")
        self.dirty = True
        self.autosave()
        self.statusBar().showMessage(message, 10000)
        self._session_models_changed()  # the run may have trained models (defences, backdoor, two-class)
        self.runs_dock.refresh()  # its last progress now, not at the dock's next tick
        if time.monotonic() - self._run_started > NOTIFY_AFTER_SECONDS:
            self.notify(f"{title}: {message}")

    def notify(self, message: str) -> None:
        """A desktop notification where the desktop has a tray (else the status bar), and the taskbar entry
        asks for attention."""
        if QSystemTrayIcon.isSystemTrayAvailable():
            if self._tray is None:
                self._tray = QSystemTrayIcon(self.windowIcon(), self)
            self._tray.show()
            self._tray.showMessage("wna-gui", message, QSystemTrayIcon.MessageIcon.Information, 10000)
        else:
            self.statusBar().showMessage(message, 30000)
        QApplication.alert(self)

    @Slot(str, str)
    def _run_failed(self, message: str, details: str) -> None:
        self._pending_snapshot = None
        self._run_panel().set_running(False)
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
        total = getattr(snapshot, "samples_total", 0)
        self.progress_bar.setValue(round(1000 * snapshot.samples_done / total) if total else 0)
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

    # --- sessions (the file behind them: self.session_controller) ---

    @property
    def dirty(self) -> bool:
        """The session has results that are not in its file."""
        return self.session_controller.dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self.session_controller.dirty = value

    @property
    def session_path(self) -> Path | None:
        """The file the session lives in (None: untitled)."""
        return self.session_controller.path

    @session_path.setter
    def session_path(self, path: Path | None) -> None:
        self.session_controller.path = path

    @property
    def read_only(self) -> bool:
        """The session's file is open read-only (another process writes it): Save asks for another name."""
        return self.session_controller.read_only

    @property
    def autosave_file(self) -> Path:
        return self.session_controller.autosave_file

    def _show_title(self, title: str, modified: bool) -> None:
        self.setWindowTitle(title)
        self.setWindowModified(modified)

    def _confirm_discard(self, title: str = "Unsaved results",
                         text: str = "The current results are not saved.") -> bool:
        """Whether to go on where unsaved results would be lost: Save (then go on), Discard, or Cancel."""
        if not self.dirty:
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self, title, f"{text} Save them first?",
                                      buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == buttons.Save:
            path = self.session_controller.save_path() or self.ask_save_path()
            return path is not None and self.session_controller.save_now(path)
        return answer == buttons.Discard

    def _reset_session(self) -> None:
        self._other_runs, self._other_models, self._other_inputs, self._run_dates = {}, {}, {}, {}
        for panel in self.panels:
            panel.restore({}, self.model)
        self._run_names = {}
        self._progress = {}
        self._show_progress(None)
        self.session_controller.reset()
        self._session_models_changed()

    def _session_models_changed(self) -> None:
        """Panels that pick among the session's models (Robustness) list them again."""
        session = self.current_session()
        for panel in self.panels:
            panel.session_changed(session)

    @Slot()
    def new_session(self) -> None:
        if self._confirm_discard():
            self._reset_session()

    @Slot()
    def open_dialog(self) -> None:
        if not self._confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self.session_controller.session_dir(),
                                              SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path, recovered: bool = False) -> None:
        """Load a session in the engine thread; a recovered autosave opens as an unsaved session."""
        self.session_controller.open_session(path, recovered)

    def ask_open_read_only(self, reason: str) -> bool:
        buttons = QMessageBox.StandardButton
        return QMessageBox.question(self, "Session in use", reason, buttons.Open | buttons.Cancel,
                                    buttons.Open) == buttons.Open

    def adopt_session(self, session: Session) -> None:
        """Show a session that was read: its model, each panel's runs, and keep the runs no panel shows."""
        self.model = session.model
        self._show_model()
        shown = set()
        for panel in self.panels:
            panel.restore(session.runs, self.model, session.inputs)
            shown |= {id(state) for state in panel.session_states().values()}
        self._other_runs = {name: state for name, state in session.runs.items() if id(state) not in shown}
        self._other_models, self._other_inputs, self._run_dates = session.models, session.inputs, session.run_dates
        names = {id(state): name for name, state in session.runs.items()}
        self._run_names = {(panel.name, kind): names[id(state)] for panel in self.panels
                           for kind, state in panel.session_states().items()}
        for panel in self.panels:
            preview = panel.preview_factory(self.model)
            if preview is not None:
                self.engine.submit(preview, on_done=partial(self._show_restored, panel),
                                   failure_title="Could not show the session")
        self._session_models_changed()

    def _show_restored(self, panel: Panel, snapshots: list) -> None:
        for kind, snapshot in snapshots:
            panel.show_snapshot(snapshot, kind)
        self._progress[panel] = snapshots[-1][1]
        if panel is self.current_panel():
            self._show_progress(snapshots[-1][1])

    def current_session(self) -> Session:
        """The window's runs (every panel's and those no panel shows), models and inputs, as a Session."""
        runs, inputs = dict(self._other_runs), dict(self._other_inputs)
        for panel in self.panels:
            panel_inputs = panel.session_inputs()
            for kind, state in panel.session_states().items():
                runs[self._run_name(panel, kind)] = state
                if kind in panel_inputs:
                    inputs[self._run_name(panel, kind)] = panel_inputs[kind]
        control = self.session_controller
        session = Session(self.model, runs, models={**self._other_models, **made_models(runs)},
                          inputs={name: roles for name, roles in inputs.items() if name in runs},
                          origin=str(control.path or ""), path=control.path, fingerprint=control.fingerprint,
                          run_dates={name: dates for name, dates in self._run_dates.items() if name in runs})
        if control.created:
            session.created = control.created
        return session

    def _hold_lock(self, lock: SessionLock | None) -> None:
        """``lock`` becomes the window's (the lock of the file Save writes); the one it held is released."""
        self.session_controller.hold_lock(lock)

    @Slot()
    def save(self) -> None:
        self.session_controller.save()

    @Slot()
    def save_as(self) -> None:
        self.session_controller.save_as()

    def save_to(self, path: str | Path) -> None:
        """Save in the engine thread (mid-run: between batches, so the file is consistent)."""
        self.session_controller.save_to(path)

    def ask_save_path(self) -> Path | None:
        chosen, _ = QFileDialog.getSaveFileName(self, "Save session", self.session_controller.session_dir(),
                                                SESSION_FILTER)
        if not chosen:
            return None
        path = Path(chosen)
        return path if path.suffix.lower() in SESSION_SUFFIXES else path.with_name(path.name + SESSION_SUFFIXES[0])

    def ask_save_as_after(self, error: SessionError) -> bool:
        buttons = QMessageBox.StandardButton
        return QMessageBox.question(
            self, "Could not save the session", f"{error}. The results are still open here; save them to "
            "another file (Save As)?", buttons.Save | buttons.Cancel, buttons.Save) == buttons.Save

    def _session_saved(self, session: Session) -> None:
        self._run_dates = {**self._run_dates, **session.run_dates}

    @Slot()
    def autosave(self) -> None:
        if any(panel.session_states() for panel in self.panels):
            self.session_controller.autosave()

    def offer_recovery(self) -> bool:
        """After a crash, offer the autosaved session. Returns whether it is being recovered."""
        return self.session_controller.offer_recovery()

    def ask_recover(self, description: str) -> bool:
        return QMessageBox.question(
            self, "Recover session", f"wna-gui did not close cleanly last time. {description} "
            "Recover it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes) == QMessageBox.StandardButton.Yes

    def recent_files(self) -> list[str]:
        return self.session_controller.recent_files()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(path, partial(self._open_recent, path))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.session_controller.clear_recent)
        else:
            self.recent_menu.addAction("No recent sessions").setEnabled(False)

    def _open_recent(self, path: str) -> None:
        if self._confirm_discard():
            self.open_session(path)

    # --- export, help, errors ---

    @Slot()
    def open_export_dialog(self) -> None:
        directory = stored(self.store, "export_dir", "") or self.session_controller.session_dir()
        stem = self.session_path.name.split(".")[0] if self.session_path else "unsaved"
        dialog = ExportDialog(self.current_panel().export_targets(), directory, self, stem, self.export_size())
        dialog.exported.connect(lambda path: self._exported(path, dialog.figure_size()))
        self.export_dialog = dialog
        dialog.open()

    def export_size(self) -> FigureSize:
        """The figure size last chosen in the export dialog (default: double column, 300 dpi)."""
        default = FigureSize()
        try:
            return FigureSize(stored(self.store, "export_width_mm", default.width_mm),
                              stored(self.store, "export_dpi", default.dpi))
        except ValueError:  # a size out of range
            return default

    def _exported(self, path: Path, size: FigureSize) -> None:
        self.store.setValue("export_dir", str(path.parent))
        self.store.setValue("export_width_mm", size.width_mm)
        self.store.setValue("export_dpi", size.dpi)
        self.statusBar().showMessage(f"Exported {path} ({size.describe()})", 5000)

    @Slot()
    def export_all_dialog(self) -> None:
        directory = QFileDialog.getExistingDirectory(self, "Export all results to a folder",
                                                     stored(self.store, "export_dir", "")
                                                     or self.session_controller.session_dir())
        if directory:
            self.export_all(Path(directory))

    def export_all(self, folder: Path) -> None:
        """Every run's artefacts into ``folder`` (the files `wna export` writes), in the engine thread."""
        runs = self.current_session().runs
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

    @Slot()
    def open_log_folder(self) -> None:
        log_file = current_log_file() or default_log_file()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file.parent))):
            self.show_error("Open log folder", f"No file manager opened {log_file.parent}; the log is {log_file}")

    @Slot()
    def ask_restore_defaults(self) -> None:
        answer = QMessageBox.question(
            self, "Restore defaults",
            "Forget the window layout, the device, every panel's settings, the recent files and the export folder "
            "and figure size? Trusted models are kept; the open session is not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.restore_defaults()

    def restore_defaults(self) -> None:
        """Empty the settings store and show the defaults now (`wna settings --reset` empties the same store)."""
        path, keys = reset_app_settings(self.store)
        log.info("restored defaults: removed %d setting(s) from %s", len(keys), path)
        for panel in self.panels:
            panel.apply_settings(self._default_panel_settings[panel.name])
        self.device_combo.setCurrentIndex(0)
        self.tabs.setCurrentIndex(0)
        self.reset_layout()
        self.statusBar().showMessage(f"Restored the default settings ({len(keys)} removed)", 8000)

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
            log.error("%s: %s\n%s", title, message, details.rstrip())
            log_file = current_log_file()
            if log_file is not None:  # what a bug report needs, also after the box is closed
                box.setInformativeText(f"The details are in the log: {log_file} (Help > Open log folder).")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_dialog = box

    # --- persistence and closing ---

    def _restore_settings(self) -> None:
        store = self.store
        if store.contains("window/geometry"):
            self.restoreGeometry(store.value("window/geometry"))
        else:
            self.resize(*DEFAULT_SIZE)
        runs_list = stored(store, "window/runs_list", "")
        if runs_list in ("collapsed", "expanded"):  # the user's choice outlives the screen's default
            self.runs_dock.set_collapsed(runs_list == "collapsed")
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
        self.tabs.setCurrentIndex(stored(store, "window/tab", 0))

    def _short_screen(self) -> bool:
        screen = self.screen()
        return screen is not None and screen.availableGeometry().height() < COMPACT_SCREEN_HEIGHT

    def _layout_state(self) -> tuple:
        return self.saveState(), {(panel.name, splitter.objectName()): splitter.saveState()
                                  for panel in self.panels for splitter in panel.findChildren(QSplitter)}

    @Slot()
    def reset_layout(self) -> None:
        """The first launch's window size, toolbar, Runs list and splitters (settings and results stay)."""
        window_state, splitters = self._default_layout
        self.showNormal()
        self.resize(*DEFAULT_SIZE)
        compact = self._short_screen()  # this screen's: the window may have moved since the first launch
        self.runs_dock.set_collapsed(compact)
        self.restoreState(window_state)
        if not compact:
            self.resizeDocks([self.runs_dock], [LIST_HEIGHT], Qt.Orientation.Vertical)
        for panel in self.panels:
            for splitter in panel.findChildren(QSplitter):
                state = splitters.get((panel.name, splitter.objectName()))
                if state is not None:
                    splitter.restoreState(state)
        self.statusBar().showMessage("Layout reset", 5000)

    @Slot()
    def show_session_info(self) -> None:
        """What `wna info` prints about this session (unsaved results included), in a dialog."""
        import tempfile

        from ..cli import info_lines, session_summary

        session, path, dirty = self.current_session(), self.session_path, self.dirty

        def summarise() -> str:
            if path is not None and not dirty:
                return "\n".join(info_lines(session_summary(path)))
            with tempfile.TemporaryDirectory() as folder:  # `wna info` reads files: give it the unsaved session
                copy = save_session(session, Path(folder) / "session.h5")
                summary = session_summary(copy)
            summary["file"] = f"{path.name if path else 'Untitled'} (unsaved changes included)"
            return "\n".join(info_lines(summary))

        self.statusBar().showMessage("Reading the session…")
        self.engine.submit(summarise, on_done=self._show_session_info, failure_title="Could not read the session")

    def _show_session_info(self, text: str) -> None:
        self.statusBar().clearMessage()
        dialog = QDialog(self)
        dialog.setWindowTitle("Session info")
        view = QPlainTextEdit(text)
        view.setObjectName("session_info_text")
        view.setReadOnly(True)
        view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(view)
        layout.addWidget(buttons)
        dialog.resize(820, 480)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.session_info_dialog = dialog

    def _store_settings(self) -> None:
        store = self.store
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState())
        store.setValue("window/tab", self.tabs.currentIndex())
        store.setValue("window/runs_list", "collapsed" if self.runs_dock.collapsed else "expanded")
        store.setValue("device", self.device())
        for panel in self.panels:
            store.setValue(f"panels/{panel.name}/settings", json.dumps(panel.settings()))
            for splitter in panel.findChildren(QSplitter):
                store.setValue(f"panels/{panel.name}/{splitter.objectName()}", splitter.saveState())
        store.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Offer to save, stop the engine thread (a run stops between batches), then close."""
        answer = QMessageBox.StandardButton.Discard
        if self.dirty or self.engine.running:
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
            path = self.session_controller.save_path() or self.ask_save_path()
            if path is None:
                event.ignore()
                return
        self.engine.shutdown()
        self.repaint_timer.stop()
        self.autosave_timer.stop()
        saved = True
        if path is not None:
            error = self.session_controller.write_before_close(path)
            if error is not None:
                saved = isinstance(error, SessionConflict)  # then the results are in the side file it names
                QMessageBox.critical(self, "Saved to another file" if saved else "Could not save the session",
                                     describe_error(error)[0] + ("" if saved else ". The last autosave is kept "
                                                                 "for recovery at the next launch."))
        if saved:
            self.autosave_file.unlink(missing_ok=True)
        self._hold_lock(None)
        self._store_settings()
        event.accept()
