"""Sample complexity of classification images: how fast maps build up for each kind of noise (paper Figs. 4, 14, 15).

For each stimulus type chosen (white uniform, white Gaussian, Gabor-PCA, autoencoder and VAE samples: the sources
of core.noise at their defaults, the structured ones fitted to the training images) the run accumulates the
classification maps of every chosen estimator (core.estimators) exactly as a classification-image run does: it
*is* one classification-image run per stimulus type (core.classification), interleaved block by block so all of
them grow together. Maps are kept at 1e2, 1e3, … samples up to the budget and split-half reliability (even vs
odd blocks, Spearman–Brown) at 8 points per decade: the figure shows maps against samples (rows: stimulus ×
estimator, columns: sample counts) and reliability against samples per stimulus type.

Structured noise has correlated pixels, so split-half reliability rises under it even with no signal at all (a
signal-free observer reaches r ≈ 0.8 at 1,000 Gabor-PCA samples, ≈ 0 under white noise). Each stimulus type is
therefore also shown to two observers on the very same noise blocks: a *null* observer whose answers carry no
information about the image (a hash of it), and a *template* observer, linear with known templates (the fit data's
class-mean digits for 28×28 grey models, else seeded random patterns). The model's curves are read as excess
reliability over the null's, and the white-vs-structured comparison as that excess and as the template observer's
cosine with its own templates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .control import csv_number
from . import classification as ci
from .experiment import Artefact, Experiment, ExperimentSpec
from .estimators import ESTIMATORS, canonical_estimators
from .models import InputSpec, LoadedModel
from .noise import NOISE_SOURCES, NoiseSource, log_spaced_checkpoints
from .params import param
from .dataset_choices import DATA_DIR_HELP
from .state import RunConfig, RunSnapshot, RunState
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
OBSERVERS = {"null": "signal-free observer", "template": "linear observer with known templates"}
OBSERVER_SEED = 0x5EED


class NullObserver(nn.Module):
    """Answers that carry no information about the image: each score is a hash of the image (frac of a large
    multiple of the sine of a random projection), deterministic (so runs resume exactly) yet uncorrelated with any
    pixel pattern."""

    projection: torch.Tensor  # a buffer

    def __init__(self, n_features: int, n_classes: int, seed: int = OBSERVER_SEED) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", torch.randn(n_features, n_classes, generator=generator,
                                                       dtype=torch.float64) * 100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = torch.sin(x.flatten(1).double() @ self.projection) * 43758.5453
        return (phase - torch.floor(phase)).float() * 4.0


class TemplateObserver(nn.Module):
    """Scores z_k = t_k·(x − 0.5): a linear observer whose maps should converge to its templates t_k."""

    templates: torch.Tensor  # a buffer

    def __init__(self, templates: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("templates", templates.flatten(1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - 0.5) @ self.templates.T


def observer_templates(shape: tuple[int, ...], n_classes: int) -> np.ndarray:
    """(K, C·H·W) unit-norm known templates: the bundled digits' class means less their mean for 28×28 grey
    models, otherwise seeded random patterns."""
    if tuple(shape) == (1, 28, 28) and n_classes == 10:
        from .data import bundled_mnist

        train = bundled_mnist("train")
        means = np.stack([train.of_class(k).flatten(1).double().mean(0).numpy() for k in range(10)])
        templates = means - means.mean(0)
    else:
        templates = np.random.default_rng(OBSERVER_SEED).normal(size=(n_classes, int(np.prod(shape))))
    return templates / np.linalg.norm(templates, axis=1, keepdims=True)


def observer_model(which: str, model: LoadedModel) -> LoadedModel:
    """The null or template observer for ``model``'s input and classes (rebuilt, never stored)."""
    shape = tuple(model.input_spec.shape)
    net: nn.Module
    if which == "null":
        net = NullObserver(int(np.prod(shape)), model.n_classes)
    else:
        net = TemplateObserver(torch.as_tensor(observer_templates(shape, model.n_classes)))
    return LoadedModel("observer", f"{which} observer", net, InputSpec(shape), tuple(model.class_names))


