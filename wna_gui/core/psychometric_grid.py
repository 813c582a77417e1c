"""The small-multiples grid of Figs. 23–25: psychometric curves of every class × stimulated layer × sign.

One psychometric run per plot, measured one after another; each plot
stimulates its layer with the layer's paper λ. The grid's units of work are
the units of its plots' runs, so the one driver runs it like any experiment,
and a grid stopped mid-way continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .control import RunControl
from .data import load_dataset
from .driver import ProgressView
from .experiment import Artefact, Experiment, ExperimentSpec
from .images import images_for_model
from .models import LoadedModel
from .params import config_arrays, param
from .psychometric import (
    EXPERIMENT as PLOT_EXPERIMENT,
    SIGN_WORDS,
    SIGNS,
    STIMULATION,
    PsychometricConfig,
    PsychometricExperiment,
    PsychometricSnapshot,
    PsychometricState,
    PsychometricSettings,
    k_values_param,
    stimulable_layers,
)
from .psychometric_report import (
    format_k_values,
    grid_records,
    psychometric_data_records,
    psychometric_fit_records,
    psychometric_test_records,
    write_records,
)
from .state import RunConfig, RunState, class_options

KIND = "psychometric_grid"
DEFAULT_LAYERS = ("conv1", "conv2", "fc1")  # the MNIST CNN's, as in Fig. 23


def _layer_options(model: LoadedModel) -> dict:
    return {name: name for name in stimulable_layers(model)}


@dataclass(frozen=True)
class _GridAxes:
    targets: tuple[int, ...] = param((), "Classes", "rows: class indices or names, comma-separated (all: every "
                                     "class)", kind="multi", options=class_options, group=STIMULATION)
    layers: tuple[str, ...] = param(DEFAULT_LAYERS, "Layers", "columns: stimulated layers, comma-separated, each "
                                    "with its paper λ", kind="multi", options=_layer_options, group=STIMULATION)
    signs: tuple[int, ...] = param((1,), "Signs", "excite, inhibit or both (comma-separated)", kind="multi",
                                   choices={1: "excite", -1: "inhibit"}, tokens=SIGN_WORDS, group=STIMULATION)
    k_values: tuple[float, ...] = k_values_param(default=(0.0, 5.0, 10.0))


@dataclass(frozen=True)
class PsychometricGridConfig(RunConfig, PsychometricSettings, _GridAxes):
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        for name in ("targets", "layers", "signs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "targets", tuple(int(t) for t in self.targets))
        object.__setattr__(self, "signs", tuple(int(s) for s in self.signs))
        if not self.layers:
            raise ValueError("a grid needs at least one layer")
        if not self.signs or any(s not in SIGNS for s in self.signs):
            raise ValueError("a grid needs excite, inhibit or both")
        _ = self.base  # validates the shared settings

    def inactive_params(self) -> tuple[str, ...]:
        """Sharing means nothing with one k; the guess's sharing nothing with the guess fixed at chance."""
        if len(self.k_values) == 1:
            return ("width_across_k", "guess_across_k", "lapse_across_k")
        return ("guess_across_k",) if self.guess == "chance" else ()

    @property
    def base(self) -> PsychometricConfig:
        """What every plot shares; no bootstrap and no simulated tests: the grid shows curves and shifts
        (its tests give χ² p-values)."""
        shared = {f.name: getattr(self, f.name) for f in fields(PsychometricSettings)}
        return PsychometricConfig(**shared, k_values=self.k_values, n_boot=0, gof_samples=0, lr_samples=0,
                                  snapshot_seconds=self.snapshot_seconds)

    def plot_configs(self, n_classes: int) -> tuple[PsychometricConfig, ...]:
        """Sign-major, then class, then layer: rows are classes, columns layer × sign, as in Fig. 23."""
        targets = self.targets or tuple(range(n_classes))
        return tuple(replace(self.base, target=target, layer=layer, sign=sign, k_values=self.k_values)
                     for sign in self.signs for target in targets for layer in self.layers)


