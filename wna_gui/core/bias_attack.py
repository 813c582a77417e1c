"""The bias-map attack (paper §3.2, Fig. 6, 17, Table 2): a classification image as a black-box targeted attack.

A classification image needs only the model's hard labels, so it is a probe an attacker can build without
logits or gradients. For each target class t and each γ of a grid the run classifies four kinds of stimuli:

    (1 − γ)·noise  + γ·map_t      (1 − γ)·signal + γ·map_t
    (1 − γ)·noise  + γ·mean_t     (1 − γ)·signal + γ·mean_t

(map_t: the target's map read as an array from a classification-image run of the session; mean_t: the mean
training image of the class; noise: the same ``samples`` counter-based noise images at every γ and target;
signals: real held-out images of every class) and records the class each one is given. The fooling rate is
the fraction given the target, as in the paper: at γ = 0 it is how often the model calls noise (or the
signals) the target anyway, so averaged over all ten targets it is exactly 1/K. Rates are reported per target
and averaged over targets, with Wilson 95% intervals (of the pooled count for the average: the targets share
the noise images, so that interval is approximate), beside the paper's Table 2.

Map scaling (SCIENCE.md, "Classification images": stimuli and maps live in pixel space, noise in [0, 1]):
a map that is an image of noise (the hard label's mean noise n̄_t, the probability-weighted and the
signal-plus-noise maps) is used *as measured*: n̄_t is an average of [0, 1] images, so it already lies in
the image range and is what Table 2 adds (its γ = 1 point is the rate at which the map itself is classified
as its class, 0.9 in the paper). Kernels (logit kernel, mean gradient) are in score-per-pixel units and are
min–max normalised to [0, 1] first (the normalisation of the authors' notebooks). ``scaling`` can force
either rule on any estimator; "raw" on a kernel is refused.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .classification import KIND as MAPS_KIND
from .classification import ClassificationImageState
from .control import EngineError, csv_number
from .data import bundled_mnist, load_dataset
from .dataset_choices import DATA_DIR_HELP
from .estimators import ESTIMATORS
from .experiment import Artefact, Experiment, ExperimentSpec, Requirement
from .images import (SUBSET_RULE, ImageSet, check_fits_model_input, dataset_labels, describe_record, images_for_model,
                     stratified_subset)
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise
from .noise_base import fixed_noise_blocks
from .params import config_arrays, param
from .records import require_counts, require_finite, require_int, require_ints, require_shape, require_strings
from .state import RunConfig, RunSnapshot, RunState, class_options
from .stats import noise_to_image_gammas, wilson_interval

KIND = "bias_attack"
RECORD_VERSION = 2  # 2: signal images drawn class-stratified (images.stratified_subset)
LEGACY_SHUFFLE = "seeded-shuffle"  # how version-1 runs drew their signal images
CURVES = ("noise_map", "signal_map", "noise_mean", "signal_mean")
CURVE_LABELS = {"noise_map": "(1−γ)·noise + γ·bias map", "signal_map": "(1−γ)·signal + γ·bias map",
                "noise_mean": "(1−γ)·noise + γ·mean image", "signal_mean": "(1−γ)·signal + γ·mean image"}
# Table 2 of the paper (MNIST CNN, 10 targets; SCIENCE.md "Adversarial uses"), at γ = 0, 0.1, …, 1.
PAPER_GAMMAS = tuple(round(0.1 * i, 10) for i in range(11))
PAPER_TABLE2 = {
    "noise_map": (.100, .113, .127, .149, .174, .207, .271, .429, .666, .743, .900),
    "signal_map": (.100, .100, .100, .100, .101, .102, .105, .123, .214, .587, .900),
    "noise_mean": (.100, .127, .179, .313, .618, .842, .986, 1, 1, 1, 1),
    "signal_mean": (.100, .101, .103, .109, .149, .280, .534, .830, .994, 1, 1),
}
SCALINGS = {"auto": "auto: image-like maps as measured, kernels min–max to [0, 1]",
            "raw": "as measured (image-like maps only)", "minmax": "min–max to [0, 1]"}
ESTIMATOR_CHOICES = {name: info.label for name, info in ESTIMATORS.items()}
SIGNAL_DATASETS = dataset_labels("test")
SIGNAL_STREAM = 0xB1A5  # the signal subset's draw, apart from the noise's stream
MAPS = "Maps"
ATTACK = "Attack"


@dataclass(frozen=True)
class BiasAttackConfig(RunConfig):
    estimator: str = param("hard", "Maps of", "which estimator's maps to add: hard label (the paper's, black-box: "
                           "hard labels only), or a map for every class (logit kernel, probability-weighted, "
                           "gradient, signal + noise); the classification-image run must have measured it",
                           choices=ESTIMATOR_CHOICES, group=MAPS)
    scaling: str = param("auto", "Map scaling", "how a map enters pixel space: image-like maps (mean noise) as "
                         "measured, kernels min–max normalised to [0, 1] (auto); or force one rule",
                         choices=SCALINGS, group=MAPS)
    min_support: float = param(10.0, "Fewest samples per map", "a class's map must average at least this many "
                               "noise images (hard label: its count) to be a target: a map of one noise image is "
                               "that image", kind="float", low=1.0, high=1e9, step=10, decimals=1, group=MAPS)
    targets: tuple[int, ...] = param((), "Targets", "target classes, comma-separated (all: every class with a "
                                     "map)", kind="multi", options=class_options, group=ATTACK)
    gammas: tuple[float, ...] = param(noise_to_image_gammas(11), "γ points in [0, 1]", "points of the γ grid from 0 (no "
                                      "map) to 1 (the map alone); 11: the paper's 0, 0.1, …, 1", kind="int",
                                      encode=len, decode=noise_to_image_gammas, low=2, high=101, group=ATTACK)
    samples: int = param(1000, "Noise images", "noise images per target and γ (the same images at every γ and "
                         "target)", low=1, high=200_000, step=500, group=ATTACK)
    signals: int = param(1000, "Signal images", "real images of every class per target and γ (a seeded, "
                         "class-stratified subset of the signal set)", low=1, high=100_000, step=100, group=ATTACK)
    signal_dataset: str = param("bundled", "Signal images from", "real images the maps are added to; mean "
                                "images come from the same dataset's training split", choices=SIGNAL_DATASETS,
                                group=ATTACK)
    signal_data_dir: str = param("", "Data folder", DATA_DIR_HELP,
                                 kind="text", role="runtime", group=ATTACK)
    seed: int = param(0, "Seed", "seed of the counter-based noise and of the signal subset", low=0,
                      high=2**31 - 1, group=ATTACK)
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise", cli="--noise",
                               help="noise the maps are added to: uniform (the paper's) or gaussian", group=ATTACK)
    batch_size: int = param(4096, "Batch size", "stimuli per forward pass", low=1, high=1_000_000, step=512,
                            role="runtime", group=ATTACK)
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(int(t) for t in self.targets))
        object.__setattr__(self, "gammas", tuple(float(g) for g in self.gammas))
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose from {', '.join(ESTIMATORS)}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown map scaling {self.scaling!r}; use {', '.join(SCALINGS)}")
        if len(self.gammas) < 2 or any(not 0 <= g <= 1 for g in self.gammas):
            raise ValueError("the γ grid needs at least two points in [0, 1]")
        for name in ("samples", "signals", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.signal_dataset not in SIGNAL_DATASETS:
            raise ValueError(f"unknown signal images {self.signal_dataset!r}; use {', '.join(SIGNAL_DATASETS)}")


def map_rule(estimator: str, scaling: str) -> str:
    """"raw" or "minmax": how ``estimator``'s maps enter pixel space under ``scaling``."""
    if scaling == "auto":
        return "raw" if ESTIMATORS[estimator].image_like else "minmax"
    if scaling == "raw" and not ESTIMATORS[estimator].image_like:
        raise ValueError(f"the {ESTIMATORS[estimator].label} is not an image (its units are score per pixel): "
                         "use map scaling minmax or auto")
    return scaling


