"""The `wna` command: run experiments, inspect and export sessions, train zoo models.

Everything experiment-specific comes from the registry (core.registry): one
`wna run <command>` per declared experiment, with flags generated from its
config's params; `wna info` and `wna export` loop over whatever runs a
session holds. This module holds no per-experiment code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .core.logs import current_log_file, default_log_file, setup_logging
from .core.logs import log as _package_log
from .core.params import FLOAT_RANGE, INT_RANGE, Param, changed_params, changed_roles, flatten_noise_params, params
from .core.trust import normalise_sha256

if TYPE_CHECKING:  # the names _import_engine binds at run time, for the type checker
    from .core.control import USER_ERRORS, Cancelled, RunControl, format_duration, pick_device
    from .core.data import DATASETS, OWN_DATASETS
    from .core.distributed import finish_distributed, init_distributed, supports_blocks
    from .core.experiment import ExperimentSpec, plan_run, prepare_state, run_warnings
    from .core.locking import SessionLock, SessionLocked
    from .core.models import CODE_KINDS, MNIST_CLASSES, ZOO, load_model, unseal
    from .core.noise import NOISE_KINDS, NOISE_SOURCES, noise_source
    from .core.registry import EXPERIMENTS, spec_for_state, spec_of
    from .core.runs import export_runs, resolve_inputs
    from .core.session import Session, SessionError, SessionWriteError, load_session, read_header, save_session


def _import_engine() -> None:
    """Bind the engine's names as this module's globals. They import torch, h5py and every experiment (seconds),
    so `wna --version` and `wna --help` answer without them. build_parser and the functions other modules call
    run this first (again costs nothing: modules are imported once). A name added below goes in `global` and in
    the TYPE_CHECKING imports above too."""
    global USER_ERRORS, Cancelled, RunControl, format_duration, pick_device, DATASETS, OWN_DATASETS
    global finish_distributed, init_distributed, supports_blocks
    global ExperimentSpec, export_runs, plan_run, prepare_state, resolve_inputs, run_warnings
    global CODE_KINDS, MNIST_CLASSES, ZOO, load_model, unseal, NOISE_KINDS, NOISE_SOURCES, noise_source
    global EXPERIMENTS, spec_for_state, spec_of, SessionLock, SessionLocked
    global Session, SessionError, SessionWriteError, load_session, read_header, save_session
    from .core.control import USER_ERRORS, Cancelled, RunControl, format_duration, pick_device
    from .core.data import DATASETS, OWN_DATASETS
    from .core.distributed import finish_distributed, init_distributed, supports_blocks
    from .core.experiment import ExperimentSpec, plan_run, prepare_state, run_warnings
    from .core.runs import export_runs, resolve_inputs
    from .core.models import CODE_KINDS, MNIST_CLASSES, ZOO, load_model, unseal
    from .core.noise import NOISE_KINDS, NOISE_SOURCES, noise_source
    from .core.registry import EXPERIMENTS, spec_for_state, spec_of
    from .core.locking import SessionLock, SessionLocked
    from .core.session import Session, SessionError, SessionWriteError, load_session, read_header, save_session


log = _package_log.getChild("cli")


def installed_version() -> str:
    """The version pip installed (the package metadata), else the source tree's when run uninstalled."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wna-gui")
    except PackageNotFoundError:
        return __version__


class ProgressBar:
    """One self-rewriting stderr line: done/total, rate, ETA (plain lines when not a terminal)."""

    def __init__(self, total: int, unit: str, quiet: bool = False) -> None:
        self.total, self.unit, self.quiet = total, unit, quiet
        self.interactive = sys.stderr.isatty()
        self._last_plain = 0.0

    def update(self, done: int, rate: float, eta: float | None, note: str = "") -> None:
        if self.quiet:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} "
                f"{rate:,.0f} {self.unit}/s ETA {format_duration(eta)} {note}")
        if self.interactive:
            sys.stderr.write("\r" + line.ljust(100))
            sys.stderr.flush()
        elif time.monotonic() - self._last_plain > 5 or done >= self.total:
            self._last_plain = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.interactive and not self.quiet:
            sys.stderr.write("\n")


# --- flags generated from the declarations ---

def _dest(p: Param) -> str:
    return "param_" + p.cli.lstrip("-").replace("-", "_")


def _default_text(p: Param) -> str:
    if p.kind == "noise":
        return p.default.kind
    if p.kind == "bool":
        return "off"
    return _cli_text(p, p.default)


def _word(p: Param, value) -> str:
    """The CLI word for a choice value."""
    for word, v in (p.tokens or {}).items():
        if v == value:
            return word
    return "none" if value is None else str(value)