@dataclass(frozen=True)
class SampleComplexityConfig(RunConfig):
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
    fit_data_dir: str = param("", "Fit data folder", DATA_DIR_HELP, kind="text", role="runtime", group="Stimuli")
    samples: int = param(20_000, "Sample budget", "noise images per stimulus type (with --resume: the new "
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
        cls: Any = NOISE_SOURCES[stimulus]  # a dataclass of its declared params
        if issubclass(cls, FittedSource):
            return cls(fit_data=self.fit_data, fit_data_dir=self.fit_data_dir)
        return cls()

    def run_config(self, stimulus: str, noise: NoiseSource | None = None) -> ci.ClassificationImageConfig:
        """The classification-image run of one stimulus type."""
        return ci.ClassificationImageConfig(noise=noise if noise is not None else self.source(stimulus),
                                            samples=self.samples, batch_size=self.batch_size, seed=self.seed,
                                            estimators=self.estimators, gradient_every=self.gradient_every)


@dataclass(frozen=True)
class StimulusResult:
    """One stimulus type's run as the figure needs it."""

    stimulus: str
    run: "ci.ClassificationSnapshot"
    fit: str  # the structured source's fit, in words ("" for white noise)
    observers: Mapping[str, "ci.ClassificationSnapshot"] = field(default_factory=dict)  # null, template
    templates: np.ndarray | None = None  # the template observer's (K, D)

    def checkpoint_maps(self, estimator: str) -> dict[int, ci.EstimatorMaps | None]:
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

    def observer_reliability(self, observer: str, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """The same curve for an observer on the same noise (empty when the run has none)."""
        if observer not in self.observers:
            return np.zeros(0, np.int64), np.zeros(0)
        return replace(self, run=self.observers[observer], observers={}).reliability(estimator)

    def excess(self, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """(samples, the model's reliability − the null observer's at the same samples): what the maps owe to the
        model rather than to the noise's own correlations. Empty without a null."""
        samples, values = self.reliability(estimator)
        null_samples, null_values = self.observer_reliability("null", estimator)
        if not null_samples.size or not samples.size:
            return np.zeros(0, np.int64), np.zeros(0)
        keep = samples <= null_samples[-1]
        null_at = np.interp(np.log(samples[keep]), np.log(null_samples), null_values)
        return samples[keep], values[keep] - null_at

    def template_cosine(self, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """(samples, mean cosine of the template observer's maps with its known templates) at each checkpoint:
        how close the maps come to the truth, which correlated noise cannot fake."""
        run = self.observers.get("template")
        if run is None or self.templates is None:
            return np.zeros(0, np.int64), np.zeros(0)
        samples, cosines = [], []
        for n, maps in ci.progression_rows(run, estimator):
            assert maps is not None  # None only before a run's first sample
            rows = maps.of("centered")
            present = np.isfinite(rows).all(1)
            if not present.any():
                continue
            a, b = rows[present], self.templates[present]
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-300)
            samples.append(n)
            cosines.append(float(cos.mean()))
        return np.asarray(samples, np.int64), np.asarray(cosines)

    def samples_to(self, estimator: str, level: float = RELIABILITY_TARGET) -> int | None:
        """The first recorded sample count whose mean reliability reached ``level`` (None: not yet)."""
        samples, values = self.reliability(estimator)
        reached = np.flatnonzero(np.nan_to_num(values, nan=-1.0) >= level)
        return int(samples[reached[0]]) if reached.size else None


@dataclass(frozen=True)
class SampleComplexitySnapshot(RunSnapshot):
    """Progress in samples over every stimulus type."""

    samples: int  # budget per stimulus type
    stimuli: tuple[str, ...]
    estimators: tuple[str, ...]
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    results: Mapping[str, StimulusResult] = field(default_factory=dict)

    def checkpoint_counts(self) -> list[int]:
        """Every sample count any stimulus type kept maps at, ascending."""
        return sorted({n for result in self.results.values() for estimator in self.estimators
                       for n in result.checkpoint_maps(estimator)})


@dataclass
class SampleComplexityState(RunState):
    config: SampleComplexityConfig
    runs: dict[str, ci.ClassificationImageState]  # stimulus → its classification-image run
    seconds: float = 0.0  # compute time spent so far (the driver adds to it)
    # observer → stimulus → its run on the same noise (empty in runs recorded before observers existed)
    observers: dict[str, dict[str, ci.ClassificationImageState]] = field(default_factory=dict)

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
        for run in [*self.runs.values(), *(r for runs in self.observers.values() for r in runs.values())]:
            run.with_budget(per_stimulus)
        self.config = replace(self.config, samples=per_stimulus)
        return self

    def snapshot(self, samples_per_second: float = 0.0) -> SampleComplexitySnapshot:
        first = next(iter(self.runs.values()))
        results = {}
        for stimulus, run in self.runs.items():
            noise = run.config.noise
            fit = noise.fit_summary() if isinstance(noise, FittedSource) else ""
            observers = {name: runs[stimulus].snapshot() for name, runs in self.observers.items() if stimulus in runs}
            templates = (observer_templates(tuple(run.image_shape), run.n_classes) if "template" in observers
                         else None)
            results[stimulus] = StimulusResult(stimulus, run.snapshot(), fit, observers, templates)
        return SampleComplexitySnapshot(
            **self.progress_fields(samples_per_second), samples=self.config.samples, stimuli=self.config.stimuli,
            estimators=self.config.estimators, class_names=tuple(first.class_names),
            image_shape=tuple(first.image_shape), results=results)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"config": self.config.to_dict(), "runs": {}, "run_record_version": ci.RECORD_VERSION,
                                "seconds": self.seconds}
        arrays: dict[str, np.ndarray] = {}
        for stimulus, run in self.runs.items():
            run_meta, run_arrays = run.to_record()
            meta["runs"][stimulus] = run_meta
            arrays.update({f"runs/{stimulus}/{path}": value for path, value in run_arrays.items()})
        meta["observers"] = {}
        for observer, runs in self.observers.items():
            meta["observers"][observer] = {}
            for stimulus, run in runs.items():
                run_meta, run_arrays = run.to_record()
                meta["observers"][observer][stimulus] = run_meta
                arrays.update({f"observers/{observer}/{stimulus}/{path}": value for path, value in run_arrays.items()})
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "SampleComplexityState":
        config = SampleComplexityConfig.from_dict(meta["config"])

        def read(prefix: str, run_meta: dict) -> ci.ClassificationImageState:
            run_arrays = {path[len(prefix):]: value for path, value in arrays.items() if path.startswith(prefix)}
            # Each run is a classification-image record: bring one written by an older version up to date.
            for version in range(int(meta.get("run_record_version", ci.RECORD_VERSION)), ci.RECORD_VERSION):
                run_meta, run_arrays = ci.EXPERIMENT.migrations[version](run_meta, run_arrays)
            return ci.ClassificationImageState.from_record(run_meta, run_arrays)

        runs = {stimulus: read(f"runs/{stimulus}/", run_meta) for stimulus, run_meta in meta["runs"].items()}
        observers = {observer: {stimulus: read(f"observers/{observer}/{stimulus}/", run_meta)
                                for stimulus, run_meta in by_stimulus.items()}
                     for observer, by_stimulus in meta.get("observers", {}).items()}
        return cls(config, runs, float(meta.get("seconds", 0.0)), observers)


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
        # stimulus → the observers' runs, advanced block for block with the model's on the same noise
        self.observer_parts: dict[str, list[ci.ClassificationImageExperiment]] = {}
        for observer, runs in self.state.observers.items():
            observer_net = observer_model(observer, model)
            for stimulus, run in runs.items():
                part = ci.ClassificationImageExperiment(observer_net, state=run, device=device, control=self.control)
                part._checkpoints = self.parts[stimulus]._checkpoints
                self.observer_parts.setdefault(stimulus, []).append(part)
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
        observers = {name: {stimulus: ci.ClassificationImageExperiment.new_state(
            observer_model(name, model), config.run_config(stimulus, run.config.noise))
            for stimulus, run in runs.items()} for name in OBSERVERS}
        return SampleComplexityState(config, runs, observers=observers)

    def prepare(self) -> None:
        for part in [*self.parts.values(), *(p for parts in self.observer_parts.values() for p in parts)]:
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
        for observer in self.observer_parts.get(stimulus, ()):
            if block not in observer.state.done:
                observer.run_unit(block)
        self._last = stimulus

    def after_unit(self) -> None:
        if self._last is not None:
            for part in [self.parts[self._last], *self.observer_parts.get(self._last, ())]:
                part.after_unit()

    def snapshot(self) -> SampleComplexitySnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_maps(snapshot: SampleComplexitySnapshot, path, view: str = "centered") -> Path:
    """Maps against samples as .npz arrays (the figure: figures.sample_complexity.save_maps_figure)."""
    arrays: dict[str, Any] = {}  # Any: savez's stubs would take a key of ** for its allow_pickle flag
    for stimulus, result in snapshot.results.items():
        for estimator in snapshot.estimators:
            for n, maps in result.checkpoint_maps(estimator).items():
                key = f"{stimulus}/{estimator}/{n}"
                assert maps is not None  # None only before a run's first sample
                arrays[f"{key}/classes"] = maps.classes
                arrays[f"{key}/{view}"] = maps.of(view).reshape(-1, *snapshot.image_shape)
    np.savez_compressed(path, class_names=np.asarray(snapshot.class_names), **arrays)
    return Path(path)


def write_reliability(snapshot: SampleComplexitySnapshot, path) -> Path:
    """Reliability against samples, one row per stimulus × estimator × record (CSV)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", "estimator", "samples", "reliability_mean", "classes_with_map",
                         *[f"reliability_{name}" for name in snapshot.class_names], "null_observer_reliability",
                         "excess_reliability"])
        for stimulus, result in snapshot.results.items():
            for estimator in snapshot.estimators:
                convergence = result.run.convergence.get(estimator)
                if convergence is None:
                    continue
                per_class = convergence.values()
                null_samples, null_values = result.observer_reliability("null", estimator)
                for i, n in enumerate(convergence.samples):
                    row = per_class[i]
                    matched = np.flatnonzero(null_samples == n)
                    null = csv_number(null_values[matched[0]]) if matched.size else ""
                    excess = csv_number(convergence.mean()[i] - null_values[matched[0]]) if matched.size else ""
                    writer.writerow([stimulus, estimator, int(n), csv_number(convergence.mean()[i]),
                                     int(np.isfinite(row).sum()), *[csv_number(v) for v in row], null, excess])
    return path


def write_template_cosine(snapshot: SampleComplexitySnapshot, path) -> Path:
    """The known-template observer's maps against its templates: mean cosine per stimulus, estimator and
    checkpoint (CSV). Correlated noise raises reliability without signal; it cannot raise this."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", "estimator", "samples", "template_cosine"])
        for stimulus, result in snapshot.results.items():
            for estimator in snapshot.estimators:
                for n, value in zip(*result.template_cosine(estimator)):
                    writer.writerow([stimulus, estimator, int(n), csv_number(value)])
    return path


