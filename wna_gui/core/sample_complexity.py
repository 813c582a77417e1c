"""Sample complexity of classification images: how fast maps build up for each kind of noise (paper Figs. 4, 14, 15).

For each stimulus type chosen (white uniform, white Gaussian, Gabor-PCA, autoencoder and VAE samples: the sources
of core.noise at their defaults, the structured ones fitted to the training images) the run accumulates the
classification maps of every chosen estimator (core.estimators) exactly as a classification-image run does: it
*is* one classification-image run per stimulus type (core.classification), interleaved block by block so all of
them grow together. Maps are kept at 1e2, 1e3, … samples up to the budget and split-half reliability (even vs
odd blocks, Spearman–Brown) at 8 points per decade: the figure shows maps against samples (rows: stimulus ×
estimator, columns: sample counts) and reliability against samples per stimulus type.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from . import classification as ci
from .experiment import Artefact, Experiment, ExperimentSpec
from .driver import ProgressView
from .estimators import ESTIMATORS, canonical_estimators
from .models import LoadedModel
from .noise import NOISE_SOURCES, NoiseSource, log_spaced_checkpoints
from .params import config_from_dict, config_to_dict, param
from .structured_noise import FIT_DATASETS, FittedSource

KIND = "sample_complexity"
RECORD_VERSION = 1
STIMULI = {"uniform": "white uniform U[0, 1]", "gaussian": "white Gaussian N(0.5, 0.25²)",
           "gabor-pca": "Gabor-PCA", "autoencoder": "autoencoder samples", "vae": "VAE samples"}
STIMULUS_TITLES = {"uniform": "White uniform", "gaussian": "White Gaussian", "gabor-pca": "Gabor-PCA",
                   "autoencoder": "Autoencoder", "vae": "VAE"}
# Signal-plus-noise trials are another stimulus design (signals shown through the noise), not an estimator of
# the noise alone: left out here.
ESTIMATOR_CHOICES = {name: info.short for name, info in ESTIMATORS.items() if name != "signal"}
DEFAULT_ESTIMATORS = ("hard", "logit", "prob")
FIRST_CHECKPOINT = 100
# Reliability a map "has converged" at, for the samples-to-reliability table.
RELIABILITY_TARGET = 0.8


@dataclass(frozen=True)
class SampleComplexityConfig:
    stimuli: tuple[str, ...] = param(tuple(STIMULI), "Stimuli", "noise types compared (none checked means all)",
                                     kind="multi", choices=STIMULI, cli="--stimuli", group="Stimuli",
                                     cli_help="noise types, comma-separated: uniform, gaussian, gabor-pca, "
                                              "autoencoder, vae; all: every one")
    estimators: tuple[str, ...] = param(DEFAULT_ESTIMATORS, "Estimators", "maps accumulated for every stimulus "
                                        "type (none checked means all)", kind="multi", choices=ESTIMATOR_CHOICES,
                                        cli="--estimators", group="Stimuli",
                                        cli_help="maps to accumulate, comma-separated: hard, logit, prob, gradient; "
                                                 "all: every one")
    fit_data: str = param("bundled", "Fit data", "training images the structured noise is fitted to (bundled: "
                          "the bundled MNIST training digits, for 28×28 greyscale models)", choices=FIT_DATASETS,
                          group="Stimuli")
    fit_data_dir: str = param("", "Fit data folder", "folder of the torchvision dataset to fit to (not needed for "
                              "bundled)", kind="text", role="runtime", group="Stimuli")
    samples: int = param(1_000_000, "Sample budget", "noise images per stimulus type (with --resume: the new "
                         "total)", low=1, high=2_000_000_000, step=10_000, role="budget", group="Run")
    batch_size: int = param(100, "Batch size", "noise images per block; maps are kept when a stimulus first "
                            "reaches 1e2, 1e3, … samples (exactly there when the batch size divides them)",
                            low=1, high=1_000_000, step=100, group="Run")
    seed: int = param(0, "Seed", "seed of the counter-based noise", low=0, high=2**31 - 1, group="Run")
    gradient_every: int = param(10, "Gradient every", "the gradient estimator runs on every n-th block",
                                low=1, high=1_000_000, group="Run")
    snapshot_seconds: float = 0.5  # how often a run shows progress; not a result setting

    def __post_init__(self) -> None:
        stimuli = tuple(self.stimuli) or tuple(STIMULI)
        unknown = [s for s in stimuli if s not in STIMULI]
        if unknown:
            raise ValueError(f"unknown stimulus type {unknown[0]!r}; use {', '.join(STIMULI)}")
        object.__setattr__(self, "stimuli", tuple(s for s in STIMULI if s in stimuli))
        estimators = canonical_estimators(self.estimators or tuple(ESTIMATOR_CHOICES))
        if "signal" in estimators:
            raise ValueError("signal-plus-noise trials are not a noise estimator here; choose hard, logit, prob "
                             "or gradient")
        object.__setattr__(self, "estimators", estimators)
        if self.fit_data not in FIT_DATASETS:
            raise ValueError(f"unknown fit data {self.fit_data!r}; use {', '.join(FIT_DATASETS)}")
        if self.samples < 1:
            raise ValueError(f"sample budget must be positive, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.gradient_every < 1:
            raise ValueError(f"gradient every must be at least 1, got {self.gradient_every}")

    def inactive_params(self) -> tuple[str, ...]:
        out = [] if "gradient" in self.estimators else ["gradient_every"]
        if not any(issubclass(NOISE_SOURCES[s], FittedSource) for s in self.stimuli):
            out += ["fit_data", "fit_data_dir"]
        return tuple(out)

    def source(self, stimulus: str) -> NoiseSource:
        """The noise source of one stimulus type (structured ones fitted to the chosen training images)."""
        cls = NOISE_SOURCES[stimulus]
        if issubclass(cls, FittedSource):
            return cls(fit_data=self.fit_data, fit_data_dir=self.fit_data_dir)
        return cls()

    def run_config(self, stimulus: str, noise: NoiseSource | None = None) -> ci.ClassificationImageConfig:
        """The classification-image run of one stimulus type."""
        return ci.ClassificationImageConfig(noise=noise if noise is not None else self.source(stimulus),
                                            samples=self.samples, batch_size=self.batch_size, seed=self.seed,
                                            estimators=self.estimators, gradient_every=self.gradient_every)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, arrays: dict | None = None) -> "SampleComplexityConfig":
        return config_from_dict(cls, data, arrays)


@dataclass(frozen=True)
class StimulusResult:
    """One stimulus type's run as the figure needs it."""

    stimulus: str
    run: "ci.ClassificationSnapshot"
    fit: str  # the structured source's fit, in words ("" for white noise)

    def checkpoint_maps(self, estimator: str) -> dict[int, object]:
        """Samples → that estimator's maps when the run first reached 1e2, 1e3, …; then now if later."""
        return dict(ci.progression_rows(self.run, estimator))

    def reliability(self, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """(samples the estimator had used, mean Spearman–Brown reliability over classes) at each record that has
        one (none while a half is still empty)."""
        convergence = self.run.convergence.get(estimator)
        if convergence is None or convergence.per_class.shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        values = convergence.mean()
        measured = np.isfinite(values)
        return convergence.samples[measured], values[measured]

    def samples_to(self, estimator: str, level: float = RELIABILITY_TARGET) -> int | None:
        """The first recorded sample count whose mean reliability reached ``level`` (None: not yet)."""
        samples, values = self.reliability(estimator)
        reached = np.flatnonzero(np.nan_to_num(values, nan=-1.0) >= level)
        return int(samples[reached[0]]) if reached.size else None


@dataclass(frozen=True)
class SampleComplexitySnapshot(ProgressView):
    samples_done: int  # over every stimulus type
    samples_total: int
    samples_per_second: float
    finished: bool
    samples: int  # budget per stimulus type
    stimuli: tuple[str, ...]
    estimators: tuple[str, ...]
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    results: Mapping[str, StimulusResult] = field(default_factory=dict)
    seconds: float = 0.0

    def checkpoint_counts(self) -> list[int]:
        """Every sample count any stimulus type kept maps at, ascending."""
        return sorted({n for result in self.results.values() for estimator in self.estimators
                       for n in result.checkpoint_maps(estimator)})


@dataclass
class SampleComplexityState:
    config: SampleComplexityConfig
    runs: dict[str, ci.ClassificationImageState]  # stimulus → its classification-image run
    seconds: float = 0.0  # compute time spent so far (the driver adds to it)

    @property
    def progress_done(self) -> int:
        return sum(run.samples_done for run in self.runs.values())

    samples_done = progress_done

    @property
    def progress_total(self) -> int:
        return self.config.samples * len(self.config.stimuli)

    @property
    def finished(self) -> bool:
        return all(run.finished for run in self.runs.values())

    @staticmethod
    def budget_of(config: SampleComplexityConfig) -> int:
        return config.samples * len(config.stimuli)

    @staticmethod
    def new_run_text(config: SampleComplexityConfig) -> str:
        return (f"Start begins a new run of {config.samples:,} samples for each of {len(config.stimuli)} "
                f"stimulus types.")

    def with_budget(self, total: int) -> "SampleComplexityState":
        per_stimulus = -(-total // max(len(self.config.stimuli), 1))
        for run in self.runs.values():
            run.with_budget(per_stimulus)
        self.config = replace(self.config, samples=per_stimulus)
        return self

    def snapshot(self, samples_per_second: float = 0.0) -> SampleComplexitySnapshot:
        first = next(iter(self.runs.values()))
        results = {}
        for stimulus, run in self.runs.items():
            noise = run.config.noise
            fit = noise.fit_summary() if isinstance(noise, FittedSource) else ""
            results[stimulus] = StimulusResult(stimulus, run.snapshot(), fit)
        return SampleComplexitySnapshot(
            samples_done=self.progress_done, samples_total=self.progress_total,
            samples_per_second=samples_per_second, finished=self.finished, samples=self.config.samples,
            stimuli=self.config.stimuli, estimators=self.config.estimators, class_names=tuple(first.class_names),
            image_shape=tuple(first.image_shape), results=results, seconds=self.seconds)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"config": self.config.to_dict(), "runs": {}, "run_record_version": ci.RECORD_VERSION,
                "seconds": self.seconds}
        arrays: dict[str, np.ndarray] = {}
        for stimulus, run in self.runs.items():
            run_meta, run_arrays = run.to_record()
            meta["runs"][stimulus] = run_meta
            arrays.update({f"runs/{stimulus}/{path}": value for path, value in run_arrays.items()})
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "SampleComplexityState":
        config = SampleComplexityConfig.from_dict(meta["config"])
        runs = {}
        for stimulus, run_meta in meta["runs"].items():
            prefix = f"runs/{stimulus}/"
            run_arrays = {path[len(prefix):]: value for path, value in arrays.items() if path.startswith(prefix)}
            # Each run is a classification-image record: bring one written by an older version up to date.
            for version in range(int(meta.get("run_record_version", ci.RECORD_VERSION)), ci.RECORD_VERSION):
                run_meta, run_arrays = ci.EXPERIMENT.migrations[version](run_meta, run_arrays)
            runs[stimulus] = ci.ClassificationImageState.from_record(run_meta, run_arrays)
        return cls(config, runs, float(meta.get("seconds", 0.0)))


class SampleComplexityExperiment(Experiment):
    """One classification-image run per stimulus type, advanced a block at a time in turn."""

    def __init__(self, model: LoadedModel, config: SampleComplexityConfig | None = None,
                 state: SampleComplexityState | None = None, device: str | None = None, control=None) -> None:
        super().__init__(model, config, state, device, control)
        self.parts: dict[str, ci.ClassificationImageExperiment] = {}
        for stimulus, run in self.state.runs.items():
            part = ci.ClassificationImageExperiment(model, state=run, device=device, control=self.control)
            part.runtime, part.device = self.runtime, self.device  # one copy of the network for every part
            # Maps kept from 1e2 samples (a classification run keeps them from 1e3).
            part._checkpoints = log_spaced_checkpoints(FIRST_CHECKPOINT, max(run.config.samples, FIRST_CHECKPOINT))
            self.parts[stimulus] = part
        self._last: str | None = None

    @classmethod
    def new_state(cls, model: LoadedModel, config: SampleComplexityConfig) -> SampleComplexityState:
        shape = tuple(model.input_spec.shape)
        runs = {}
        for stimulus in config.stimuli:
            noise = config.source(stimulus)
            if isinstance(noise, FittedSource):
                noise.fit(shape)  # fitted here, once: the run's first unit is not held up, shape errors show now
            runs[stimulus] = ci.ClassificationImageExperiment.new_state(model, config.run_config(stimulus, noise))
        return SampleComplexityState(config, runs)

    def prepare(self) -> None:
        for part in self.parts.values():
            part.prepare()

    def pending(self):
        # The stimulus type furthest behind goes next: every type's maps grow together.
        while True:
            waiting = {stimulus: part for stimulus, part in self.parts.items() if not part.finished}
            if not waiting:
                return
            stimulus = min(waiting, key=lambda s: waiting[s].state.samples_done)
            yield stimulus, next(iter(waiting[stimulus].pending()))

    def run_unit(self, unit) -> None:
        stimulus, block = unit
        part = self.parts[stimulus]
        part.rate = self.rate
        part.run_unit(block)
        self._last = stimulus

    def after_unit(self) -> None:
        if self._last is not None:
            self.parts[self._last].after_unit()

    def snapshot(self) -> SampleComplexitySnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_maps(snapshot: SampleComplexitySnapshot, path, view: str = "centered") -> Path:
    """Maps against samples (rows: stimulus × estimator, columns: sample counts) as .png/.pdf, or .npz arrays."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = {}
        for stimulus, result in snapshot.results.items():
            for estimator in snapshot.estimators:
                for n, maps in result.checkpoint_maps(estimator).items():
                    key = f"{stimulus}/{estimator}/{n}"
                    arrays[f"{key}/classes"] = maps.classes
                    arrays[f"{key}/{view}"] = maps.of(view).reshape(-1, *snapshot.image_shape)
        np.savez_compressed(path, class_names=np.asarray(snapshot.class_names), **arrays)
        return path
    from ..figures.sample_complexity import save_maps_figure  # Qt painting, only when asked

    return save_maps_figure(snapshot, path, view)


def write_reliability_plot(snapshot: SampleComplexitySnapshot, path) -> Path:
    from ..figures.sample_complexity import save_reliability_plot

    return save_reliability_plot(snapshot, path)


def write_reliability(snapshot: SampleComplexitySnapshot, path) -> Path:
    """Reliability against samples, one row per stimulus × estimator × record (CSV)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", "estimator", "samples", "reliability_mean", "classes_with_map",
                         *[f"reliability_{name}" for name in snapshot.class_names]])
        for stimulus, result in snapshot.results.items():
            for estimator in snapshot.estimators:
                convergence = result.run.convergence.get(estimator)
                if convergence is None:
                    continue
                per_class = convergence.values()
                for i, n in enumerate(convergence.samples):
                    row = per_class[i]
                    writer.writerow([stimulus, estimator, int(n), f"{convergence.mean()[i]:.6g}",
                                     int(np.isfinite(row).sum()),
                                     *["" if not np.isfinite(v) else f"{v:.6g}" for v in row]])
    return path


