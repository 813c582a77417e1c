"""The one list of experiments. Adding one: declare its ExperimentSpec in a core module, add it here.

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
    psychometric,
    psychometric_grid,
    robustness,
    sample_complexity,
    sta,
    template_classifier,
    two_class,
)
from .experiment import ExperimentSpec

EXPERIMENTS: tuple[ExperimentSpec, ...] = (
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
)

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