def _has_samples(snapshot: SampleComplexitySnapshot) -> bool:
    return snapshot.samples_done > 0


ARTEFACTS = (
    Artefact("sample_complexity_maps", "Maps against samples: stimulus × estimator rows, sample-count columns "
             "(figure or arrays)", (".png", ".pdf", ".npz"), write_maps,
             figure="wna_gui.figures.sample_complexity:save_maps_figure", available=_has_samples),
    Artefact("sample_complexity_reliability", "Split-half reliability against samples per stimulus type (plot)",
             (".png", ".svg"), figure="wna_gui.figures.sample_complexity:save_reliability_plot",
             available=_has_samples),
    Artefact("sample_complexity", "Split-half reliability against samples, every stimulus and estimator, with the "
             "signal-free observer's and the excess over it (CSV)", (".csv",), write_reliability, available=_has_samples),
    Artefact("sample_complexity_template", "Known-template observer: cosine of its maps with its templates against "
             "samples (CSV)", (".csv",), write_template_cosine,
             available=lambda s: _has_samples(s) and any(r.templates is not None for r in s.results.values())),
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
            "excess_reliability": {e: _last(result.excess(e)) for e in state.config.estimators},
            "template_cosine": {e: _last(result.template_cosine(e)) for e in state.config.estimators},
        } for stimulus, result in snapshot.results.items()},
    }