def _has_samples(snapshot: SampleComplexitySnapshot) -> bool:
    return snapshot.samples_done > 0


ARTEFACTS = (
    Artefact("sample_complexity_maps", "Maps against samples: stimulus × estimator rows, sample-count columns "
             "(figure or arrays)", (".png", ".pdf", ".npz"), write_maps, available=_has_samples),
    Artefact("sample_complexity_reliability", "Split-half reliability against samples per stimulus type (plot)",
             (".png", ".svg"), write_reliability_plot, available=_has_samples),
    Artefact("sample_complexity", "Split-half reliability against samples, every stimulus and estimator (CSV)",
             (".csv",), write_reliability, available=_has_samples),
)


# --- `wna info` and `wna run` text ---

def summary(state: SampleComplexityState) -> dict:
    snapshot = state.snapshot()
    return {
        "samples_done": state.progress_done,
        "samples_total": state.progress_total,
        "samples_per_stimulus": state.config.samples,
        "finished": state.finished,
        "compute_seconds": round(state.seconds, 3),
        "stimuli": {stimulus: {
            "samples_done": result.run.samples_done,
            "fit": result.fit,
            f"samples_to_reliability_{RELIABILITY_TARGET:g}": {e: result.samples_to(e) for e in state.config.estimators},
        } for stimulus, result in snapshot.results.items()},
    }


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['samples_per_stimulus']:,} samples per stimulus type{status}"]
    key = f"samples_to_reliability_{RELIABILITY_TARGET:g}"
    for stimulus, facts in entry["stimuli"].items():
        reached = ", ".join(f"{ESTIMATORS[e].label} {'not yet' if n is None else f'{n:,}'}"
                            for e, n in facts[key].items())
        lines.append(f"  {STIMULUS_TITLES[stimulus]}: {facts['samples_done']:,} samples; reliability "
                     f"{RELIABILITY_TARGET:g} at: {reached}")
        if facts["fit"]:
            lines.append(f"    {facts['fit']}")
    return lines


