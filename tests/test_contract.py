"""What every declared experiment must honour: it runs, saves, resumes by the rules, and the CLI, info and export
derived from its declaration work. Parametrised over the registry, so a new experiment is checked by adding it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

from wna_gui.cli import build_parser, config_from_args, main
from wna_gui.core.experiment import FIGURE_SUFFIXES, plan_run, resolve_reference
from wna_gui.core.models import load_default
from wna_gui.core.noise import NOISE_SOURCES
from wna_gui.core.params import ROLES, flatten_noise_params
from wna_gui.core.registry import BY_COMMAND, BY_KIND, EXPERIMENTS, spec_for_state
from wna_gui.core.runs import resolve_inputs
from wna_gui.core.session import Session, load_session, made_models, save_session

from smoke import SMALL, input_session, model, small_config, tiny_inputs, tiny_run

TIMING_KEYS = frozenset({"seconds"})  # what differs between two runs of the same work
each_spec = pytest.mark.parametrize("spec", EXPERIMENTS, ids=[spec.kind for spec in EXPERIMENTS])


def cli_word(p, value) -> str:
    """What `wna run` takes for a param's value: the inverse of how the generated flag parses it."""
    value = p.widget_value(value)
    if p.kind == "multi":
        return ",".join(cli_word(dataclasses.replace(p, kind="choice"), v) for v in value) or "all"
    if p.kind == "choice":
        for word, v in (p.tokens or {}).items():
            if v == value:
                return word
        return "none" if value is None else str(value)
    if p.kind == "bool":
        raise AssertionError("a bool flag takes no word")
    return str(value)


def cli_flags(spec, settings: dict | None = None) -> list[str]:
    """The flags that give ``settings`` (default: the small config), built from the declarations."""
    argv = []
    by_name = {p.name: p for p in spec.params()}
    for name, value in (SMALL[spec.kind] if settings is None else settings).items():
        p = by_name[name]
        argv += [p.cli] if p.kind == "bool" else [p.cli, cli_word(p, value)]
    return argv


def assert_same_records(a, b, ignoring: frozenset[str] = frozenset()) -> None:
    """Two states record the same metadata (less the keys ``ignoring``) and the same arrays, bit for bit."""
    (meta_a, arrays_a), (meta_b, arrays_b) = a.to_record(), b.to_record()
    assert {k: v for k, v in meta_a.items() if k not in ignoring} == \
        {k: v for k, v in meta_b.items() if k not in ignoring}
    assert sorted(arrays_a) == sorted(arrays_b)
    for key, array in arrays_a.items():
        np.testing.assert_array_equal(arrays_b[key], array, err_msg=key)


# --- the declaration ---

def test_kinds_and_commands_are_unique():
    assert len(BY_KIND) == len(BY_COMMAND) == len(EXPERIMENTS)


@each_spec
def test_the_declaration_is_complete(spec):
    assert spec.experiment.spec is spec
    assert spec.params(), "an experiment declares its settings"
    assert all(p.role in ROLES for p in spec.params())
    for attribute in ("key", "cli", "name"):
        values = [getattr(p, attribute) for p in spec.params()]
        assert len(set(values)) == len(values), f"duplicate {attribute} in {spec.kind}'s params"
    # Every older record version can be brought up to date, one step at a time.
    assert set(spec.migrations) == set(range(1, spec.record_version))
    names = [artefact.name for artefact in spec.artefacts]
    assert len(set(names)) == len(names) and all(artefact.suffixes for artefact in spec.artefacts)
    assert all(r.kind == "model" or r.kind in BY_KIND for r in spec.requires)


@each_spec
def test_every_artefact_writer_resolves(spec):
    """Figure writers are named by reference (core never imports figures): each resolves to a function of
    wna_gui.figures taking (snapshot, path, **options), and every suffix has a writer."""
    for artefact in spec.artefacts:
        for suffix in artefact.suffixes:
            figure = suffix in FIGURE_SUFFIXES and artefact.figure
            assert figure or artefact.write_data is not None, f"{artefact.name}{suffix} has no writer"
        if artefact.figure:
            assert artefact.figure.startswith("wna_gui.figures.") and ":" in artefact.figure
            writer = resolve_reference(artefact.figure)
            assert callable(writer), artefact.figure
            inspect.signature(writer).bind("snapshot", "path", **dict(artefact.options))
            assert any(suffix in FIGURE_SUFFIXES for suffix in artefact.suffixes), artefact.name


@each_spec
def test_a_new_run_is_planned_as_new(spec):
    assert plan_run(spec, None, spec.config()).action == "new"
    state = spec.new_state(model(), small_config(spec), **tiny_inputs(spec.kind))
    assert state.progress_done == 0 and not state.finished and state.progress_total > 0
    assert plan_run(spec, state, small_config(spec)).action == "new"


# --- running ---

@each_spec
def test_a_tiny_run_reaches_its_total_and_finishes(spec):
    state, snapshots = tiny_run(spec.kind)
    assert spec_for_state(state) is spec
    done = [snapshot.samples_done for snapshot in snapshots]
    assert done[0] == 0 and done == sorted(done), "progress only grows"
    final = snapshots[-1]
    assert final.samples_done == final.samples_total == state.progress_total == state.progress_done > 0
    assert state.finished and final.finished
    assert plan_run(spec, state, state.config).action == "complete"
    assert spec.snapshot(state).samples_done == final.samples_done
    assert spec.snapshot(state, model()).samples_done == final.samples_done
    if spec.summary is not None:
        entry = json.loads(json.dumps(spec.summary(state)))  # JSON-able
        assert spec.describe is None or spec.describe(entry)
    if spec.report is not None:
        assert spec.report(final)