def _argument_type(parse, keep_text: bool = False):
    """An argparse ``type=``: ``parse(text)``, whose ValueError becomes argparse's one-line error (exit 2) while
    the command line is read, before any model is built or file opened. ``keep_text``: the text is kept (it is
    parsed again where more is known)."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text if keep_text else value

    return convert


def _bounded(label: str, kind: str, low, high):
    """The type of a fixed flag: an int or finite float in [low, high], checked as a declared param is."""
    return _argument_type(Param(name=label, default=None, label=label, help="", kind=kind, key=label, cli="",
                                low=low, high=high).parse_text)


def _checked_text(p: Param):
    """The type of a generated flag: its words checked against the declaration while the command line is read;
    choices that depend on the model (its classes, its layers) are checked once it is loaded (config_from_args)."""
    def check(text):
        if p.options is None:
            p.parse_text(text)
        elif p.kind == "multi":
            p.words(text)

    return _argument_type(check, keep_text=True)


def _add_param(group, p: Param) -> None:
    help_text = f"{p.cli_help or p.help} (default: {_default_text(p)})".replace("%", "%%")
    if p.kind == "bool":
        group.add_argument(p.cli, dest=_dest(p), action="store_const", const=True, default=None, help=help_text)
        return
    metavar = p.key.upper()
    choices = p.choices_for() if p.options is None else None
    if p.kind == "choice" and choices:
        metavar = "{" + ",".join(p.tokens or (_word(p, v) for v in choices)) + "}"
    group.add_argument(p.cli, dest=_dest(p), default=None, metavar=metavar, type=_checked_text(p), help=help_text)


def add_config_arguments(parser: argparse.ArgumentParser, config_cls) -> None:
    """One flag per declared param, grouped as the panel groups them; noise sources add their own."""
    _import_engine()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for p in params(config_cls):
        group = groups.setdefault(p.group, parser.add_argument_group(p.group.lower()))
        if p.kind != "noise":
            _add_param(group, p)
            continue
        group.add_argument(p.cli, dest=_dest(p), choices=NOISE_KINDS, default=None,
                           help=f"{p.help} (default: {_default_text(p)})")
        for source_param in flatten_noise_params(NOISE_SOURCES.values()):
            _add_param(group, source_param)


def config_from_args(spec: ExperimentSpec, args, base, model):
    """``base`` with every flag given on the command line applied (flags not given keep ``base``'s values)."""
    _import_engine()
    def parsed(p: Param):
        try:
            return p.parse_text(getattr(args, _dest(p)), model)
        except ValueError as exc:
            raise ValueError(f"argument {p.cli}: {exc}") from None

    values: dict[str, object] = {}
    for p in spec.params():
        if p.kind == "noise":
            current = getattr(base, p.name)
            kind = getattr(args, _dest(p)) or current.kind
            given = {q.name: parsed(q) if q.kind != "bool" else True
                     for q in params(NOISE_SOURCES[kind]) if getattr(args, _dest(q), None) is not None}
            if kind != current.kind:
                values[p.name] = noise_source(kind, **given)
            elif given:
                values[p.name] = replace(current, **given)
            continue
        if getattr(args, _dest(p), None) is not None:
            values[p.name] = True if p.kind == "bool" else parsed(p)
    return replace(base, **values)


def _cli_text(p: Param, value) -> str:
    """The CLI word(s) for a stored value (what config_from_args reads back)."""
    value = p.widget_value(value)
    if p.kind == "multi":
        return "all" if value == () else ",".join(_word(p, v) for v in value)
    if p.kind == "choice":
        return _word(p, value)
    return "none" if value is None else str(value)


def _model_words(model) -> list[str]:
    """The model flags that load ``model`` again: its source, and its normalisation and class names where they
    are not the ones its kind gets by default."""
    from .core.models import own_normalisation_and_names

    spec = model.kind if model.kind in ("default", *CODE_KINDS) else \
        f"torchvision:{model.architecture}" if model.kind == "torchvision" else model.architecture
    words = ["--model", spec]
    if model.weights_path and model.kind != "default":
        words += ["--weights", str(model.weights_path)]
    if model.kind in CODE_KINDS:
        words += ["--input-shape", ",".join(str(s) for s in model.input_spec.shape)]
    if model.kind == "torchvision" and model.input_spec.shape[1] != 224:
        words += ["--input-size", str(model.input_spec.shape[1])]
    if model.kind == "torchvision" and not model.weights_path:
        words += ["--download"]
    mean, std, names = own_normalisation_and_names(model)
    if model.input_spec.mean != tuple(mean):
        words += ["--input-mean", ",".join(repr(float(v)) for v in model.input_spec.mean)]
    if model.input_spec.std != tuple(std):
        words += ["--input-std", ",".join(repr(float(v)) for v in model.input_spec.std)]
    if model.class_names != tuple(names):
        words += ["--class-names", ",".join(model.class_names)]
    return words


def command_for(spec: ExperimentSpec, config, model, out: str = "session.h5") -> str:
    """The `wna run` command that runs ``config`` on ``model`` headless (settings at their defaults left out)."""
    _import_engine()
    import shlex

    words = ["wna", "run", spec.command, *_model_words(model)]
    default = spec.config()
    for p in spec.params():
        value = getattr(config, p.name)
        if p.kind == "noise":
            if value != getattr(default, p.name):
                words += [p.cli, value.kind]
                baseline = NOISE_SOURCES[value.kind]()
                for q in params(type(value)):
                    if getattr(value, q.name) != getattr(baseline, q.name):
                        words += [q.cli] if q.kind == "bool" else [q.cli, _cli_text(q, getattr(value, q.name))]
            continue
        if p.name in getattr(config, "inactive_params", lambda: ())() or value == getattr(default, p.name):
            continue
        words += [p.cli] if p.kind == "bool" else [p.cli, _cli_text(p, value)]
    words += ["--out", out]
    return " ".join(shlex.quote(word) for word in words)


# --- running ---

MAX_CHANNELS, MAX_SIDE = 1024, 8192  # an input shape beyond these is a typo, not a model


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"input shape must look like 1,28,28, got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1 or shape[0] > MAX_CHANNELS or max(shape[1:]) > MAX_SIDE:
        raise ValueError(f"input shape must be C,H,W with 1 to {MAX_CHANNELS} channels and sides of 1 to "
                         f"{MAX_SIDE:,} pixels, got {text!r}")
    return shape


def _load_model_from_args(args):
    return load_model(args.model, args.weights, input_shape=args.input_shape, download=args.download,
                      input_size=args.input_size, class_names=args.class_names, mean=args.input_mean,
                      std=args.input_std)


def _parse_class_names(text: str) -> tuple[str, ...]:
    from .core.models import parse_class_names

    names = parse_class_names(text)
    if not names:
        raise ValueError(f"class names must be names separated by commas, got {text!r}")
    return names


def _read_class_names_file(path: str) -> tuple[str, ...]:
    """One class name a line (blank lines skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"class-names file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read class-names file {path}: {exc}".splitlines()[0]) from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ValueError(f"class-names file {path} holds no names (one name a line)")
    return names


def _session_for_out(out: Path, model) -> Session:
    """The session at ``out`` when it exists (its other runs are kept), else a new one for ``model``."""
    if not out.exists():
        return Session(model, path=out)  # no fingerprint: a file that appears there meanwhile is not replaced
    session = load_session(out)
    if session.model.weights_sha256() != model.weights_sha256():
        raise SessionError(f"{out} holds a session of another model ({session.model.display_name}); "
                           "choose another --out")
    if session.model.sealed:  # the same model, which the user has just loaded (so trusted) themselves
        session.model = model
    return session


def _refuse_replacing(session: Session, out: Path, name: str, spec: ExperimentSpec, args) -> None:
    """Stop before any work when ``out`` already holds a run called ``name``, unless --replace says to replace it."""
    if name not in session.runs:
        return
    if not args.replace:
        kind = spec_for_state(session.runs[name]).command
        raise ValueError(f"{out} already holds a {kind} run named {name!r}; name the new run with --name NEW "
                         f"(e.g. --name {session.new_run_name(spec.kind)}) or replace it with --replace")
    session.inputs.pop(name, None)  # the replaced run's inputs and dates are not the new run's
    session.run_dates.pop(name, None)


def _same_path(a, b) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _changed_flags(old, new) -> str:
    flags = [p.cli for p in changed_params(old, new) if p.role == "measure"]
    return f"{', '.join(flags)} differ{'s' if len(flags) == 1 else ''}"


def _resumed(spec: ExperimentSpec, args):
    """(session to write, run name, state to run, output path) for ``--resume FILE [--out OTHER]``."""
    session = load_session(args.resume)
    session.model = unseal(session.model, args.trust_model)
    runs = session.runs_of(spec.kind)
    name = args.name or (spec.kind if spec.kind in runs else next(reversed(runs), None))
    state = None if name is None else runs.get(name)
    if name is None or state is None:
        raise SessionError(f"{args.resume} holds no {spec.command} run"
                           + (f" named {args.name!r}" if args.name else "") + " to resume")
    config = config_from_args(spec, args, state.config, session.model)
    _fetch_datasets(args, config)
    if "measure" in changed_roles(state.config, config):
        raise ValueError(f"{_changed_flags(state.config, config)} from the saved run; a resumed run "
                         "keeps what it measures (start a new run with --out)")
    plan = plan_run(spec, state, config)
    if plan.action == "complete":
        return session, name, None, Path(args.out or args.resume), {}
    out = Path(args.out or args.resume)
    target = session
    if not _same_path(out, args.resume):  # continued into another file: there it is a new run of that name
        target = _session_for_out(out, session.model)
        _refuse_replacing(target, out, name, spec, args)
    _, inputs = resolve_inputs(spec, session, session.inputs.get(name, {}), trusted=args.trust_model)
    state = prepare_state(spec, state, config, session.model, **inputs)
    if target is not session:
        session = _carried_to(target, session, name, state)
    return session, name, state, out, inputs


def _carried_to(target: Session, source: Session, name: str, state) -> Session:
    """``target`` (the session written) holding run ``name`` and the runs and models it reads from ``source``."""
    roles = source.inputs.get(name, {})
    for used in roles.values():
        for part in used.split(","):
            if part in source.runs:
                target.runs.setdefault(part, source.runs[part])
            elif part in source.models:
                target.models.setdefault(part, source.models[part])
    if roles:
        target.inputs[name] = roles
    target.runs[name] = state
    return target


def _fresh(spec: ExperimentSpec, args):
    """(session to write, run name, new state, output path, inputs) for a new run."""
    if args.session:
        source = load_session(args.session)
        source.model = unseal(source.model, args.trust_model)
        out = Path(args.out or args.session)
        model = source.model
        target = source if _same_path(out, args.session) else _session_for_out(out, model)
    else:
        if any(not need.optional for need in spec.requires):
            kinds = " and ".join(need.kind for need in spec.requires if not need.optional)
            raise ValueError(f"--session FILE is required: {spec.command} reads a {kinds} from a session")
        if not args.out:
            raise ValueError("--out FILE is required (where the session is written)")
        out = Path(args.out)
        source = target = _session_for_out(out, _load_model_from_args(args))
        model = source.model
    name = args.name or spec.kind
    _refuse_replacing(target, out, name, spec, args)
    config = config_from_args(spec, args, spec.config(), model)
    _fetch_datasets(args, config)
    chosen = {need.role: getattr(args, _input_dest(need.role), None) for need in spec.requires}
    names, inputs = resolve_inputs(spec, source, chosen, trusted=args.trust_model)
    source.inputs[name] = names
    state = spec.new_state(model, config, **inputs)
    session = target if target is source else _carried_to(target, source, name, state)
    return session, name, state, out, inputs


def _fetch_datasets(args, config) -> None:
    """--download: the torchvision datasets the settings read, fetched into their data folders before the run
    (offline: one line saying what to fetch where)."""
    if args.download:
        from .core.data import fetch_datasets_of

        fetch_datasets_of(config)


def _input_dest(role: str) -> str:
    return "input_" + role


def cmd_run(args) -> int:
    spec: ExperimentSpec = args.spec
    pick_device(args.device)  # a bad --device fails before anything is written
    # Under torchrun (RANK/WORLD_SIZE set, world > 1): every rank loads the same run and takes its share of the
    # blocks; rank 0 alone writes the session and prints (core.distributed, docs/scale-out.md).
    context = init_distributed(args.device)
    try:
        return _run(spec, args, context)
    finally:
        finish_distributed()


def _writer_lock(spec: ExperimentSpec, args, context) -> SessionLock | None:
    """The held write lock of the session this run writes (rank 0 holds it for a torchrun job), taken before
    the file is read; a second writer fails here at once. None on the other ranks or when no file is named."""
    out = args.out or args.resume or args.session
    if not out:
        return None  # _fresh says which flag is missing
    lock, failure = None, None
    if context is None or context.is_main:
        try:
            lock = SessionLock(out, f"wna run {spec.command}").acquire()
        except SessionError as exc:
            failure = str(exc)
    if context is not None:  # every rank stops when rank 0 cannot write
        import torch.distributed as dist

        shared = [failure]
        dist.broadcast_object_list(shared, src=0)
        failure = shared[0]
    if failure:
        raise SessionLocked(failure)
    return lock


def _run(spec: ExperimentSpec, args, context) -> int:
    lock = _writer_lock(spec, args, context)
    try:
        return _locked_run(spec, args, context)
    finally:
        if lock is not None:
            lock.release()


def _locked_run(spec: ExperimentSpec, args, context) -> int:
    main = context is None or context.is_main
    if args.resume:
        session, name, state, out, inputs = _resumed(spec, args)
        if state is None:
            if main:
                print(f"{args.resume}: the {spec.command} run is complete; nothing to do", file=sys.stderr)
            return 0
    else:
        session, name, state, out, inputs = _fresh(spec, args)
    session.runs[name] = state
    device = context.device(args.device) if context is not None else args.device
    experiment = spec.experiment(session.model, state=state, device=device, control=RunControl(), **inputs)
    if context is not None and not supports_blocks(experiment):
        # Its units are not blocks of noise: rank 0 runs it alone, the other ranks have nothing to do.
        if not main:
            return 0
        print(f"{spec.command} runs on one process: rank 0 runs it, the other {context.world_size - 1} "
              "have nothing to do", file=sys.stderr)
        context = None
    elif context is not None:
        import torch.distributed as dist

        dist.barrier()  # every rank has read the session before rank 0 writes it
    snapshot = drive_run(experiment, spec, session, out, args, context)
    if snapshot is None:
        return 130
    if not main:
        return 0
    if not args.quiet:
        where = experiment.device.type if context is None else \
            f"{context.world_size} processes ({experiment.device.type}, torchrun)"
        print(f"wrote {out}: {spec.command} run {name!r} on {where}")
        for line in spec.report(snapshot) if spec.report else ():
            print(f"  {line}")
    return 0


def drive_run(experiment, spec: ExperimentSpec, session: Session, out: Path, args, context=None):
    """Run to the end with a progress bar, autosaving ``session`` to ``out``; None after Ctrl-C.

    Ctrl-C cancels between units of work, so the session on disk is consistent and resumable. Under torchrun
    (``context``) rank 0 shows the world's progress and saves; the other ranks are quiet; SIGTERM (torchrun
    stopping its workers) cancels like Ctrl-C.
    """
    _import_engine()
    control = experiment.control
    main = context is None or context.is_main
    if main:
        save_session(session, out)  # a bad --out (or a full disk) fails now, not after the run
    progress = ProgressBar(experiment.state.progress_total, spec.unit, quiet=args.quiet or not main)

    def autosave() -> None:
        # A failed autosave (full disk…) does not stop the run: the file keeps the last good save, the next
        # autosave retries, and the final save's failure is the command's error. A changed file stops it.
        try:
            save_session(session, out)
        except SessionWriteError as exc:
            if progress.interactive and not progress.quiet:
                sys.stderr.write("\n")  # off the progress bar's line
            print(f"wna: warning: autosave failed: {exc}; the run goes on and retries", file=sys.stderr, flush=True)

    note = f"[{experiment.device.type}]" if context is None else \
        f"[{context.world_size} × {experiment.device.type}]"
    stop_signals = (signal.SIGINT,) if context is None else (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: control.cancel()) for sig in stop_signals}
    snapshot = None
    try:
        for snapshot in experiment.run(autosave=autosave if main else None,
                                       autosave_seconds=args.autosave_seconds, context=context):
            progress.update(snapshot.samples_done, snapshot.samples_per_second, snapshot.eta_seconds, note)
    except Cancelled:
        progress.close()
        if not main:
            return None
        save_session(session, out)
        snapshot = experiment.snapshot()
        print(f"interrupted after {snapshot.samples_done:,} of {snapshot.samples_total:,} {spec.unit}; session "
              f"saved to {out}; continue with: wna run {spec.command} --resume {out}", file=sys.stderr)
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    progress.close()
    if main:
        save_session(session, out)
    return snapshot if main else True


# --- info and export ---

def session_summary(path: str | Path) -> dict:
    """The facts `wna info --json` prints: the model, then each run by name with its kind."""
    _import_engine()
    header = read_header(path)
    session = load_session(path)  # validates every run (an unknown or newer kind is a one-line error)
    model = header["model"]
    model_summary = {k: model.get(k) for k in ("kind", "architecture", "weights_path", "weights_sha256",
                                               "n_parameters", "input_spec", "resource", "archive_sha256")}
    models = {name: {k: desc.get(k) for k in ("kind", "architecture", "weights_sha256", "archive_sha256",
                                              "heldout_accuracy", "at_chance")}
              for name, desc in header["models"].items()}
    if model.get("kind") == "default":
        from .core.models import default_model_record

        model_summary["heldout_accuracy"] = default_model_record().get("heldout_accuracy")
    experiments: dict[str, dict] = {}
    for name, state in session.runs.items():
        kind = header["runs"][name]["kind"]
        spec = spec_of(kind)
        entry = {"kind": kind, "config": header["runs"][name]["meta"].get("config"),
                 "inputs": session.inputs.get(name, {}),
                 **{key: session.run_dates.get(name, {}).get(key) for key in ("created", "modified")}}

        def summarise(entry=entry, spec=spec, state=state):
            entry.update(spec.summary(state) if spec.summary else {"samples_done": state.progress_done})
            entry["warnings"] = run_warnings(spec, state)
            if spec.describe:
                spec.describe(entry)  # what `wna info` prints must be printable
        _damage_named(path, f"runs/{name} ({kind})", summarise)
        experiments[name] = entry
    summary = {"file": str(path), **{key: header.get(key) for key in ("format_version", "app_version", "created",
                                                                        "modified")},
               "model": model_summary, "models": models, "experiments": experiments}
    _damage_named(path, "model", lambda: _model_lines(summary))
    return summary


# What reading damaged values raises in code that trusted them (a list where a number was, an array of the
# wrong rank): refused as damage of the object named, like load_session's own checks.
DAMAGE_ERRORS = (KeyError, ValueError, TypeError, IndexError, ZeroDivisionError, AttributeError, OverflowError)


def _damage_named(path, what: str, call):
    try:
        return call()
    except SessionError:
        raise
    except DAMAGE_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SessionError(f"{Path(path).name} is damaged: {what}: {type(exc).__name__}"
                           + (f": {detail}" if detail else "")) from None


def _model_lines(summary: dict) -> list[str]:
    """`wna info`'s lines about the session's models."""
    model = summary["model"]
    accuracy = f", held-out accuracy {model['heldout_accuracy']:.1%}" if model.get("heldout_accuracy") else ""
    lines = [f"  model: {model['kind']} {model['architecture']}, {model['n_parameters']:,} parameters, "
             f"input {model['input_spec']['shape']}{accuracy}",
             f"  weights sha256 {model['weights_sha256'][:16]}…"]
    if model.get("kind") in CODE_KINDS:  # the full archive sha256: what --trust-model takes
        lines.append(f"  TorchScript archive (code; not loaded until trusted): sha256 {model.get('archive_sha256')}")
    for name, desc in summary["models"].items():
        accuracy = "" if desc.get("heldout_accuracy") is None else \
            f", held-out accuracy {desc['heldout_accuracy']:.1%}" + (" (at chance)" if desc.get("at_chance") else "")
        lines.append(f"  model {name!r}: {desc['kind']} {desc['architecture']}{accuracy}, "
                     f"sha256 {desc['weights_sha256'][:16]}…")
        if desc.get("kind") in CODE_KINDS:
            lines.append(f"    TorchScript archive (code; not loaded until trusted): sha256 {desc.get('archive_sha256')}")
    return lines


def info_lines(summary: dict) -> list[str]:
    """What `wna info` prints for a session_summary() (the app's File > Session info shows the same)."""
    out = [f"{summary['file']}  (session format {summary['format_version']}, wna-gui {summary['app_version']})",
           f"  created {summary['created']}, modified {summary['modified']}"]
    out += _model_lines(summary)
    for name, entry in summary["experiments"].items():
        spec = spec_of(entry["kind"])
        label = entry["kind"] if name == entry["kind"] else f"{entry['kind']} {name!r}"
        lines = spec.describe(entry) if spec.describe else [f"{entry.get('samples_done', 0):,} {spec.unit}"]
        out.append(f"  {label}: {lines[0]}")
        out += [f"  {line}" for line in lines[1:]]
        shown = "\n".join(lines)
        out += [f"    warning: {text}" for text in entry.get("warnings", ()) if text not in shown]
        out += [f"    input {role}: {source}" for role, source in entry["inputs"].items()]
    return out


def cmd_info(args) -> int:
    summary = session_summary(args.session)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print("\n".join(info_lines(summary)))
    return 0


def cmd_export(args) -> int:
    session = load_session(args.session)
    out_dir = Path(args.out)
    from .figures.page import FigureSize, sized  # Qt painting: only when exporting

    runs = session.runs
    if args.run is not None:
        if args.run not in runs:
            raise SessionError(f"{Path(args.session).name} holds no run named {args.run!r}; its runs: "
                               f"{', '.join(runs) or 'none'}")
        runs = {args.run: runs[args.run]}
    with sized(FigureSize(args.width_mm, args.dpi)):
        written = []
        for name, state in runs.items():
            written += _damage_named(args.session, f"runs/{name}",
                                     lambda name=name, state=state: export_runs({name: state}, session.model, out_dir, args.view))
    if not written:
        raise SessionError(f"{args.session} holds nothing to export yet")
    print(f"wrote {len(written)} files to {out_dir}")
    return 0


def _variants() -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.variant for spec in EXPERIMENTS for a in spec.artefacts if a.variant))


