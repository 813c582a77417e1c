"""Defended models of the robustness lab: each method trains (or sleeps) a network and stores it in the session.

Methods (../shared/SCIENCE.md, "Robustness lab"; `wna run defence --method M --model-name NAME`):

- ``control``: the sleep paper's 784-1200-1200-10 network, no biases, ReLU
  outputs, ½‖y − a‖² against one-hot labels, weights U(−0.01, 0.01), dropout
  0.2 (non-inverted), SGD lr 0.1 momentum 0.5, batch 100, 2 epochs.
- ``finetune-noise`` / ``finetune-blur``: a control fine-tuned for 2 epochs at
  lr 0.05 on distorted training images (the lab's own distortions,
  core.distortions: Gaussian noise by variance, Gaussian blur by σ, clipped).
  Batch b is distorted at level b mod 6 of the lab's levels, 0 included
  (noise variances 0, .1, .3, .5, .7, .9; blur σ 0, .8, 1.6, 2.4, 3.2, 4), so
  the network sees clean and every strength of distortion.
- ``distill``: defensive distillation at temperature T (Papernot et al.): a
  teacher with linear outputs is trained on hard labels through softmax(z/T),
  its softened outputs label the training set, and the network goes on
  training on them at T for 2 epochs (the authors' script continues the
  teacher's weights rather than starting a fresh student); deployed at T = 1,
  so its logits are ~T times larger than they were in training.
  Gradients are those of the authors' toolbox (∂/∂z = a − y, i.e. T × the
  cross-entropy at T), so the default 1,200 steps train at T = 50.
- ``distill-authors``: as the authors' script ran it: a typo (``distilatlion_nn``)
  left the output ReLU, so no temperature is ever applied: a control-like
  teacher, its outputs with dropout on (their forward pass in training mode)
  as soft labels, 2 more epochs of squared error on them. The student stays as
  soft as the teacher.
- ``sleep``: the control's sleep phase (core.sleep), the authors' parameters.
- ``noisy-resnet`` / ``noisy-ensemble``: a noisy pre-activation ResNet (or 5
  with averaged logits, trained jointly) with cross-entropy, SGD lr 0.1
  momentum 0.9 weight decay 5e-4; ``--adversarial-training`` trains on PGD
  examples (ε 0.031, 10 steps of 0.007, random start; core.distortions.pgd).

Fine-tuning, the authors' distillation and sleep start from a control: the
``--base`` model when given (a tadros_fc network), else the session's model
when it is one, else the run trains a control first (its first stage; that
control is stored too, as NAME-control).

Budgets are SGD steps (``--steps``, default 1,200 per training stage: the
papers' "2 epochs" are of 60,000 images at batch 100, ≈30 epochs of the 4,000
bundled digits; ``--epochs`` still sets epochs instead). Training and held-out
images are seeded, class-stratified subsets (core.images). Each model made is
evaluated on the held-out subset by core.train.heldout_accuracy, the Robustness
lab's clean-accuracy measurement, and the accuracy, the subset and the chance
guard's verdict are stored in its ``extra``. The run's unit is a step: a batch of
training or a time step of sleep; it pauses, cancels and resumes between
chunks of steps (weights, optimiser momentum and sleep potentials are saved).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import bundled_mnist, load_dataset
from .dataset_choices import DATA_DIR_HELP
from .distortions import gaussian_blur, gaussian_noise, pgd
from .experiment import Artefact, Experiment, ExperimentSpec, Requirement
from .images import SUBSET_RULE, ImageSet, dataset_labels, describe_record, fit_to_model, stratified_subset
from .models import ZOO, LoadedModel, build_zoo
from .params import param
from .records import require_finite, require_float, require_int, require_shape
from .sleep import ControlMLP, SleepParams, Sleeper, input_scales, input_spikes
from .state import RunConfig, RunSnapshot, RunState
from .train import at_chance, chance_limit, correct_answers, heldout_accuracy

KIND = "defence"
RECORD_VERSION = 2  # 2: image subsets stratified and recorded, budgets in steps, evaluation stored with models
LEGACY_FIRST_N = "first"  # the subset rule of version-1 runs: the first N images
METHODS = {
    "control": "Control network (784-1200-1200-10)",
    "finetune-noise": "Fine-tuned on Gaussian noise",
    "finetune-blur": "Fine-tuned on Gaussian blur",
    "distill": "Defensive distillation at temperature T",
    "distill-authors": "Distillation as the authors ran it (no temperature)",
    "sleep": "Sleep phase on the control",
    "noisy-resnet": "Noisy ResNet",
    "noisy-ensemble": "Ensemble of 5 noisy ResNets",
}
NEEDS_CONTROL = ("finetune-noise", "finetune-blur", "distill-authors", "sleep")
NOISY = ("noisy-resnet", "noisy-ensemble")
DATASET_LABELS = dataset_labels(None)
OWN_SHAPE = (1, 28, 28)  # own images are fitted to the control network's input (and the MNIST-sized noisy ResNets')
DEPTHS = {"resnet20": "ResNet20 (3 blocks per stage)", "resnet8": "ResNet8 (1 block per stage; quick)"}
CONTROL_ARCH, DISTILL_ARCH = "tadros_fc", "tadros_fc_logits"
NOISE_LEVELS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)  # variances, the lab's
BLUR_LEVELS = (0.0, 0.8, 1.6, 2.4, 3.2, 4.0)  # σ, spanning the lab's 0…4
PGD_TRAINING = dict(eps=0.031, steps=10, step=0.007)
DEFAULT_STEPS = 1200  # the papers' 2 epochs of 60,000 images at batch 100 (../shared/SCIENCE.md)
TRAIN_CHUNK = 20  # batches per unit of work (pause, cancel and save between)
SLEEP_CHUNK = 1000  # sleep time steps per unit
RASTER_STEPS = 200  # time steps of each chunk kept for the raster
RASTER_UNITS = 100  # units per layer shown (evenly spaced; all outputs)
HIST_BINS = 41
SLEEP_BLOCK = 7  # counter-noise block of the sleep's input spikes (other blocks: distortions)


class DefenceError(ValueError):
    """A defence cannot be trained as asked; the message says why."""


@dataclass(frozen=True)
class DefenceConfig(RunConfig):
    method: str = param("control", "Method", "which defended model to train", choices=METHODS)
    model_name: str = param("", "Model name", "name of the trained model in the session (empty: the method's "
                            "name)", kind="text")
    dataset: str = param("bundled", "Training images", "images to train on (torchvision datasets need a folder; "
                         "your own are fitted to 28×28 grey and keep their classes, 1/5 held out)",
                         choices=DATASET_LABELS)
    data_dir: str = param("", "Data folder", DATA_DIR_HELP, kind="text", role="runtime")
    train_images: int = param(0, "Images used", "train on a seeded, class-stratified subset of N images of the "
                              "set (0: all)", low=0, high=10**7)
    eval_images: int = param(1000, "Held-out images", "held-out test images (a seeded, class-stratified subset) "
                             "the accuracies are measured on", low=1, high=100_000)
    steps: int = param(DEFAULT_STEPS, "SGD steps", "SGD steps of each training stage; the papers' \"2 epochs\" of "
                       "60,000 images at batch 100 are ≈1,200 steps (≈30 epochs of the 4,000 bundled digits)",
                       low=1, high=10**8)
    epochs: int = param(0, "Epochs", "epochs of each training stage instead of the steps (0: use the steps)",
                        low=0, high=10_000)
    lr: float | None = param(None, "Learning rate", "SGD learning rate (none: the papers': 0.1 to train, 0.05 "
                             "to fine-tune)", kind="float", optional=True, low=1e-6, high=10.0, decimals=6)
    batch_size: int = param(100, "Batch size", "images per SGD step", low=1, high=4096)
    temperature: float = param(50.0, "Temperature T", "softmax temperature of defensive distillation", low=1.0,
                               high=1000.0, decimals=1)
    sleep_steps: int = param(27105, "Sleep steps Ts", "time steps of the sleep phase (one training image "
                             "each)", low=1, high=10**7)
    depth: str = param("resnet20", "ResNet", "depth of the noisy ResNets", choices=DEPTHS)
    adversarial_training: bool = param(False, "PGD adversarial training", "train the noisy ResNets on PGD "
                                       "examples (ε 0.031, 10 steps of 0.007, random start)")
    seed: int = param(0, "Seed", "seed of the initial weights, image subsets, batch order, dropout, distortions "
                      "and spikes", low=0, high=2**31 - 1)
    chance_floor: float = param(0.0, "At-chance floor", "a trained model whose held-out accuracy is below this "
                                "(or below twice chance) is marked at chance", low=0.0, high=1.0, step=0.05,
                                decimals=3)
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DefenceError(f"unknown method {self.method!r}; use {', '.join(METHODS)}")
        if self.dataset not in DATASET_LABELS:
            raise DefenceError(f"unknown dataset {self.dataset!r}; use {', '.join(DATASET_LABELS)}")

    @property
    def name(self) -> str:
        return self.model_name.strip() or self.method

    def inactive_params(self) -> tuple[str, ...]:
        out = []
        if self.method not in ("distill",):
            out.append("temperature")
        if self.method != "sleep":
            out.append("sleep_steps")
        if self.method not in NOISY:
            out += ["depth", "adversarial_training"]
        if self.dataset == "bundled":
            out.append("data_dir")
        return tuple(out)


# --- data ---


def training_images(config: DefenceConfig, rule: str = SUBSET_RULE) -> tuple[ImageSet, ImageSet, dict]:
    """(training set, held-out set, their subset records): seeded, class-stratified subsets of ``train_images``
    and ``eval_images`` images. ``rule`` "first" keeps the first N (runs recorded before subsets were drawn)."""
    if config.dataset == "bundled":
        train, test = bundled_mnist("train"), bundled_mnist("heldout")
    else:
        root = config.data_dir or None
        # own images: the networks' input, their own classes (torchvision's and the bundled are left as they are)
        train = fit_to_model(load_dataset(config.dataset, root, train=True), OWN_SHAPE)
        test = fit_to_model(load_dataset(config.dataset, root, train=False), OWN_SHAPE, train.class_names)
    records = {}
    picked = []
    for role, images, n in (("train", train, config.train_images), ("heldout", test, config.eval_images)):
        if rule == LEGACY_FIRST_N:
            chosen = images.subset(slice(0, n)) if n else images
            records[role] = {"rule": LEGACY_FIRST_N, "requested": int(n), "size": len(chosen),
                             "label_counts": np.bincount(chosen.labels.numpy(), minlength=len(images.class_names))
                             .tolist()}
        else:
            subset = stratified_subset(images.labels.numpy(), n, config.seed, len(images.class_names))
            chosen = images if subset.indices.size == len(images) else images.subset(torch.from_numpy(subset.indices))
            records[role] = subset.record()
        picked.append(chosen)
    return picked[0], picked[1], records


def _data_shape(config: DefenceConfig) -> tuple[int, int, int]:
    return (3, 32, 32) if config.dataset == "cifar10" else OWN_SHAPE


def architecture_of(config: DefenceConfig) -> str:
    if config.method == "distill":
        return DISTILL_ARCH
    if config.method in NOISY:
        depth = "20" if config.depth == "resnet20" else "8"
        name = f"noisy_{'en5' if config.method == 'noisy-ensemble' else ''}resnet{depth}"
        return name + ("_cifar" if config.dataset == "cifar10" else "")
    return CONTROL_ARCH


# --- stages ---


def _stage(name: str, kind: str, epochs: int = 0, lr: float = 0.0, loss: str = "", labels: str = "hard",
           distortion: str = "", title: str = "") -> dict:
    return {"name": name, "kind": kind, "epochs": int(epochs), "lr": float(lr), "loss": loss, "labels": labels,
            "distortion": distortion, "title": title or name}


def plan_stages(config: DefenceConfig, train_control: bool) -> list[dict]:
    """The stages a method runs, in order (a control first when it has none to start from); a training stage
    runs ``steps`` SGD steps, or ``epochs`` epochs when those are given."""
    stages = _method_stages(config, train_control)
    for stage in stages:
        if stage["kind"] == "train":
            stage["steps"] = 0 if config.epochs else int(config.steps)
    return stages


def _method_stages(config: DefenceConfig, train_control: bool) -> list[dict]:
    lr = config.lr
    e = config.epochs
    control = _stage("control", "train", e, lr or 0.1, "squared_error", title="control")
    method = config.method
    if method == "control":
        return [control]
    if method in NOISY:
        title = "ensemble" if method == "noisy-ensemble" else "resnet"
        return [_stage(title, "train", e, lr or 0.1, "cross_entropy", title=f"noisy {title}"
                       + (" (PGD)" if config.adversarial_training else ""))]
    if method == "distill":
        return [_stage("teacher", "train", e, lr or 0.1, "softmax_t", title=f"teacher at T={config.temperature:g}"),
                _stage("student", "train", e, lr or 0.1, "softmax_t", "soft",
                       title=f"student at T={config.temperature:g}")]
    first = [control] if train_control else []
    if method in ("finetune-noise", "finetune-blur"):
        kind = method.split("-")[1]
        return first + [_stage("finetune", "train", e, lr or 0.05, "squared_error", distortion=kind,
                               title=f"fine-tune on {kind}")]
    if method == "distill-authors":
        if first:
            first[0] = {**control, "name": "teacher", "title": "teacher (as a control)"}
        return first + [_stage("student", "train", e, lr or 0.1, "squared_error", "soft",
                               title="student on the teacher's outputs")]
    if method == "sleep":
        return first + [_stage("sleep", "sleep", title="sleep")]
    raise DefenceError(f"unknown method {method!r}")


def _batches(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


# --- the state ---


@dataclass
class DefenceState(RunState):
    config: DefenceConfig
    architecture: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    base: str  # where the starting control came from: "", "trained in this run", "session model", a model name
    stages: list[dict]
    n_train: int
    stage: int = 0
    position: int = 0  # steps done in the current stage
    steps_done: int = 0
    seconds: float = 0.0
    net: nn.Module | None = None  # the network being trained or slept (None once made)
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    soft_labels: np.ndarray | None = None
    sleep_alphas: list[float] = field(default_factory=list)
    sleep_potentials: list[np.ndarray] = field(default_factory=list)
    sleep_start: list[np.ndarray] = field(default_factory=list)  # weights before sleep (for the changes)
    sleep_weights: list[np.ndarray] = field(default_factory=list)  # weights while sleeping
    loss_log: list[tuple[int, int, float, float]] = field(default_factory=list)  # (step, stage, epoch, loss)
    epoch_log: list[tuple[int, int, float, float]] = field(default_factory=list)  # (stage, epoch, loss, accuracy)
    spike_log: list[tuple[int, ...]] = field(default_factory=list)  # (t, spikes per layer): 5 each
    raster: list[np.ndarray] = field(default_factory=list)
    raster_start: int = 0
    histograms: dict[str, np.ndarray] = field(default_factory=dict)  # final weight changes, once slept
    accuracy: dict[str, float] = field(default_factory=dict)  # "base", "before_sleep", "final"
    made: LoadedModel | None = None
    control_made: LoadedModel | None = None
    epoch_loss: float = 0.0
    epoch_batches: int = 0
    subsets: dict = field(default_factory=dict)  # "train", "heldout" → images.Subset.record()

    # --- progress ---

    def stage_steps(self, stage: dict) -> int:
        if stage["kind"] == "sleep":
            return int(self.config.sleep_steps)
        # Version-1 stages have no "steps": their budget was epochs.
        return stage.get("steps") or stage["epochs"] * _batches(self.n_train, self.config.batch_size)

    @property
    def progress_done(self) -> int:
        return self.steps_done

    @property
    def progress_total(self) -> int:
        return sum(self.stage_steps(s) for s in self.stages)

    @property
    def finished(self) -> bool:
        return self.stage >= len(self.stages)

    @staticmethod
    def new_run_text(config: DefenceConfig) -> str:
        return f"Start trains {METHODS[config.method].lower()} and stores it as model {config.name!r}."

    @property
    def model_name(self) -> str:
        return self.config.name

    # --- models made ---

    def made_models(self) -> dict[str, LoadedModel]:
        out = {}
        if self.control_made is not None:
            out[f"{self.model_name}-control"] = self.control_made
        if self.made is not None:
            out[self.model_name] = self.made
        return out

    def attach_models(self, models: dict[str, LoadedModel]) -> None:
        if self.finished:
            self.made = models.get(self.model_name)
        if self.base == "trained in this run" and self.stage > 0:
            self.control_made = models.get(f"{self.model_name}-control")

    # --- the view ---

    def weight_histograms(self) -> dict[str, np.ndarray]:
        if self.histograms:
            return self.histograms
        if not self.sleep_start or not self.sleep_weights:
            return {}
        return weight_change_histograms(self.sleep_start, self.sleep_weights)

    def snapshot(self, rate: float = 0.0) -> "DefenceSnapshot":
        stage = self.stages[min(self.stage, len(self.stages) - 1)]
        phase = "done" if self.finished else f"{stage['title']} ({self.position:,} of " \
                                              f"{self.stage_steps(stage):,} steps)"
        loss = np.asarray(self.loss_log, dtype=np.float64).reshape(-1, 4)
        epochs = np.asarray(self.epoch_log, dtype=np.float64).reshape(-1, 4)
        spikes = np.asarray(self.spike_log, dtype=np.float64).reshape(-1, 5)
        return DefenceSnapshot(
            **self.progress_fields(rate), phase=phase, method=self.config.method,
            model_name=self.model_name, architecture=self.architecture, base=self.base,
            stage_titles=tuple(s["title"] for s in self.stages), loss_log=loss, epoch_log=epochs,
            spike_log=spikes, raster=tuple(np.array(r) for r in self.raster), raster_start=self.raster_start,
            histograms={k: np.array(v) for k, v in self.weight_histograms().items()},
            sleep_alphas=tuple(self.sleep_alphas), accuracy=dict(self.accuracy),
            models=tuple(self.made_models()), class_names=self.class_names, notes=self.notes(),
            at_chance=self.at_chance(), steps_per_epoch=_batches(self.n_train, self.config.batch_size))

    def at_chance(self) -> tuple[str, ...]:
        """The held-out accuracies (keys of ``accuracy``) of this run's models that the chance guard marks."""
        limit = chance_limit(len(self.class_names), self.config.chance_floor)
        return tuple(key for key in ("control", "final") if key in self.accuracy and self.accuracy[key] < limit)

    def notes(self) -> tuple[str, ...]:
        """What the panel, `wna info` and the exports say beside the numbers: budget, images, chance warnings."""
        config = self.config
        train = [s for s in self.stages if s["kind"] == "train"]
        lines = []
        if train:
            steps = self.stage_steps(train[0])
            per_epoch = _batches(self.n_train, config.batch_size)
            lines.append(f"budget: {steps:,} SGD steps per training stage at batch {config.batch_size} "
                         f"({steps / per_epoch:.3g} epochs of {self.n_train:,} images; the papers' 2 epochs of "
                         f"60,000 images are ≈{DEFAULT_STEPS:,} steps)")
        if self.subsets:
            lines.append("images: " + "; ".join(f"{role} {describe_record(record)}"
                                                 for role, record in self.subsets.items()))
        limit = chance_limit(len(self.class_names), config.chance_floor)
        names = {"control": f"{self.model_name}-control" if self.base == "trained in this run" else "control",
                 "final": self.model_name}
        for key in self.at_chance():
            lines.append(f"warning: model {names[key]!r} is at chance: held-out accuracy {self.accuracy[key]:.3f} "
                         f"< {limit:.3f} (chance {1 / len(self.class_names):.3f}); it gets no thresholds or κ. "
                         "Train longer (--steps) or change the learning rate (--lr)")
        return tuple(lines)

    # --- records ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "config": self.config.to_dict(), "architecture": self.architecture,
            "class_names": list(self.class_names), "input_shape": list(self.input_shape), "base": self.base,
            "stages": self.stages, "n_train": self.n_train, "stage": self.stage, "position": self.position,
            "steps_done": self.steps_done, "seconds": self.seconds, "sleep_alphas": list(self.sleep_alphas),
            "raster_start": self.raster_start, "accuracy": self.accuracy, "epoch_loss": self.epoch_loss,
            "epoch_batches": self.epoch_batches, "subsets": self.subsets,
        }
        arrays: dict[str, np.ndarray] = {
            "logs/loss": np.asarray(self.loss_log, dtype=np.float64).reshape(-1, 4),
            "logs/epochs": np.asarray(self.epoch_log, dtype=np.float64).reshape(-1, 4),
            "logs/spikes": np.asarray(self.spike_log, dtype=np.int64).reshape(-1, 5),
        }
        for i, r in enumerate(self.raster):
            arrays[f"raster/{i}"] = np.asarray(r, dtype=np.uint8)
        for key, value in self.histograms.items():
            arrays[f"histograms/{key}"] = value
        if self.net is not None:  # unfinished: what resuming needs
            for key, value in self.net.state_dict().items():
                arrays[f"net/{key}"] = value.detach().cpu().numpy()
            for key, value in self.optimizer_state.items():
                arrays[f"optimizer/{key}"] = value
            if self.soft_labels is not None:
                arrays["soft_labels"] = self.soft_labels
            for i, (start, now, v) in enumerate(zip(self.sleep_start, self.sleep_weights, self.sleep_potentials)):
                arrays[f"sleep/start/{i}"] = start
                arrays[f"sleep/weights/{i}"] = now
                arrays[f"sleep/potentials/{i}"] = v
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "DefenceState":
        _check_defence_arrays(arrays)
        config = DefenceConfig.from_dict(meta["config"], arrays)
        state = cls(config=config, architecture=meta["architecture"], class_names=tuple(meta["class_names"]),
                    input_shape=tuple(int(s) for s in meta["input_shape"]), base=meta["base"],
                    stages=[dict(s) for s in meta["stages"]], n_train=int(meta["n_train"]),
                    stage=require_int(meta["stage"], "meta stage"), position=require_int(meta["position"], "meta position"),
                    steps_done=require_int(meta["steps_done"], "meta steps_done"),
                    seconds=require_float(meta["seconds"], "meta seconds", 0),
                    sleep_alphas=[require_float(a, "meta sleep_alphas") for a in meta["sleep_alphas"]],
                    raster_start=require_int(meta["raster_start"], "meta raster_start"),
                    accuracy={k: require_float(v, f"meta accuracy {k}", 0, 1) for k, v in dict(meta["accuracy"]).items()},
                    epoch_loss=require_float(meta["epoch_loss"], "meta epoch_loss"),
                    epoch_batches=require_int(meta["epoch_batches"], "meta epoch_batches"),
                    subsets={k: dict(v) for k, v in meta.get("subsets", {}).items()})
        state.loss_log = [tuple(row) for row in np.asarray(arrays["logs/loss"]).tolist()]
        state.epoch_log = [tuple(row) for row in np.asarray(arrays["logs/epochs"]).tolist()]
        state.spike_log = [tuple(int(v) for v in row) for row in np.asarray(arrays["logs/spikes"]).tolist()]
        state.raster = [np.asarray(arrays[f"raster/{i}"]).astype(bool)
                        for i in range(sum(1 for k in arrays if k.startswith("raster/")))]
        state.histograms = {k.split("/", 1)[1]: np.asarray(v) for k, v in arrays.items()
                            if k.startswith("histograms/")}
        weights = {k.split("/", 1)[1]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                   if k.startswith("net/")}
        if weights:
            net = build_zoo(state.architecture, len(state.class_names))
            net.load_state_dict(weights)
            state.net = net
            state.optimizer_state = {k.split("/", 1)[1]: np.asarray(v) for k, v in arrays.items()
                                     if k.startswith("optimizer/")}
            state.soft_labels = np.asarray(arrays["soft_labels"]) if "soft_labels" in arrays else None
            layers = sum(1 for k in arrays if k.startswith("sleep/start/"))
            state.sleep_start = [np.asarray(arrays[f"sleep/start/{i}"]) for i in range(layers)]
            state.sleep_weights = [np.asarray(arrays[f"sleep/weights/{i}"]) for i in range(layers)]
            state.sleep_potentials = [np.asarray(arrays[f"sleep/potentials/{i}"]) for i in range(layers)]
        return state