def small_multiples_configs(base: PsychometricConfig, digits: Iterable[int] = range(10),
                            layers: Iterable[str] = DEFAULT_LAYERS,
                            lambdas: dict[str, float] | None = None) -> list[PsychometricConfig]:
    """One config per (digit, layer), digit-major; ``lambdas[layer]`` when given, else the layer's default λ."""
    lambdas = lambdas or {}
    return [replace(base, target=digit, layer=layer, lambda_=lambdas.get(layer)) for digit in digits
            for layer in layers]


@dataclass
class PsychometricGridState(RunState):
    """The grid's plots and their runs: ``runs[i]`` measures ``configs[i]``, None until its turn comes."""

    config: PsychometricGridConfig
    n_classes: int
    class_names: tuple[str, ...]
    runs: list[PsychometricState | None] = field(default_factory=list)
    n_images: list[int] = field(default_factory=list)  # per plot: images of its target
    noise_device: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.runs = self.runs or [None] * len(self.configs)
        if len(self.runs) != len(self.configs):
            raise ValueError(f"{len(self.runs)} runs for a grid of {len(self.configs)} plots")

    @property
    def configs(self) -> tuple[PsychometricConfig, ...]:
        return self.config.plot_configs(self.n_classes)

    @property
    def plots_done(self) -> int:
        return sum(run is not None and run.finished for run in self.runs)

    @property
    def finished(self) -> bool:
        return self.plots_done == len(self.runs)

    @property
    def progress_done(self) -> int:
        return sum(run.progress_done for run in self.runs if run is not None)

    @property
    def progress_total(self) -> int:
        return sum(config.n_cells * n for config, n in zip(self.configs, self.n_images))

    @staticmethod
    def new_run_text(config: PsychometricGridConfig) -> str:
        columns = len(config.layers) * len(config.signs)
        rows = f"{len(config.targets)} classes" if config.targets else "every class"
        return (f"Start runs {rows} × {columns} column{'s' if columns > 1 else ''} one after another, each "
                f"{len(config.k_values)} k × {len(config.gammas)} γ.")

    def snapshot(self, samples_per_second: float = 0.0) -> "GridSnapshot":
        return GridSnapshot(self.configs, tuple(None if run is None else run.snapshot() for run in self.runs),
                            tuple(self.class_names), self.progress_total, self.seconds, samples_per_second)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict[str, Any] = {
            "config": self.config.to_dict(), "n_classes": self.n_classes, "class_names": list(self.class_names),
            "n_images": list(self.n_images), "noise_device": self.noise_device, "seconds": self.seconds, "runs": []}
        arrays = dict(config_arrays(self.config))
        for index, run in enumerate(self.runs):
            if run is None:
                meta["runs"].append(None)
                continue
            run_meta, run_arrays = run.to_record()
            meta["runs"].append(run_meta)
            arrays.update({f"runs/{index}/{path}": array for path, array in run_arrays.items()
                           if not path.startswith("config/")})
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "PsychometricGridState":
        config = PsychometricGridConfig.from_dict(meta["config"], arrays)
        runs = []
        for index, run_meta in enumerate(meta["runs"]):
            prefix = f"runs/{index}/"
            run_arrays = {path[len(prefix):]: array for path, array in arrays.items() if path.startswith(prefix)}
            runs.append(None if run_meta is None else PsychometricState.from_record(run_meta, run_arrays))
        return cls(config, int(meta["n_classes"]), tuple(meta["class_names"]), runs, list(meta["n_images"]),
                   meta.get("noise_device", ""), float(meta.get("seconds", 0.0)))


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 kept a base psychometric config, targets/layers/signs beside it and "cells" for the plots."""
    plot_migration = PLOT_EXPERIMENT.migrations[1]  # each cell is a version-1 plot record

    base = meta["config"]
    config = {key: base[key] for key in ("gammas", "seed", "noise", "dataset", "sigmoid", "guess", "lapse",
                                         "batch_size") if key in base}
    config.update(targets=list(meta["targets"]), layers=list(meta["layers"]), signs=list(meta["signs"]),
                  k_values=base["k_values"])
    runs, moved = [], {}
    for index, cell in enumerate(meta["cells"]):
        prefix = f"cells/{index}/"
        own = {path[len(prefix):]: a for path, a in arrays.items() if path.startswith(prefix)}
        if cell is not None:
            cell, own = plot_migration(cell, own)
        runs.append(cell)
        moved.update({f"runs/{index}/{path}": a for path, a in own.items()})
    measured = [cell for cell in runs if cell]
    class_names = measured[0]["class_names"] if measured else [str(k) for k in range(max(meta["targets"]) + 1)]
    n_images = [cell["n_images"] if cell else 0 for cell in runs]
    noise_device = measured[0].get("noise_device", "") if measured else ""
    return {"config": config, "n_classes": len(class_names), "class_names": class_names, "n_images": n_images,
            "noise_device": noise_device, "runs": runs}, moved


def _migrate_v2(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 2's plots had one noise sample per image, noise blocks by list position and per-curve fits:
    the grid's config records that (as each plot's run does: its kind's migration of version 2)."""
    plot_migration = PLOT_EXPERIMENT.migrations[2]

    config = {**meta["config"], "repeats": 1, "noise_index": "position", "width_across_k": "per-k",
              "guess_across_k": "per-k", "lapse_across_k": "per-k", "performance_level": 0.5}
    runs, moved = [], {path: a for path, a in arrays.items() if not path.startswith("runs/")}
    for index, run in enumerate(meta["runs"]):
        prefix = f"runs/{index}/"
        own = {path[len(prefix):]: a for path, a in arrays.items() if path.startswith(prefix)}
        if run is not None:
            run, own = plot_migration(run, own)
        runs.append(run)
        moved.update({f"{prefix}{path}": a for path, a in own.items()})
    return {**meta, "config": config, "runs": runs}, moved