def report(snapshot: SampleComplexitySnapshot) -> list[str]:
    lines = [f"{snapshot.samples_done:,} samples in {snapshot.seconds:.1f} s over {len(snapshot.stimuli)} "
             f"stimulus types"]
    for stimulus, result in snapshot.results.items():
        if result.fit:
            lines.append(result.fit)
        parts = []
        for estimator in snapshot.estimators:
            samples, values = result.reliability(estimator)
            last = f"{values[-1]:.2f}" if values.size and np.isfinite(values[-1]) else "–"
            reached = result.samples_to(estimator)
            parts.append(f"{ESTIMATORS[estimator].label} {last}"
                         + (f" (≥ {RELIABILITY_TARGET:g} from {reached:,})" if reached else ""))
        lines.append(f"{STIMULUS_TITLES[stimulus]}: reliability " + "; ".join(parts))
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="sample-complexity",
    title="Sample complexity",
    help="how many samples classification maps need for white and structured noise (Figs. 4, 14, 15)",
    config=SampleComplexityConfig,
    state=SampleComplexityState,
    experiment=SampleComplexityExperiment,
    unit="samples",
    panel="sample_complexity",
    artefacts=ARTEFACTS,
    can_extend=True,
    record_version=RECORD_VERSION,
    summary=summary,
    describe=describe,
    report=report,
)
SampleComplexityExperiment.spec = EXPERIMENT

__all__ = ["EXPERIMENT", "SampleComplexityConfig", "SampleComplexityExperiment", "SampleComplexitySnapshot",
           "SampleComplexityState", "STIMULI"]