def scaled_maps(raw: np.ndarray, rule: str) -> np.ndarray:
    """Maps (T, D) in pixel space: as measured, or each min–max normalised to [0, 1]."""
    raw = np.asarray(raw, dtype=np.float64)
    if rule == "raw":
        return raw.astype(np.float32)
    low, high = raw.min(1, keepdims=True), raw.max(1, keepdims=True)
    return ((raw - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)


def attack_maps(maps_state: ClassificationImageState, config: BiasAttackConfig, n_classes: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(targets, their maps (T, D) in pixel space, every class's support, the estimator's samples) from a
    classification-image run's state. One-line ValueError when the run lacks the estimator or the targets."""
    estimator = config.estimator
    if estimator not in maps_state.estimators:
        raise ValueError(f"the classification-image run measured {', '.join(maps_state.estimators)}, not the "
                         f"{ESTIMATORS[estimator].label}: choose one of those or rerun it with --estimators "
                         f"{estimator}")
    rule = map_rule(estimator, config.scaling)
    estimated = maps_state.snapshot().maps_of(estimator)
    assert estimated is not None  # the run measured it (checked above)
    raw = estimated.of("mean")
    support = np.asarray(estimated.support, dtype=np.float64)
    usable = np.isfinite(raw).all(1) & (~np.isfinite(support) | (support >= config.min_support))
    if config.targets:
        bad = [t for t in config.targets if not 0 <= t < n_classes or not usable[t]]
        if bad:
            t = bad[0]
            why = "is not a class of the model" if not 0 <= t < n_classes else \
                f"has no {ESTIMATORS[estimator].label} map from at least {config.min_support:g} samples"
            raise ValueError(f"target {t} {why}; classes with one: "
                             f"{', '.join(str(k) for k in np.flatnonzero(usable)) or 'none'}")
        targets = np.asarray(sorted(set(config.targets)), dtype=np.int64)
    else:
        targets = np.flatnonzero(usable).astype(np.int64)
    if targets.size == 0:
        raise ValueError(f"no class has a {ESTIMATORS[estimator].label} map from at least {config.min_support:g} "
                         "samples: run more classification-image samples, lower the fewest samples per map, or "
                         "choose an estimator with maps for every class")
    return targets, scaled_maps(raw[targets], rule), support, int(estimated.samples)


def signal_set(config: BiasAttackConfig, model: LoadedModel, train: bool = False) -> ImageSet:
    """The signal images (held out / test split) or, with ``train``, the split mean images come from."""
    if config.signal_dataset == "bundled":
        images = bundled_mnist("train" if train else "heldout")
    else:
        images = load_dataset(config.signal_dataset, config.signal_data_dir or None, train=train)
    images = images_for_model(images, model)
    check_fits_model_input(images, model)
    return images


def chosen_signals(config: BiasAttackConfig, model: LoadedModel, rule: str = SUBSET_RULE) -> ImageSet:
    """A seeded, class-stratified subset of ``config.signals`` signal images (all of them when there are fewer);
    ``rule`` LEGACY_SHUFFLE: the seeded shuffle version-1 runs drew (not stratified)."""
    images = signal_set(config, model)
    if rule == LEGACY_SHUFFLE:
        order = np.random.default_rng(np.random.SeedSequence([config.seed, SIGNAL_STREAM])).permutation(len(images))
        return images.subset(torch.as_tensor(np.sort(order[:config.signals])))
    subset = stratified_subset(images.labels.numpy(), config.signals, config.seed, model.n_classes)
    return images.subset(torch.from_numpy(subset.indices))


def signals_record(config: BiasAttackConfig, labels: np.ndarray, n_classes: int, rule: str = SUBSET_RULE) -> dict:
    """What the run records about its signal images (as images.Subset.record())."""
    return {"rule": rule, "seed": int(config.seed), "requested": int(config.signals), "size": int(len(labels)),
            "label_counts": np.bincount(labels, minlength=n_classes)[:n_classes].tolist()}


def class_means(images: ImageSet, n_classes: int) -> np.ndarray:
    """(K, D) mean image of each class (NaN for a class without images)."""
    x = images.images.reshape(len(images), -1).to(torch.float64)
    out = np.full((n_classes, x.shape[1]), np.nan)
    for k in range(n_classes):
        rows = x[images.labels == k]
        if len(rows):
            out[k] = rows.mean(0).numpy()
    return out


def noise_images(config: BiasAttackConfig, shape: tuple[int, ...], device) -> torch.Tensor:
    """The run's ``samples`` noise images, the same whatever the batch size (core.noise_base.fixed_noise_blocks)."""
    return torch.cat(list(fixed_noise_blocks(config.noise, config.seed, config.samples, shape, device)))


def mix_and_classify(runtime, base: torch.Tensor, target: torch.Tensor, gamma: float, batch_size: int
                     ) -> torch.Tensor:
    """Classes the model gives (1 − γ)·base + γ·target, for each base image."""
    out = []
    with torch.inference_mode():
        for chunk in base.split(batch_size):
            out.append(runtime.logits((1 - gamma) * chunk + gamma * target, batch_size).argmax(1))
    return torch.cat(out)


@dataclass
class BiasAttackState(RunState):
    config: BiasAttackConfig
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    targets: np.ndarray  # (T,)
    maps: np.ndarray  # (T, D) float32, in pixel space (what is added)
    means: np.ndarray  # (T, D) float32, mean training image of each target
    map_support: np.ndarray  # (K,) samples (or weight) behind each class's map
    map_samples: int  # samples the estimator had seen
    map_rule: str  # raw | minmax
    n_signals: int
    signal_labels: np.ndarray  # (S,)
    signal_name: str = ""
    # curve × target × γ × class: how many stimuli were given each class
    counts: np.ndarray | None = None
    # target × curve × γ: one example stimulus each (the first noise image, one signal of another class)
    examples: np.ndarray | None = None
    example_classes: np.ndarray | None = None  # target × curve × γ: the class it was given
    example_signal: np.ndarray | None = None  # (T,) class of the example signal
    targets_done: int = 0
    noise_device: str = ""
    seconds: float = 0.0
    signal_rule: str = SUBSET_RULE  # how the signal images were drawn (chosen_signals)

    @property
    def signal_subset(self) -> dict:
        return signals_record(self.config, self.signal_labels, len(self.class_names), self.signal_rule)

    def __post_init__(self) -> None:
        t, g, k, d = len(self.targets), len(self.config.gammas), len(self.class_names), int(np.prod(self.image_shape))
        if self.counts is None:
            self.counts = np.zeros((len(CURVES), t, g, k), dtype=np.int64)
        if self.examples is None:
            self.examples = np.zeros((t, len(CURVES), g, d), dtype=np.float32)
            self.example_classes = np.full((t, len(CURVES), g), -1, dtype=np.int64)
        if self.example_signal is None:
            self.example_signal = np.full(t, -1, dtype=np.int64)

    @property
    def per_target(self) -> int:
        return len(self.config.gammas) * 2 * (self.config.samples + self.n_signals)

    @property
    def progress_done(self) -> int:
        return self.targets_done * self.per_target

    @property
    def progress_total(self) -> int:
        return len(self.targets) * self.per_target

    @staticmethod
    def new_run_text(config: BiasAttackConfig) -> str:
        return (f"Start attacks every target with the {ESTIMATORS[config.estimator].label} maps at "
                f"{len(config.gammas)} γ points, {config.samples:,} noise images and {config.signals:,} signals each.")

    def snapshot(self, samples_per_second: float = 0.0) -> "BiasAttackSnapshot":
        trials = np.array([self.config.samples, self.n_signals] * 2, dtype=np.int64)
        # __post_init__ fills every array
        assert self.counts is not None and self.examples is not None
        assert self.example_classes is not None and self.example_signal is not None
        fooled = np.stack([self.counts[c, np.arange(len(self.targets)), :, self.targets] for c in range(len(CURVES))])
        return BiasAttackSnapshot(
            **self.progress_fields(samples_per_second), class_names=self.class_names,
            image_shape=tuple(self.image_shape), estimator=self.config.estimator, map_rule=self.map_rule,
            gammas=np.asarray(self.config.gammas), targets=self.targets.copy(), targets_done=self.targets_done,
            fooled=fooled.copy(), trials=trials, counts=self.counts.copy(), maps=self.maps, means=self.means,
            map_support=self.map_support, map_samples=self.map_samples, examples=self.examples.copy(),
            example_classes=self.example_classes.copy(), example_signal=self.example_signal.copy(),
            signal_name=self.signal_name, noise_kind=self.config.noise.kind)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"config": self.config.to_dict(), "class_names": list(self.class_names),
                "image_shape": list(self.image_shape), "map_samples": self.map_samples, "map_rule": self.map_rule,
                "n_signals": self.n_signals, "signal_name": self.signal_name, "targets_done": self.targets_done,
                "noise_device": self.noise_device, "seconds": self.seconds, "signal_subset": self.signal_subset}
        arrays = {**config_arrays(self.config), "targets": self.targets, "maps": self.maps, "means": self.means,
                  "map_support": self.map_support, "signal_labels": self.signal_labels, "counts": self.counts,
                  "examples": self.examples, "example_classes": self.example_classes,
                  "example_signal": self.example_signal}
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict) -> "BiasAttackState":
        _check_attack_record(meta, arrays)
        return cls(config=BiasAttackConfig.from_dict(meta["config"], arrays),
                   class_names=tuple(meta["class_names"]), image_shape=tuple(int(s) for s in meta["image_shape"]),
                   targets=np.asarray(arrays["targets"], dtype=np.int64), maps=np.asarray(arrays["maps"]),
                   means=np.asarray(arrays["means"]), map_support=np.asarray(arrays["map_support"]),
                   map_samples=int(meta["map_samples"]), map_rule=meta["map_rule"], n_signals=int(meta["n_signals"]),
                   signal_labels=np.asarray(arrays["signal_labels"], dtype=np.int64),
                   signal_rule=meta["signal_subset"]["rule"],
                   signal_name=meta.get("signal_name", ""), counts=np.asarray(arrays["counts"], dtype=np.int64),
                   examples=np.asarray(arrays["examples"], dtype=np.float32),
                   example_classes=np.asarray(arrays["example_classes"], dtype=np.int64),
                   example_signal=np.asarray(arrays["example_signal"], dtype=np.int64),
                   targets_done=int(meta["targets_done"]), noise_device=meta.get("noise_device", ""),
                   seconds=float(meta.get("seconds", 0.0)))


