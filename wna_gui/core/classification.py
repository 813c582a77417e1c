"""Classification images (bias maps) from white noise: the streaming experiment.

noise block (seed, b) → model → scores → per-estimator float64 accumulators, every estimator in the same
pass over the same block (core.estimators): the hard label (the paper's classification image), the logit
kernel, the probability-weighted map, the gradient (Stein) estimator on every n-th block and signal-plus-
noise trials built on the same noise. Even and odd blocks go to separate accumulators: their merge is the
full result and their comparison is the split-half reliability, at no extra cost. The unit of work is one
noise block; core.driver runs them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .accumulators import (
    ClassAccumulator,
    ClassMaps,
    batch_class_stats,
    class_maps,
    spearman_brown,
    split_half_reliability,
    reliability_grid,
)
from .control import EngineError, csv_number
from .data import load_dataset
from .dataset_choices import DATA_DIR_HELP
from .distributed import BlockSet
from .estimators import (
    ACCUMULATORS,
    DEFAULT_ESTIMATORS,
    ESTIMATORS,
    VIEWS,
    EstimatorMaps,
    NoiseBlock,
    accumulator_bytes,
    canonical_estimators,
    format_bytes,
    from_class_maps,
    map_classes,
    memory_text,
    stein_cosines,
)
from .experiment import Artefact, Experiment, ExperimentSpec
from .images import ImageSet, SignalImages, dataset_labels
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise, log_spaced_checkpoints
from .params import config_arrays, param
from .runtime import Runtime
from .state import BlockState, RunConfig, RunSnapshot
from .structured_noise import has_scores, score_space_maps

KIND = "classification_images"
WEIGHTINGS = {"none": "none", "confidence": "softmax confidence"}
MAP_VIEWS = VIEWS
MAP_VIEW_TITLES = {"zmap": "z-map", "mean": "mean", "centered": "mean − grand mean"}
# 4: the blocks done as ranges (done_blocks), so a run splits over workers; 3: several estimators
# (config.estimators, estimators/<name>/…); 2: the hard label only.
RECORD_VERSION = 4
ESTIMATOR_CHOICES = {name: info.short for name, info in ESTIMATORS.items()}
SIGNAL_DATASETS = dataset_labels("test")
# Gradients are computed at most this many bytes (float32) at a time: samples × classes × pixels.
GRADIENT_TILE_BYTES = 64 * 2**20
# A new run refuses accumulators larger than this share of the machine's memory.
MEMORY_SHARE = 0.75
ESTIMATORS_GROUP = "Maps for every class"


@dataclass(frozen=True)
class ClassificationImageConfig(RunConfig):
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise",
                               help="noise source: uniform U[low, high] (the paper's) or gaussian N(mean, std²)",
                               cli="--noise", group="Noise stimulus")
    samples: int = param(100_000, "Sample budget", "noise images to draw (with --resume: the new total)",
                         low=1, high=2_000_000_000, step=10_000, role="budget", group="Run")
    batch_size: int = param(1000, "Batch size", "noise images per block (a block is the unit of work; "
                            "a run keeps its block size)", low=1, high=1_000_000, step=100, group="Run")
    seed: int = param(0, "Seed", "seed of the counter-based noise: the same seed gives the same maps",
                      low=0, high=2**31 - 1, group="Run")
    weighting: str = param("none", "Weighting", "hard label: weight each sample by the softmax maximum (paper "
                           "footnote 5)", choices=WEIGHTINGS, group="Run")
    estimators: tuple[str, ...] = param(
        DEFAULT_ESTIMATORS, "Estimators", "maps accumulated in the same pass: hard label (the paper's), logit kernel, "
        "probability-weighted, gradient (white-box, slow) and signal + noise; none checked means all",
        kind="multi", choices=ESTIMATOR_CHOICES, cli="--estimators", group=ESTIMATORS_GROUP,
        cli_help="maps to accumulate, comma-separated: hard (the paper's hard-label classification image), "
                 "logit (logit kernel), prob (probability-weighted), gradient (mean input gradient, white-box), "
                 "signal (signal-plus-noise trials); all: every one")
    gradient_every: int = param(10, "Gradient every", "the gradient estimator runs on every n-th noise block: "
                                "one backward pass per class per sample, ~20× a forward pass for 10 classes",
                                low=1, high=1_000_000, group=ESTIMATORS_GROUP)
    signal_gamma: float = param(0.45, "Signal γ", "signal strength of the signal-plus-noise trials, γ·s + "
                                "(1 − γ)·n (0.45: the bundled CNN answers 65% of uniform-noise trials correctly "
                                "and gives every answer)", low=0.0, high=0.99, step=0.05, decimals=3,
                                group=ESTIMATORS_GROUP)
    signal_dataset: str = param("bundled", "Signal images", "images of every class shown through the noise",
                                choices=SIGNAL_DATASETS, group=ESTIMATORS_GROUP)
    signal_data_dir: str = param("", "Signal data folder", DATA_DIR_HELP, kind="text", role="runtime",
                                 group=ESTIMATORS_GROUP)
    snapshot_seconds: float = 0.2  # how often a run shows progress; not a result setting

    def __post_init__(self) -> None:
        # Normalised here so configs compare equal however the estimators were listed.
        object.__setattr__(self, "estimators", canonical_estimators(self.estimators))
        if self.samples < 1:
            raise ValueError(f"sample budget must be positive, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; use {' or '.join(WEIGHTINGS)}")
        if self.gradient_every < 1:
            raise ValueError(f"gradient every must be at least 1 (every block), got {self.gradient_every}")
        if not 0 <= self.signal_gamma < 1:
            raise ValueError(f"signal γ must be in [0, 1) (1 leaves no noise), got {self.signal_gamma}")
        if self.signal_dataset not in SIGNAL_DATASETS:
            raise ValueError(f"unknown signal images {self.signal_dataset!r}; use {', '.join(SIGNAL_DATASETS)}")

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)

    def inactive_params(self) -> tuple[str, ...]:
        """Settings that mean nothing with the estimators chosen."""
        out = []
        if "hard" not in self.estimators:
            out.append("weighting")
        if "gradient" not in self.estimators:
            out.append("gradient_every")
        if "signal" not in self.estimators:
            out += ["signal_gamma", "signal_dataset", "signal_data_dir"]
        return tuple(out)


@dataclass(frozen=True)
class Convergence:
    """One estimator's split-half reliability at the recorded points."""

    run_samples: np.ndarray  # (T,) noise samples of the run when recorded
    samples: np.ndarray  # (T,) samples the estimator had used then (fewer for the gradient)
    per_class: np.ndarray  # (T, K) raw split-half r (even vs odd blocks); NaN where a half has no map

    def values(self, corrected: bool = True) -> np.ndarray:
        """(T, K) Spearman–Brown corrected r (the reliability of the whole map), or the raw r."""
        return spearman_brown(self.per_class) if corrected else self.per_class

    def mean(self, corrected: bool = True) -> np.ndarray:
        """(T,) the convergence summary: mean over all K classes of max(r, 0), a class without a map in both
        halves counting as 0; NaN where no class has one yet (a half still empty).

        Averaging over every class (not only those with a map) is what makes estimators comparable: the
        hard label's classes that noise never reaches are counted as unreliable, as they are. Flooring at 0
        (a negative r means no reliable map) makes the summary never fall because a class appeared: its term
        goes from 0 to something ≥ 0.
        """
        if self.per_class.size == 0:
            return np.zeros(0)
        values = self.values(corrected)
        floored = np.clip(np.nan_to_num(values, nan=0.0), 0.0, None)
        return np.where(np.isfinite(values).any(1), floored.mean(1), np.nan)

    def mapped_mean(self, corrected: bool = True) -> np.ndarray:
        """(T,) the summary a reader takes as "how converged are the maps": mean of max(r, 0) over the classes
        that have a map in both halves (NaN where none has). Unlike mean(), a hard-label run whose two maps are
        converged reads ≈0.9, not 0.2 because eight classes were never reached; without_map() says how many."""
        if self.per_class.size == 0:
            return np.zeros(0)
        values = self.values(corrected)
        measured = np.isfinite(values)
        floored = np.where(measured, np.clip(np.nan_to_num(values, nan=0.0), 0.0, None), 0.0)
        with np.errstate(invalid="ignore"):
            return np.where(measured.any(1), floored.sum(1) / measured.sum(1), np.nan)

    def without_map(self) -> np.ndarray:
        """(T,) how many classes had no map in one of the halves at each record."""
        return (~np.isfinite(self.per_class)).sum(1)