# --- training (not yet an experiment: it writes a weights file, not a session) ---

def cmd_train(args) -> int:
    from .core.data import load_dataset
    from .core.images import fit_to_model
    from .core.models import serialize_state_dict
    from .core.train import TrainConfig, evaluate, train_zoo_model

    class_names = DATASETS[args.dataset][1] if args.dataset in DATASETS else MNIST_CLASSES
    if args.classes and max(args.classes) >= len(class_names):
        raise ValueError(f"argument --classes: {args.dataset} has classes 0 to {len(class_names) - 1}, "
                         f"got {','.join(map(str, args.classes))}")
    device = pick_device(args.device)  # a bad --device fails before the data are read
    train_set = load_dataset(args.dataset, args.data_dir, train=True, download=args.download)
    test_set = load_dataset(args.dataset, args.data_dir, train=False, download=args.download)
    # own images take the architecture's input shape and keep their own classes
    shape = ZOO[args.architecture].input_spec.shape
    train_set = fit_to_model(train_set, shape)
    test_set = fit_to_model(test_set, shape, train_set.class_names)
    if args.classes:
        train_set, test_set = train_set.relabelled(args.classes), test_set.relabelled(args.classes)
    arch = ZOO[args.architecture]
    if tuple(train_set.images.shape[1:]) != arch.input_spec.shape:
        raise ValueError(f"{args.architecture} takes {arch.input_spec.shape} images but {args.dataset} has "
                         f"{tuple(train_set.images.shape[1:])}")
    config = TrainConfig(args.architecture, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, augment_shift=args.shift)
    model = train_zoo_model(config, train_set, device=device,
                            progress=lambda e, loss: print(f"epoch {e}/{args.epochs} loss {loss:.4f}", flush=True))
    accuracy = evaluate(model.pixel_model, test_set.images, test_set.labels)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(serialize_state_dict(model.net.state_dict()))
    print(f"wrote {out}: {args.architecture} test accuracy {accuracy:.2%} on {len(test_set):,} {test_set.name} images")
    return 0