def _check_defence_arrays(arrays: dict[str, np.ndarray]) -> None:
    """Weights, optimiser state, logs and sleep arrays are finite numbers; each weight-change histogram has
    increasing edges and non-negative bins (its stats may be NaN: a layer whose weights never changed)."""
    for path, value in arrays.items():
        if path.startswith("histograms/") and path.endswith("/stats"):
            # (fraction changed, share of the change on negative weights: NaN when nothing changed, mean change)
            stats = require_shape(value, (3,), path)
            require_finite(stats[[0, 2]], path)
            if not (0 <= stats[0] <= 1 and (np.isnan(stats[1]) or 0 <= stats[1] <= 1)):
                raise ValueError(f"{path} holds fractions outside [0, 1]")
            continue
        require_finite(value, path)
    for path in [p for p in arrays if p.startswith("histograms/") and p.endswith("/edges")]:
        prefix = path[: -len("edges")]
        edges = require_shape(arrays[path], (None,), path)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"{path} must increase")
        for side in ("negative", "positive"):
            bins = require_shape(arrays.get(prefix + side, np.zeros(0)), (edges.size - 1,), prefix + side)
            if bins.size and bins.min() < 0:
                raise ValueError(f"{prefix + side} holds a negative count")


def weight_change_histograms(start: list[np.ndarray], now: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per layer: histogram edges and counts of the changes of weights that started negative / non-negative,
    the fraction of weights changed and the share of |ΔW| on weights that started negative."""
    out: dict[str, np.ndarray] = {}
    for i, (w0, w) in enumerate(zip(start, now)):
        delta = (np.asarray(w, dtype=np.float64) - np.asarray(w0, dtype=np.float64)).ravel()
        w0 = np.asarray(w0).ravel()
        changed = np.abs(delta) > 1e-7
        reach = float(np.abs(delta[changed]).max()) if changed.any() else 1e-3
        edges = np.linspace(-reach, reach, HIST_BINS + 1)
        negative = w0 < 0
        out[f"{i}/edges"] = edges
        out[f"{i}/negative"] = np.histogram(delta[changed & negative], edges)[0].astype(np.int64)
        out[f"{i}/positive"] = np.histogram(delta[changed & ~negative], edges)[0].astype(np.int64)
        total = float(np.abs(delta).sum())
        out[f"{i}/stats"] = np.array([changed.mean(), float(np.abs(delta[negative]).sum()) / total if total else
                                      float("nan"), delta.mean()])
    return out


@dataclass(frozen=True)
class DefenceSnapshot(RunSnapshot):
    phase: str
    method: str
    model_name: str
    architecture: str
    base: str
    stage_titles: tuple[str, ...]
    loss_log: np.ndarray  # (n, 4): step, stage, epoch (fractional), mean loss of the chunk
    epoch_log: np.ndarray  # (n, 4): stage, epoch, mean training loss, held-out accuracy
    spike_log: np.ndarray  # (n, 5): sleep time step, spikes of the input and the three layers in the chunk
    raster: tuple[np.ndarray, ...]  # per layer (input first): (steps, units) bool
    raster_start: int
    histograms: dict
    sleep_alphas: tuple[float, ...]
    accuracy: dict
    models: tuple[str, ...]
    class_names: tuple[str, ...]
    notes: tuple[str, ...] = ()  # budget, image subsets, at-chance warnings (DefenceState.notes)
    steps_per_epoch: int = 0
    at_chance: tuple[str, ...] = ()  # keys of ``accuracy`` the chance guard marks

    @property
    def has_sleep(self) -> bool:
        return bool(self.histograms) or bool(self.raster)

    def layer_stats(self) -> list[tuple[float, ...]]:
        """Per layer: (fraction of weights changed, share of |ΔW| on negative weights, mean ΔW)."""
        return [tuple(float(v) for v in self.histograms[f"{i}/stats"]) for i in range(3)
                if f"{i}/stats" in self.histograms]


# --- the experiment ---


def _control_base(model: LoadedModel, label: str) -> LoadedModel:
    if model.architecture != CONTROL_ARCH:
        raise DefenceError(f"this method starts from a control network ({CONTROL_ARCH}); {label} is "
                           f"{model.architecture}: train one with `wna run defence --method control`")
    return model


def _loss(stage: dict, out: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    if stage["loss"] == "cross_entropy":
        return nn.functional.cross_entropy(out, target)
    if stage["labels"] == "hard":
        target = nn.functional.one_hot(target, out.shape[1]).to(out.dtype)
    if stage["loss"] == "softmax_t":
        # T × the cross-entropy at T: ∂/∂z = softmax(z/T) − y, the authors' toolbox's gradient (it backpropagates
        # a softmax output as e = y − a); without the T the steps would be T times smaller.
        return -temperature * (target * torch.log_softmax(out / temperature, dim=1)).sum(1).mean()
    return 0.5 * ((target - out) ** 2).sum(1).mean()


class MomentumSGD:
    """SGD with momentum as the authors' toolbox does it (v ← m·v + g; w ← w − lr·v; weight decay added to g).

    The same arithmetic as torch.optim.SGD, written out because constructing a
    torch optimiser imports torch._dynamo: seconds on every run's first step.
    """

    def __init__(self, parameters: dict[str, torch.Tensor], lr: float, momentum: float, weight_decay: float = 0.0,
                 buffers: dict[str, torch.Tensor] | None = None) -> None:
        self.parameters = parameters
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.buffers: dict[str, torch.Tensor] = dict(buffers or {})

    def step(self, loss: torch.Tensor) -> None:
        names = [n for n, p in self.parameters.items() if p.requires_grad]
        grads = torch.autograd.grad(loss, [self.parameters[n] for n in names], allow_unused=True)
        with torch.no_grad():
            for name, grad in zip(names, grads):
                if grad is None:
                    continue
                p = self.parameters[name]
                if self.weight_decay:
                    grad = grad.add(p, alpha=self.weight_decay)
                buffer = self.buffers.get(name)
                if buffer is None:
                    buffer = self.buffers[name] = grad.clone()
                else:
                    buffer.mul_(self.momentum).add_(grad)
                p.sub_(buffer, alpha=self.lr)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class DefenceExperiment(Experiment):
    spec: ExperimentSpec

    def __init__(self, model: LoadedModel, config=None, state=None, device=None, control=None, **inputs) -> None:
        super().__init__(model, config, state, device, control, **inputs)
        self._data: tuple[ImageSet, ImageSet] | None = None
        self._optimizer: MomentumSGD | None = None
        self._sleeper: Sleeper | None = None

    @classmethod
    def new_state(cls, model: LoadedModel, config: DefenceConfig, base: LoadedModel | None = None
                  ) -> DefenceState:
        shape = _data_shape(config)
        if config.method not in NOISY and config.dataset == "cifar10":
            raise DefenceError(f"{config.method} trains the 784-input control network: use MNIST-sized images "
                               "(bundled, mnist, fashion-mnist, or your own folder or npz)")
        train, _, subsets = training_images(config)
        names = tuple(train.class_names)
        source, start = "", None
        if config.method in NEEDS_CONTROL:
            if base is not None:
                start, source = _control_base(base, "the base model"), "base model"
            elif model is not None and model.architecture == CONTROL_ARCH:
                start, source = model, "session model"
            else:
                source = "trained in this run"
            if start is not None and tuple(start.class_names) != tuple(names):
                raise DefenceError(f"the {source} classifies {len(start.class_names)} classes, the "
                                   f"{config.dataset} images {len(names)}")
        architecture = architecture_of(config)
        stages = plan_stages(config, train_control=source == "trained in this run")
        if start is not None:
            net = copy.deepcopy(start.net).cpu()
        else:
            with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's generator untouched
                torch.manual_seed(_seed(config.seed, 0))
                net = build_zoo(architecture, len(names))
        return DefenceState(config=config, architecture=architecture, class_names=tuple(names), input_shape=shape,
                            base=source if config.method in NEEDS_CONTROL else "", stages=stages,
                            n_train=len(train), net=net, subsets=subsets)

    # --- the work ---

    @property
    def data(self) -> tuple[ImageSet, ImageSet]:
        if self._data is None:
            rule = self.state.subsets.get("train", {}).get("rule", SUBSET_RULE)
            self._data = training_images(self.config, rule)[:2]
        return self._data

    def prepare(self) -> None:
        state = self.state
        if state.net is not None:
            state.net.to(self.device)
        if state.base in ("base model", "session model") and "control" not in state.accuracy:
            state.accuracy["control"] = self._accuracy()

    def pending(self):
        while not self.state.finished:
            yield self.state.stage, self.state.position

    def run_unit(self, unit) -> None:
        state = self.state
        stage = state.stages[state.stage]
        if stage["kind"] == "sleep":
            self._sleep_chunk(stage)
        else:
            self._train_chunk(stage)
        if state.position >= state.stage_steps(stage):
            self._end_stage(stage)

    def snapshot(self) -> DefenceSnapshot:
        return self.state.snapshot(self.rate)

    # --- training ---

    def _make_optimizer(self, stage: dict) -> "MomentumSGD":
        net = self.state.net
        decay = 5e-4 if self.config.method in NOISY else 0.0
        momentum = 0.9 if self.config.method in NOISY else 0.5
        saved = self.state.optimizer_state
        buffers = {name: torch.from_numpy(np.array(saved[name])).to(p.device)
                   for name, p in net.named_parameters() if name in saved}
        return MomentumSGD(dict(net.named_parameters()), stage["lr"], momentum, decay, buffers)

    def _keep_optimizer(self) -> None:
        assert self._optimizer is not None  # kept after a chunk of training, which makes one
        self.state.optimizer_state = {name: b.detach().cpu().numpy().copy()
                                      for name, b in self._optimizer.buffers.items()}

    def _train_chunk(self, stage: dict) -> None:
        state, config = self.state, self.config
        train, _ = self.data
        net = state.net
        if self._optimizer is None:
            self._optimizer = self._make_optimizer(stage)
        if stage["labels"] == "soft" and state.soft_labels is None:
            state.soft_labels = self._soft_labels(stage)
        per_epoch = _batches(len(train), config.batch_size)
        total = state.stage_steps(stage)
        end = min(state.position + TRAIN_CHUNK, total)
        generator = torch.Generator(device=self.device).manual_seed(_seed(config.seed, state.stage, state.position))
        if isinstance(net, ControlMLP):
            net.dropout_generator = generator
        losses = []
        for step in range(state.position, end):
            epoch, batch = divmod(step, per_epoch)
            order = self._order(state.stage, epoch, len(train))
            index = order[batch * config.batch_size:(batch + 1) * config.batch_size]
            x = train.images[index].to(self.device)
            target = (torch.from_numpy(state.soft_labels[index.numpy()]) if stage["labels"] == "soft"
                      else train.labels[index]).to(self.device)
            x = self._distort(stage, x, step)
            if config.method in NOISY and config.adversarial_training:
                net.eval()
                x = pgd(net, x, target, PGD_TRAINING["eps"], int(PGD_TRAINING["steps"]), PGD_TRAINING["step"],
                        loss="cross_entropy", random_start=True, seed=_seed(config.seed, state.stage, step, 2))
            net.train()
            loss = _loss(stage, net(x), target, config.temperature)
            self._optimizer.step(loss)
            losses.append(float(loss.detach()))
            state.epoch_loss += losses[-1]
            state.epoch_batches += 1
            state.position += 1
            state.steps_done += 1
            if state.position % per_epoch == 0 or state.position == total:
                self._end_epoch(state.position / per_epoch)
        net.eval()
        if isinstance(net, ControlMLP):
            net.dropout_generator = None
        self._keep_optimizer()
        state.loss_log.append((state.steps_done, state.stage, state.position / per_epoch, float(np.mean(losses))))

    def _order(self, stage: int, epoch: int, n: int) -> torch.Tensor:
        """The batch order of an epoch: a function of (seed, stage, epoch), so a resumed run repeats it."""
        key = (stage, epoch)
        if getattr(self, "_order_key", None) != key:
            self._order_key = key
            self._order_cache = torch.randperm(n, generator=torch.Generator().manual_seed(
                _seed(self.config.seed, stage, epoch, 1)))
        return self._order_cache

    def _distort(self, stage: dict, x: torch.Tensor, step: int) -> torch.Tensor:
        kind = stage["distortion"]
        if not kind:
            return x
        levels = NOISE_LEVELS if kind == "noise" else BLUR_LEVELS
        level = levels[step % len(levels)]
        if kind == "noise":
            return gaussian_noise(x, level, seed=self.config.seed, block=1000 + step)
        return gaussian_blur(x, level)

    def _end_epoch(self, epoch: float) -> None:
        state = self.state
        loss = state.epoch_loss / max(state.epoch_batches, 1)
        state.epoch_log.append((state.stage, round(epoch, 6), loss, self._accuracy()))
        state.epoch_loss, state.epoch_batches = 0.0, 0

    def _soft_labels(self, stage: dict) -> np.ndarray:
        """The teacher's outputs on the training set: softmax(z/T) (distill), or its ReLU outputs with dropout
        on (distill-authors: their nnff call ran in training mode)."""
        train, _ = self.data
        net = self.state.net
        authors = self.config.method == "distill-authors"
        net.train(authors)
        if authors:
            net.dropout_generator = torch.Generator(device=self.device).manual_seed(_seed(self.config.seed, 3))
        out = []
        with torch.no_grad():
            for start in range(0, len(train), 1000):
                a = net(train.images[start:start + 1000].to(self.device))
                out.append((a if authors else torch.softmax(a / self.config.temperature, dim=1)).cpu().numpy())
        net.eval()
        net.dropout_generator = None
        return np.concatenate(out).astype(np.float32)

    def _accuracy(self, net: nn.Module | None = None) -> float:
        """Held-out accuracy of the network being trained (the training curves)."""
        _, test = self.data
        net = net or self.state.net
        net.eval()
        return float(correct_answers(net, test.images, test.labels, 1000, self.device).mean())

    def _evaluated(self, model: LoadedModel) -> float:
        """A made model's held-out accuracy, measured as the Robustness lab measures clean accuracy and stored
        with the model, with the chance guard's verdict."""
        _, test = self.data
        accuracy = heldout_accuracy(model, test, self.device)
        model.extra.update({"heldout_accuracy": accuracy, "heldout_images": self.state.subsets.get("heldout", {}),
                            "at_chance": at_chance(accuracy, model.n_classes, self.config.chance_floor),
                            "training_steps": self.state.steps_done})
        return accuracy

    # --- sleep ---

    def _sleep_chunk(self, stage: dict) -> None:
        state, config = self.state, self.config
        train, _ = self.data
        params = SleepParams(steps=config.sleep_steps)
        net: ControlMLP = state.net
        if self._sleeper is None:
            if not state.sleep_weights:  # the sleep begins
                state.accuracy["before_sleep"] = self._accuracy()
                alphas, _ = input_scales(net, train.images, params.alpha_scale)
                state.sleep_alphas = alphas
                state.sleep_start = [layer.weight.detach().cpu().numpy().copy() for layer in net.weight_layers()]
                state.sleep_weights = [w.copy() for w in state.sleep_start]
                state.sleep_potentials = [np.zeros(w.shape[0], dtype=np.float32) for w in state.sleep_start]
            weights = [torch.from_numpy(np.array(w)).to(self.device) for w in state.sleep_weights]
            potentials = [torch.from_numpy(np.array(v)).to(self.device) for v in state.sleep_potentials]
            self._sleeper = Sleeper(weights, state.sleep_alphas, params, potentials)
        t0 = state.position
        t1 = min(t0 + SLEEP_CHUNK, params.steps)
        # One image per step in a seeded shuffled order: the bundled sample is stored by class (see input_spikes).
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(_seed(config.seed, 4)))
        spikes = input_spikes(train.images, t0, t1, config.seed, params, block=SLEEP_BLOCK, order=order)
        counts, rasters = self._sleeper.run(spikes, _raster_units(net), RASTER_STEPS)
        state.raster, state.raster_start = [r.numpy() for r in rasters], t0
        state.spike_log.append((t1, *counts))
        state.sleep_weights = [w.cpu().numpy() for w in self._sleeper.weights()]
        state.sleep_potentials = [v.cpu().numpy().copy() for v in self._sleeper.potentials]
        state.position = t1
        state.steps_done += t1 - t0

    # --- stage ends ---

    def _end_stage(self, stage: dict) -> None:
        state = self.state
        net = state.net
        if stage["kind"] == "sleep":
            with torch.no_grad():
                for layer, w in zip(net.weight_layers(), state.sleep_weights):
                    layer.weight.copy_(torch.from_numpy(np.array(w)).to(layer.weight.device))
            state.histograms = weight_change_histograms(state.sleep_start, state.sleep_weights)
            state.sleep_start, state.sleep_weights, state.sleep_potentials = [], [], []
            self._sleeper = None
        if stage["name"] in ("control", "teacher") and state.base == "trained in this run":
            state.control_made = self._loaded(copy.deepcopy(net).cpu(), CONTROL_ARCH, "control")
            state.accuracy["control"] = self._evaluated(state.control_made)
        state.stage += 1
        state.position = 0
        state.optimizer_state = {}
        state.soft_labels = None if stage["labels"] == "soft" else state.soft_labels
        self._optimizer = None
        if state.finished:
            state.made = self._loaded(net.cpu(), state.architecture, self.config.method)
            state.accuracy["final"] = self._evaluated(state.made)
            state.net = None
            state.soft_labels = None

    def _loaded(self, net: nn.Module, architecture: str, method: str) -> LoadedModel:
        net.eval()
        loss = "squared_error" if architecture == CONTROL_ARCH else "cross_entropy"
        spec = ZOO[architecture].input_spec
        extra = {"loss": loss, "defence": method, "trained_on": self.config.dataset}
        if architecture == DISTILL_ARCH:  # the Robustness lab also attacks its logits/T (gradient masking)
            extra["temperature"] = float(self.config.temperature)
        return LoadedModel("zoo", architecture, net, spec, self.state.class_names, extra=extra)