def _check_attack_record(meta: dict, arrays: dict) -> None:
    """Targets, maps, means and counts agree with each other and with the classes; numbers are finite."""
    k = len(require_strings(meta["class_names"], "class_names"))
    pixels = int(np.prod(require_ints(meta["image_shape"], "image_shape", low=1)))
    targets = require_counts(arrays["targets"], "targets", (None,))
    t = targets.size
    if t and targets.max() >= k:
        raise ValueError(f"targets name class {targets.max()} of {k}")
    require_finite(arrays["maps"], "maps", (t, pixels))
    require_finite(arrays["means"], "means", (t, pixels))
    require_finite(arrays["map_support"], "map_support", (k,))
    counts = require_counts(arrays["counts"], "counts", (None, t, None, k))
    require_finite(arrays["examples"], "examples", (t, None, None, pixels))
    for field, shape in (("example_classes", (t, None, None)), ("example_signal", (t,))):  # −1: not drawn yet
        values = require_shape(arrays[field], shape, field)
        if values.dtype.kind not in "iu" or (values.size and not -1 <= values.min()):
            raise ValueError(f"{field} must hold indices (or −1 where none was drawn yet)")
    require_counts(arrays["signal_labels"], "signal_labels", (require_int(meta["n_signals"], "n_signals"),))
    require_int(meta["targets_done"], "targets_done", 0, t)
    require_int(meta["map_samples"], "map_samples")
    if counts.shape[0] != 4:
        raise ValueError(f"counts has shape {counts.shape}, expected 4 stimulus kinds first")