def _last(curve: tuple[np.ndarray, np.ndarray]) -> float | None:
    """The last finite value of a (samples, values) curve, rounded; None when there is none."""
    values = curve[1][np.isfinite(curve[1])]
    return round(float(values[-1]), 4) if values.size else None


def _comparison(excess: float | None, cosine: float | None) -> str:
    parts = [f"excess over the signal-free observer {excess:+.2f}" if excess is not None else "",
             f"template observer's cosine {cosine:.2f}" if cosine is not None else ""]
    return "; ".join(p for p in parts if p)


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['samples_per_stimulus']:,} samples per stimulus type{status}"]
    key = f"samples_to_reliability_{RELIABILITY_TARGET:g}"
    for stimulus, facts in entry["stimuli"].items():
        reached = ", ".join(f"{ESTIMATORS[e].label} {'not yet' if n is None else f'{n:,}'}"
                            for e, n in facts[key].items())
        lines.append(f"  {STIMULUS_TITLES[stimulus]}: {facts['samples_done']:,} samples; reliability "
                     f"{RELIABILITY_TARGET:g} at: {reached}")
        for e in facts[key]:
            compared = _comparison(facts.get("excess_reliability", {}).get(e), facts.get("template_cosine", {}).get(e))
            if compared:
                lines.append(f"    {ESTIMATORS[e].label}: {compared}")
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
            compared = _comparison(_last(result.excess(estimator)), _last(result.template_cosine(estimator)))
            parts.append(f"{ESTIMATORS[estimator].label} {last}"
                         + (f" (≥ {RELIABILITY_TARGET:g} from {reached:,})" if reached else "")
                         + (f" [{compared}]" if compared else ""))
        lines.append(f"{STIMULUS_TITLES[stimulus]}: reliability " + "; ".join(parts))
    if any(result.observers for result in snapshot.results.values()):
        lines.append("structured noise raises reliability without any signal: compare stimulus types on the excess "
                     "and the template cosine, not on reliability")
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

__all__ = ["EXPERIMENT", "NullObserver", "OBSERVERS", "TemplateObserver", "SampleComplexityConfig", "SampleComplexityExperiment", "SampleComplexitySnapshot",
           "SampleComplexityState", "STIMULI"]