def _raster_units(net: ControlMLP) -> list[torch.Tensor]:
    """Units shown in the raster, per layer (input first): evenly spaced, the input's from the image centre."""
    side = torch.arange(4, 24, 2)
    pixels = (side[:, None] * 28 + side[None, :]).flatten()
    layers = [pixels]
    for layer in net.weight_layers():
        n = layer.weight.shape[0]
        layers.append(torch.linspace(0, n - 1, min(n, RASTER_UNITS)).round().long())
    return layers


# --- artefacts ---


def write_curves_csv(snapshot: DefenceSnapshot, path: Path) -> Path:
    path = Path(path)
    with path.open("w") as fh:
        fh.write("stage,stage_title,epoch,sgd_steps,train_loss,heldout_accuracy\n")
        for stage, epoch, loss, accuracy in snapshot.epoch_log:
            fh.write(f"{int(stage)},{snapshot.stage_titles[int(stage)]},{epoch:g},"
                     f"{round(epoch * snapshot.steps_per_epoch)},{loss:.6g},{accuracy:.6g}\n")
    return path


def write_sleep_npz(snapshot: DefenceSnapshot, path: Path) -> Path:
    path = Path(path)
    # Any: savez's stubs would take a key of ** for its allow_pickle flag
    arrays: dict[str, Any] = {f"raster_{i}": r for i, r in enumerate(snapshot.raster)}
    arrays.update({f"hist_{k.replace('/', '_')}": v for k, v in snapshot.histograms.items()})
    np.savez_compressed(path, spike_log=snapshot.spike_log, alphas=np.asarray(snapshot.sleep_alphas),
                        raster_start=snapshot.raster_start, **arrays)
    return path