@dataclass(frozen=True)
class BiasAttackSnapshot(RunSnapshot):
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    estimator: str
    map_rule: str
    gammas: np.ndarray  # (G,)
    targets: np.ndarray  # (T,)
    targets_done: int
    fooled: np.ndarray  # (4, T, G) stimuli given the target
    trials: np.ndarray  # (4,) stimuli per (target, γ) of each curve
    counts: np.ndarray  # (4, T, G, K)
    maps: np.ndarray
    means: np.ndarray
    map_support: np.ndarray
    map_samples: int
    examples: np.ndarray
    example_classes: np.ndarray
    example_signal: np.ndarray
    signal_name: str = ""
    noise_kind: str = "uniform"

    def rates(self) -> np.ndarray:
        """(4, T, G) fooling rate per curve, target and γ (NaN for targets not yet attacked)."""
        out = self.fooled / self.trials[:, None, None]
        out[:, self.targets_done:] = np.nan
        return out

    def average(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(4, G) fooling rate averaged over the targets attacked so far, and its Wilson 95% interval (low, high)
        of the pooled count (approximate: the targets share the noise images)."""
        done = self.targets_done
        if done == 0:
            nan = np.full((len(CURVES), len(self.gammas)), np.nan)
            return nan, nan, nan
        fooled = self.fooled[:, :done].sum(1)
        trials = self.trials[:, None] * done
        low, high = wilson_interval(fooled, np.broadcast_to(trials, fooled.shape))
        return fooled / trials, low, high

    def paper_values(self, curve: str) -> np.ndarray:
        """The paper's Table 2 at this run's γ points (NaN where the paper has no point)."""
        out = np.full(len(self.gammas), np.nan)
        for i, g in enumerate(self.gammas):
            match = [j for j, p in enumerate(PAPER_GAMMAS) if abs(p - g) < 1e-9]
            if match:
                out[i] = PAPER_TABLE2[curve][match[0]]
        return out

    def target_names(self) -> list[str]:
        return [self.class_names[t] for t in self.targets]


class BiasAttackExperiment(Experiment):
    """One unit is one target: every γ and all four curves."""

    def __init__(self, model: LoadedModel, config: BiasAttackConfig | None = None, state=None, device=None,
                 control=None, maps: ClassificationImageState | None = None) -> None:
        super().__init__(model, config, state, device, control, **({"maps": maps} if state is None else {}))
        self._noise: torch.Tensor | None = None  # both on the device, from prepare()
        self._signals: torch.Tensor | None = None

    @classmethod
    def new_state(cls, model: LoadedModel, config: BiasAttackConfig, maps: ClassificationImageState | None = None
                  ) -> BiasAttackState:
        if maps is None:
            raise ValueError("the bias-map attack reads a classification-image run: run `wna run "
                             "classification-images` into the session first")
        if maps.n_classes != model.n_classes or tuple(maps.image_shape) != tuple(model.input_spec.shape):
            raise ValueError(f"the classification-image run has {maps.n_classes} classes of "
                             f"{tuple(maps.image_shape)} images; the model {model.n_classes} of "
                             f"{tuple(model.input_spec.shape)}")
        targets, target_maps, support, samples = attack_maps(maps, config, model.n_classes)
        means = class_means(signal_set(config, model, train=True), model.n_classes)[targets]
        if not np.isfinite(means).all():
            missing = targets[~np.isfinite(means).all(1)][0]
            raise ValueError(f"the training images hold no image of target {model.class_names[missing]!r}")
        signals = chosen_signals(config, model)
        return BiasAttackState(config, tuple(model.class_names), tuple(model.input_spec.shape), targets,
                               target_maps, means.astype(np.float32), support, samples,
                               map_rule(config.estimator, config.scaling), len(signals),
                               signals.labels.numpy().astype(np.int64), signals.name)

    def prepare(self) -> None:
        super().prepare()
        cfg, state = self.config, self.state
        signals = chosen_signals(cfg, self.model, state.signal_rule)
        if len(signals) != state.n_signals or not np.array_equal(signals.labels.numpy(), state.signal_labels):
            raise EngineError("these signal images differ from the ones the run started with; choose the same "
                              "signal images")
        self._signals = signals.images.to(self.device)
        self._noise = noise_images(cfg, tuple(state.image_shape), self.device)

    def pending(self):
        while not self.state.finished:
            yield self.state.targets_done

    def run_unit(self, index: int) -> None:
        state, cfg = self.state, self.config
        target = int(state.targets[index])
        k = len(state.class_names)
        additions = {"map": torch.as_tensor(state.maps[index], device=self.device),
                     "mean": torch.as_tensor(state.means[index], device=self.device)}
        others = np.flatnonzero(state.signal_labels != target)
        example = int(others[0]) if others.size else 0
        state.example_signal[index] = int(state.signal_labels[example])
        for c, curve in enumerate(CURVES):
            base_name, added = curve.split("_")
            base = self._noise if base_name == "noise" else self._signals
            assert base is not None  # prepare() runs first
            addition = additions[added].reshape(1, *state.image_shape)
            first = 0 if base_name == "noise" else example
            for g, gamma in enumerate(cfg.gammas):
                labels = mix_and_classify(self.runtime, base, addition, gamma, cfg.batch_size)
                state.counts[c, index, g] = torch.bincount(labels, minlength=k).cpu().numpy()
                stimulus = (1 - gamma) * base[first] + gamma * addition[0]
                state.examples[index, c, g] = stimulus.reshape(-1).cpu().numpy()
                state.example_classes[index, c, g] = int(labels[first])
        state.targets_done += 1

    def snapshot(self) -> BiasAttackSnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_table(snapshot: BiasAttackSnapshot, path) -> Path:
    """Fooling rates (CSV): per γ and curve the average over targets with its Wilson interval and the paper's
    Table 2 value, then one row per target."""
    path = Path(path)
    mean, low, high = snapshot.average()
    rates = snapshot.rates()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["curve", "target", "gamma", "fooling_rate", "ci_low", "ci_high", "trials", "paper"])
        for c, curve in enumerate(CURVES):
            paper = snapshot.paper_values(curve)
            for g, gamma in enumerate(snapshot.gammas):
                writer.writerow([curve, "mean", f"{gamma:g}", csv_number(mean[c, g]), csv_number(low[c, g]),
                                 csv_number(high[c, g]), int(snapshot.trials[c]) * snapshot.targets_done,
                                 csv_number(paper[g])])
        for c, curve in enumerate(CURVES):
            for t, name in enumerate(snapshot.target_names()):
                lo, hi = wilson_interval(snapshot.fooled[c, t], snapshot.trials[c])
                for g, gamma in enumerate(snapshot.gammas):
                    writer.writerow([curve, name, f"{gamma:g}", csv_number(rates[c, t, g]),
                                     csv_number(lo[g] if t < snapshot.targets_done else np.nan),
                                     csv_number(hi[g] if t < snapshot.targets_done else np.nan),
                                     int(snapshot.trials[c]), ""])
    return path


def write_arrays(snapshot: BiasAttackSnapshot, path) -> Path:
    """Everything measured (.npz): ``counts`` (curve, target, γ, class), ``fooled``, ``trials``, ``gammas``,
    ``targets``, the ``maps`` and ``means`` added, the example stimuli and the paper's Table 2."""
    path = Path(path)
    np.savez_compressed(path, curves=np.asarray(CURVES), gammas=snapshot.gammas, targets=snapshot.targets,
                        class_names=np.asarray(snapshot.class_names), counts=snapshot.counts,
                        fooled=snapshot.fooled, trials=snapshot.trials, rates=snapshot.rates(),
                        maps=snapshot.maps.reshape(-1, *snapshot.image_shape),
                        means=snapshot.means.reshape(-1, *snapshot.image_shape),
                        examples=snapshot.examples.reshape(*snapshot.examples.shape[:3], *snapshot.image_shape),
                        example_classes=snapshot.example_classes, estimator=snapshot.estimator,
                        map_rule=snapshot.map_rule, paper_gammas=np.asarray(PAPER_GAMMAS),
                        paper_table2=np.asarray([PAPER_TABLE2[c] for c in CURVES]))
    return path


def _done(snapshot) -> bool:
    return snapshot.targets_done > 0


ARTEFACTS = (
    Artefact("fooling_rates", "Fooling rates per γ, averaged and per target, beside Table 2 (.csv)", (".csv",),
             write_table, available=_done),
    Artefact("attack", "Attack arrays: class counts, rates, maps, means, examples (.npz)", (".npz",), write_arrays,
             available=_done),
    Artefact("fooling_curves", "Fooling rate against γ, four curves with the paper's (Fig. 6C)", (".png", ".pdf"),
             figure="wna_gui.figures.adversarial:save_fooling_plot", available=_done),
    Artefact("attack_examples", "Example stimuli at γ = 0.5 and 0.8 (Figs. 6A/B, 17)", (".png", ".pdf", ".svg"),
             figure="wna_gui.figures.adversarial:save_attack_examples", available=_done),
)


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 drew its signal images by a seeded shuffle, not stratified by class."""
    return {**meta, "signal_subset": {"rule": LEGACY_SHUFFLE}}, arrays


def summary(state: BiasAttackState) -> dict:
    snapshot = state.snapshot()
    mean, _, _ = snapshot.average()
    return {"samples_done": state.progress_done, "samples_total": state.progress_total, "finished": state.finished,
            "compute_seconds": round(state.seconds, 3), "estimator": state.config.estimator,
            "map_rule": state.map_rule, "targets": [state.class_names[t] for t in state.targets],
            "targets_done": state.targets_done, "gammas": list(state.config.gammas),
            "mean_fooling_rate": {curve: [None if not np.isfinite(v) else round(float(v), 4) for v in mean[c]]
                                  for c, curve in enumerate(CURVES)}, "signal_subset": state.signal_subset}


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['targets_done']} of {len(entry['targets'])} targets ({', '.join(entry['targets'])}) "
             f"attacked with {ESTIMATORS[entry['estimator']].label} maps ({entry['map_rule']}){status}"]
    if entry.get("signal_subset"):
        lines.append(f"  signal images: {describe_record(entry['signal_subset'])}")
    gammas = entry["gammas"]
    shown = [i for i, g in enumerate(gammas) if any(abs(g - p) < 1e-9 for p in (0.5, 0.8, 1.0))]
    for curve, values in entry["mean_fooling_rate"].items():
        parts = [f"γ={gammas[i]:g}: {values[i]:.3f}" for i in shown if values[i] is not None]
        lines.append(f"  {CURVE_LABELS[curve]:<28} " + ", ".join(parts))
    return lines


def report(snapshot: BiasAttackSnapshot) -> list[str]:
    mean, low, high = snapshot.average()
    lines = [f"{snapshot.targets_done} targets ({', '.join(snapshot.target_names())}), {snapshot.samples_done:,} "
             f"stimuli in {snapshot.seconds:.1f} s; {ESTIMATORS[snapshot.estimator].label} maps ({snapshot.map_rule})"]
    header = "γ".ljust(30) + "".join(f"{g:>7.2g}" for g in snapshot.gammas)
    lines.append(header)
    for c, curve in enumerate(CURVES):
        lines.append(CURVE_LABELS[curve].ljust(30) + "".join(f"{v:7.3f}" for v in mean[c]))
        paper = snapshot.paper_values(curve)
        if np.isfinite(paper).any():
            lines.append("  paper (Table 2)".ljust(30) + "".join("      -" if not np.isfinite(v) else f"{v:7.3f}"
                                                                  for v in paper))
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="bias-attack",
    title="Adversarial",
    help="black-box targeted attack with classification images: fooling rate of noise or digits plus a bias map "
         "or a mean image against γ (paper Fig. 6, Table 2)",
    config=BiasAttackConfig,
    state=BiasAttackState,
    experiment=BiasAttackExperiment,
    unit="stimuli",
    panel="adversarial",
    artefacts=ARTEFACTS,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1},
    requires=(Requirement("maps", MAPS_KIND, "the classification-image run whose maps are added"),),
    summary=summary,
    describe=describe,
    report=report,
)
BiasAttackExperiment.spec = EXPERIMENT

__all__ = ["CURVES", "CURVE_LABELS", "EXPERIMENT", "PAPER_TABLE2", "BiasAttackConfig", "BiasAttackExperiment",
           "BiasAttackSnapshot", "BiasAttackState"]
