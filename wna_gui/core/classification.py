"""Classification images (bias maps) from white noise: the streaming experiment.

noise block (seed, b) → model → predicted class → per-class float64
accumulators. Even and odd blocks go to separate accumulators: their merge is
the full result and their comparison is the split-half reliability, at no
extra cost. The unit of work is one noise block; core.driver runs them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .accumulators import ClassAccumulator, ClassMaps, class_maps, split_half_reliability
from .control import EngineError
from .driver import ProgressView
from .experiment import Artefact, Experiment, ExperimentSpec
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise, log_spaced_checkpoints
from .params import config_arrays, config_from_dict, config_to_dict, param
from .runtime import Runtime

KIND = "classification_images"
WEIGHTINGS = {"none": "none", "confidence": "softmax confidence"}
MAP_VIEWS = ("mean", "centered", "zmap")
MAP_VIEW_TITLES = {"zmap": "z-map", "mean": "mean", "centered": "mean − grand mean"}
# Reliability is recorded at these many log-spaced points per decade of samples.
RELIABILITY_POINTS_PER_DECADE = 8
RECORD_VERSION = 2


@dataclass(frozen=True)
class ClassificationImageConfig:
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise",
                               help="noise source: uniform U[low, high] (the paper's) or gaussian N(mean, std²)",
                               cli="--noise", group="Noise stimulus")
    samples: int = param(100_000, "Sample budget", "noise images to draw (with --resume: the new total)",
                         low=1, high=2_000_000_000, step=10_000, role="budget", group="Run")
    batch_size: int = param(1000, "Batch size", "noise images per block (a block is the unit of work; "
                            "a run keeps its block size)", low=1, high=1_000_000, step=100, group="Run")
    seed: int = param(0, "Seed", "seed of the counter-based noise: the same seed gives the same maps",
                      low=0, high=2**31 - 1, group="Run")
    weighting: str = param("none", "Weighting", "weight each sample by the softmax maximum (paper footnote 5)",
                           choices=WEIGHTINGS, group="Run")
    snapshot_seconds: float = 0.2  # how often a run shows progress; not a result setting

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"sample budget must be positive, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; use {' or '.join(WEIGHTINGS)}")

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, arrays: dict | None = None) -> "ClassificationImageConfig":
        return config_from_dict(cls, data, arrays)


def reliability_grid(up_to: int) -> np.ndarray:
    """Log-spaced sample counts from 1e2 at which split-half reliability is recorded."""
    decades = max(np.log10(max(up_to, 100)) - 2, 0)
    points = np.logspace(2, 2 + decades, int(np.ceil(decades * RELIABILITY_POINTS_PER_DECADE)) + 1)
    return np.unique(np.round(points).astype(np.int64))


@dataclass
class ClassificationImageState:
    """Everything needed to continue a run exactly: accumulators, progress, history."""

    config: ClassificationImageConfig
    n_classes: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    blocks_done: int = 0
    noise_device: str = ""  # device type whose generator drew the noise ("cpu" / "cuda")
    even: ClassAccumulator | None = None
    odd: ClassAccumulator | None = None
    reliability_samples: list[int] = field(default_factory=list)
    reliability_per_class: list[np.ndarray] = field(default_factory=list)
    # samples → (classes seen, their mean maps as float32 (R, D)) when the run first reached 1e3, 1e4, …
    checkpoint_maps: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0  # compute time spent so far

    def __post_init__(self) -> None:
        n_features = int(np.prod(self.image_shape))
        if self.even is None:
            self.even = ClassAccumulator(self.n_classes, n_features)
        if self.odd is None:
            self.odd = ClassAccumulator(self.n_classes, n_features)

    @property
    def samples_done(self) -> int:
        return min(self.blocks_done * self.config.batch_size, self.config.samples)

    progress_done = samples_done

    @property
    def progress_total(self) -> int:
        return self.config.samples

    @staticmethod
    def budget_of(config: ClassificationImageConfig) -> int:
        return config.samples

    @staticmethod
    def new_run_text(config: ClassificationImageConfig) -> str:
        return f"Start begins a new run of {config.samples:,} samples."

    @property
    def finished(self) -> bool:
        return self.blocks_done >= self.config.n_blocks

    def total(self) -> ClassAccumulator:
        return self.even.merged(self.odd)

    def with_budget(self, samples: int) -> "ClassificationImageState":
        """The same run with a larger (or smaller, not below what is done) sample budget."""
        if samples < self.samples_done:
            raise ValueError(f"budget {samples} is below the {self.samples_done} samples already done")
        if self.samples_done % self.config.batch_size and samples != self.samples_done:
            raise ValueError("a run that ended on a partial batch cannot be extended")
        self.config = replace(self.config, samples=samples)
        return self

    def snapshot(self, samples_per_second: float = 0.0, map_predictions: np.ndarray | None = None
                 ) -> "ClassificationSnapshot":
        """An immutable view for plots and exports; it needs no model (``map_predictions`` come from one)."""
        maps = class_maps(self.total())
        return ClassificationSnapshot(
            samples_done=self.samples_done,
            samples_total=self.config.samples,
            blocks_done=self.blocks_done,
            image_shape=tuple(self.image_shape),
            class_names=tuple(self.class_names),
            maps=maps,
            map_predictions=map_predictions,
            reliability_samples=np.asarray(self.reliability_samples, dtype=np.int64),
            reliability_per_class=(np.vstack(self.reliability_per_class) if self.reliability_per_class
                                   else np.zeros((0, self.n_classes))),
            samples_per_second=samples_per_second,
            seconds=self.seconds,
            finished=self.finished,
            noise_mean=self.config.noise.expected_mean,
        )

    # --- records for the session file (session.py writes them to HDF5) ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "config": self.config.to_dict(),
            "n_classes": self.n_classes,
            "image_shape": list(self.image_shape),
            "class_names": list(self.class_names),
            "blocks_done": self.blocks_done,
            "samples_done": self.samples_done,
            "noise_device": self.noise_device,
            "seconds": self.seconds,
        }
        arrays: dict[str, np.ndarray] = dict(config_arrays(self.config))
        for half, acc in (("even", self.even), ("odd", self.odd)):
            for name, value in acc.state().items():
                arrays[f"accumulators/{half}/{name}"] = value
        maps = class_maps(self.total())
        arrays["results/counts"] = maps.counts
        arrays["results/classes"] = maps.classes
        for name in MAP_VIEWS:
            arrays[f"results/{name}"] = getattr(maps, name).reshape(-1, *self.image_shape)
        arrays["results/grand_mean"] = maps.grand_mean.reshape(self.image_shape)
        arrays["convergence/samples"] = np.asarray(self.reliability_samples, dtype=np.int64)
        arrays["convergence/reliability"] = (
            np.vstack(self.reliability_per_class) if self.reliability_per_class
            else np.zeros((0, self.n_classes)))
        for samples, (classes, mean_maps) in self.checkpoint_maps.items():
            arrays[f"checkpoints/{samples}/classes"] = classes
            arrays[f"checkpoints/{samples}/mean"] = mean_maps.reshape(-1, *self.image_shape)
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "ClassificationImageState":
        state = cls(
            config=ClassificationImageConfig.from_dict(meta["config"], arrays),
            n_classes=int(meta["n_classes"]),
            image_shape=tuple(int(s) for s in meta["image_shape"]),
            class_names=tuple(meta["class_names"]),
            blocks_done=int(meta["blocks_done"]),
            noise_device=meta.get("noise_device", ""),
            seconds=float(meta.get("seconds", 0.0)),
        )
        for half in ("even", "odd"):
            acc_state = {name: arrays[f"accumulators/{half}/{name}"] for name in ClassAccumulator.FIELDS}
            setattr(state, half, ClassAccumulator.from_state(acc_state))
        state.reliability_samples = [int(s) for s in arrays.get("convergence/samples", [])]
        state.reliability_per_class = list(arrays.get("convergence/reliability", np.zeros((0, state.n_classes))))
        for key, classes in arrays.items():
            if key.startswith("checkpoints/") and key.endswith("/classes"):
                samples = key.split("/")[1]
                mean_maps = arrays[f"checkpoints/{samples}/mean"]
                state.checkpoint_maps[int(samples)] = (classes, mean_maps.reshape(len(classes), -1))
        return state


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 stored every noise field of either kind; version 2 stores the source's own parameters."""
    from .noise import noise_from_dict

    config = dict(meta["config"])
    config["noise"] = noise_from_dict(config.get("noise", {})).to_dict()
    return {**meta, "config": config}, arrays