ARTEFACTS = (
    Artefact("defence_curves", "Training curves (.csv)", (".csv",), write_curves_csv,
             available=lambda s: len(s.epoch_log) > 0),
    Artefact("defence", "Training curves and sleep (.png, .svg)", (".png", ".svg"),
             figure="wna_gui.figures.defences:save_defence_figure"),
    Artefact("sleep", "Sleep raster and weight changes (.npz)", (".npz",), write_sleep_npz,
             available=lambda s: s.has_sleep),
)


# --- `wna info` and `wna run` text ---


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 trained on the first N images and counted its budget in epochs (its stages keep theirs)."""
    config = meta["config"]
    meta = {**meta, "config": {**config, "epochs": config.get("epochs", 2)},
            "subsets": {role: {"rule": LEGACY_FIRST_N, "requested": int(config.get(key, default))}
                        for role, key, default in (("train", "train_images", 0), ("heldout", "eval_images", 1000))}}
    return meta, arrays


def summary(state: DefenceState) -> dict:
    out = {"samples_done": state.steps_done, "samples_total": state.progress_total, "finished": state.finished,
           "compute_seconds": round(state.seconds, 3), "method": state.config.method,
           "model_name": state.model_name, "architecture": state.architecture, "base": state.base,
           "stages": [s["title"] for s in state.stages], "models_made": sorted(state.made_models()),
           "accuracy": {k: round(v, 6) for k, v in state.accuracy.items()}, "subsets": state.subsets,
           "at_chance": list(state.at_chance()), "notes": list(state.notes())}
    stats = state.snapshot().layer_stats()
    if stats:
        out["sleep_weights_changed"] = [round(s[0], 6) for s in stats]
        out["sleep_change_on_negative"] = [round(s[1], 6) for s in stats]
    return out


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{METHODS[entry['method']]} → model {entry['model_name']!r} ({entry['architecture']}): "
             f"{entry['samples_done']:,} of {entry['samples_total']:,} steps{status}",
             f"  stages: {', '.join(entry['stages'])}" + (f"; control: {entry['base']}" if entry["base"] else "")]
    if entry["accuracy"]:
        marked = entry.get("at_chance", ())
        lines.append("  held-out accuracy: " + ", ".join(f"{k} {v:.3f}" + (" (at chance)" if k in marked else "")
                                                          for k, v in entry["accuracy"].items()))
    lines += [f"  {note}" for note in entry.get("notes", ())]
    if entry.get("sleep_weights_changed"):
        lines.append("  sleep changed " + ", ".join(f"{100 * f:.1f}%" for f in entry["sleep_weights_changed"])
                     + " of the weights per layer; share of |ΔW| on negative weights "
                     + ", ".join(f"{100 * f:.0f}%" for f in entry["sleep_change_on_negative"]))
    if entry["models_made"]:
        lines.append(f"  models made: {', '.join(entry['models_made'])}")
    return lines


def report(snapshot: DefenceSnapshot) -> list[str]:
    lines = [f"{snapshot.samples_done:,} steps in {snapshot.seconds:.1f} s; models: "
             f"{', '.join(snapshot.models) or 'none yet'}"]
    if snapshot.accuracy:
        lines.append("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" + (" (at chance)" if k in snapshot.at_chance
                                                                          else "")
                                                       for k, v in snapshot.accuracy.items()))
    lines += list(snapshot.notes)
    for i, (changed, negative, _) in enumerate(snapshot.layer_stats()):
        lines.append(f"sleep, layer {i + 1}: {100 * changed:.1f}% of weights changed, {100 * negative:.0f}% of "
                     "|ΔW| on negative weights")
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="defence",
    title="Defences",
    help="train a defended model (control, fine-tuned on noise or blur, distilled, slept, noisy ResNet or "
         "ensemble) and store it in the session; every training stage runs 1,200 SGD steps by default (the papers' "
         "2 epochs of 60,000 images at batch 100), and the held-out accuracy is stored with the model",
    config=DefenceConfig,
    state=DefenceState,
    experiment=DefenceExperiment,
    unit="steps",
    panel="defences",
    artefacts=ARTEFACTS,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1},
    requires=(Requirement("base", "model", "the control a fine-tuning, authors' distillation or sleep run starts "
                          "from (without it: the session's model when it is a control, else the run trains one "
                          "first)", optional=True),),
    summary=summary,
    describe=describe,
    report=report,
    warnings=lambda snapshot: [note.removeprefix("warning: ") for note in snapshot.notes
                               if note.startswith("warning: ")],
)
DefenceExperiment.spec = EXPERIMENT

__all__ = ["EXPERIMENT", "DefenceConfig", "DefenceExperiment", "DefenceSnapshot", "DefenceState", "METHODS"]
