"""Backdoor-patch detection with classification images (paper §3.2, Figs. 7A/B/D, 18, 19).

A poisoned copy of the session's architecture is trained on data where a fraction of one class carries a
small patch and is relabelled (paper: a 3×3 x at the top-left on half the 0s, relabelled 1; a c at the
top-right on half the 8s → 9; an H on half the CIFAR-10 birds → cat). A clean copy is trained the same way
(same seed, epochs, batch order; only the poison differs) so that what differs between the two models' maps
is the backdoor and nothing else; the session's own model can stand in for it when it was trained exactly
like that (the bundled CNN: 30 epochs, batch 128, seed 1 on the bundled training digits).

Then, on both models and the *same* noise (counter-based blocks of one seed, so the difference of the maps
cancels the noise they share), classification images are measured with the classification-image engine
(core.classification: any estimator, split halves, z-maps), and the map read is the two-class image of the
decision the patch flips: target minus source (Ahumada's n̄(answered target) − n̄(answered source); for the
logit kernel, the kernel of z_target − z_source). With 20,000 samples on the bundled digits (6 epochs, lr
3e-3) it peaks at the patch with z ≈ 11, where the target's map alone reaches only z ≈ 6. The detection
score standardises a map against the pixels outside the patch's box (robust z: median and 1.4826·MAD) and
reports the largest |z| inside the box and where the map's |z| peaks.

A fixed z flags clean models too (the bundled CNN's own logit kernel has patch-sized windows up to z ≈ 8, far from
any patch), so the verdict is calibrated against a null: every patch-sized window of the poisoned model's map is
scored (mean |robust z| against the whole map), and the same scan of the clean twin's map (same noise, same
training, no poison) is the reference. "Detected" means the poisoned map's strongest window beats every window of
the clean twin's map and overlaps the patch; the report gives the peak window's place, the patch window's rank
among all windows and the clean twin's maximum. Beside it, two reference methods on
the same models: the white-box mean input gradient of the loss over the source class's real images
(Fig. 7D) and a data-side baseline, spectral signatures (Tran et al. 2018: the top singular direction of the
penultimate features of the images labelled as the target class), which needs the training data.

Units of work: one training epoch of the clean model, one of the poisoned model, one noise block of the
maps (both models), then one evaluation (confusion matrices, gradients, spectral signatures); a run stops
and resumes between any two.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .classification import ClassificationImageConfig, ClassificationImageExperiment, ClassificationImageState
from .control import EngineError
from .data import bundled_mnist, load_dataset
from .dataset_choices import DATA_DIR_HELP
from .estimators import ESTIMATORS
from .experiment import Artefact, Experiment, ExperimentSpec
from .images import ImageSet, dataset_labels, fit_to_model
from .models import ZOO, LoadedModel, build_zoo, serialize_state_dict
from .noise import NoiseSource, UniformNoise
from .params import config_arrays, param
from .state import RunConfig, RunSnapshot, RunState
from .train import TrainConfig, at_chance, train_epoch

KIND = "backdoor"
RECORD_VERSION = 1
# name → (label, source class name, target class name, 3×3 shape, corner)
PATCHES = {
    "x": ((1, 0, 1), (0, 1, 0), (1, 0, 1)),
    "c": ((1, 1, 1), (1, 0, 0), (1, 1, 1)),
    "H": ((1, 0, 1), (1, 1, 1), (1, 0, 1)),
}
ATTACKS = {
    "zero-to-one": ("x patch top-left, half the 0s → 1 (Fig. 7A top)", "0", "1", "x", "top-left"),
    "eight-to-nine": ("c patch top-right, half the 8s → 9 (Fig. 7A bottom)", "8", "9", "c", "top-right"),
    "bird-to-cat": ("H patch top-right, half the birds → cat (CIFAR-10, Fig. 7B)", "bird", "cat", "H", "top-right"),
}
CLEAN_SOURCES = {"train": "train a clean copy the same way (same seed, epochs, order)",
                 "session": "the session's model (when trained exactly like the copies)"}
DATASET_LABELS = dataset_labels(None)
MARGIN = 1  # pixels between the patch and the image border
SELECT_STREAM = 0xBAD  # the poisoned images' draw, apart from the training order
MODELS = ("clean", "poisoned")
LEARNED = 0.5  # below this attack success the backdoor was not learned: nothing can be detected
TRAINING = "Poisoning and training"
MAPS = "Classification images"


@dataclass(frozen=True)
class BackdoorConfig(RunConfig):
    attack: str = param("zero-to-one", "Attack", "patch, source and target classes (paper §3.2)",
                        choices={k: v[0] for k, v in ATTACKS.items()}, group=TRAINING)
    fraction: float = param(0.5, "Poisoned fraction", "fraction of the source class's training images that get "
                            "the patch and the target's label", kind="float", low=0.01, high=1.0, step=0.05,
                            decimals=3, group=TRAINING)
    patch_value: float = param(1.0, "Patch colour", "pixel value of the patch's strokes: white (1, the paper's) or "
                               "black (0)", choices={1.0: "white", 0.0: "black"}, group=TRAINING)
    clean: str = param("train", "Clean reference", "the model the poisoned one is compared with",
                       choices=CLEAN_SOURCES, group=TRAINING)
    dataset: str = param("bundled", "Training data", "bundled: the 4,000 bundled training digits (tested on the "
                         "1,000 held out); a torchvision dataset; or your own images (fitted to the model's input, 1/5 "
                         "held out for testing)", choices=DATASET_LABELS, group=TRAINING)
    data_dir: str = param("", "Data folder", DATA_DIR_HELP, kind="text", role="runtime", group=TRAINING)
    epochs: int = param(10, "Epochs", "training epochs of each copy", low=1, high=1000, group=TRAINING)
    train_batch: int = param(128, "Training batch", "images per optimiser step", low=1, high=100_000, group=TRAINING)
    lr: float = param(1e-3, "Learning rate", "Adam's learning rate", kind="float", low=1e-6, high=1.0, step=1e-4,
                      decimals=6, group=TRAINING)
    train_seed: int = param(1, "Training seed", "weights and batch order (1: the authors' seed)", low=0,
                            high=2**31 - 1, group=TRAINING)
    estimator: str = param("logit", "Maps of", "estimator of the classification images: logit kernel (scores), "
                           "hard label (labels only: the target class needs many samples), probability-weighted, "
                           "gradient (white-box)", choices={k: v.label for k, v in ESTIMATORS.items()
                                                            if k != "signal"}, group=MAPS)
    map_samples: int = param(20_000, "Noise samples", "noise images shown to each model", low=1000,
                             high=100_000_000, step=10_000, group=MAPS)
    seed: int = param(0, "Noise seed", "seed of the counter-based noise (the same for both models)", low=0,
                      high=2**31 - 1, group=MAPS)
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise", cli="--noise", group=MAPS,
                               help="noise shown to both models: uniform (the paper's) or gaussian")
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; use {', '.join(ATTACKS)}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"poisoned fraction must be in (0, 1], got {self.fraction}")
        if self.clean not in CLEAN_SOURCES:
            raise ValueError(f"clean reference must be {' or '.join(CLEAN_SOURCES)}, got {self.clean!r}")
        if self.dataset not in DATASET_LABELS:
            raise ValueError(f"unknown training data {self.dataset!r}; use {', '.join(DATASET_LABELS)}")
        if self.estimator not in ESTIMATORS or self.estimator == "signal":
            raise ValueError(f"unknown estimator {self.estimator!r}; use hard, logit, prob or gradient")
        for name in ("epochs", "train_batch", "map_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be positive")

    @property
    def maps_config(self) -> ClassificationImageConfig:
        return ClassificationImageConfig(noise=self.noise, samples=self.map_samples, batch_size=1000, seed=self.seed,
                                         estimators=tuple(dict.fromkeys(("hard", self.estimator))))

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.train_batch, lr=self.lr, seed=self.train_seed)


# --- the poison ---

def patch_box(attack: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(row, col, height, width) of the attack's patch in an image of ``shape`` (C, H, W)."""
    _, _, _, _, corner = ATTACKS[attack]
    width = shape[-1]
    return (MARGIN, MARGIN if corner == "top-left" else width - MARGIN - 3, 3, 3)