def mapped_reliability_text(convergence: "Convergence | None") -> str:
    """The latest summary in words: "reliability 0.91 over the 2 classes with a map (8 classes have no map)"."""
    if convergence is None or convergence.per_class.shape[0] == 0 or not np.isfinite(convergence.mapped_mean()[-1]):
        return "reliability not yet measured"
    missing = int(convergence.without_map()[-1])
    mapped = convergence.per_class.shape[1] - missing
    text = (f"reliability {convergence.mapped_mean()[-1]:.2f} (Spearman–Brown; mean over the {mapped} "
            f"class{'es' if mapped != 1 else ''} with a map, r < 0 counting as 0)")
    return text + (f"; {missing} class{'es have' if missing != 1 else ' has'} no map" if missing else "")


@dataclass
class ClassificationImageState(BlockState):
    """Everything needed to continue a run exactly: accumulators, progress, history."""

    config: ClassificationImageConfig
    n_classes: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    done: BlockSet = field(default_factory=BlockSet)  # the blocks merged into the accumulators
    noise_device: str = ""  # device type whose generator drew the noise ("cpu" / "cuda")
    # The hard label's halves (with hard-label maps off they only count labels: how the model labels noise).
    even: ClassAccumulator | None = None
    odd: ClassAccumulator | None = None
    # The other estimators' halves: name → [even, odd].
    halves: dict[str, list] = field(default_factory=dict)
    # Structured noise (images = offset + scores·B): the hard label's halves over the scores, mapped back
    # (k = B·STA_a) beside the pixel maps; None for white noise.
    scores: list | None = None
    reliability_samples: list[int] = field(default_factory=list)  # run samples at each record
    reliability: dict[str, list[np.ndarray]] = field(default_factory=dict)  # estimator → raw r (K,) per record
    reliability_counts: dict[str, list[int]] = field(default_factory=dict)  # estimator → its samples per record
    # run samples when first reaching 1e3, 1e4, … → estimator → its maps then (float32)
    checkpoint_maps: dict[int, dict[str, EstimatorMaps]] = field(default_factory=dict)
    signal_images: dict = field(default_factory=dict)  # {"name", "count", "sha256"} of the signal images
    seconds: float = 0.0  # compute time spent so far

    def __post_init__(self) -> None:
        n_features = int(np.prod(self.image_shape))
        if self.even is None:
            self.even = ClassAccumulator(self.n_classes, n_features)
        if self.odd is None:
            self.odd = ClassAccumulator(self.n_classes, n_features)
        if self.scores is None and "hard" in self.estimators and has_scores(self.config.noise):
            structured: Any = self.config.noise  # a source with scores (has_scores)
            k = np.asarray(structured.score_basis(tuple(self.image_shape))).shape[0]
            self.scores = [ClassAccumulator(self.n_classes, k) for _ in range(2)]
        for name in self.estimators:
            if name != "hard" and name not in self.halves:
                self.halves[name] = [ACCUMULATORS[name](self.n_classes, n_features) for _ in range(2)]
            self.reliability.setdefault(name, [])
            self.reliability_counts.setdefault(name, [])

    @property
    def estimators(self) -> tuple[str, ...]:
        return self.config.estimators

    @property
    def n_features(self) -> int:
        return int(np.prod(self.image_shape))


    @property
    def reliability_per_class(self) -> list[np.ndarray]:
        """The hard label's raw split-half r per record (empty without hard-label maps)."""
        return self.reliability.get("hard", [])

    @staticmethod
    def new_run_text(config: ClassificationImageConfig) -> str:
        return f"Start begins a new run of {config.samples:,} samples."

    def total(self) -> ClassAccumulator:
        """The hard label's accumulators of the whole run."""
        assert self.even is not None and self.odd is not None  # __post_init__ makes both
        return self.even.merged(self.odd)

    def accumulator_bytes(self) -> dict[str, int]:
        return accumulator_bytes(self.estimators, self.n_classes, self.n_features)

    # --- blocks for workers (core.distributed): a blank state, its statistics, merges ---

    def blank(self) -> "ClassificationImageState":
        """The same run with nothing measured: what a worker runs its blocks into."""
        return ClassificationImageState(self.config, self.n_classes, tuple(self.image_shape),
                                        tuple(self.class_names), noise_device=self.noise_device,
                                        signal_images=dict(self.signal_images))

    def statistics(self) -> dict[str, np.ndarray]:
        """The sufficient statistics of the blocks done: every accumulator's float64 state and the blocks."""
        assert self.even is not None and self.odd is not None  # __post_init__ makes both
        arrays = {"done_blocks": self.done.to_array()}
        for half, acc in (("even", self.even), ("odd", self.odd)):
            for name, value in acc.state().items():
                arrays[f"accumulators/{half}/{name}"] = value
        for estimator, halves in self.halves.items():
            for half, acc in zip(("even", "odd"), halves):
                for name, value in acc.state().items():
                    arrays[f"estimators/{estimator}/{half}/{name}"] = value
        for half, acc in zip(("even", "odd"), self.scores or ()):
            arrays.update({f"scores/{half}/{name}": value for name, value in acc.state().items()})
        return arrays

    def merge(self, statistics: Mapping[str, np.ndarray]) -> None:
        """Merge a worker's :meth:`statistics` (Chan's update; ValueError if a block would count twice)."""
        done = self.done.copy()
        done.update(BlockSet.from_array(statistics["done_blocks"]))
        for half in ("even", "odd"):
            getattr(self, half).merge_stats(ClassAccumulator.from_state(_group(statistics, f"accumulators/{half}/")))
        for estimator, halves in self.halves.items():
            for half, acc in zip(("even", "odd"), halves):
                acc.merge(ACCUMULATORS[estimator].from_state(_group(statistics, f"estimators/{estimator}/{half}/")))
        for half, acc in zip(("even", "odd"), self.scores or ()):
            acc.merge_stats(ClassAccumulator.from_state(_group(statistics, f"scores/{half}/")))
        self.done = done

    def statistics_bytes(self) -> int:
        """An upper bound of :meth:`statistics`' size."""
        return sum(self.accumulator_bytes().values())

    def allocated_bytes(self) -> int:
        """Bytes the accumulators hold now (the hard label's and signal's grow with the classes reached)."""
        return int(sum(value.nbytes for key, value in self.statistics().items() if key != "done_blocks"))

    # --- maps ---

    def estimator_maps(self, name: str, classes: np.ndarray, hard: ClassMaps | None = None) -> EstimatorMaps:
        """One estimator's maps of ``classes`` (the hard label's from ``hard`` when given)."""
        if name == "hard":
            return from_class_maps(hard if hard is not None else class_maps(self.total())).restricted(classes)
        even, odd = self.halves[name]
        return ACCUMULATORS[name].maps(even, odd, classes)

    def estimator_samples(self, name: str) -> int:
        if name == "hard":
            return self.samples_done
        even, odd = self.halves[name]
        return even.samples + odd.samples

    def score_maps(self) -> EstimatorMaps | None:
        """The hard label's maps averaged in the structured noise's score space, mapped back (None: white noise)."""
        if self.scores is None:
            return None
        structured: Any = self.config.noise  # a source with scores: it made them
        basis = structured.score_basis(tuple(self.image_shape))
        return score_space_maps(self.scores[0].merged(self.scores[1]), basis)

    def split_half(self, name: str) -> np.ndarray:
        """Raw split-half r (K,) of one estimator now."""
        if name == "hard":
            assert self.even is not None and self.odd is not None  # __post_init__ makes both
            return split_half_reliability(self.even, self.odd)
        even, odd = self.halves[name]
        return ACCUMULATORS[name].reliability(even, odd)

    def convergence(self, name: str) -> Convergence:
        return Convergence(np.asarray(self.reliability_samples, dtype=np.int64),
                           np.asarray(self.reliability_counts[name], dtype=np.int64),
                           np.vstack(self.reliability[name]) if self.reliability[name]
                           else np.zeros((0, self.n_classes)))

    def snapshot(self, samples_per_second: float = 0.0, map_predictions: np.ndarray | None = None
                 ) -> "ClassificationSnapshot":
        """An immutable view for plots and exports; it needs no model (predictions come from one)."""
        maps = class_maps(self.total())
        classes = map_classes(maps.counts)
        estimator_maps = {name: self.estimator_maps(name, classes, maps) for name in self.estimators}
        convergence = {name: self.convergence(name) for name in self.estimators}
        stein = None
        if "gradient" in estimator_maps and "logit" in estimator_maps:
            stein = stein_cosines(estimator_maps["gradient"], estimator_maps["logit"])
        signal_correct = None
        if "signal" in self.halves:
            signal_correct = self.halves["signal"][0].merged(self.halves["signal"][1]).correct
        hard = convergence.get("hard")
        return ClassificationSnapshot(
            **self.progress_fields(samples_per_second),
            blocks_done=self.blocks_done,
            image_shape=tuple(self.image_shape),
            class_names=tuple(self.class_names),
            maps=maps,
            map_predictions=map_predictions,
            reliability_samples=np.asarray(self.reliability_samples, dtype=np.int64),
            reliability_per_class=hard.per_class if hard is not None else np.zeros((0, self.n_classes)),
            noise_mean=self.config.noise.expected_mean,
            estimators=self.estimators,
            estimator_maps=estimator_maps,
            convergence=convergence,
            checkpoints={n: dict(by_estimator) for n, by_estimator in self.checkpoint_maps.items()},
            stein_cosine=stein,
            signal_correct=signal_correct,
            noise_kind=self.config.noise.kind,
            gradient_every=self.config.gradient_every,
            signal_gamma=self.config.signal_gamma,
            score_maps=self.score_maps(),
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
        if self.signal_images:
            meta["signal_images"] = dict(self.signal_images)
        shape = tuple(self.image_shape)
        arrays: dict[str, np.ndarray] = dict(config_arrays(self.config))
        arrays.update(self.statistics())  # accumulators and done_blocks
        snapshot = self.snapshot()
        maps = snapshot.maps
        arrays["results/counts"] = maps.counts
        arrays["results/classes"] = maps.classes
        for name in MAP_VIEWS:
            arrays[f"results/{name}"] = getattr(maps, name).reshape(-1, *shape)
        arrays["results/grand_mean"] = maps.grand_mean.reshape(shape)
        for estimator, estimated in snapshot.estimator_maps.items():
            if estimator == "hard":
                continue
            arrays[f"results/{estimator}/classes"] = estimated.classes
            arrays[f"results/{estimator}/support"] = estimated.support
            for name in MAP_VIEWS:
                arrays[f"results/{estimator}/{name}"] = getattr(estimated, name).reshape(-1, *shape)
        arrays["convergence/samples"] = np.asarray(self.reliability_samples, dtype=np.int64)
        for estimator in self.estimators:
            rows = (np.vstack(self.reliability[estimator]) if self.reliability[estimator]
                    else np.zeros((0, self.n_classes)))
            if estimator == "hard":
                arrays["convergence/reliability"] = rows
                continue
            arrays[f"convergence/{estimator}/samples"] = np.asarray(self.reliability_counts[estimator], np.int64)
            arrays[f"convergence/{estimator}/reliability"] = rows
        for samples, by_estimator in self.checkpoint_maps.items():
            for estimator, estimated in by_estimator.items():
                views: tuple[str, ...]
                if estimator == "hard":  # classes and mean where record version 2 kept them
                    arrays[f"checkpoints/{samples}/classes"] = estimated.classes
                    arrays[f"checkpoints/{samples}/mean"] = estimated.mean.reshape(-1, *shape)
                    base = f"estimators/hard/checkpoints/{samples}"
                    views = ("centered", "zmap")
                else:
                    base = f"estimators/{estimator}/checkpoints/{samples}"
                    arrays[f"{base}/classes"] = estimated.classes
                    views = MAP_VIEWS
                arrays[f"{base}/support"] = estimated.support
                arrays[f"{base}/samples"] = np.int64(estimated.samples)
                for name in views:
                    arrays[f"{base}/{name}"] = getattr(estimated, name).reshape(-1, *shape)
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "ClassificationImageState":
        config = ClassificationImageConfig.from_dict(meta["config"], arrays)
        state = cls(
            config=config,
            n_classes=int(meta["n_classes"]),
            image_shape=tuple(int(s) for s in meta["image_shape"]),
            class_names=tuple(meta["class_names"]),
            done=BlockSet.from_array(arrays["done_blocks"]),
            noise_device=meta.get("noise_device", ""),
            seconds=float(meta.get("seconds", 0.0)),
            halves={estimator: [ACCUMULATORS[estimator].from_state(_group(arrays, f"estimators/{estimator}/{half}/"))
                                for half in ("even", "odd")]
                    for estimator in config.estimators if estimator != "hard"},
            signal_images=dict(meta.get("signal_images") or {}),
        )
        for half in ("even", "odd"):
            acc_state = {name: arrays[f"accumulators/{half}/{name}"] for name in ClassAccumulator.FIELDS}
            setattr(state, half, ClassAccumulator.from_state(acc_state))
        if state.scores is not None:  # a record without them (written before they were kept) has none
            state.scores = ([ClassAccumulator.from_state(_group(arrays, f"scores/{half}/")) for half in ("even", "odd")]
                            if "scores/even/count" in arrays else None)
        for estimator, halves in state.halves.items():
            for acc in halves:
                if acc.n_classes != state.n_classes:
                    raise ValueError(f"the {estimator} accumulators hold {acc.n_classes} classes, the run "
                                     f"{state.n_classes}")
        state.reliability_samples = [int(s) for s in arrays.get("convergence/samples", [])]
        empty = np.zeros((0, state.n_classes))
        for estimator in config.estimators:
            if estimator == "hard":
                state.reliability["hard"] = list(arrays.get("convergence/reliability", empty))
                state.reliability_counts["hard"] = list(state.reliability_samples)
            else:
                state.reliability[estimator] = list(arrays.get(f"convergence/{estimator}/reliability", empty))
                state.reliability_counts[estimator] = [int(s) for s in
                                                       arrays.get(f"convergence/{estimator}/samples", [])]
            if len(state.reliability[estimator]) != len(state.reliability_samples):
                raise ValueError(f"the {estimator} convergence record has {len(state.reliability[estimator])} "
                                 f"points for {len(state.reliability_samples)} sample counts")
        state.checkpoint_maps = _checkpoints_from_record(arrays, config.estimators, state.n_classes)
        return state


def _group(arrays: Mapping, prefix: str) -> dict:
    """The arrays under ``prefix``, keyed by the rest of their path (KeyError names a missing group)."""
    out = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
    if not out:
        raise KeyError(f"{prefix.rstrip('/')} is missing")
    return out


def _checkpoints_from_record(arrays: dict, estimators, n_classes: int) -> dict[int, dict[str, EstimatorMaps]]:
    out: dict[int, dict[str, EstimatorMaps]] = {}
    for key in arrays:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "checkpoints" and parts[2] == "classes":
            out.setdefault(int(parts[1]), {})
        elif len(parts) == 5 and parts[0] == "estimators" and parts[2] == "checkpoints" and parts[4] == "samples":
            out.setdefault(int(parts[3]), {})
    for samples, by_estimator in out.items():
        for estimator in estimators:
            base = f"estimators/{estimator}/checkpoints/{samples}"
            if estimator == "hard":
                if f"checkpoints/{samples}/classes" not in arrays:
                    continue
                classes = np.asarray(arrays[f"checkpoints/{samples}/classes"], dtype=np.int64)
                mean = np.asarray(arrays[f"checkpoints/{samples}/mean"]).reshape(len(classes), -1)
            elif f"{base}/classes" in arrays:
                classes = np.asarray(arrays[f"{base}/classes"], dtype=np.int64)
                mean = np.asarray(arrays[f"{base}/mean"]).reshape(len(classes), -1)
            else:
                continue
            # Record version 2 kept only the hard label's mean maps: the other views were not recorded.
            missing = np.full(mean.shape, np.nan, dtype=mean.dtype)
            views = {name: (np.asarray(arrays[f"{base}/{name}"]).reshape(mean.shape) if f"{base}/{name}" in arrays
                            else missing) for name in ("centered", "zmap")}
            support = np.asarray(arrays.get(f"{base}/support", np.full(n_classes, np.nan)), dtype=np.float64)
            count = int(np.asarray(arrays.get(f"{base}/samples", samples if estimator == "hard" else 0)))
            by_estimator[estimator] = EstimatorMaps(estimator, classes, mean, views["centered"], views["zmap"],
                                                    support, count)
    return {samples: by_estimator for samples, by_estimator in sorted(out.items()) if by_estimator}


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 stored every noise field of either kind; version 2 stores the source's own parameters."""
    from .noise import noise_from_dict

    config = dict(meta["config"])
    config["noise"] = noise_from_dict(config.get("noise", {})).to_dict()
    return {**meta, "config": config}, arrays


def _migrate_v2(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 2 measured the hard label only; version 3 lists the estimators a run accumulates."""
    return {**meta, "config": {**meta["config"], "estimators": ["hard"]}}, arrays


def _migrate_v3(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 3 counted the blocks done (always blocks 0 … n − 1); version 4 keeps them as ranges."""
    return meta, {**arrays, "done_blocks": BlockSet.prefix(int(meta["blocks_done"])).to_array()}


@dataclass(frozen=True)
class ClassificationSnapshot(RunSnapshot):
    """An immutable view of a run for plots and progress bars (arrays are copies or never changed again)."""

    blocks_done: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    maps: ClassMaps  # the hard label's (only counts when hard-label maps are off)
    # class the model assigns to each class's own mean map (−1 if empty); None until a model has looked
    map_predictions: np.ndarray | None
    reliability_samples: np.ndarray
    reliability_per_class: np.ndarray  # (T, K) the hard label's raw split-half r
    noise_mean: float = 0.5  # the noise's pixel mean: the mean view is shown about it
    estimators: tuple[str, ...] = ("hard",)
    estimator_maps: Mapping[str, EstimatorMaps] = field(default_factory=dict)
    convergence: Mapping[str, Convergence] = field(default_factory=dict)
    # run samples → estimator → maps when the run first reached 1e3, 1e4, … samples
    checkpoints: Mapping[int, Mapping[str, EstimatorMaps]] = field(default_factory=dict)
    # estimator → the class the model assigns to each class's raw map (image-like estimators; −1: no map)
    predictions: Mapping[str, np.ndarray] = field(default_factory=dict)
    stein_cosine: np.ndarray | None = None  # (K,) cos(mean gradient, logit kernel) when both are on
    signal_correct: float | None = None  # fraction of signal-plus-noise trials answered as their signal
    noise_kind: str = "uniform"
    gradient_every: int = 1
    signal_gamma: float = 0.0
    annotated: bool = False  # a model has classified the maps
    # structured noise: the hard label's maps averaged in score space and mapped back (k = B·STA_a)
    score_maps: EstimatorMaps | None = None
    model_name: str = ""  # the model's display name, once a model has looked (figure titles)

    @property
    def counts(self) -> np.ndarray:
        return self.maps.counts

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def image(self, view: str, k: int) -> np.ndarray:
        """One class's hard-label map as (C, H, W); view is mean, centered or zmap."""
        return self.maps.of(view, [k])[0].reshape(self.image_shape)

    def maps_of(self, estimator: str, samples: int | None = None) -> EstimatorMaps | None:
        """An estimator's maps now, or at checkpoint ``samples`` (None where not recorded)."""
        if samples is None:
            return self.estimator_maps.get(estimator)
        return self.checkpoints.get(samples, {}).get(estimator)

    def latest_reliability(self, estimator: str, corrected: bool = True) -> np.ndarray:
        """(K,) the last recorded split-half r of each class (NaN where none)."""
        convergence = self.convergence.get(estimator)
        if convergence is None or convergence.per_class.shape[0] == 0:
            return np.full(self.n_classes, np.nan)
        return convergence.values(corrected)[-1]


def classify_maps(runtime: Runtime, maps, image_shape: tuple[int, ...], n_classes: int | None = None) -> np.ndarray:
    """The class the model assigns to each class's own raw map (Fig. 2A titles); −1 for classes without one."""
    n_classes = n_classes if n_classes is not None else (
        maps.counts.shape[0] if isinstance(maps, ClassMaps) else maps.n_classes)
    out = np.full(n_classes, -1, dtype=np.int64)
    finite = np.isfinite(maps.mean).all(1)
    if not finite.any():
        return out
    x = torch.as_tensor(maps.mean[finite], dtype=torch.float32).reshape(-1, *image_shape)
    with torch.inference_mode():
        out[maps.classes[finite]] = runtime.logits(x.to(runtime.device)).argmax(1).cpu().numpy()
    return out


def with_predictions(snapshot: ClassificationSnapshot, runtime: Runtime) -> ClassificationSnapshot:
    """``snapshot`` with the model's reading of the hard label's maps (paper Fig. 2A titles).

    Only the hard label's: the other estimators' raw maps are kernels, or noise averages the model reads as
    noise (the bundled CNN calls nearly all of them "8"), which says nothing about the class.
    """
    predictions = {name: classify_maps(runtime, estimated, snapshot.image_shape, snapshot.n_classes)
                   for name, estimated in snapshot.estimator_maps.items() if name == "hard"}
    return replace(snapshot, predictions=predictions, map_predictions=predictions.get("hard"), annotated=True,
                   model_name=runtime.model.display_name)


def annotate(snapshot: ClassificationSnapshot, model: LoadedModel) -> ClassificationSnapshot:
    """``snapshot`` with the model's reading of each map (a saved run's snapshot has none)."""
    if snapshot.annotated:
        return snapshot
    return with_predictions(snapshot, Runtime(model, "cpu"))


# --- signal images ---

def signal_images_for(model: LoadedModel, config: ClassificationImageConfig, signals=None) -> SignalImages:
    if isinstance(signals, SignalImages):
        return signals
    return SignalImages(signals if signals is not None else
                        load_dataset(config.signal_dataset, config.signal_data_dir or None), model)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: ClassificationImageConfig, n_classes: int, n_features: int) -> None:
    """Refuse estimators whose accumulators would not fit in memory, saying how much they need."""
    total = sum(accumulator_bytes(config.estimators, n_classes, n_features).values())
    available = _physical_memory()
    if available and total > MEMORY_SHARE * available:
        raise EngineError(f"the estimators need {format_bytes(total)} of accumulators for {n_classes:,} classes "
                          f"of {n_features:,} pixels, more than this machine's {format_bytes(available)} allow; "
                          f"choose fewer estimators")


class ClassificationImageExperiment(Experiment):
    """Runs (or continues) a classification-image experiment on a model; a unit is one noise block.

    ``signals``: the images of signal-plus-noise trials (an ImageSet), else the config's signal images.
    """

    def __init__(self, model: LoadedModel, config: ClassificationImageConfig | None = None,
                 state: ClassificationImageState | None = None, device: str | torch.device | None = None, control=None,
                 signals: ImageSet | SignalImages | None = None) -> None:
        if state is not None and (state.n_classes != model.n_classes
                                  or tuple(state.image_shape) != tuple(model.input_spec.shape)):
            raise EngineError(
                f"session was made with {state.n_classes} classes of {tuple(state.image_shape)} images; "
                f"this model has {model.n_classes} classes of {tuple(model.input_spec.shape)}")
        chosen = state.config if state is not None else config if config is not None else self.spec.config()
        self._signals = signal_images_for(model, chosen, signals) if "signal" in chosen.estimators else None
        if state is not None and self._signals is not None and state.progress_done > 0 \
                and state.signal_images.get("sha256") != self._signals.sha256:
            raise EngineError("these signal images differ from the ones the session's signal-plus-noise trials "
                              "showed; choose the same signal images")
        super().__init__(model, chosen, state, device, control,
                         **({"signals": self._signals} if state is None and self._signals is not None else {}))
        if self._signals is not None:
            self.state.signal_images = self._signals.record()
            self._signal_images = self._signals.images.to(self.device)
        self._grid = reliability_grid(self.state.config.samples)
        self._checkpoints = log_spaced_checkpoints(1000, max(self.state.config.samples, 1000))

    @classmethod
    def new_state(cls, model: LoadedModel, config: ClassificationImageConfig, signals=None
                  ) -> ClassificationImageState:
        n_features = int(np.prod(model.input_spec.shape))
        check_memory(config, model.n_classes, n_features)
        state = ClassificationImageState(config, model.n_classes, tuple(model.input_spec.shape),
                                         tuple(model.class_names))
        if "signal" in config.estimators:
            state.signal_images = signal_images_for(model, config, signals).record()
        return state

    def pending(self):
        return self.state.done.pending(self.state.config.n_blocks)

    def run_unit(self, block: int) -> None:
        """Draw block ``block``, run every estimator on it and merge each into its half."""
        self.run_block(block)
        self.state.done.add(block)

    def run_block(self, block: int) -> None:
        cfg, state = self.config, self.state
        estimators = cfg.estimators
        size = min(cfg.batch_size, cfg.samples - block * cfg.batch_size)
        scores = None
        if state.scores is not None:  # the same images, with the scores that made them
            x, scores = cfg.noise.block_with_scores(cfg.seed, block, cfg.batch_size, tuple(state.image_shape),
                                                    self.device)
            x, scores = x[:size], scores[:size]
        else:
            x = cfg.noise.block(cfg.seed, block, cfg.batch_size, tuple(state.image_shape), self.device)[:size]
        half = block % 2
        context = f"at sample {state.samples_done:,}"
        with torch.inference_mode():
            logits = self.runtime.logits(x, context=context)
            labels = logits.argmax(1)
            hard = state.even if half == 0 else state.odd
            noise = NoiseBlock(x, logits)
            if "hard" in estimators:
                weights = torch.softmax(logits.float(), 1).amax(1) if cfg.weighting == "confidence" else None
                hard.merge_stats(batch_class_stats(noise.x, labels, state.n_classes, weights))
                if scores is not None:
                    state.scores[half].merge_stats(batch_class_stats(scores.to(torch.float64), labels,
                                                                     state.n_classes, weights))
            else:
                hard.add_counts(labels)
            for name in ("logit", "prob"):
                if name in estimators:
                    state.halves[name][half].add(noise)
            if "signal" in estimators:
                assert self._signals is not None  # made when the run measures the signal estimator
                index, signal_labels = self._signals.draw(cfg.seed, block, size)
                shown = self._signal_images[torch.as_tensor(index, device=self.device)]
                stimuli = cfg.signal_gamma * shown + (1 - cfg.signal_gamma) * x
                answers = self.runtime.logits(stimuli, context=f"in signal-plus-noise trials {context}").argmax(1)
                state.halves["signal"][half].add(noise.x, torch.as_tensor(signal_labels), answers.cpu())
        if "gradient" in estimators and block % cfg.gradient_every == 0:
            self._gradient_block(x, (block // cfg.gradient_every) % 2, context)

    def _gradient_block(self, x: torch.Tensor, half: int, context: str) -> None:
        """Merge the input gradient of every score (and of their mean) over the block into ``half``.

        A few samples and classes at a time (GRADIENT_TILE_BYTES), so a 1000-class model fits in memory.
        """
        acc = self.state.halves["gradient"][half]
        n_classes, n_features = self.state.n_classes, self.state.n_features
        per_sample = 4 * n_features
        step = max(1, min(len(x), self.runtime.chunk or len(x), GRADIENT_TILE_BYTES // per_sample))
        group = max(1, min(n_classes, GRADIENT_TILE_BYTES // (step * per_sample)))
        for chunk in x.split(step):
            mean_over_classes = torch.zeros(len(chunk), n_features, dtype=torch.float64, device=chunk.device)
            for first in range(0, n_classes, group):
                rows = np.arange(first, min(n_classes, first + group))
                gradients = self.runtime.input_gradients(chunk, rows.tolist(), context=context)
                gradients = gradients.reshape(len(chunk), len(rows), n_features).to(torch.float64)
                mean_over_classes += gradients.sum(1)
                acc.add(gradients, rows)
            acc.add((mean_over_classes / n_classes)[:, None, :], [n_classes])

    def after_unit(self) -> None:
        state = self.state
        n = state.samples_done
        recorded = state.reliability_samples[-1] if state.reliability_samples else 0
        pending = self._grid[(self._grid > recorded) & (self._grid <= n)]
        if (pending.size or state.finished) and n != recorded:
            state.reliability_samples.append(n)
            for name in state.estimators:
                state.reliability[name].append(state.split_half(name))
                state.reliability_counts[name].append(state.estimator_samples(name))
        for checkpoint in self._checkpoints:
            # Keyed by the first sample count that reached the checkpoint.
            if checkpoint <= n and not any(key >= checkpoint for key in state.checkpoint_maps):
                maps = class_maps(state.total())
                classes = map_classes(maps.counts)
                state.checkpoint_maps[n] = {name: state.estimator_maps(name, classes, maps).as_float32()
                                            for name in state.estimators}
                break

    def snapshot(self) -> ClassificationSnapshot:
        return with_predictions(self.state.snapshot(self.rate), self.runtime)


def run_classification_images(model: LoadedModel, config: ClassificationImageConfig,
                              device: str | None = None) -> ClassificationSnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return ClassificationImageExperiment(model, config, device=device).run_to_end()


# --- exports: one writer per artefact, shared by `wna export` and File > Export ---

def write_maps(snapshot: ClassificationSnapshot, path, view: str) -> Path:
    """The hard label's maps in one view (the paper's classification images): .npz arrays (``maps`` (R, C, H, W)
    of the classes seen, their ``classes``, ``counts`` and ``class_names`` of all K classes, ``samples``)."""
    path = Path(path)
    np.savez_compressed(path, maps=getattr(snapshot.maps, view).reshape(-1, *snapshot.image_shape),
                        classes=snapshot.maps.classes, counts=snapshot.counts,
                        class_names=np.asarray(snapshot.class_names), samples=snapshot.samples_done)
    return path


def figure_title(snapshot: ClassificationSnapshot, what: str, samples: int | None = None) -> str:
    """"what · model · noise · N = …": a figure that leaves the app says what it shows."""
    parts = [what, snapshot.model_name, f"{snapshot.noise_kind} noise",
             f"N = {snapshot.samples_done if samples is None else samples:,}"]
    return " · ".join(part for part in parts if part)


ROW_VIEW_TITLES = {"mean": "raw maps", "centered": "class-specific (centred) maps", "zmap": "z-maps"}


def write_estimators(snapshot: ClassificationSnapshot, path, view: str) -> Path:
    """Every estimator's maps in one view: .npz arrays (per estimator ``<name>_maps`` (R, C, H, W) of the classes
    with a map, ``<name>_classes``, ``<name>_support`` per class (samples or weight behind each map) and
    ``<name>_samples``; and ``estimators``, ``class_names``, ``counts``, ``run_samples``, ``view``)."""
    path = Path(path)
    arrays = {}
    for estimator in snapshot.estimators:
        estimated = snapshot.maps_of(estimator)
        assert estimated is not None  # offered once the run has samples: every estimator has maps
        arrays.update({f"{estimator}_maps": getattr(estimated, view).reshape(-1, *snapshot.image_shape),
                       f"{estimator}_classes": estimated.classes, f"{estimator}_support": estimated.support,
                       f"{estimator}_samples": estimated.samples})
    np.savez_compressed(path, estimators=np.asarray(snapshot.estimators), class_names=np.asarray(
        snapshot.class_names), counts=snapshot.counts, run_samples=snapshot.samples_done, view=view, **arrays)
    return path


def progression_rows(snapshot: ClassificationSnapshot, estimator: str) -> list[tuple[int, EstimatorMaps | None]]:
    """(run samples, maps) at each checkpoint the run recorded for ``estimator``, then now (if later; None: no
    maps yet)."""
    rows: list[tuple[int, EstimatorMaps | None]] = [
        (n, by_estimator[estimator]) for n, by_estimator in sorted(snapshot.checkpoints.items())
        if estimator in by_estimator]
    if not rows or rows[-1][0] < snapshot.samples_done:
        rows.append((snapshot.samples_done, snapshot.maps_of(estimator)))
    return rows


def write_class_table(snapshot: ClassificationSnapshot, path) -> Path:
    """Per class: count, the class the model gives its map, and the latest split-half r (CSV; hard label)."""
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
    """The hard label's raw split-half reliability per class at each recorded sample count (CSV)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["samples", *(f"r_{name}" for name in snapshot.class_names)])
        for n, row in zip(snapshot.reliability_samples, snapshot.reliability_per_class):
            writer.writerow([int(n), *("" if not np.isfinite(v) else f"{v:.6f}" for v in row)])
    return path


def write_estimator_reliability(snapshot: ClassificationSnapshot, path) -> Path:
    """Every estimator's split-half reliability per class at each recorded point (CSV, one row per estimator,
    point and class): raw r of even vs odd blocks and its Spearman–Brown correction 2r/(1 + r)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["estimator", "run_samples", "estimator_samples", "class", "name", "split_half_r",
                         "spearman_brown_r"])
        for estimator, convergence in snapshot.convergence.items():
            corrected = convergence.values(True)
            for t, (run_samples, samples) in enumerate(zip(convergence.run_samples, convergence.samples)):
                for k, name in enumerate(snapshot.class_names):
                    writer.writerow([estimator, int(run_samples), int(samples), k, name,
                                     csv_number(convergence.per_class[t, k]), csv_number(corrected[t, k])])
    return path


def write_estimator_table(snapshot: ClassificationSnapshot, path) -> Path:
    """Per estimator and class: the support behind the map, the class the model gives it (image-like maps),
    the latest split-half r raw and Spearman–Brown corrected, and the Stein check (gradient rows) (CSV)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["estimator", "class", "name", "support", "has_map", "map_prediction", "split_half_r",
                         "spearman_brown_r", "stein_cosine"])
        for estimator in snapshot.estimators:
            estimated = snapshot.maps_of(estimator)
            assert estimated is not None  # offered once the run has samples: every estimator has maps
            predictions = snapshot.predictions.get(estimator)
            raw = snapshot.latest_reliability(estimator, corrected=False)
            corrected = snapshot.latest_reliability(estimator)
            for k, name in enumerate(snapshot.class_names):
                prediction = -1 if predictions is None else int(predictions[k])
                stein = snapshot.stein_cosine[k] if estimator == "gradient" and snapshot.stein_cosine is not None \
                    else None
                has_map = bool(k in estimated.classes and np.isfinite(estimated.of("mean", [k])).all())
                writer.writerow([estimator, k, name, csv_number(estimated.support[k]), int(has_map),
                                 snapshot.class_names[prediction] if prediction >= 0 else "",
                                 csv_number(raw[k]), csv_number(corrected[k]), csv_number(stein)])
    return path


def _has_samples(snapshot: ClassificationSnapshot) -> bool:
    return snapshot.samples_done > 0


def _has(estimator: str):
    return lambda snapshot: snapshot.samples_done > 0 and estimator in snapshot.estimators


ARTEFACTS = (
    *(Artefact(f"maps_{view}", f"Maps, {MAP_VIEW_TITLES[view]}: publication figure or arrays (.npz)",
               (".npz", ".png", ".pdf"), partial(write_maps, view=view),
               figure="wna_gui.figures.classification:save_maps", options=(("view", view),), variant=view,
               available=_has("hard")) for view in MAP_VIEWS),
    *(Artefact(f"estimators_{view}", f"Every estimator's {ROW_VIEW_TITLES[view]}: figure or arrays (.npz)",
               (".npz", ".png", ".pdf"), partial(write_estimators, view=view),
               figure="wna_gui.figures.classification:save_estimators", options=(("view", view),), variant=view,
               available=_has_samples) for view in MAP_VIEWS),
    Artefact("progression", "How the maps built up: every estimator at 1e3, 1e4, … samples (figure)",
             (".png", ".pdf"), figure="wna_gui.figures.classification:save_progression", available=_has_samples),
    Artefact("class_counts", "Class table: counts, map predictions, split-half r", (".csv",), write_class_table),
    Artefact("reliability", "Split-half reliability per class over samples", (".csv",), write_reliability,
             available=lambda snapshot: snapshot.reliability_per_class.size > 0),
    Artefact("estimator_classes", "Estimators per class: support, map prediction, reliability, Stein check",
             (".csv",), write_estimator_table, available=_has_samples),
    Artefact("estimator_reliability", "Split-half reliability of every estimator over samples (raw and "
             "Spearman–Brown)", (".csv",), write_estimator_reliability,
             available=lambda snapshot: snapshot.reliability_samples.size > 0),
    Artefact("score_maps", "Structured noise: hard-label maps averaged in score space, mapped back (k = B·STA_a)",
             (".png", ".pdf"), figure="wna_gui.figures.classification:save_score_maps",
             available=lambda snapshot: snapshot.score_maps is not None and snapshot.samples_done > 0),
)


# --- `wna info` and `wna run` text ---

def _reliability_facts(convergence: Convergence) -> dict:
    """The latest reliability over the classes with a map, and how many have none (None before the first record)."""
    if convergence.per_class.shape[0] == 0 or not np.isfinite(convergence.mapped_mean()[-1]):
        return {"reliability": None, "classes_without_map": None}
    return {"reliability": round(float(convergence.mapped_mean()[-1]), 4),
            "classes_without_map": int(convergence.without_map()[-1])}


def summary(state: ClassificationImageState) -> dict:
    return {
        "samples_done": state.samples_done,
        "samples_total": state.config.samples,
        "finished": state.finished,
        "compute_seconds": round(state.seconds, 3),
        # The run's throughput (per backbone, paper Table 1): samples per second of compute (a torchrun job's wall
        # time).
        "samples_per_second": round(state.samples_done / state.seconds, 1) if state.seconds > 0 else None,
        "class_counts": {name: int(c) for name, c in zip(state.class_names, state.total().count)},
        # Table 1's columns: how many classes the noise reached, how many it never did.
        "classes_reached": int(np.count_nonzero(state.total().count)),
        "empty_classes": int(state.n_classes - np.count_nonzero(state.total().count)),
        "blocks_done": state.blocks_done,
        "done_blocks": [list(r) for r in state.done.ranges],
        "estimators": {name: {"samples": state.estimator_samples(name),
                              "accumulator_bytes": size, **_reliability_facts(state.convergence(name))}
                       for name, size in state.accumulator_bytes().items()},
        "allocated_bytes": state.allocated_bytes(),
    }


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['samples_done']:,} of {entry['samples_total']:,} samples{status}"]
    estimators = entry.get("estimators") or {}
    if estimators:
        total = sum(e["accumulator_bytes"] for e in estimators.values())
        lines.append("  maps: " + ", ".join(f"{ESTIMATORS[name].label} ({e['samples']:,} samples)"
                                             for name, e in estimators.items())
                     + f"; accumulators {format_bytes(total)}")
        for name, e in estimators.items():
            if e.get("reliability") is not None:
                missing = e["classes_without_map"]
                lines.append(f"  {ESTIMATORS[name].label}: reliability {e['reliability']:.2f} over the classes with "
                             f"a map" + (f" ({missing} class{'es have' if missing != 1 else ' has'} no map)"
                                         if missing else ""))
    if "empty_classes" in entry:
        rate = f"; {entry['samples_per_second']:,.0f} samples/s" if entry.get("samples_per_second") else ""
        lines.append(f"  classes reached {entry['classes_reached']:,} of {len(entry['class_counts']):,}, empty "
                     f"{entry['empty_classes']:,}; {entry['compute_seconds']:,.1f} s{rate}")
    counts = entry["class_counts"]
    # Many classes: the 20 most frequent the noise reached.
    shown = counts if len(counts) <= 20 else dict([kv for kv in sorted(counts.items(), key=lambda kv: -kv[1])
                                                   if kv[1] > 0][:20])
    lines += [f"  class {name:>10}: {count:>12,}" for name, count in shown.items()]
    if len(shown) < len(counts):
        lines.append(f"  … {len(counts) - len(shown):,} more classes (wna info --json lists every count)")
    return lines


MIN_CLASS_SAMPLES = 30  # a hard-label map (a class mean) of fewer noise images is mostly noise


def result_warnings(snapshot: ClassificationSnapshot) -> list[str]:
    """Hard-label maps that are the mean of too few noise images to be read."""
    counts = snapshot.counts
    thin = [k for k in range(len(counts)) if 0 < counts[k] < MIN_CLASS_SAMPLES]
    if not thin:
        return []
    listed = ", ".join(f"{snapshot.class_names[k]} ({int(counts[k])})" for k in thin)
    return [f"class means from fewer than {MIN_CLASS_SAMPLES} noise images: {listed}; their hard-label maps are "
            "mostly noise (run more samples)"]


def report(snapshot: ClassificationSnapshot) -> list[str]:
    counts = snapshot.counts
    top = ", ".join(f"{snapshot.class_names[k]}: {counts[k]:,}" for k in np.argsort(counts)[::-1][:5] if counts[k])
    lines = [f"{snapshot.samples_done:,} samples in {snapshot.seconds:.1f} s; most frequent classes {top}"]
    for estimator in snapshot.estimators:
        estimated = snapshot.maps_of(estimator)
        assert estimated is not None  # reported once the run has samples: every estimator has maps
        has_map = int(np.isfinite(estimated.of("mean")).all(1).sum())
        lines.append(f"{ESTIMATORS[estimator].label}: maps of {has_map} of {snapshot.n_classes} classes from "
                     f"{estimated.samples:,} samples; {mapped_reliability_text(snapshot.convergence.get(estimator))}")
    if snapshot.stein_cosine is not None and np.isfinite(snapshot.stein_cosine).any():
        exact = "exact for Gaussian noise" if snapshot.noise_kind == "gaussian" else "approximate for this noise"
        lines.append(f"Stein check: cosine(gradient, logit kernel) {np.nanmin(snapshot.stein_cosine):.3f}–"
                     f"{np.nanmax(snapshot.stein_cosine):.3f} over classes ({exact})")
    if snapshot.signal_correct is not None and np.isfinite(snapshot.signal_correct):
        lines.append(f"signal + noise: {snapshot.signal_correct:.0%} of trials answered as their signal class "
                     f"at γ = {snapshot.signal_gamma:g}")
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="classification-images",
    title="Classification images",
    help="per-class maps of white noise: the paper's bias maps (Fig. 2) and maps for every class",
    config=ClassificationImageConfig,
    state=ClassificationImageState,
    experiment=ClassificationImageExperiment,
    unit="samples",
    panel="classification",
    artefacts=ARTEFACTS,
    can_extend=True,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1, 2: _migrate_v2, 3: _migrate_v3},
    summary=summary,
    describe=describe,
    report=report,
    annotate=annotate,
    warnings=result_warnings,
)
ClassificationImageExperiment.spec = EXPERIMENT

__all__ = [
    "EXPERIMENT", "ClassificationImageConfig", "ClassificationImageExperiment", "ClassificationImageState",
    "ClassificationSnapshot", "Convergence", "MAP_VIEWS", "memory_text", "run_classification_images",
]