def _parse_classes(text: str) -> tuple[int, ...]:
    """``--classes``: two or more distinct class indices (the dataset's range is checked in cmd_train)."""
    try:
        classes = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise ValueError(f"classes must be class indices such as 1,3, got {text!r}") from None
    if len(classes) < 2 or len(set(classes)) < len(classes) or min(classes) < 0:
        raise ValueError(f"classes must be two or more different class indices from 0, got {text!r}")
    return classes


def _sha256_arg(text: str) -> str:
    try:
        return normalise_sha256(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    from .core.models import parse_numbers

    model.add_argument("--model", default="default",
                       help=f"default (bundled MNIST CNN), a zoo name ({', '.join(ZOO)}), exported (a torch.export "
                            ".pt2 program: the recommended format for other architectures), torchscript, "
                            "or torchvision:<name>")
    model.add_argument("--weights", help="state_dict (.pt) for a zoo/torchvision model, the .pt2 or TorchScript file, "
                                         "or a torchvision weights name (ResNet152_Weights.IMAGENET1K_V2: from the "
                                         "torch hub cache; class names from its metadata)")
    model.add_argument("--input-shape", type=_argument_type(_parse_shape),
                       help="C,H,W for a TorchScript model (default 1,28,28) or an exported program (default: the "
                            "shape it was exported with)")
    model.add_argument("--input-mean", metavar="M[,M,M]", type=_argument_type(
        lambda text: parse_numbers(text, "the input mean")),
        help="normalisation mean of [0, 1] pixels, one value or one per channel (default: the model's own; "
             "0 for TorchScript and exported programs, ImageNet's for torchvision)")
    model.add_argument("--input-std", metavar="S[,S,S]", type=_argument_type(
        lambda text: parse_numbers(text, "the input std", positive=True)),
        help="normalisation std (> 0), one value or one per channel; the model sees (pixels - mean) / std "
             "(default: the model's own; 1 for TorchScript and exported programs)")
    names = model.add_mutually_exclusive_group()
    names.add_argument("--class-names", metavar="A,B,...", type=_argument_type(_parse_class_names),
                       help="one name per output of the model (default: the model's own, else its output indices)")
    names.add_argument("--class-names-file", dest="class_names", metavar="FILE",
                       type=_argument_type(_read_class_names_file), help="the class names, one a line")
    model.add_argument("--input-size", type=_bounded("input size", "int", 1, MAX_SIDE),
                       help="square input size for a torchvision model (default 224; paper Table 1 also uses 32)")
    model.add_argument("--download", action="store_true",
                       help="download torchvision weights, and the torchvision datasets the settings name into "
                            "their data folder (needs internet; offline, says what to fetch where)")
    model.add_argument("--trust-model", metavar="SHA256", type=_sha256_arg, action="append", default=[],
                       help="run a TorchScript model stored in a session whose archive has this sha256 (loading "
                            "one runs code stored in the file; `wna info` shows the sha256); repeatable")


class CommandLineError(ValueError):
    """A bad command line: reported like every user error, in one line with exit 2 (not argparse's usage block)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CommandLineError(f"{message} (see {self.prog} --help)")


def _command_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """`wna` and its commands without their arguments: all that `wna --help` and `wna --version` need."""
    parser = _Parser(prog="wna", description="White-noise analysis of neural networks.")
    parser.add_argument("--version", action="version", version=f"wna-gui {installed_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="also print the log on stderr (-v: progress notes, -vv: debugging detail)")
    parser.add_argument("--log-file", metavar="FILE",
                        help=f"write the log here instead of {default_log_file()} (rotated at 1 MB)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, {
        "run": commands.add_parser("run", help="run an experiment and write a session file"),
        "info": commands.add_parser("info", help="summarise a session file"),
        "export": commands.add_parser("export", help="export every run's results: figures (PNG/PDF/SVG), arrays "
                                                     "(.npz/.npy) and tables (.csv)"),
        "train": commands.add_parser("train", help="train a zoo architecture and save its state_dict"),
        "settings": commands.add_parser("settings", help="show where settings and the log live; --reset restores "
                                                         "the app's defaults"),
    }


def build_parser() -> argparse.ArgumentParser:
    _import_engine()
    parser, command = _command_parsers()

    run = command["run"]
    experiments = run.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for spec in EXPERIMENTS:
        sub = experiments.add_parser(spec.command, help=spec.help, description=spec.help)
        _add_model_arguments(sub)
        add_config_arguments(sub, spec.config)
        session = sub.add_argument_group("session")
        if spec.requires:
            session.add_argument("--session", metavar="FILE",
                                 help="session holding the runs and models this experiment reads (its model is "
                                      "used); the results are written into it unless --out names another file")
            for need in spec.requires:
                default = "every extra model" if need.many else "none" if need.kind == "model" else \
                    f"the session's {need.kind} run"
                session.add_argument(need.cli, dest=_input_dest(need.role), metavar="NAME",
                                     help=f"{need.help or need.role} (default: {default})")
        else:
            sub.set_defaults(session=None)
        session.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1...")
        session.add_argument("--out", help="session file to write (.h5); an existing session of the same model "
                                           "keeps its other runs")
        session.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE (with its settings; "
                                                               "given fit settings refit it, a larger budget extends it)")
        session.add_argument("--name", help=f"the run's name in the session (default: {spec.kind}); a session "
                                            "may hold several runs of one experiment")
        session.add_argument("--replace", action="store_true",
                             help="replace a run of the same name in the session (without it, that is an error)")
        session.add_argument("--autosave-seconds", type=_bounded("autosave interval", "float", 0, FLOAT_RANGE[1]),
                             default=60.0,
                             help="save every N seconds (0: only at the end)")
        session.add_argument("--quiet", action="store_true")
        sub.set_defaults(func=cmd_run, spec=spec)

    info = command["info"]
    info.add_argument("session")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)

    export = command["export"]
    export.add_argument("session")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--run", metavar="NAME", help="only run NAME (`wna info` lists them), its files where a "
                                                      "whole export puts them")
    export.add_argument("--view", choices=(*_variants(), "all"), default="all",
                        help="only this view of results that come in several (map views)")
    # FigureSize (figures.page) has the same limits; they are repeated so the line is checked without Qt.
    export.add_argument("--width-mm", type=_bounded("figure width", "float", 20, 600), default=174.0,
                        help="figure width on paper: 85 (single column), 114 (1.5 columns), 174 (double column, "
                             "the default); text is 8 pt at that width")
    export.add_argument("--dpi", type=_bounded("figure resolution", "int", 50, 2400), default=300,
                        help="resolution of PNG figures, 50 to 2400 (default: 300)")
    export.set_defaults(func=cmd_export)

    train = command["train"]
    train.add_argument("architecture", choices=list(ZOO))
    train.add_argument("--dataset", choices=["bundled", *DATASETS, *OWN_DATASETS], default="bundled")
    train.add_argument("--data-dir", help="folder holding the torchvision dataset; for folder: the folder of class "
                       "sub-folders; for npz: the .npz file")
    train.add_argument("--download", action="store_true")
    train.add_argument("--classes", type=_argument_type(_parse_classes),
                       help="train a K-way model on these classes only, e.g. 1,3")
    train.add_argument("--epochs", type=_bounded("epochs", "int", 1, 10_000), default=15)
    train.add_argument("--batch-size", type=_bounded("batch size", "int", 1, 1_000_000), default=256)
    train.add_argument("--lr", type=_bounded("learning rate", "float", 1e-8, 10.0), default=1e-3)
    train.add_argument("--seed", type=_bounded("seed", "int", *INT_RANGE), default=1)
    train.add_argument("--shift", type=_bounded("shift", "int", 0, 64), default=0,
                       help="random-shift augmentation (pixels)")
    train.add_argument("--device", default="auto")
    train.add_argument("--out", required=True, help="weights file to write (.pt)")
    train.set_defaults(func=cmd_train)

    settings = command["settings"]
    settings.add_argument("--reset", action="store_true",
                          help="forget the app's settings: window layout, device, every panel's settings, recent "
                               "files, export folder and figure size (trusted models are kept)")
    settings.add_argument("--trust-too", action="store_true", help="with --reset: forget the trusted models too")
    settings.set_defaults(func=cmd_settings)
    return parser


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (numpy's "invalid value in sqrt"…) go to the log file, not the terminal: the user cannot
    act on them, and an error stays one line (`-v` shows them)."""
    import warnings

    log.getChild("warnings").warning(warnings.formatwarning(message, category, filename, lineno, line).strip())


def cmd_settings(args) -> int:
    """Where the settings live; `--reset` forgets the app's (window, panels, device, recent files, export choices),
    and the trusted models too with `--trust-too`."""
    from .app.settings_store import app_settings_file, reset_app_settings
    from .core.trust import config_dir, trust_file

    if args.trust_too and not args.reset:
        raise CommandLineError("--trust-too goes with --reset (see wna settings --help)")
    if not args.reset:
        print(f"app settings: {app_settings_file()}")
        print(f"trusted models: {trust_file()}")
        print(f"config folder: {config_dir()} ($WNA_GUI_CONFIG_DIR, else $XDG_CONFIG_HOME/wna-gui)")
        print(f"log file: {current_log_file() or default_log_file()}")
        print("`wna settings --reset` restores the app's defaults (docs/settings.md lists every setting)")
        return 0
    path, keys = reset_app_settings()
    groups = sorted({key.split("/")[0] for key in keys})
    print(f"reset {len(keys)} app setting(s) in {path}" + (f": {', '.join(groups)}" if groups else ""))
    log.info("settings reset: %s", ", ".join(keys) or "none stored")
    if args.trust_too:
        existed = trust_file().exists()
        trust_file().unlink(missing_ok=True)
        print(f"forgot every trusted model ({trust_file()})" if existed else "no trusted models were stored")
    else:
        print(f"kept the trusted models ({trust_file()}); --trust-too forgets them as well")
    return 0


def main(argv: list[str] | None = None) -> int:
    import warnings

    words = sys.argv[1:] if argv is None else list(argv)
    if words in (["--version"], ["-h"], ["--help"]):
        _command_parsers()[0].parse_args(words)  # prints and exits, in a fraction of a second: no torch, no registry
    parser = build_parser()
    speaks = os.environ.get("RANK", "0") in ("", "0")  # under torchrun every rank fails alike: rank 0 says why
    shown = warnings.showwarning
    warnings.showwarning = _log_warning
    started = time.monotonic()
    try:
        args = parser.parse_args(argv)  # a bad command line is a CommandLineError, before any work
        log_file = setup_logging(args.verbose, args.log_file)
        if log_file is None and args.log_file:
            raise CommandLineError(f"cannot write the log file {args.log_file}")
        log.info("wna %s: %s", installed_version(), " ".join(words))
        status = args.func(args)
        log.info("finished in %.1f s (exit %d)", time.monotonic() - started, status)
        return status
    except USER_ERRORS as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.info("error: %s", message)
        if speaks:
            print(f"wna: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, not the user's fault: one line and the traceback kept in the log for a report
        log_file = current_log_file() or setup_logging()
        log.exception("internal error in: wna %s", " ".join(words))
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        where = f"details in {log_file}" if log_file else "no log could be written"
        if speaks:
            print(f"wna: internal error: {type(exc).__name__}{': ' + detail if detail else ''} ({where})",
                  file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