@dataclass(frozen=True)
class GridSnapshot(ProgressView):
    """The grid's runs for drawing, with the progress the status bar reads (samples = stimuli)."""

    configs: tuple[PsychometricConfig, ...]
    snapshots: tuple[PsychometricSnapshot | None, ...]  # per config; None until its turn comes
    class_names: tuple[str, ...]
    samples_total: int
    seconds: float  # compute time spent so far
    samples_per_second: float = 0.0  # of the run being measured; 0 when none is

    @property
    def samples_done(self) -> int:
        return sum(snapshot.samples_done for snapshot in self.snapshots if snapshot is not None)

    @property
    def plots_done(self) -> int:
        return sum(snapshot is not None and snapshot.finished for snapshot in self.snapshots)

    @property
    def finished(self) -> bool:
        return self.plots_done == len(self.configs)


def _image_counts(model: LoadedModel, configs, images) -> list[int]:
    """Per plot, how many images of its target the image set holds (its stimuli per γ point)."""

    labelled = images_for_model(images, model)
    return [int((labelled.labels == plot.target).sum()) for plot in configs]


class PsychometricGridExperiment(Experiment):
    """Measures the grid's unfinished plots one after another; a unit is a unit of a plot's run."""

    def __init__(self, model: LoadedModel, config: PsychometricGridConfig | None = None,
                 state: PsychometricGridState | None = None, device: str | None = None,
                 control: RunControl | None = None, images=None) -> None:
        config = state.config if state is not None else config or PsychometricGridConfig()
        self._images = images if images is not None else load_dataset(config.dataset, config.data_dir or None)
        super().__init__(model, config, state, device, control, images=self._images)
        if not all(self.state.n_images):  # a grid from format 1 knew only the plots already measured
            self.state.n_images = _image_counts(model, self.state.configs, self._images)
        self._device_name = str(self.device)
        self._current: PsychometricExperiment | None = None

    @classmethod
    def new_state(cls, model: LoadedModel, config: PsychometricGridConfig, images=None) -> PsychometricGridState:
        state = PsychometricGridState(config, model.n_classes, tuple(model.class_names))
        images = images if images is not None else load_dataset(config.dataset, config.data_dir or None)
        state.n_images = _image_counts(model, state.configs, images)
        for plot in state.configs:  # every plot's settings are checked before the first is measured
            if plot.target >= model.n_classes:
                raise ValueError(f"class {plot.target} is out of range: the model has {model.n_classes} classes")
            if plot.layer not in stimulable_layers(model):
                raise ValueError(f"the model has no layer {plot.layer!r} with a bias; layers with a bias: "
                                 f"{', '.join(stimulable_layers(model))}")
        return state

    def prepare(self) -> None:
        self.runtime.check_noise_device(self.state)

    def pending(self):
        for index, config in enumerate(self.state.configs):
            run = self.state.runs[index]
            if run is not None and run.finished:
                continue
            plot = PsychometricExperiment(self.model, config, state=run, images=self._images,
                                          device=self._device_name, control=self.control)
            self.state.runs[index] = plot.state
            self._current = plot
            plot.prepare()
            yield from plot.pending()
            self._current = None

    def run_unit(self, unit) -> None:
        assert self._current is not None  # pending() sets the run its units come from
        self._current.run_unit(unit)

    def after_unit(self) -> None:
        assert self._current is not None  # pending() sets the run its units come from
        self._current.after_unit()

    def snapshot(self) -> GridSnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def _records(records_of):
    def write(snapshot: GridSnapshot, path) -> Path:
        records = grid_records(snapshot.snapshots, records_of)
        if not records:
            raise ValueError("nothing to export yet: run the small multiples first")
        return write_records(records, path)

    return write


