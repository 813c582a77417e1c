"""The one list of experiments. Adding one: declare its ExperimentSpec in a core module, add it here (or ship
it in a package of its own that names the spec under the ``wna_gui.experiments`` entry-point group).

The `wna run` subcommands, `wna info`, `wna export`, session (de)serialisation
and the app's tabs are all derived from this list.
"""

from __future__ import annotations

from . import (
    activation_injection,
    backdoor,
    bias_attack,
    classification,
    defences,
    human_observer,
    psychometric,
    psychometric_grid,
    robustness,
    sample_complexity,
    sta,
    template_classifier,
    two_class,
)
from .experiment import ExperimentSpec

BUILT_IN: tuple[ExperimentSpec, ...] = (
    classification.EXPERIMENT,
    psychometric.EXPERIMENT,
    psychometric_grid.EXPERIMENT,
    sta.EXPERIMENT,
    bias_attack.EXPERIMENT,
    backdoor.EXPERIMENT,
    activation_injection.EXPERIMENT,
    sample_complexity.EXPERIMENT,
    defences.EXPERIMENT,
    template_classifier.EXPERIMENT,
    two_class.EXPERIMENT,
    robustness.EXPERIMENT,
    human_observer.EXPERIMENT,
)
# Third-party experiments: installed packages declare `[project.entry-points."wna_gui.experiments"]` entries,
# each naming an ExperimentSpec (docs/architecture.md, "Third-party experiments").
PLUGIN_GROUP = "wna_gui.experiments"


def _plugin_experiments(known: tuple[ExperimentSpec, ...]) -> tuple[ExperimentSpec, ...]:
    """The installed plugins' specs, after the built-ins. A plugin that fails to import, is not an ExperimentSpec,
    or takes a kind or command already registered is skipped with a one-line warning: it never stops the app."""
    import logging
    from importlib.metadata import entry_points

    log = logging.getLogger(__name__)
    kinds = {spec.kind: "wna-gui" for spec in known}
    commands = {spec.command: "wna-gui" for spec in known}
    found = []
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        where = f"experiment plugin {entry.name!r} ({entry.value})"
        try:
            spec = entry.load()
        except Exception as exc:  # noqa: BLE001 (any import-time failure of someone else's package)
            log.warning("skipped %s: %s: %s", where, type(exc).__name__, (str(exc).strip().splitlines() or [""])[0])
            continue
        if not isinstance(spec, ExperimentSpec):
            log.warning("skipped %s: it is a %s, not an ExperimentSpec", where, type(spec).__name__)
            continue
        clash = (f"kind {spec.kind!r}", kinds[spec.kind]) if spec.kind in kinds else \
            (f"command {spec.command!r}", commands[spec.command]) if spec.command in commands else None
        if clash:
            log.warning("skipped %s: its %s is already registered by %s", where, *clash)
            continue
        kinds[spec.kind] = commands[spec.command] = where
        found.append(spec)
    return tuple(found)


EXPERIMENTS: tuple[ExperimentSpec, ...] = BUILT_IN + _plugin_experiments(BUILT_IN)

BY_KIND: dict[str, ExperimentSpec] = {spec.kind: spec for spec in EXPERIMENTS}
BY_COMMAND: dict[str, ExperimentSpec] = {spec.command: spec for spec in EXPERIMENTS}
_BY_STATE: dict[type, ExperimentSpec] = {spec.state: spec for spec in EXPERIMENTS}


def spec_of(kind: str) -> ExperimentSpec:
    """The declaration of ``kind``; KeyError names the kinds this version knows."""
    try:
        return BY_KIND[kind]
    except KeyError:
        raise KeyError(f"unknown experiment kind {kind!r}; this version knows {', '.join(BY_KIND)}") from None


def spec_for_state(state) -> ExperimentSpec:
    return _BY_STATE[type(state)]