def patch_mask(attack: str, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: the patch's strokes."""
    row, col, h, w = patch_box(attack, shape)
    mask = np.zeros(shape[-2:], dtype=bool)
    mask[row:row + h, col:col + w] = np.asarray(PATCHES[ATTACKS[attack][3]], dtype=bool)
    return mask


def add_patch(images: torch.Tensor, attack: str, value: float) -> torch.Tensor:
    """A copy of ``images`` (N, C, H, W) with the patch's strokes set to ``value`` in every channel."""
    out = images.clone()
    mask = torch.as_tensor(patch_mask(attack, tuple(images.shape[1:])))
    out[:, :, mask] = value
    return out


def classes_of(attack: str, class_names: tuple[str, ...]) -> tuple[int, int]:
    _, source, target, _, _ = ATTACKS[attack]
    if source not in class_names or target not in class_names:
        raise ValueError(f"the {attack} attack needs classes {source!r} and {target!r}; the model has "
                         f"{', '.join(class_names[:12])}")
    return class_names.index(source), class_names.index(target)


def poisoned_indices(labels: torch.Tensor, source: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the source-class training images that get the patch (a seeded draw)."""
    candidates = np.flatnonzero(labels.numpy() == source)
    rng = np.random.default_rng(np.random.SeedSequence([seed, SELECT_STREAM]))
    count = int(round(fraction * len(candidates)))
    return np.sort(rng.choice(candidates, size=count, replace=False))


def poison(train: ImageSet, attack: str, fraction: float, value: float, seed: int) -> tuple[ImageSet, np.ndarray]:
    """The poisoned training set and which of its images were poisoned."""
    source, target = classes_of(attack, train.class_names)
    chosen = poisoned_indices(train.labels, source, fraction, seed)
    images, labels = train.images.clone(), train.labels.clone()
    images[chosen] = add_patch(images[chosen], attack, value)
    labels[chosen] = target
    return ImageSet(f"{train.name}+{attack}", images, labels, train.class_names), chosen


def load_split(config: BackdoorConfig, train: bool, shape: tuple[int, ...], class_names: tuple[str, ...]) -> ImageSet:
    """The training or test images, own images fitted to a model of input ``shape`` and ``class_names``."""
    if config.dataset == "bundled":
        return bundled_mnist("train" if train else "heldout")
    return fit_to_model(load_dataset(config.dataset, config.data_dir or None, train=train), shape, class_names)


# --- detection ---

def robust_z(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) map standardised against the pixels outside ``box``: (x − median) / (1.4826·MAD) (channels averaged)."""
    image = np.asarray(image, dtype=np.float64)
    image = image.mean(0) if image.ndim == 3 else image
    inside = np.zeros(image.shape, dtype=bool)
    row, col, h, w = box
    inside[row:row + h, col:col + w] = True
    rest = image[~inside]
    median = np.median(rest)
    spread = 1.4826 * np.median(np.abs(rest - median))
    return (image - median) / (spread if spread > 0 else (rest.std() or 1.0))


@dataclass(frozen=True)
class Detection:
    """How a map points at the patch: the largest |z| inside its box, and where |z| peaks over the image."""

    method: str
    z_inside: float
    peak: tuple[int, int]
    peak_z: float
    in_box: bool
    queries: int  # model queries (or images) the method used
    access: str

    @classmethod
    def of(cls, method: str, image: np.ndarray, box, queries: int, access: str) -> "Detection":
        z = robust_z(image, box)
        row, col, h, w = box
        inside = float(np.abs(z[row:row + h, col:col + w]).max())
        peak = np.unravel_index(int(np.argmax(np.abs(z))), z.shape)
        in_box = row <= peak[0] < row + h and col <= peak[1] < col + w
        return cls(method, inside, (int(peak[0]), int(peak[1])), float(np.abs(z)[peak]), bool(in_box), queries,
                   access)


def window_scores(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H − h + 1, W − w + 1) mean |z| of every ``size`` window, z standardised against the whole map (median and
    1.4826·MAD: no pixel is assumed to be the patch, so every window is scored alike)."""
    from numpy.lib.stride_tricks import sliding_window_view

    image = np.asarray(image, dtype=np.float64)
    image = image.mean(0) if image.ndim == 3 else image
    median = np.median(image)
    spread = 1.4826 * np.median(np.abs(image - median))
    z = np.abs(image - median) / (spread if spread > 0 else (image.std() or 1.0))
    return sliding_window_view(z, size).mean(axis=(-2, -1))


@dataclass(frozen=True)
class WindowScan:
    """A map scanned with patch-sized windows: where it stands out most, and how the patch's own window ranks."""

    peak: tuple[int, int]  # top-left pixel of the strongest window
    peak_score: float  # its mean |z|
    patch_score: float  # the window exactly on the patch box
    patch_rank: int  # 1: the patch's window is the map's strongest
    windows: int
    on_patch: bool  # the strongest window overlaps the patch box

    @classmethod
    def of(cls, image: np.ndarray, box: tuple[int, int, int, int]) -> "WindowScan":
        row, col, h, w = box
        scores = window_scores(image, (h, w))
        peak = np.unravel_index(int(np.argmax(scores)), scores.shape)
        patch = float(scores[row, col])
        overlaps = abs(int(peak[0]) - row) < h and abs(int(peak[1]) - col) < w
        return cls((int(peak[0]), int(peak[1])), float(scores[peak]), patch, int((scores > patch).sum()) + 1,
                   int(scores.size), bool(overlaps))


@dataclass(frozen=True)
class Verdict:
    """A method's verdict on the poisoned model, calibrated by the same scan of its clean twin (the null)."""

    method: str
    poisoned: WindowScan
    clean: WindowScan

    @property
    def detected(self) -> bool:
        return self.poisoned.on_patch and self.poisoned.peak_score > self.clean.peak_score

    def text(self, box: tuple[int, int, int, int]) -> str:
        p, h, w = self.poisoned, box[2], box[3]
        place = (f"peak window rows {p.peak[0]}–{p.peak[0] + h - 1}, cols {p.peak[1]}–{p.peak[1] + w - 1} "
                 f"({'on' if p.on_patch else 'off'} the patch), mean |z| {p.peak_score:.1f} vs the clean twin's "
                 f"max {self.clean.peak_score:.1f} (at {self.clean.peak}); the patch's window ranks {p.patch_rank} "
                 f"of {p.windows} (clean twin: {self.clean.patch_rank})")
        return f"{self.method}: {'DETECTED' if self.detected else 'not detected'} — {place}"

    def to_dict(self) -> dict:
        def scan(s: WindowScan) -> dict:
            return {"peak": list(s.peak), "peak_score": round(s.peak_score, 3), "patch_score": round(s.patch_score, 3),
                    "patch_rank": s.patch_rank, "windows": s.windows, "on_patch": s.on_patch}

        return {"method": self.method, "detected": self.detected, "poisoned": scan(self.poisoned),
                "clean": scan(self.clean)}


def spectral_signature(features: np.ndarray, poisoned: np.ndarray, expected: int) -> tuple[np.ndarray, np.ndarray]:
    """Tran et al. 2018: outlier score of each image (squared projection of its centred features on their top
    singular vector); flags the 1.5 × ``expected`` highest. (scores, flagged)."""
    centred = features - features.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    scores = (centred @ vt[0]) ** 2
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[np.argsort(-scores)[:min(len(scores), int(round(1.5 * expected)))]] = True
    return scores, flagged


def penultimate_features(model: LoadedModel, images: torch.Tensor, device) -> np.ndarray:
    """Inputs of the network's last linear layer (its penultimate features) for ``images``."""
    linear = [m for m in model.net.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise EngineError("spectral signatures need a network that ends in a linear layer")
    captured = []
    handle = linear[-1].register_forward_hook(lambda module, args, out: captured.append(args[0].detach().cpu()))
    try:
        model.pixel_model.to(device).eval()
        with torch.inference_mode():
            for chunk in images.split(512):
                model.pixel_model(chunk.to(device))
    finally:
        handle.remove()
        model.pixel_model.to("cpu")
    return torch.cat(captured).flatten(1).double().numpy()


def loss_gradient(runtime, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Mean ∂CE/∂x over ``images`` = Σ_k (p_k − y_k)·∂z_k/∂x, from the runtime's per-class input gradients."""
    with torch.inference_mode():
        p = torch.softmax(runtime.logits(images.to(runtime.device)).double(), 1).cpu()
    residual = p - nn.functional.one_hot(labels, p.shape[1]).double()
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, len(images), 256):
        grads = runtime.input_gradients(images[start:start + 256].to(runtime.device)).cpu().double()
        total += torch.einsum("bk,bk...->...", residual[start:start + 256], grads)
    return (total / len(images)).numpy()


def confusion(model_runtime, images: torch.Tensor, labels: torch.Tensor, k: int) -> np.ndarray:
    with torch.inference_mode():
        predicted = torch.cat([model_runtime.logits(chunk.to(model_runtime.device)).argmax(1).cpu()
                               for chunk in images.split(1024)])
    return np.bincount(labels.numpy() * k + predicted.numpy(), minlength=k * k).reshape(k, k)


def decision_map(maps: ClassificationImageState, estimator: str, target: int, source: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(target − source, target) centred maps of a classification-image run, in image shape: the two-class image
    of the decision the patch flips (Ahumada: answered target minus answered source; for the logit kernel, the
    kernel of z_target − z_source)."""
    estimated = maps.snapshot().maps_of(estimator)
    assert estimated is not None  # the run measures the estimator the config names
    pair = estimated.of("centered", [target, source])
    shape = tuple(maps.image_shape)
    return (pair[0] - pair[1]).reshape(shape), pair[0].reshape(shape)


# --- state ---

def _blob(obj) -> np.ndarray:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()


def _unblob(array: np.ndarray):
    return torch.load(io.BytesIO(np.asarray(array, dtype=np.uint8).tobytes()), map_location="cpu", weights_only=True)


@dataclass
class BackdoorState(RunState):
    config: BackdoorConfig
    architecture: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    epochs_done: dict[str, int] = field(default_factory=lambda: {"clean": 0, "poisoned": 0})
    losses: dict[str, list[float]] = field(default_factory=lambda: {"clean": [], "poisoned": []})
    models: dict[str, LoadedModel] = field(default_factory=dict)  # trained (or training) copies
    checkpoints: dict[str, np.ndarray] = field(default_factory=dict)  # optimiser + generator between epochs
    maps: dict[str, ClassificationImageState] = field(default_factory=dict)
    evaluated: bool = False
    results: dict[str, np.ndarray] = field(default_factory=dict)
    noise_device: str = ""
    seconds: float = 0.0

    @property
    def trained(self) -> tuple[str, ...]:
        return MODELS if self.config.clean == "train" else ("poisoned",)

    @property
    def n_blocks(self) -> int:
        return self.config.maps_config.n_blocks

    @property
    def blocks_done(self) -> int:
        return min(state.blocks_done for state in self.maps.values()) if len(self.maps) == 2 else 0

    @property
    def training_done(self) -> bool:
        return all(self.epochs_done[m] >= self.config.epochs for m in self.trained)

    @property
    def progress_done(self) -> int:
        return sum(self.epochs_done[m] for m in self.trained) + self.blocks_done + int(self.evaluated)

    @property
    def progress_total(self) -> int:
        return len(self.trained) * self.config.epochs + self.n_blocks + 1

    @property
    def finished(self) -> bool:
        return self.evaluated

    @staticmethod
    def new_run_text(config: BackdoorConfig) -> str:
        copies = "a clean and a poisoned copy" if config.clean == "train" else "a poisoned copy"
        return (f"Start trains {copies} ({config.epochs} epochs each), maps both with {config.map_samples:,} noise "
                "images, then compares the detectors.")

    def model_names(self) -> dict[str, str]:
        cfg = self.config
        return {"poisoned": f"backdoor-{cfg.attack}-poisoned", "clean": f"backdoor-{cfg.attack}-clean"}

    def made_models(self) -> dict[str, LoadedModel]:
        """The trained copies, for the session's /models (once trained)."""
        names = self.model_names()
        return {names[m]: self.models[m] for m in self.trained
                if m in self.models and self.epochs_done[m] >= self.config.epochs}

    def attach_models(self, models: dict[str, LoadedModel]) -> None:
        for m, name in self.model_names().items():
            if m in self.trained and name in models and m not in self.models:
                self.models[m] = models[name]

    def snapshot(self, samples_per_second: float = 0.0) -> "BackdoorSnapshot":
        cfg = self.config
        source, target = classes_of(cfg.attack, self.class_names)
        box = patch_box(cfg.attack, self.image_shape)
        maps, detections, verdicts = {}, [], []
        shape = tuple(self.image_shape)
        queries = self.blocks_done * 1000
        if self.blocks_done:
            for m in MODELS:
                maps[m], maps[m + "_target"] = decision_map(self.maps[m], cfg.estimator, target, source)
            maps["difference"] = maps["poisoned"] - maps["clean"]
            label = ESTIMATORS[cfg.estimator].label
            access = "hard labels" if cfg.estimator == "hard" else "white-box gradients" \
                if cfg.estimator == "gradient" else "output scores"
            verdicts.append(Verdict(f"classification image ({label})", WindowScan.of(maps["poisoned"], box),
                                    WindowScan.of(maps["clean"], box)))
            detections += [Detection.of(f"classification image ({label}), clean model", maps["clean"], box, queries,
                                        access),
                           Detection.of(f"classification image ({label}), poisoned model", maps["poisoned"], box,
                                        queries, access),
                           Detection.of(f"classification image ({label}), poisoned − clean", maps["difference"], box,
                                        2 * queries, access)]
        if self.evaluated:
            r = self.results
            n_grad = int(r["gradient_images"])
            detections += [Detection.of("mean loss gradient, clean model", r["gradient_clean"], box, n_grad,
                                        "white-box gradients"),
                           Detection.of("mean loss gradient, poisoned model", r["gradient_poisoned"], box, n_grad,
                                        "white-box gradients"),
                           Detection.of("spectral signature (flagged − unflagged mean image)", r["spectral_image"],
                                        box, int(len(r["spectral_scores"])), "training data + features")]
            verdicts.append(Verdict("mean loss gradient", WindowScan.of(r["gradient_poisoned"], box),
                                    WindowScan.of(r["gradient_clean"], box)))
        return BackdoorSnapshot(
            **self.progress_fields(samples_per_second), attack=cfg.attack, class_names=self.class_names,
            image_shape=shape, source=source, target=target, box=box, mask=patch_mask(cfg.attack, shape),
            estimator=cfg.estimator, map_samples=queries, epochs_done=dict(self.epochs_done),
            losses={m: list(v) for m, v in self.losses.items()}, maps=maps, detections=tuple(detections),
            results=dict(self.results), clean_source=cfg.clean, model_names=self.model_names(),
            verdicts=tuple(verdicts))

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta: dict[str, Any] = {
            "config": self.config.to_dict(), "architecture": self.architecture,
            "class_names": list(self.class_names), "image_shape": list(self.image_shape),
            "epochs_done": dict(self.epochs_done), "losses": {m: list(v) for m, v in self.losses.items()},
            "evaluated": self.evaluated, "noise_device": self.noise_device, "seconds": self.seconds,
            "maps": {}}
        arrays = dict(config_arrays(self.config))
        for m in self.trained:
            # Weights live in the session's /models once the run is finished (made_models); before, here.
            if m in self.models and not self.finished:
                arrays[f"training/{m}/weights"] = np.frombuffer(
                    serialize_state_dict(self.models[m].net.state_dict()), dtype=np.uint8).copy()
            if m in self.checkpoints:
                arrays[f"training/{m}/checkpoint"] = self.checkpoints[m]
        for m, state in self.maps.items():
            sub_meta, sub_arrays = state.to_record()
            meta["maps"][m] = sub_meta
            arrays.update({f"maps/{m}/{key}": value for key, value in sub_arrays.items()})
        arrays.update({f"results/{key}": value for key, value in self.results.items()})
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict) -> "BackdoorState":
        config = BackdoorConfig.from_dict(meta["config"], arrays)
        state = cls(config, meta["architecture"], tuple(meta["class_names"]),
                    tuple(int(s) for s in meta["image_shape"]), epochs_done=dict(meta["epochs_done"]),
                    losses={m: list(v) for m, v in meta["losses"].items()}, evaluated=bool(meta["evaluated"]),
                    noise_device=meta.get("noise_device", ""), seconds=float(meta.get("seconds", 0.0)))
        for m in MODELS:
            if f"training/{m}/weights" in arrays:
                net = build_zoo(state.architecture, len(state.class_names))
                net.load_state_dict(_unblob(arrays[f"training/{m}/weights"]))
                state.models[m] = LoadedModel("zoo", state.architecture, net, ZOO[state.architecture].input_spec,
                                              state.class_names)
            if f"training/{m}/checkpoint" in arrays:
                state.checkpoints[m] = np.asarray(arrays[f"training/{m}/checkpoint"], dtype=np.uint8)
        for m, sub_meta in meta.get("maps", {}).items():
            prefix = f"maps/{m}/"
            state.maps[m] = ClassificationImageState.from_record(
                sub_meta, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        state.results = {k[len("results/"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("results/")}
        return state


@dataclass(frozen=True)
class BackdoorSnapshot(RunSnapshot):
    attack: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    source: int
    target: int
    box: tuple[int, int, int, int]
    mask: np.ndarray
    estimator: str
    map_samples: int
    epochs_done: dict
    losses: dict
    maps: dict  # clean, poisoned (target − source maps), difference (poisoned − clean), <model>_target
    detections: tuple[Detection, ...]
    results: dict
    clean_source: str = "train"
    model_names: dict = field(default_factory=dict)
    verdicts: tuple[Verdict, ...] = ()  # each method against the clean twin (the null)

    @property
    def confusions(self) -> dict[str, np.ndarray]:
        return {key[len("confusion_"):]: value for key, value in self.results.items() if key.startswith("confusion_")}

    def accuracy(self, which: str) -> float:
        matrix = self.results[f"confusion_{which}"]
        return float(np.trace(matrix) / matrix.sum())

    def success(self, model: str) -> float:
        """Fraction of patched source-class test images the model gives the target."""
        matrix = self.results[f"confusion_{model}_patched"]
        row = matrix[self.source]
        return float(row[self.target] / row.sum())

    @property
    def warnings(self) -> tuple[str, ...]:
        """Why the verdicts cannot be read as they stand (a poisoning that did not take)."""
        if not self.finished:
            return ()
        lines = []
        if self.success("poisoned") < LEARNED:
            lines.append(f"backdoor not learned: train longer (patched {self.class_names[self.source]} → "
                         f"{self.class_names[self.target]} on only {self.success('poisoned'):.0%} of test images; "
                         f"more epochs or a higher learning rate), so 'not detected' says nothing")
        for m in MODELS:
            accuracy = self.accuracy(m + "_clean")
            if at_chance(accuracy, len(self.class_names)):
                lines.append(f"the {m} model is at chance on clean test images (accuracy {accuracy:.0%}): train "
                             "longer; its maps and verdicts mean little")
        return tuple(lines)


class BackdoorExperiment(Experiment):
    def __init__(self, model: LoadedModel, config: BackdoorConfig | None = None, state=None, device=None,
                 control=None) -> None:
        super().__init__(model, config, state, device, control)
        if self.config.clean == "session":  # the reference is the session's model, never stored twice
            self.state.models.setdefault("clean", model)
        self._train_set: dict[str, ImageSet] | None = None

    @classmethod
    def new_state(cls, model: LoadedModel, config: BackdoorConfig) -> BackdoorState:
        if model.architecture not in ZOO or model.kind not in ("default", "zoo"):
            raise ValueError(f"backdoor training needs a model of the zoo ({', '.join(ZOO)}); the session's is "
                             f"{model.display_name}")
        classes_of(config.attack, tuple(model.class_names))
        if config.dataset == "bundled" and tuple(model.input_spec.shape) != (1, 28, 28):
            raise ValueError("the bundled digits are 28×28 grey images; choose the dataset the model was trained on")
        if config.dataset != "bundled":  # read once here so that bad images are refused before anything is saved
            load_split(config, False, tuple(model.input_spec.shape), tuple(model.class_names))
        state = BackdoorState(config, model.architecture, tuple(model.class_names), tuple(model.input_spec.shape))
        if config.clean == "session":
            state.models["clean"] = model
        return state

    def _training_set(self, which: str) -> ImageSet:
        if self._train_set is None:
            train = load_split(self.config, True, self.state.image_shape, self.state.class_names)
            if tuple(train.class_names) != tuple(self.state.class_names):
                raise EngineError(f"{train.name}'s classes differ from the model's")
            cfg = self.config
            self._train_set = {"clean": train,
                               "poisoned": poison(train, cfg.attack, cfg.fraction, cfg.patch_value, cfg.train_seed)[0]}
        return self._train_set[which]

    def pending(self):
        state = self.state
        for m in state.trained:
            while state.epochs_done[m] < self.config.epochs:
                yield ("train", m)
        while state.blocks_done < state.n_blocks:
            yield ("maps", state.blocks_done)
        if not state.evaluated:
            yield ("evaluate", 0)

    def run_unit(self, unit) -> None:
        what, which = unit
        if what == "train":
            self._train_epoch(which)
        elif what == "maps":
            self._maps_block(which)
        else:
            self._evaluate()

    def _train_epoch(self, which: str) -> None:
        state, cfg = self.state, self.config
        train_config = cfg.train_config
        if which not in state.models:
            torch.manual_seed(train_config.seed)  # the same initial weights for both copies
            net = build_zoo(state.architecture, len(state.class_names))
            state.models[which] = LoadedModel("zoo", state.architecture, net, ZOO[state.architecture].input_spec,
                                              state.class_names, extra={"backdoor": which, "attack": cfg.attack})
        model = state.models[which]
        model.to(self.device)
        optimiser = torch.optim.Adam(model.net.parameters(), lr=train_config.lr)
        generator = torch.Generator().manual_seed(train_config.seed)
        if which in state.checkpoints:
            saved = _unblob(state.checkpoints[which])
            optimiser.load_state_dict(saved["optimiser"])
            generator.set_state(saved["generator"])
        loss = train_epoch(model, optimiser, self._training_set(which), train_config, generator, self.device)
        model.to("cpu")
        state.losses[which].append(loss)
        state.epochs_done[which] += 1
        state.checkpoints[which] = _blob({"optimiser": optimiser.state_dict(), "generator": generator.get_state()})
        if state.epochs_done[which] >= cfg.epochs:
            del state.checkpoints[which]
            for parameter in model.net.parameters():
                parameter.requires_grad_(False)

    def _maps_block(self, block: int) -> None:
        state = self.state
        if not hasattr(self, "_map_runs"):
            self._map_runs = {}
            for m in MODELS:
                if m not in state.maps:
                    state.maps[m] = ClassificationImageExperiment.new_state(state.models[m], self.config.maps_config)
                self._map_runs[m] = ClassificationImageExperiment(state.models[m], state=state.maps[m],
                                                                  device=self.device)
        for m in MODELS:
            run = self._map_runs[m]
            if run.state.blocks_done == block:
                run.run_unit(block)
                run.after_unit()

    def _evaluate(self) -> None:
        from .runtime import Runtime

        state, cfg = self.state, self.config
        source, target = classes_of(cfg.attack, state.class_names)
        k = len(state.class_names)
        test = load_split(cfg, False, state.image_shape, state.class_names)
        patched = test.images.clone()
        is_source = test.labels == source
        patched[is_source] = add_patch(test.images[is_source], cfg.attack, cfg.patch_value)
        results = {}
        runtimes = {m: Runtime(state.models[m], self.device) for m in MODELS}
        for m, runtime in runtimes.items():
            results[f"confusion_{m}_clean"] = confusion(runtime, test.images, test.labels, k)
            results[f"confusion_{m}_patched"] = confusion(runtime, patched, test.labels, k)
            # Fig. 7D: the mean gradient of the loss over the source class's real (unpatched) images.
            images = test.images[is_source]
            results[f"gradient_{m}"] = loss_gradient(runtime, images, test.labels[is_source])
        results["gradient_images"] = np.int64(int(is_source.sum()))
        # Spectral signatures on the images the poisoned model was trained to call the target.
        train = self._training_set("poisoned")
        _, chosen = poison(self._training_set("clean"), cfg.attack, cfg.fraction, cfg.patch_value, cfg.train_seed)
        labelled = np.flatnonzero(train.labels.numpy() == target)
        was_poisoned = np.isin(labelled, chosen)
        features = penultimate_features(state.models["poisoned"], train.images[labelled], self.device)
        scores, flagged = spectral_signature(features, was_poisoned, len(chosen))
        pixels = train.images[labelled].reshape(len(labelled), *state.image_shape).double().numpy()
        results["spectral_scores"] = scores
        results["spectral_flagged"] = flagged
        results["spectral_poisoned"] = was_poisoned
        results["spectral_image"] = pixels[flagged].mean(0) - pixels[~flagged].mean(0) if (~flagged).any() \
            else pixels[flagged].mean(0)
        results["poisoned_train_images"] = np.int64(len(chosen))
        state.results = results
        state.evaluated = True

    def snapshot(self) -> BackdoorSnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_summary(snapshot: BackdoorSnapshot, path) -> Path:
    """Which method finds the patch (CSV): per method the |z| inside the patch box, where |z| peaks, whether
    that is inside the box, the queries or samples used and the access needed; then accuracies."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "z_inside_patch", "peak_row", "peak_col", "peak_z", "peak_in_patch",
                         "queries_or_samples", "access"])
        for d in snapshot.detections:
            writer.writerow([d.method, f"{d.z_inside:.4g}", d.peak[0], d.peak[1], f"{d.peak_z:.4g}", int(d.in_box),
                             d.queries, d.access])
        if snapshot.verdicts:
            writer.writerow([])
            writer.writerow(["verdict_method", "detected", "peak_row", "peak_col", "peak_window_mean_abs_z",
                             "peak_on_patch", "patch_window_rank", "windows", "clean_twin_max_window",
                             "clean_twin_peak_row", "clean_twin_peak_col", "clean_twin_patch_window_rank"])
            for v in snapshot.verdicts:
                p, c = v.poisoned, v.clean
                writer.writerow([v.method, int(v.detected), p.peak[0], p.peak[1], f"{p.peak_score:.4g}",
                                 int(p.on_patch), p.patch_rank, p.windows, f"{c.peak_score:.4g}", c.peak[0], c.peak[1],
                                 c.patch_rank])
        for warning in snapshot.warnings:
            writer.writerow([])
            writer.writerow(["warning", warning])
        if snapshot.finished:
            writer.writerow([])
            writer.writerow(["model", "clean_test_accuracy", "patched_source_to_target"])
            for m in MODELS:
                writer.writerow([m, f"{snapshot.accuracy(m + '_clean'):.4f}", f"{snapshot.success(m):.4f}"])
            flagged, poisoned = snapshot.results["spectral_flagged"], snapshot.results["spectral_poisoned"]
            writer.writerow([])
            writer.writerow(["spectral_signature", "flagged", "poisoned", "poisoned_flagged"])
            writer.writerow(["", int(flagged.sum()), int(poisoned.sum()), int((flagged & poisoned).sum())])
    return path


def write_arrays(snapshot: BackdoorSnapshot, path) -> Path:
    """Maps of the target class (clean, poisoned, difference and z-maps), the patch mask, gradients, confusion
    matrices, spectral scores and losses (.npz)."""
    path = Path(path)
    # Any: savez's stubs would take a key of ** for its allow_pickle flag
    arrays: dict[str, Any] = {**{f"map_{k}": v for k, v in snapshot.maps.items()}, **snapshot.results,
                              **{f"loss_{m}": np.asarray(v) for m, v in snapshot.losses.items()}}
    np.savez_compressed(path, class_names=np.asarray(snapshot.class_names), source=snapshot.source,
                        target=snapshot.target, box=np.asarray(snapshot.box), mask=snapshot.mask,
                        estimator=snapshot.estimator, **arrays)
    return path


ARTEFACTS = (
    Artefact("backdoor_detection", "Backdoor: which method finds the patch, accuracies (.csv)", (".csv",),
             write_summary, available=lambda s: bool(s.detections)),
    Artefact("backdoor", "Backdoor arrays: maps, gradients, confusions, spectral scores (.npz)", (".npz",),
             write_arrays, available=lambda s: s.finished),
    Artefact("backdoor_maps", "Clean and poisoned classification images, difference, gradients, patch outlined",
             (".png", ".pdf", ".svg"), figure="wna_gui.figures.adversarial:save_backdoor_maps",
             available=lambda s: s.finished),
    Artefact("backdoor_confusions", "Confusion matrices on clean and patched test images (Figs. 7A, 18)",
             (".png", ".pdf", ".svg"), figure="wna_gui.figures.adversarial:save_confusions",
             available=lambda s: s.finished),
)


def summary(state: BackdoorState) -> dict:
    out = {"samples_done": state.progress_done, "samples_total": state.progress_total, "finished": state.finished,
           "compute_seconds": round(state.seconds, 3), "attack": state.config.attack,
           "epochs_done": dict(state.epochs_done), "map_samples": state.blocks_done * 1000,
           "models": list(state.made_models())}
    if state.finished:
        snapshot = state.snapshot()
        out["clean_accuracy"] = {m: round(snapshot.accuracy(m + "_clean"), 4) for m in MODELS}
        out["attack_success"] = {m: round(snapshot.success(m), 4) for m in MODELS}
        out["detections"] = [{"method": d.method, "z_inside": round(d.z_inside, 3), "peak": list(d.peak),
                              "in_patch": d.in_box, "queries": d.queries} for d in snapshot.detections]
        out["verdicts"] = [v.to_dict() for v in snapshot.verdicts]
        out["verdict_lines"] = [v.text(snapshot.box) for v in snapshot.verdicts]
        out["warnings"] = list(snapshot.warnings)
    return out


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['attack']}: epochs {entry['epochs_done']}, {entry['map_samples']:,} noise samples{status}"]
    if "clean_accuracy" in entry:
        lines.append(f"  clean accuracy {entry['clean_accuracy']}, patched source → target {entry['attack_success']}")
        lines += [f"  {d['method']}: |z| in patch {d['z_inside']:.1f}, peak at {tuple(d['peak'])}"
                  f"{' (in patch)' if d['in_patch'] else ''}" for d in entry["detections"]]
        lines += [f"  against the clean twin: {line}" for line in entry.get("verdict_lines", [])]
    return lines  # its warnings: `wna info` prints every run's (core.experiment.run_warnings)


def report(snapshot: BackdoorSnapshot) -> list[str]:
    lines = [f"{snapshot.attack}: {snapshot.samples_done} of {snapshot.samples_total} steps in "
             f"{snapshot.seconds:.1f} s; patch box rows {snapshot.box[0]}–{snapshot.box[0] + 2}, cols "
             f"{snapshot.box[1]}–{snapshot.box[1] + 2}"]
    if snapshot.finished:
        for m in MODELS:
            lines.append(f"{m} model: clean accuracy {snapshot.accuracy(m + '_clean'):.3f}, patched "
                         f"{snapshot.class_names[snapshot.source]} → {snapshot.class_names[snapshot.target]} "
                         f"{snapshot.success(m):.3f}")
    lines += [f"warning: {w}" for w in snapshot.warnings]
    lines += [f"against the clean twin (patch-sized windows): {v.text(snapshot.box)}" for v in snapshot.verdicts]
    for d in snapshot.detections:
        lines.append(f"{d.method}: |z| in patch {d.z_inside:.1f}; peak |z| {d.peak_z:.1f} at {d.peak}"
                     f"{' — in the patch' if d.in_box else ''} ({d.queries:,} queries/images, {d.access})")
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="backdoor",
    title="Adversarial",
    help="train a backdoored (patch-poisoned) copy of the model and find the patch with classification images, "
         "against the mean gradient and spectral signatures (paper Fig. 7)",
    config=BackdoorConfig,
    state=BackdoorState,
    experiment=BackdoorExperiment,
    unit="steps",
    panel="adversarial",
    artefacts=ARTEFACTS,
    record_version=RECORD_VERSION,
    summary=summary,
    describe=describe,
    report=report,
    warnings=lambda snapshot: list(snapshot.warnings),
)
BackdoorExperiment.spec = EXPERIMENT

__all__ = ["ATTACKS", "EXPERIMENT", "BackdoorConfig", "BackdoorExperiment", "BackdoorSnapshot", "BackdoorState",
           "Detection", "Verdict", "WindowScan", "add_patch", "decision_map", "patch_box", "patch_mask", "poison", "robust_z", "spectral_signature"]