@each_spec
def test_a_run_round_trips_through_a_session(spec, tmp_path):
    state, _ = tiny_run(spec.kind)
    session = input_session(spec.kind)
    session.runs[spec.kind] = state
    path = save_session(session, tmp_path / "run.wna.h5")
    loaded = load_session(path).runs[spec.kind]
    assert type(loaded) is type(state) and loaded.config == state.config
    assert loaded.finished and loaded.progress_done == state.progress_done
    assert_same_records(loaded, state)


@each_spec
def test_a_run_stopped_after_one_unit_saved_loaded_and_resumed_equals_one_run(spec, tmp_path):
    """The resume contract of every kind: stop after the first counted unit, save, open, continue to the end — the
    record equals the uninterrupted tiny run's, bit for bit (training kinds too: their units are seeded epochs)."""
    whole, _ = tiny_run(spec.kind)
    first = spec.experiment(model(), small_config(spec), device="cpu", **tiny_inputs(spec.kind))
    first.prepare()
    for unit in first.pending():  # up to the first unit that counts (some kinds prepare in uncounted units)
        first.run_unit(unit)
        first.after_unit()
        if first.state.progress_done:
            break
    session = input_session(spec.kind)
    session.runs[spec.kind] = first.state
    loaded = load_session(save_session(session, tmp_path / "stopped.wna.h5"))
    stopped = loaded.runs[spec.kind]
    assert stopped.progress_done == first.state.progress_done and not stopped.finished
    resumed = spec.experiment(loaded.model, state=stopped, device="cpu",
                              **resolve_inputs(spec, loaded)[1])
    resumed.run_to_end()
    assert resumed.state.finished and resumed.state.progress_done == whole.progress_done
    assert_same_records(resumed.state, whole, ignoring=TIMING_KEYS)
    # Networks a run trains live beside the record (the session's /models): the same weights, bit for bit.
    made_a, made_b = made_models({spec.kind: resumed.state}), made_models({spec.kind: whole})
    assert sorted(made_a) == sorted(made_b)
    for name, made in made_b.items():
        assert made_a[name].weights_sha256() == made.weights_sha256(), name


# --- the generated CLI ---

@each_spec
def test_cli_defaults_are_the_config_defaults(spec):
    args = build_parser().parse_args(["run", spec.command, "--out", "x.h5"])
    assert config_from_args(spec, args, spec.config(), load_default()) == spec.config()


@each_spec
def test_cli_flags_give_the_config_they_were_built_from(spec):
    args = build_parser().parse_args(["run", spec.command, *cli_flags(spec), "--out", "x.h5"])
    assert config_from_args(spec, args, spec.config(), load_default()) == small_config(spec)


@each_spec
def test_every_param_has_a_flag_in_the_help(spec, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", spec.command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    flags = [p.cli for p in spec.params()]
    if any(p.kind == "noise" for p in spec.params()):
        flags += [p.cli for p in flatten_noise_params(NOISE_SOURCES.values())]
    for flag in flags:
        assert flag in text, f"{flag} missing from `wna run {spec.command} --help`"


@each_spec
def test_run_info_and_export_through_the_cli(spec, tmp_path, capsys):
    out = tmp_path / "s.h5"
    where = ["--out", str(out)]
    if spec.requires:  # the runs it reads are in the session it writes into
        save_session(input_session(spec.kind), out)
        where = ["--session", str(out)]
    assert main(["run", spec.command, *cli_flags(spec), "--device", "cpu", "--quiet", "--autosave-seconds", "0",
                 *where]) == 0
    state, _ = tiny_run(spec.kind)
    session = load_session(out)
    saved = session.runs[spec.kind]
    assert saved.finished and saved.config == state.config and saved.progress_done == state.progress_done

    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["experiments"][spec.kind]["kind"] == spec.kind
    assert info["experiments"][spec.kind]["samples_done"] == state.progress_done
    assert main(["info", str(out)]) == 0
    assert spec.kind in capsys.readouterr().out

    export = tmp_path / "export"
    assert main(["export", str(out), "--out", str(export), "--dpi", "50"]) == 0  # every file; small PNGs
    snapshot = spec.snapshot(saved, session.model)
    expected = {f"{a.name}{suffix}" for a in spec.artefacts if a.available(snapshot) for suffix in a.suffixes}
    assert expected, f"a finished {spec.kind} run exports something"
    written = {p.name for p in export.iterdir()}
    assert expected <= written, f"not written: {sorted(expected - written)}"
    assert all((export / name).stat().st_size > 0 for name in expected)


# --- errors and layering ---

def test_info_on_a_session_of_an_unknown_kind_is_a_one_line_error(tmp_path, capsys):
    import h5py

    state, _ = tiny_run("classification_images")
    path = save_session(Session(model(), {"classification_images": state}), tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        f["runs"]["classification_images"].attrs["kind"] = "time_travel"
    capsys.readouterr()
    for argv in (["info", str(path)], ["info", str(path), "--json"], ["export", str(path), "--out", "x"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith("wna: error:") and "time_travel" in err and len(err.splitlines()) == 1
        assert "Traceback" not in captured.err and captured.out == ""


def test_core_never_imports_qt():
    code = (
        "import importlib, pkgutil, sys, wna_gui.core\n"
        "names = [m.name for m in pkgutil.walk_packages(wna_gui.core.__path__, 'wna_gui.core.')]\n"
        "for name in names + ['wna_gui.cli']:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph')))\n"
        "assert not bad, bad\n"
        "print(' '.join(names))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    walked = set(result.stdout.split())
    assert {"wna_gui.core.registry", "wna_gui.core.session", "wna_gui.core.params",
            *(spec.state.__module__ for spec in EXPERIMENTS)} <= walked
