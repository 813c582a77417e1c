"""The Panel base class: a tab showing one or more declared experiments.

The base panel does everything the declarations allow: it builds each
experiment's settings form (app.forms), remembers and restores settings,
locks them while running, says what Start will do (core.experiment.plan_run),
prepares the state to run in the engine thread, keeps the session states and
offers every declared artefact in File > Export. A panel module adds only its
views: ``build_views()`` returns the widget shown right of the settings,
``draw(kind, snapshot)`` draws, ``clear_views()`` empties them, and
``view_exports()`` lists "as on screen" exports.

A panel module defines ``PANEL`` (its class); the experiments it shows are
those whose spec names the module in ``panel`` (core.registry).
"""

from __future__ import annotations

from typing import Any, Callable

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from ...core.control import RunControl
from ...core.experiment import ExperimentSpec, RunPlan, plan_run, prepare_state, run_warnings
from ...core.models import LoadedModel
from ...core.runs import resolve_inputs
from ...core.session import Session
from ..dialogs import ExportTarget  # what the export dialog takes; panels declare their exports with it
from ..forms import SettingsForm
from ..plots import FIGURE_FORMATS, add_plot_menu, export_view

SETTINGS_MAX_WIDTH = 420
ExperimentFactory = Callable[[RunControl], Any]  # runs in the engine thread; returns an object with run()/snapshot()


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless vertical scroll area: long text below a plot scrolls instead of squeezing the plot
    (a wrapped label asks for its whole height) or widening the window."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class Panel(QWidget):
    name: str = ""  # the panel module's name: its key in the remembered settings
    title: str = ""

    def __init__(self, specs: list[ExperimentSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs = {spec.kind: spec for spec in specs}
        self.title = self.title or specs[0].title
        self.model: LoadedModel | None = None
        self.states: dict[str, Any] = {}  # kind → the state Start continues (or None)
        self.snapshots: dict[str, Any] = {}  # kind → latest snapshot drawn
        self.input_names: dict[str, dict[str, str]] = {}  # kind → {role: run or model name} it read
        self.running_kind: str | None = None
        self.paused = False
        self.forms = {kind: SettingsForm(spec.config) for kind, spec in self.specs.items()}
        self.plan_label = QLabel()
        self.plan_label.setObjectName("plan_label")
        self.plan_label.setWordWrap(True)
        column = QWidget()
        column_layout = QVBoxLayout(column)
        for form in self.forms.values():
            column_layout.addWidget(form)
            form.edited.connect(self._settings_edited)
        column_layout.addWidget(self.plan_label)
        self.extra_settings = QVBoxLayout()  # display options a panel adds below the forms
        column_layout.addLayout(self.extra_settings)
        column_layout.addStretch(1)
        self.settings_area = QScrollArea()
        self.settings_area.setWidget(column)
        self.settings_area.setWidgetResizable(True)
        self.settings_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.settings_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        views = self.build_views()
        # Every plot of the panel exports itself on right-click, as File > Export writes it (plots with a menu
        # of their own already offer it).
        for plot in [views, *views.findChildren(pg.GraphicsView)]:
            if isinstance(plot, pg.GraphicsView) and \
                    plot.contextMenuPolicy() != Qt.ContextMenuPolicy.CustomContextMenu:
                add_plot_menu(plot)
        self.warning_strip = QLabel()
        self.warning_strip.setObjectName("warning_strip")
        self.warning_strip.setWordWrap(True)
        self.warning_strip.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_strip.setToolTip("Why these results may not mean much (what `wna info` reports as warnings)")
        self.warning_strip.setStyleSheet("QLabel { background: #fff3c4; color: #3d2e00; border: 1px solid #e0c050;"
                                         " border-radius: 3px; padding: 3px 6px; }")
        self.warning_strip.hide()
        # Views wider or taller than the room they get scroll instead of widening the window (it fits 1024 px).
        view_area = QScrollArea()
        view_area.setObjectName("view_area")
        view_area.setWidget(views)
        view_area.setWidgetResizable(True)
        view_area.setFrameShape(QScrollArea.Shape.NoFrame)
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.warning_strip)
        right.addWidget(view_area, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.settings_area)
        layout.addLayout(right, 1)
        self._show_active_form()
        # The settings column never takes more than SETTINGS_MAX_WIDTH: the window fits 1024 px screens.
        wanted = max(column.sizeHint().width(), *(f.sizeHint().width() for f in self.forms.values())) + 40
        self.settings_area.setFixedWidth(min(wanted, SETTINGS_MAX_WIDTH))

    # --- what a panel module provides ---

    def build_views(self) -> QWidget:
        raise NotImplementedError

    def draw(self, kind: str, snapshot: Any) -> None:
        raise NotImplementedError

    def clear_views(self) -> None:
        raise NotImplementedError

    def view_exports(self) -> list[ExportTarget]:
        return [ExportTarget("Whole panel (as on screen)", FIGURE_FORMATS, lambda path: export_view(self, path))]

    def active_kind(self) -> str:
        """The experiment Start runs (panels showing several choose by their view)."""
        return next(iter(self.specs))

    def view_settings(self) -> dict:
        return {}

    def apply_view_settings(self, values: dict) -> None:
        pass

    def form_changed(self, kind: str) -> None:
        """Hook: a setting of ``kind``'s form changed (e.g. to link one setting to another)."""

    # --- settings ---

    def _show_active_form(self) -> None:
        active = self.active_kind()
        for kind, form in self.forms.items():
            form.setVisible(kind == active)
        self.plan_label.setText(self.plan_text())
        self.show_warnings()

    def fit_figure(self, view, figure) -> None:
        """A figure grid's lines of text (a legend line) wrap at the panel's visible width, and a grid whose plots
        need more room than that makes the panel scroll sideways instead of cutting titles (the window keeps to
        1024 px)."""
        shown = self.findChild(QScrollArea, "view_area")  # the panel's visible width, not the view's own
        left, _, right, _ = figure.layout.getContentsMargins()  # the grid's own margins are beside the text
        room = max((shown.viewport().width() if shown is not None else view.width()) - 16 - round(left + right), 200)
        for item in figure.items:
            if isinstance(item, pg.LabelItem) and item.item.textWidth() != room:
                item.item.setTextWidth(room)
                item.setAttr("justify", "left")  # from the visible left edge, whatever the grid's width
                item.updateMin()
                item.resizeEvent(None)
        need = int(figure.effectiveSizeHint(Qt.SizeHint.MinimumSize).width()) + 4
        if need != view.minimumWidth():
            view.setMinimumWidth(need)

    def show_warnings(self) -> None:
        """The warning strip: what the core warns about the shown run (core.experiment.run_warnings)."""
        kind = self.running_kind or self.active_kind()
        state, snapshot = self.states.get(kind), self.snapshots.get(kind)
        lines = run_warnings(self.specs[kind], state, snapshot) if state is not None and snapshot is not None else []
        text = "\n".join(f"⚠ {line}" for line in lines)
        if text != self.warning_strip.text():
            self.warning_strip.setText(text)
        self.warning_strip.setVisible(bool(lines))

    def _settings_edited(self) -> None:
        for kind, form in self.forms.items():
            if form is self.sender():
                self.form_changed(kind)
        self.plan_label.setText(self.plan_text())

    def plan(self) -> RunPlan:
        """What Start will do with the settings shown (action "invalid" when they cannot run)."""
        kind = self.active_kind()
        try:
            config = self.forms[kind].config()
        except (ValueError, TypeError) as exc:
            return RunPlan("invalid", f"Invalid settings: {exc}")
        return plan_run(self.specs[kind], self.states.get(kind), config)

    def plan_text(self) -> str:
        """What Start will do, so continuing, extending, refitting or restarting is never a surprise."""
        if self.running_kind is not None:
            return ("Paused: Start (Space) resumes, Stop (Esc) ends the run; both keep the results."
                    if self.paused else "Running…")
        return self.plan().message

    def progress_unit(self) -> str:
        """The unit the status bar counts in for the experiment shown or running (samples, stimuli…)."""
        return self.specs[self.running_kind or self.active_kind()].unit

    def has_results(self, kind: str | None = None) -> bool:
        """Whether the experiment shown (or ``kind``) holds measured results."""
        state = self.states.get(kind or self.active_kind())
        return state is not None and state.progress_done > 0

    def current_config(self):
        """The config of the form shown (ValueError, one line, when it cannot run)."""
        return self.forms[self.active_kind()].config()

    def settings(self) -> dict:
        """Every form's widget values and the view options, JSON-friendly, remembered between launches."""
        return {"forms": {kind: form.values() for kind, form in self.forms.items()}, "view": self.view_settings()}

    def apply_settings(self, values: dict) -> None:
        for kind, form_values in values.get("forms", {}).items():
            if kind in self.forms:
                self.forms[kind].set_values(form_values)
        self.apply_view_settings(values.get("view", {}))
        self._show_active_form()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.plan_label.setText(self.plan_text())

    def set_running(self, running: bool) -> None:
        """Lock the settings while a run is between units."""
        self.running_kind = self.active_kind() if running else None
        self.paused = False
        for form in self.forms.values():
            form.set_locked(running)
        self.plan_label.setText(self.plan_text())

    # --- running (called in the GUI thread) ---

    def experiment_factory(self, model: LoadedModel, device: str, session: Session | None = None
                           ) -> ExperimentFactory:
        """A factory the engine thread calls to build the experiment; ValueError (one line) when nothing can run.

        ``session`` (the window's runs and models) supplies the inputs the
        experiment requires: those the run recorded, else the defaults.
        The state is prepared in the engine thread (a new one may load images).
        """
        kind = self.active_kind()
        spec, config = self.specs[kind], self.forms[kind].config()
        state = self.states.get(kind)
        plan = plan_run(spec, state, config)
        if not plan.runnable:
            raise ValueError(plan.message.rstrip("."))
        if plan.action == "new":  # nothing of the replaced run stays on screen (curves, legends)
            self.snapshots.pop(kind, None)
            self.clear_views()
        inputs: dict[str, Any] = {}
        if spec.requires:
            session = session or Session(model)
            recorded = session.inputs.get(kind, {}) if plan.action != "new" else {}
            self.input_names[kind], inputs = resolve_inputs(spec, session, recorded)

        def build(control: RunControl):
            prepared = prepare_state(spec, state, config, model, **inputs)
            experiment = spec.experiment(model, state=prepared, device=device, control=control, **inputs)
            self.states[kind] = experiment.state
            return experiment

        return build

    def start_in_panel(self, model: LoadedModel, device: str) -> bool:
        """Hook for runs the engine cannot drive (a person answering in a run screen): start it and return True."""
        return False

    def preview_factory(self, model: LoadedModel) -> Callable[[], list] | None:
        """A callable (engine thread) returning (kind, snapshot) of every restored state, the active kind last.

        Snapshots come from the states alone; model-dependent extras are added from ``model`` on the CPU.
        """
        states = dict(self.states)
        if not any(state is not None for state in states.values()):
            return None
        active = self.active_kind()
        order = sorted((kind for kind, state in states.items() if state is not None), key=lambda k: k == active)
        return lambda: [(kind, self.specs[kind].snapshot(states[kind], model)) for kind in order]

    def show_snapshot(self, snapshot: Any, kind: str | None = None) -> None:
        kind = kind or self.running_kind or self.active_kind()
        self.snapshots[kind] = snapshot
        self.draw(kind, snapshot)
        self.show_warnings()

    # --- sessions ---

    def session_states(self) -> dict[str, Any]:
        """Run name → state to save (a panel keeps one run per kind, named after the kind)."""
        return {kind: state for kind, state in self.states.items() if state is not None}

    def session_inputs(self) -> dict[str, dict[str, str]]:
        """Run name → the inputs it read {role: run or model name}, for the runs this panel saves."""
        return {kind: names for kind, names in self.input_names.items() if self.states.get(kind) is not None}

    def restore(self, runs: dict[str, Any], model: LoadedModel, inputs: dict | None = None) -> None:
        """Adopt a session's runs of this panel's kinds (settings included); an empty dict resets the panel."""
        from ...core.registry import spec_for_state

        self.model = model
        for form in self.forms.values():
            form.set_model(model)
        self.states, self.snapshots = {}, {}
        self.input_names = {kind: names for kind, names in (inputs or {}).items() if kind in self.specs}
        for name, state in runs.items():
            kind = spec_for_state(state).kind
            if kind in self.specs and (name == kind or kind not in self.states):
                self.states[kind] = state
        for kind, state in self.states.items():
            self.forms[kind].set_config(state.config)
        self.clear_views()
        self.restored()
        self._show_active_form()

    def adopt_run(self, kind: str, state, inputs: dict | None = None, config=None) -> None:
        """Make ``state`` this panel's run of ``kind`` (None: an empty new run whose form shows ``config``) and
        show that kind; the other kinds' views stay. The caller draws the state's snapshot (preview_factory)."""
        self.states[kind] = state
        if inputs:
            self.input_names[kind] = inputs
        else:
            self.input_names.pop(kind, None)
        self.snapshots.pop(kind, None)
        config = state.config if state is not None else config
        if config is not None:
            self.forms[kind].set_config(config)
        if len(self.specs) > 1:  # panels of several kinds pick the one shown by their "view" setting
            self.apply_view_settings({**self.view_settings(), "view": kind})
        self.clear_views()
        for other, snapshot in list(self.snapshots.items()):
            self.draw(other, snapshot)
        self._show_active_form()
        self.show_warnings()

    def adopt_model(self, model: LoadedModel) -> None:
        """The session's own model, now loaded (a TorchScript model the user trusted): the forms offer its layers
        and classes again (settings waiting for them come back); runs and views stay as they are."""
        self.model = model
        for form in self.forms.values():
            form.set_model(model)

    def restored(self) -> None:
        """Hook: the states were replaced (choose the view to show, say)."""

    def session_changed(self, session: Session) -> None:
        """Hook: the window's session (its runs and models) changed: opened, reset, or a run made models."""

    # --- export ---

    def export_targets(self) -> list[ExportTarget]:
        """Every artefact the shown experiments declare (the same writers as `wna export`), then the views."""
        targets = []
        for kind, spec in self.specs.items():
            for artefact in spec.artefacts:
                def write(path, kind=kind, artefact=artefact):  # bound now: the loop moves on
                    return artefact.write(self.exported_snapshot(kind), path)

                targets.append(ExportTarget(artefact.label, artefact.suffixes, write))
        return targets + self.view_exports()

    def exported_snapshot(self, kind: str):
        snapshot = self.snapshots.get(kind)
        if snapshot is None:
            raise ValueError(f"nothing to export yet: run the {self.specs[kind].title.lower()} or open a session")
        annotate = self.specs[kind].annotate
        return annotate(snapshot, self.model) if annotate is not None and self.model is not None else snapshot