@dataclass(frozen=True)
class ClassificationSnapshot(ProgressView):
    """An immutable view of a run for plots and progress bars (all arrays are copies)."""

    samples_done: int
    samples_total: int
    blocks_done: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    maps: ClassMaps
    # class the model assigns to each class's own mean map (−1 if empty); None until a model has looked
    map_predictions: np.ndarray | None
    reliability_samples: np.ndarray
    reliability_per_class: np.ndarray  # (T, K)
    samples_per_second: float
    seconds: float
    finished: bool
    noise_mean: float = 0.5  # the noise's pixel mean: the mean view is shown about it

    @property
    def counts(self) -> np.ndarray:
        return self.maps.counts

    @property
    def reliability_mean(self) -> np.ndarray:
        """Mean split-half r over classes with data, per recorded point."""
        if self.reliability_per_class.size == 0:
            return np.zeros(0)
        r = self.reliability_per_class
        valid = np.isfinite(r)
        return np.where(valid.any(1), np.nansum(r, 1) / np.maximum(valid.sum(1), 1), np.nan)

    def image(self, view: str, k: int) -> np.ndarray:
        """One class's map as (C, H, W); view is mean, centered or zmap."""
        return self.maps.of(view, [k])[0].reshape(self.image_shape)


def classify_maps(runtime: Runtime, maps: ClassMaps, image_shape: tuple[int, ...]) -> np.ndarray:
    """The class the model assigns to each class's own mean map (Fig. 2A titles); −1 for empty classes."""
    out = np.full(maps.counts.shape[0], -1, dtype=np.int64)
    finite = np.isfinite(maps.mean).all(1)
    if not finite.any():
        return out
    x = torch.as_tensor(maps.mean[finite], dtype=torch.float32).reshape(-1, *image_shape)
    with torch.inference_mode():
        out[maps.classes[finite]] = runtime.logits(x.to(runtime.device)).argmax(1).cpu().numpy()
    return out


