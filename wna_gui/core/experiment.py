"""What an experiment is: its declaration (ExperimentSpec), the base of its runs, and the run rules.

An experiment is declared once, in its core module, as an ExperimentSpec:
kind, CLI command, config (a dataclass of declared params), state, unit of
work, exported artefacts, record version and migrations, inputs it needs.
The registry (``core.registry``) lists the specs; from it come the `wna run`
subcommands, `wna info` and `wna export`, session (de)serialisation and the
app's tabs. See docs/architecture.md for a walk-through of adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, cast

from .control import RunControl
from .driver import drive
from .models import LoadedModel
from .params import changed_roles, params
from .runtime import Runtime

if TYPE_CHECKING:
    import torch

    from .driver import Work


FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


@cache
def resolve_reference(reference: str) -> Callable:
    """The function a ``"package.module:function"`` reference names, imported on first use.

    Artefacts name their figure writers this way: figures import the core (for
    the snapshots they draw), so the core naming them by reference keeps the
    import graph one-way and Qt out of runs that never draw
    (tests/test_layering.py; tests/test_contract.py resolves every reference).
    """
    module, _, name = reference.partition(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class Artefact:
    """One exported result, written the same way by `wna export` and File > Export.

    ``write(snapshot, path)`` picks the format from the path's suffix and
    returns the path: the figure formats (.png, .pdf, .svg) by ``figure``, a
    reference to a headless writer ``function(snapshot, path, **options)`` in
    ``wna_gui.figures``; the others (.npz, .csv, .npy) by ``write_data``.
    `wna export` writes ``name`` + each suffix; ``variant`` groups artefacts
    that `wna export --view` can pick between (map views).
    ``available(snapshot)`` says whether there is anything to write yet.
    """

    name: str
    label: str
    suffixes: tuple[str, ...]
    write_data: Callable[[Any, Path], Path] | None = None
    figure: str = ""  # "wna_gui.figures.<module>:<function>", resolved on first use
    variant: str = ""
    available: Callable[[Any], bool] = lambda snapshot: True
    options: tuple[tuple[str, Any], ...] = ()  # keywords the figure writer takes (a map view)

    def __post_init__(self) -> None:
        if self.figure:  # every figure is written at paper size as PNG, PDF and SVG (figures.page), never fewer
            data = tuple(suffix for suffix in self.suffixes if suffix not in FIGURE_SUFFIXES)
            object.__setattr__(self, "suffixes", data + FIGURE_SUFFIXES)

    def write(self, snapshot, path) -> Path:
        path = Path(path)
        if self.figure and (self.write_data is None or path.suffix.lower() in FIGURE_SUFFIXES):
            return resolve_reference(self.figure)(snapshot, path, **dict(self.options))
        assert self.write_data is not None  # an artefact without a figure writes data
        return self.write_data(snapshot, path)


@dataclass(frozen=True)
class Requirement:
    """An input a run reads: a run of another kind in the same session, or extra named models.

    The experiment receives it as the keyword ``role``: the other run's state,
    a LoadedModel, or (``many``) a dict name → LoadedModel of every extra model
    chosen. The CLI flag is ``--<role>`` (a run or model name; comma-separated
    names for ``many``); without it the default is the run named after the
    kind, else the kind's last run; for ``many``, every extra model.
    """

    role: str  # the keyword the experiment takes and the name the run records the input under
    kind: str  # an experiment kind, or "model" for an extra named model
    help: str = ""
    optional: bool = False  # the run can do without it
    many: bool = False  # models only: any number of them
    # models only: (extra model, session model) → why they cannot be used together, or None. The default
    # choice (no names given) leaves such models out; naming one still gets the experiment's own error.
    compatible: Callable[[Any, Any], str | None] | None = None

    @property
    def cli(self) -> str:
        return "--" + self.role.replace("_", "-")


@dataclass(frozen=True)
class ExperimentSpec:
    kind: str  # key in session files and settings
    command: str  # `wna run <command>`
    title: str  # the app's tab title
    help: str  # one line for `wna run --help`
    config: type  # frozen dataclass of declared params (core.params)
    # the state class: a RunState or a kind's own (new_run_text, budget_of, to_record/from_record); snapshot()
    # needs no model
    state: Any
    # Experiment subclass: (model, config=None, state=None, device=None, control=None, **inputs)
    experiment: type[Experiment]
    unit: str  # progress unit: samples, stimuli, epochs, steps
    panel: str  # module of wna_gui.app.panels that shows it (several kinds may share one); a plugin's: full name
    artefacts: tuple[Artefact, ...] = ()
    # What a changed setting does to a started run: "extend" (budget), "refit" (fit settings).
    can_extend: bool = False
    can_refit: bool = False
    record_version: int = 1
    # version v → function(meta, arrays) → (meta, arrays) of version v + 1
    migrations: dict[int, Callable[[dict, dict], tuple[dict, dict]]] = field(default_factory=dict)
    requires: tuple[Requirement, ...] = ()
    summary: Callable[[Any], dict] | None = None  # state → facts for `wna info --json`
    describe: Callable[[dict], list[str]] | None = None  # those facts → lines for `wna info`
    report: Callable[[Any], list[str]] | None = None  # final snapshot → lines `wna run` prints
    annotate: Callable[[Any, LoadedModel], Any] | None = None  # snapshot + model → snapshot with model extras
    # snapshot → why its results cannot mean much (a model at chance, a mean of few images, a fit at a bound):
    # one line each, shown on the panel's warning strip and printed by `wna info`
    warnings: Callable[[Any], list[str]] | None = None

    def params(self):
        return params(self.config)

    def new_state(self, model: LoadedModel, config, **inputs):
        """A fresh state for ``config`` on ``model`` (nothing measured)."""
        return self.experiment.new_state(model, config, **inputs)

    def snapshot(self, state, model: LoadedModel | None = None):
        """What a saved run shows: from its state alone, plus model-dependent extras when a model is given."""
        snapshot = state.snapshot()
        # A sealed (untrusted, code-bearing) model is never run: the stored results show without its extras.
        if model is not None and not model.sealed and self.annotate is not None:
            snapshot = self.annotate(snapshot, model)
        return snapshot


def defaulted_choices(config) -> list[str]:
    """Multi-choice settings left empty, which silently mean "every choice" (no class ticked: all classes)."""
    return [f"{p.label}: none ticked, so every one is used" for p in params(type(config))
            if p.kind == "multi" and getattr(config, p.name) == ()]


def run_warnings(spec: ExperimentSpec, state, snapshot=None) -> list[str]:
    """What the app's warning strip and `wna info` say about a run: its settings that defaulted to "all", then
    the kind's own warnings on ``snapshot`` (made from ``state`` when not given)."""
    lines = defaulted_choices(state.config)
    if spec.warnings is not None and state.progress_done > 0:
        lines += spec.warnings(snapshot if snapshot is not None else spec.snapshot(state))
    return lines


