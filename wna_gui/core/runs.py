"""What reads the registry, above the experiments: a run's inputs, exports of whole sessions, kinds by name.

Experiments never import this module (nor ``core.registry``): the CLI, the
app and session (de)serialisation do. Keeping the registry's users here is
what keeps the import graph free of circles (tests/test_layering.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .experiment import ExperimentSpec
from .models import LoadedModel, unseal
from .registry import BY_KIND, spec_for_state, spec_of

__all__ = ["BY_KIND", "InputError", "export_run", "export_runs", "resolve_inputs", "spec_for_state", "spec_of"]


class InputError(ValueError):
    """A required input is missing from the session; one line naming it and how to make it."""


def resolve_inputs(spec: "ExperimentSpec", session, chosen: Mapping[str, str | None] | None = None,
                   trusted: tuple[str, ...] = ()) -> tuple[dict[str, str], dict[str, Any]]:
    """(role → recorded name, role → object) of ``spec``'s inputs in ``session``.

    ``chosen`` names a run or model per role (None: the default); a missing
    input that is not optional raises InputError. Models a run will use are
    loaded: a sealed code-bearing one only if ``trusted`` (or remembered trust)
    holds its sha256, else UntrustedModelError (core/trust.py).
    """
    names: dict[str, str] = {}
    objects: dict[str, Any] = {}
    for need in spec.requires:
        wanted = (chosen or {}).get(need.role)
        if need.kind == "model":
            available = session.models
            picked = [w.strip() for w in wanted.split(",") if w.strip()] if wanted else \
                ([name for name, model in available.items()
                  if need.compatible is None or need.compatible(model, session.model) is None]
                 if need.many else [])
            for name in picked:
                if name not in available:
                    raise InputError(f"the session holds no model named {name!r} "
                                     f"(it has: {', '.join(available) or 'none'})")
            if not picked and not need.optional:
                raise InputError(f"{spec.command} needs a model for {need.role}: name one with {need.cli} "
                                 f"(the session has: {', '.join(available) or 'none'})")
            for name in picked:
                available[name] = unseal(available[name], trusted)
            if need.many:
                objects[need.role] = {name: available[name] for name in picked}
            elif picked:
                objects[need.role] = available[picked[0]]
            if picked:
                names[need.role] = ",".join(picked)
            continue
        runs = session.runs_of(need.kind)
        if wanted:
            if wanted not in runs:
                raise InputError(f"the session holds no {need.kind} run named {wanted!r} "
                                 f"(it has: {', '.join(runs) or 'none'})")
            name = wanted
        else:
            name = need.kind if need.kind in runs else next(reversed(runs), None)
        if name is None:
            if need.optional:
                continue
            raise InputError(f"{spec.command} reads a {need.kind} run and the session has none: run "
                             f"`wna run {spec_of(need.kind).command}` into it first")
        names[need.role] = name
        objects[need.role] = runs[name]
    return names, objects


def export_run(spec: ExperimentSpec, snapshot, out_dir: Path, variant: str = "all") -> list[Path]:
    """Write every artefact of one run that has something to show, in each of its formats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for artefact in spec.artefacts:
        if variant != "all" and artefact.variant and artefact.variant != variant:
            continue
        if not artefact.available(snapshot):
            continue
        written += [artefact.write(snapshot, out_dir / f"{artefact.name}{suffix}") for suffix in artefact.suffixes]
    return written


def export_runs(runs: dict, model: LoadedModel, out_dir: Path, variant: str = "all") -> list[Path]:
    """Every run's artefacts (what `wna export` and the app's Export all write).

    A run named after its kind (the usual: one per kind) exports into ``out_dir``
    itself, others into a folder named after the run.
    """
    written = []
    for name, state in runs.items():
        spec = spec_for_state(state)
        folder = Path(out_dir) if name == spec.kind else Path(out_dir) / name
        written += export_run(spec, spec.snapshot(state, model), folder, variant)
    return written