def annotate(snapshot: ClassificationSnapshot, model: LoadedModel) -> ClassificationSnapshot:
    """``snapshot`` with the model's reading of each map (a saved run's snapshot has none)."""
    if snapshot.map_predictions is not None:
        return snapshot
    return replace(snapshot, map_predictions=classify_maps(Runtime(model, "cpu"), snapshot.maps,
                                                           snapshot.image_shape))


class ClassificationImageExperiment(Experiment):
    """Runs (or continues) a classification-image experiment on a model; a unit is one noise block."""

    def __init__(self, model: LoadedModel, config: ClassificationImageConfig | None = None,
                 state: ClassificationImageState | None = None, device: str | None = None, control=None) -> None:
        if state is not None and (state.n_classes != model.n_classes
                                  or tuple(state.image_shape) != tuple(model.input_spec.shape)):
            raise EngineError(
                f"session was made with {state.n_classes} classes of {tuple(state.image_shape)} images; "
                f"this model has {model.n_classes} classes of {tuple(model.input_spec.shape)}")
        super().__init__(model, config, state, device, control)
        self._grid = reliability_grid(self.state.config.samples)
        self._checkpoints = log_spaced_checkpoints(1000, max(self.state.config.samples, 1000))

    @classmethod
    def new_state(cls, model: LoadedModel, config: ClassificationImageConfig) -> ClassificationImageState:
        return ClassificationImageState(config, model.n_classes, tuple(model.input_spec.shape),
                                        tuple(model.class_names))

    def pending(self):
        while not self.state.finished:
            yield self.state.blocks_done

    def run_unit(self, block: int) -> None:
        """Draw block ``block``, classify it and merge it into its half."""
        self.run_block(block)
        self.state.blocks_done += 1

    def run_block(self, block: int) -> None:
        cfg, state = self.config, self.state
        size = min(cfg.batch_size, cfg.samples - block * cfg.batch_size)
        x = cfg.noise.block(cfg.seed, block, cfg.batch_size, tuple(state.image_shape), self.device)[:size]
        with torch.inference_mode():
            logits = self.runtime.logits(x, context=f"at sample {state.samples_done:,}")
            labels = logits.argmax(1)
            weights = torch.softmax(logits.float(), 1).amax(1) if cfg.weighting == "confidence" else None
            half = state.even if block % 2 == 0 else state.odd
            half.update(x, labels, weights)

    def after_unit(self) -> None:
        state = self.state
        n = state.samples_done
        recorded = state.reliability_samples[-1] if state.reliability_samples else 0
        pending = self._grid[(self._grid > recorded) & (self._grid <= n)]
        if (pending.size or state.finished) and n != recorded:
            state.reliability_samples.append(n)
            state.reliability_per_class.append(split_half_reliability(state.even, state.odd))
        for checkpoint in self._checkpoints:
            # Keyed by the first sample count that reached the checkpoint.
            if checkpoint <= n and not any(key >= checkpoint for key in state.checkpoint_maps):
                maps = class_maps(state.total())
                state.checkpoint_maps[n] = (maps.classes, maps.mean.astype(np.float32))
                break

    def snapshot(self) -> ClassificationSnapshot:
        snapshot = self.state.snapshot(self.rate)
        return replace(snapshot, map_predictions=classify_maps(self.runtime, snapshot.maps, snapshot.image_shape))


def run_classification_images(model: LoadedModel, config: ClassificationImageConfig,
                              device: str | None = None) -> ClassificationSnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return ClassificationImageExperiment(model, config, device=device).run_to_end()


# --- exports: one writer per artefact, shared by `wna export` and File > Export ---