@dataclass(frozen=True)
class RunPlan:
    """What Start (or `wna run --resume`) will do with a state and the settings now chosen."""

    action: str  # new | continue | extend | refit | complete | invalid
    message: str

    @property
    def runnable(self) -> bool:
        return self.action in ("new", "continue", "extend", "refit")


def plan_run(spec: ExperimentSpec, state, config) -> RunPlan:
    """The continue / extend / refit / restart rules, from the params' roles.

    A changed ``measure`` setting starts a new run; a changed ``fit`` setting
    refits the data measured (where the experiment can); a changed ``budget``
    extends the run; ``runtime`` settings never matter.
    """
    if state is None or state.progress_done == 0:
        return RunPlan("new", spec.state.new_run_text(config))
    roles = changed_roles(state.config, config)
    if "measure" in roles or ("fit" in roles and not spec.can_refit) or ("budget" in roles and not spec.can_extend):
        return RunPlan("new", "Settings differ from the current run: Start begins a new run; the current one stays "
                              "in the session (Runs list).")
    if "budget" in roles:
        wanted = spec.state.budget_of(config)
        if wanted <= state.progress_done:
            return RunPlan("invalid", f"The run has {state.progress_done:,} {spec.unit}; raise the budget to "
                                      "continue it.")
        return RunPlan("extend", f"Start continues the run from {state.progress_done:,} to {wanted:,} {spec.unit}.")
    if "fit" in roles:
        return RunPlan("refit", "Only the fit settings changed: Start refits the measured data without measuring "
                                "again.")
    if state.finished:
        return RunPlan("complete", "The run is complete. Change a setting to start a new one.")
    return RunPlan("continue", f"Start continues the run: {state.progress_done:,} of {state.progress_total:,} "
                               f"{spec.unit} done.")