def _measured(snapshot: GridSnapshot) -> bool:
    return any(s is not None and s.cells_done for s in snapshot.snapshots)


ARTEFACTS = (
    Artefact("psychometric_grid_fits", "Small multiples fit table", (".csv",), _records(psychometric_fit_records),
             available=_measured),
    Artefact("psychometric_grid_data", "Small multiples data", (".csv", ".npy"), _records(psychometric_data_records),
             available=_measured),
    Artefact("psychometric_grid", "Small multiples plot", (".png", ".pdf", ".svg"),
             figure="wna_gui.figures.psychometric:save_small_multiples", available=_measured),
    Artefact("psychometric_grid_tests", "Small multiples likelihood-ratio tests (χ²)", (".csv",),
             _records(psychometric_test_records),
             available=lambda snapshot: any(s is not None and s.lr_tests for s in snapshot.snapshots)),
)


def _numbers(values) -> list:  # JSON has no NaN or infinity
    return [None if not np.isfinite(v) else float(v) for v in values]


def summary(state: PsychometricGridState) -> dict:
    snapshot = state.snapshot()
    return {
        "samples_done": snapshot.samples_done,
        "targets": list(state.config.targets or range(state.n_classes)), "layers": list(state.config.layers),
        "signs": list(state.config.signs), "k_values": list(state.config.k_values),
        "gammas": list(state.config.gammas), "plots_done": state.plots_done, "plots_total": len(state.runs),
        "finished": state.finished,
        "plots": [{"target": config.target, "layer": config.layer, "sign": config.sign,
                   "finished": plot is not None and plot.finished,
                   "threshold_shifts": None if plot is None else _numbers(plot.threshold_shifts),
                   "performance_shifts": None if plot is None else _numbers(plot.performance_shifts),
                   "flags": None if plot is None else [[flag.to_dict() for flag in flags] for flags in plot.flags]}
                  for config, plot in zip(snapshot.configs, snapshot.snapshots)],
        "performance_level": state.config.performance_level, "noise_samples_per_image": state.config.repeats,
        "noise_index": state.config.noise_index,
    }


def describe(entry: dict) -> list[str]:
    signs = " and ".join("excite" if sign > 0 else "inhibit" for sign in entry["signs"])
    return [f"{len(entry['targets'])} classes × {', '.join(entry['layers'])} ({signs}), "
            f"k = {format_k_values(entry['k_values'])} × {len(entry['gammas'])} γ; "
            f"{entry['plots_done']} of {entry['plots_total']} plots done"]


def report(snapshot: GridSnapshot) -> list[str]:
    return [f"{snapshot.plots_done} of {len(snapshot.configs)} plots measured ({snapshot.samples_done:,} stimuli)"]


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="psychometric-grid",
    title="Small multiples",
    help="psychometric curves of every class × stimulated layer × sign, each layer at its paper λ (Fig. 23)",
    config=PsychometricGridConfig,
    state=PsychometricGridState,
    experiment=PsychometricGridExperiment,
    unit="stimuli",
    panel="psychometric",
    artefacts=ARTEFACTS,
    record_version=3,
    migrations={1: _migrate_v1, 2: _migrate_v2},
    summary=summary,
    describe=describe,
    report=report,
)
PsychometricGridExperiment.spec = EXPERIMENT