def write_maps(snapshot: ClassificationSnapshot, path, view: str) -> Path:
    """One view's maps: .npz arrays (``maps`` (R, C, H, W) of the classes seen, their ``classes``, ``counts`` and
    ``class_names`` of all K classes, ``samples``) or a publication figure (.png, .pdf, .svg)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        np.savez_compressed(path, maps=getattr(snapshot.maps, view).reshape(-1, *snapshot.image_shape),
                            classes=snapshot.maps.classes, counts=snapshot.counts,
                            class_names=np.asarray(snapshot.class_names), samples=snapshot.samples_done)
        return path
    from ..figures import map_levels, map_titles, save_map_grid, shown_classes  # Qt painting, only when asked

    shown = shown_classes(snapshot.counts)
    titles = map_titles(snapshot.class_names, snapshot.counts, snapshot.map_predictions)
    maps = snapshot.maps.of(view, shown).reshape(len(shown), *snapshot.image_shape)
    levels = map_levels(maps, view, snapshot.noise_mean if view == "mean" else None)
    return save_map_grid(maps, [titles[k] for k in shown], path, view=view, levels=levels,
                         title=f"Classification images ({view}), N = {snapshot.samples_done:,}")


def write_class_table(snapshot: ClassificationSnapshot, path) -> Path:
    """Per class: count, the class the model gives its map, and the latest split-half r (CSV)."""
    path = Path(path)
    reliability = (snapshot.reliability_per_class[-1] if snapshot.reliability_per_class.size
                   else np.full(len(snapshot.class_names), np.nan))
    predictions = snapshot.map_predictions
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "name", "count", "map_prediction", "split_half_r"])
        for k, name in enumerate(snapshot.class_names):
            prediction = -1 if predictions is None else int(predictions[k])
            writer.writerow([k, name, int(snapshot.counts[k]), snapshot.class_names[prediction] if prediction >= 0
                             else "", f"{reliability[k]:.6f}" if np.isfinite(reliability[k]) else ""])
    return path


def write_reliability(snapshot: ClassificationSnapshot, path) -> Path:
    """Split-half reliability per class at each recorded sample count (CSV)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["samples", *(f"r_{name}" for name in snapshot.class_names)])
        for n, row in zip(snapshot.reliability_samples, snapshot.reliability_per_class):
            writer.writerow([int(n), *("" if not np.isfinite(v) else f"{v:.6f}" for v in row)])
    return path


def _has_samples(snapshot: ClassificationSnapshot) -> bool:
    return snapshot.samples_done > 0


ARTEFACTS = (
    *(Artefact(f"maps_{view}", f"Maps, {MAP_VIEW_TITLES[view]}: publication figure or arrays (.npz)",
               (".npz", ".png", ".pdf"), lambda snapshot, path, view=view: write_maps(snapshot, path, view),
               variant=view, available=_has_samples) for view in MAP_VIEWS),
    Artefact("class_counts", "Class table: counts, map predictions, split-half r", (".csv",), write_class_table),
    Artefact("reliability", "Split-half reliability per class over samples", (".csv",), write_reliability,
             available=lambda snapshot: snapshot.reliability_samples.size > 0),
)


# --- `wna info` and `wna run` text ---

def summary(state: ClassificationImageState) -> dict:
    return {
        "samples_done": state.samples_done,
        "samples_total": state.config.samples,
        "finished": state.finished,
        "compute_seconds": round(state.seconds, 3),
        "class_counts": {name: int(c) for name, c in zip(state.class_names, state.total().count)},
    }


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['samples_done']:,} of {entry['samples_total']:,} samples{status}"]
    lines += [f"  class {name:>10}: {count:>12,}" for name, count in entry["class_counts"].items()]
    return lines


def report(snapshot: ClassificationSnapshot) -> list[str]:
    counts = snapshot.counts
    top = ", ".join(f"{snapshot.class_names[k]}: {counts[k]:,}" for k in np.argsort(counts)[::-1][:5] if counts[k])
    return [f"{snapshot.samples_done:,} samples in {snapshot.seconds:.1f} s; most frequent classes {top}"]


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="classification-images",
    title="Classification images",
    help="per-class mean noise (bias maps), the paper's Fig. 2",
    config=ClassificationImageConfig,
    state=ClassificationImageState,
    experiment=ClassificationImageExperiment,
    unit="samples",
    panel="classification",
    artefacts=ARTEFACTS,
    can_extend=True,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1},
    summary=summary,
    describe=describe,
    report=report,
    annotate=annotate,
)
ClassificationImageExperiment.spec = EXPERIMENT

__all__ = [
    "EXPERIMENT", "ClassificationImageConfig", "ClassificationImageExperiment", "ClassificationImageState",
    "ClassificationSnapshot", "MAP_VIEWS", "run_classification_images",
]