def prepare_state(spec: ExperimentSpec, state, config, model: LoadedModel, **inputs):
    """The state Start runs under ``config``: a new one, ``state`` continued or extended, or a refitted copy.

    Raises ValueError (one line) when there is nothing to run.
    """
    plan = plan_run(spec, state, config)
    if plan.action == "new":
        return spec.new_state(model, config, **inputs)
    if not plan.runnable:
        raise ValueError(plan.message.rstrip("."))
    if plan.action == "refit":
        state = state.refitted(config)
    if plan.action == "extend":
        state.with_budget(spec.state.budget_of(config))
    state.config = replace(config, **{p.name: getattr(state.config, p.name)
                                      for p in params(spec.config) if p.role in ("measure", "budget", "fit")})
    return state


class Experiment:
    """Base of a run: a state, a Runtime and the Work protocol of core.driver, run by :func:`drive`.

    Subclasses implement ``new_state`` (classmethod), ``pending``,
    ``run_unit`` and ``snapshot``; ``prepare`` and ``after_unit`` default to
    the noise-device check and nothing.
    """

    spec: ExperimentSpec  # set by the module that declares it

    def __init__(self, model: LoadedModel, config=None, state=None, device: str | torch.device | None = None,
                 control: RunControl | None = None, **inputs) -> None:
        self.model = model
        self.inputs = inputs  # other runs and models this run reads (spec.requires)
        if state is None:
            state = self.new_state(model, config if config is not None else self.spec.config(), **inputs)
        self.state = state
        self.control = control or RunControl()
        self.runtime = Runtime(model, device)
        self.device = self.runtime.device
        self.rate = 0.0

    @classmethod
    def new_state(cls, model: LoadedModel, config):
        # each kind adds its own input keywords (spec.requires); none here, so each override's signature fits
        raise NotImplementedError

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def config(self):
        return self.state.config

    @property
    def progress_done(self) -> int:
        return self.state.progress_done

    @property
    def finished(self) -> bool:
        return self.state.finished

    def prepare(self) -> None:
        self.runtime.check_noise_device(self.state)

    def after_unit(self) -> None:
        pass

    def run(self, autosave: Callable[[], object] | None = None, autosave_seconds: float = 0.0,
            context=None) -> Iterator:
        """Run the remaining units, yielding snapshots (see core.driver.drive); with a torchrun ``context``
        (core.distributed) this process's share of the blocks, rank 0 yielding the merged run's snapshots."""
        if context is not None:
            from .distributed import drive_distributed

            return drive_distributed(self, context, self.config.snapshot_seconds, autosave, autosave_seconds)
        work = cast("Work", self)  # subclasses implement pending, run_unit and snapshot
        return drive(work, self.config.snapshot_seconds, autosave, autosave_seconds,
                     getattr(self.config, "batch_size", 0))

    def run_to_end(self):
        snapshot = None
        for snapshot in self.run():  # noqa: B007 (only the last one is wanted)
            pass
        return snapshot  # drive() always ends with a final snapshot
