"""Activation injection (paper §3.4, Fig. 7C, 21): bias a network toward a class from inside.

For a layer L and a class c, the mean activation at L of the noise the model classifies as c (a
classification image of the layer) is mixed into real images' activations at L:

    a'(x) = (1 − γ)·ā_c(noise) + γ·a_L(x)

and the network runs on from L. The misclassification ratio toward c is the paper's: among real images not of
class c, the fraction classified as c. "input" mixes at the pixels (the classification image itself; γ = 1 is
the clean image). Activations are the outputs of the named layers (for the MNIST CNN: conv outputs before
pooling and ReLU, fc1 before its ReLU), so a layer's own nonlinearity still acts on the mixture.

The noise is computed freshly from the run's seed and noise source (counter-based blocks of FIXED_NOISE_BLOCK
images): with the same seed and source it is exactly the noise of a classification-image run of block size
1,000, so ā_c of the input layer is that run's hard-label map. One unit of work is one layer.

The real images are a seeded, class-stratified subset of ``images`` per class. A class mean from a handful of
noise images is mostly noise itself: the run warns when an injected class's mean rests on fewer than
MIN_NOISE_IMAGES. With ``--session`` the run goes into an existing session, and ``--target`` injects into one
of its stored models (a defended or poisoned copy) instead of the session's own.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .control import csv_number
from .data import bundled_mnist, load_dataset
from .dataset_choices import DATA_DIR_HELP
from .experiment import Artefact, Experiment, ExperimentSpec, Requirement
from .images import dataset_labels, images_for_model, stratified_subset
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise
from .noise_base import fixed_noise_blocks
from .params import config_arrays, param
from .records import require_counts, require_float, require_int, require_ints, require_shape, \
    require_strings
from .state import RunConfig, RunSnapshot, RunState, class_options
from .stats import noise_to_image_gammas, wilson_interval

KIND = "activation_injection"
RECORD_VERSION = 1
INPUT = "input"
IMAGES_STREAM = 0x1A7  # the real images' subset, apart from the noise's stream
DATASET_LABELS = dataset_labels("test")
GROUP = "Injection"
MIN_NOISE_IMAGES = 30  # a class mean of fewer noise images is too noisy to read as the class's activation


def injectable_layers(model: LoadedModel) -> list[str]:
    """``input`` and every layer with parameters except the last (injecting at the output is the answer)."""
    names = list(model.layers())
    return [INPUT, *names[:-1]]


def _layer_options(model: LoadedModel) -> dict:
    return {name: name for name in injectable_layers(model)}


@dataclass(frozen=True)
class InjectionConfig(RunConfig):
    layers: tuple[str, ...] = param((), "Layers", "layers to inject at, comma-separated (all: input and every "
                                    "hidden layer)", kind="multi", options=_layer_options, group=GROUP)
    classes: tuple[int, ...] = param((), "Injected classes", "classes whose noise activation is injected (all: "
                                     "every class some noise is classified as)", kind="multi",
                                     options=class_options, group=GROUP)
    gammas: tuple[float, ...] = param(noise_to_image_gammas(11), "γ points in [0, 1]", "points of the γ grid from 0 (the "
                                      "noise activation alone) to 1 (the real image's)", kind="int", encode=len,
                                      decode=noise_to_image_gammas, low=2, high=101, group=GROUP)
    samples: int = param(10_000, "Noise images", "noise images whose activations are averaged per predicted class",
                         low=100, high=10_000_000, step=1000, group=GROUP)
    images: int = param(50, "Real images per class", "real images of each class the activation is injected into "
                        "(a seeded, class-stratified subset; all of a class when it has fewer)", low=1,
                        high=100_000, step=10, group=GROUP)
    dataset: str = param("bundled", "Real images from", "images the activation is injected into",
                         choices=DATASET_LABELS, group=GROUP)
    data_dir: str = param("", "Data folder", DATA_DIR_HELP, kind="text",
                          role="runtime", group=GROUP)
    seed: int = param(0, "Seed", "seed of the counter-based noise (0: a classification-image run's default)", low=0,
                      high=2**31 - 1, group=GROUP)
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise", cli="--noise", group=GROUP,
                               help="noise whose activations are averaged: uniform (the paper's) or gaussian")
    batch_size: int = param(2000, "Batch size", "images per forward pass", low=1, high=1_000_000, step=500,
                            role="runtime", group=GROUP)
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        object.__setattr__(self, "gammas", tuple(float(g) for g in self.gammas))
        if len(self.gammas) < 2 or any(not 0 <= g <= 1 for g in self.gammas):
            raise ValueError("the γ grid needs at least two points in [0, 1]")
        for name in ("samples", "images", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be positive")
        if self.dataset not in DATASET_LABELS:
            raise ValueError(f"unknown images {self.dataset!r}; use {', '.join(DATASET_LABELS)}")


def real_images(config: InjectionConfig, model: LoadedModel):
    images = bundled_mnist("heldout") if config.dataset == "bundled" else \
        load_dataset(config.dataset, config.data_dir or None)
    images = images_for_model(images, model)
    k = len(images.class_names)
    chosen = stratified_subset(images.labels.numpy(), config.images * k, config.seed, k)
    return images.subset(torch.as_tensor(chosen.indices))


class _Injector:
    """A forward hook replacing a layer's output by (1 − γ)·ā + γ·output (or recording it when ā is None)."""

    def __init__(self, module) -> None:
        self.mean: torch.Tensor | None = None
        self.gamma = 1.0
        self.record: list[torch.Tensor] | None = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, args, out):
        if self.record is not None:
            self.record.append(out.detach())
        if self.mean is None:
            return None
        return (1 - self.gamma) * self.mean + self.gamma * out

    def remove(self) -> None:
        self.handle.remove()


@dataclass
class InjectionState(RunState):
    config: InjectionConfig
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    layers: tuple[str, ...]
    labels: np.ndarray  # (I,) real images' classes
    noise_counts: np.ndarray | None = None  # (K,) noise images per predicted class
    toward: np.ndarray | None = None  # (L, K, G) images not of class c given c, per layer, injected c, γ
    correct: np.ndarray | None = None  # (L, K, G) images given their own class
    examples: np.ndarray | None = None  # (K, G, D) the first real image with the input-layer injection
    example_classes: np.ndarray | None = None  # (K, G)
    layers_done: int = 0
    noise_device: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        k, g = len(self.class_names), len(self.config.gammas)
        if self.toward is None:
            self.toward = np.zeros((len(self.layers), k, g), dtype=np.int64)
            self.correct = np.zeros((len(self.layers), k, g), dtype=np.int64)
        if self.noise_counts is None:
            self.noise_counts = np.zeros(k, dtype=np.int64)
        if self.examples is None:
            self.examples = np.full((k, g, int(np.prod(self.image_shape))), np.nan, dtype=np.float32)
            self.example_classes = np.full((k, g), -1, dtype=np.int64)

    @property
    def progress_done(self) -> int:
        return self.layers_done

    @property
    def progress_total(self) -> int:
        return len(self.layers)

    @staticmethod
    def new_run_text(config: InjectionConfig) -> str:
        return (f"Start averages {config.samples:,} noise images' activations per class and injects them into "
                f"{config.images:,} real images at {len(config.gammas)} γ points per layer.")

    def injected_classes(self) -> np.ndarray:
        """Classes injected: those chosen (or all) that some noise was classified as (known after the first layer)."""
        chosen = np.asarray(self.config.classes or range(len(self.class_names)), dtype=np.int64)
        assert self.noise_counts is not None  # __post_init__ fills every array
        return chosen[self.noise_counts[chosen] > 0]

    def snapshot(self, samples_per_second: float = 0.0) -> "InjectionSnapshot":
        # __post_init__ fills every array
        assert self.noise_counts is not None and self.toward is not None and self.correct is not None
        assert self.examples is not None and self.example_classes is not None
        return InjectionSnapshot(
            **self.progress_fields(samples_per_second), class_names=self.class_names,
            image_shape=tuple(self.image_shape), layers=self.layers, layers_done=self.layers_done,
            gammas=np.asarray(self.config.gammas), labels=self.labels, noise_counts=self.noise_counts.copy(),
            toward=self.toward.copy(), correct=self.correct.copy(), examples=self.examples.copy(),
            example_classes=self.example_classes.copy(), classes=self.injected_classes())

    def to_record(self) -> tuple[dict, dict]:
        meta = {"config": self.config.to_dict(), "class_names": list(self.class_names),
                "image_shape": list(self.image_shape), "layers": list(self.layers), "layers_done": self.layers_done,
                "noise_device": self.noise_device, "seconds": self.seconds}
        return meta, {**config_arrays(self.config), "labels": self.labels, "noise_counts": self.noise_counts,
                      "toward": self.toward, "correct": self.correct, "examples": self.examples,
                      "example_classes": self.example_classes}

    @classmethod
    def from_record(cls, meta: dict, arrays: dict) -> "InjectionState":
        config = InjectionConfig.from_dict(meta["config"], arrays)
        class_names = require_strings(meta["class_names"], "class_names")
        layers = require_strings(meta["layers"], "layers")
        image_shape = require_ints(meta["image_shape"], "image_shape", low=1)
        k, n_layers, n_gammas = len(class_names), len(layers), len(config.gammas)
        labels = require_counts(arrays["labels"], "labels", (None,))
        if labels.size and labels.max() >= k:
            raise ValueError(f"labels name class {labels.max()} of a {k}-class model")
        examples = require_shape(arrays["examples"], (k, None, int(np.prod(image_shape))), "examples")
        example_classes = require_shape(arrays["example_classes"], (k, examples.shape[1]), "example_classes")
        if example_classes.dtype.kind not in "iu" or (example_classes.size and not (
                -1 <= example_classes.min() and example_classes.max() < k)):
            raise ValueError(f"example_classes must hold class indices below {k} (or -1)")
        # An example not yet drawn (class −1) is all NaN; a drawn one is finite.
        if examples.dtype.kind != "f" or not np.array_equal(~np.isfinite(examples).all(axis=2), example_classes < 0) \
                or not np.isnan(examples[example_classes < 0]).all():
            raise ValueError("examples hold NaN or infinite values where an example was drawn")
        return cls(config, class_names, image_shape, layers, labels.astype(np.int64),
                   require_counts(arrays["noise_counts"], "noise_counts", (k,)).astype(np.int64),
                   require_counts(arrays["toward"], "toward", (n_layers, k, n_gammas)).astype(np.int64),
                   require_counts(arrays["correct"], "correct", (n_layers, k, n_gammas)).astype(np.int64),
                   examples.astype(np.float32), np.asarray(example_classes, dtype=np.int64),
                   require_int(meta["layers_done"], "layers_done", 0, n_layers),
                   meta.get("noise_device", ""), require_float(meta.get("seconds", 0.0), "seconds", 0.0))


@dataclass(frozen=True)
class InjectionSnapshot(RunSnapshot):
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    layers: tuple[str, ...]
    layers_done: int
    gammas: np.ndarray
    labels: np.ndarray
    noise_counts: np.ndarray
    toward: np.ndarray
    correct: np.ndarray
    examples: np.ndarray
    example_classes: np.ndarray
    classes: np.ndarray

    def others(self, c: int) -> int:
        return int((self.labels != c).sum())

    @property
    def warnings(self) -> tuple[str, ...]:
        """Injected classes whose noise mean rests on too few images to be read as the class's activation."""
        thin = [c for c in self.classes if self.noise_counts[c] < MIN_NOISE_IMAGES]
        if not thin:
            return ()
        listed = ", ".join(f"{self.class_names[c]} ({int(self.noise_counts[c])})" for c in thin)
        return (f"class means from fewer than {MIN_NOISE_IMAGES} noise images: {listed}; their curves are "
                "mostly noise (raise the noise images)",)

    def ratios(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(L, G) misclassification ratio toward the injected class, pooled over the injected classes (the
        paper's: images not of class c given c, over images not of class c), with its Wilson interval; NaN for
        layers not yet done."""
        fooled = self.toward[:, self.classes].sum(1).astype(np.float64)
        trials = np.full(fooled.shape, float(sum(self.others(c) for c in self.classes)))
        trials[self.layers_done:] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = fooled / trials
        low, high = wilson_interval(fooled, trials)
        return rate, low, high

    def class_ratios(self) -> np.ndarray:
        """(L, K, G) the ratio per injected class (NaN for classes not injected and layers not done)."""
        out = np.full(self.toward.shape, np.nan)
        for c in self.classes:
            out[:self.layers_done, c] = self.toward[:self.layers_done, c] / max(self.others(c), 1)
        return out

    def accuracy(self) -> np.ndarray:
        """(L, K, G) fraction of real images given their own class under the injection."""
        out = self.correct / len(self.labels)
        out = out.astype(np.float64)
        out[self.layers_done:] = np.nan
        return out


class InjectionExperiment(Experiment):
    """One unit is one layer: the noise's class-mean activations there, then every class and γ."""

    def __init__(self, model: LoadedModel, config=None, state=None, device=None, control=None,
                 target: LoadedModel | None = None, **inputs) -> None:
        super().__init__(target if target is not None else model, config, state, device, control, **inputs)

    @classmethod
    def new_state(cls, model: LoadedModel, config: InjectionConfig, target: LoadedModel | None = None
                  ) -> InjectionState:
        model = target if target is not None else model
        available = injectable_layers(model)
        layers = config.layers or tuple(available)
        unknown = [layer for layer in layers if layer not in available]
        if unknown:
            raise ValueError(f"the model has no layer {unknown[0]!r} to inject at; it has {', '.join(available)}")
        bad = [c for c in config.classes if not 0 <= c < model.n_classes]
        if bad:
            raise ValueError(f"class {bad[0]} is not a class of the model (0–{model.n_classes - 1})")
        images = real_images(config, model)
        return InjectionState(config, tuple(model.class_names), tuple(model.input_spec.shape), tuple(layers),
                              images.labels.numpy().astype(np.int64))

    def prepare(self) -> None:
        super().prepare()
        images = real_images(self.config, self.model)
        if not np.array_equal(images.labels.numpy(), self.state.labels):
            from .control import EngineError

            raise EngineError("these real images differ from the ones the run started with; choose the same images")
        self._images = images.images.to(self.device)

    def pending(self):
        while not self.state.finished:
            yield self.state.layers_done

    def _noise_means(self, layer: str) -> dict[int, torch.Tensor]:
        """Per predicted class, the mean activation at ``layer`` of the run's noise (float64 sums)."""
        cfg, state = self.config, self.state
        k = len(state.class_names)
        sums: dict[int, torch.Tensor] = {}
        counts = np.zeros(k, dtype=np.int64)
        injector = None if layer == INPUT else _Injector(self.runtime.layer(layer))
        try:
            for x in fixed_noise_blocks(cfg.noise, cfg.seed, cfg.samples, tuple(state.image_shape), self.device):
                if injector is not None:
                    injector.record = []
                with torch.inference_mode():
                    labels = self.runtime.logits(x, cfg.batch_size).argmax(1)
                if injector is None:
                    activation = x
                else:
                    assert injector.record is not None  # set to a fresh list above
                    activation = torch.cat(injector.record)
                for c in torch.unique(labels).tolist():
                    rows = activation[labels == c].double()
                    sums[c] = sums.get(c, 0) + rows.sum(0)
                    counts[c] += len(rows)
        finally:
            if injector is not None:
                injector.remove()
        state.noise_counts = counts
        return {c: (total / counts[c]).float() for c, total in sums.items()}

    def run_unit(self, index: int) -> None:
        cfg, state = self.config, self.state
        layer = state.layers[index]
        means = self._noise_means(layer)
        labels = torch.as_tensor(state.labels, device=self.device)
        injector = None if layer == INPUT else _Injector(self.runtime.layer(layer))
        try:
            for c in state.injected_classes():
                c = int(c)
                for g, gamma in enumerate(cfg.gammas):
                    given_parts = []
                    with torch.inference_mode():
                        for chunk in self._images.split(cfg.batch_size):
                            if injector is None:
                                chunk = (1 - gamma) * means[c] + gamma * chunk
                            else:
                                injector.mean, injector.gamma = means[c], gamma
                            given_parts.append(self.runtime.logits(chunk, cfg.batch_size).argmax(1))
                    given = torch.cat(given_parts)
                    state.toward[index, c, g] = int(((given == c) & (labels != c)).sum())
                    state.correct[index, c, g] = int((given == labels).sum())
                    if layer == INPUT:
                        state.examples[c, g] = ((1 - gamma) * means[c] + gamma * self._images[0]).reshape(-1).cpu()
                        state.example_classes[c, g] = int(given[0])
        finally:
            if injector is not None:
                injector.remove()
        state.layers_done += 1

    def snapshot(self) -> InjectionSnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_table(snapshot: InjectionSnapshot, path) -> Path:
    """Misclassification ratio toward the injected class per layer and γ, pooled and per class, with accuracy (CSV)."""
    path = Path(path)
    rate, low, high = snapshot.ratios()
    per_class, accuracy = snapshot.class_ratios(), snapshot.accuracy()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", "injected_class", "gamma", "misclassification_ratio", "ci_low", "ci_high",
                         "accuracy", "noise_images_of_class"])
        for li, layer in enumerate(snapshot.layers[:snapshot.layers_done]):
            for g, gamma in enumerate(snapshot.gammas):
                writer.writerow([layer, "pooled", f"{gamma:g}", csv_number(rate[li, g]), csv_number(low[li, g]),
                                 csv_number(high[li, g]), "", int(snapshot.noise_counts[snapshot.classes].sum())])
            for c in snapshot.classes:
                for g, gamma in enumerate(snapshot.gammas):
                    writer.writerow([layer, snapshot.class_names[c], f"{gamma:g}", csv_number(per_class[li, c, g]), "",
                                     "", csv_number(accuracy[li, c, g]), int(snapshot.noise_counts[c])])
    return path


def write_arrays(snapshot: InjectionSnapshot, path) -> Path:
    path = Path(path)
    np.savez_compressed(path, layers=np.asarray(snapshot.layers), gammas=snapshot.gammas,
                        class_names=np.asarray(snapshot.class_names), classes=snapshot.classes,
                        noise_counts=snapshot.noise_counts, toward=snapshot.toward, correct=snapshot.correct,
                        ratios=snapshot.ratios()[0], labels=snapshot.labels,
                        examples=snapshot.examples.reshape(*snapshot.examples.shape[:2], *snapshot.image_shape),
                        example_classes=snapshot.example_classes)
    return path


ARTEFACTS = (
    Artefact("injection", "Misclassification ratio per layer and γ, pooled and per class (.csv)", (".csv",),
             write_table, available=lambda s: s.layers_done > 0),
    Artefact("injection_arrays", "Injection arrays (.npz)", (".npz",), write_arrays,
             available=lambda s: s.layers_done > 0),
    Artefact("injection_curves", "Misclassification ratio against γ, one curve per layer (Fig. 21)",
             (".png", ".pdf"), figure="wna_gui.figures.adversarial:save_injection_plot",
             available=lambda s: s.layers_done > 0),
    Artefact("injection_examples", "Input-layer injection: example images (Fig. 7C)", (".png", ".pdf", ".svg"),
             figure="wna_gui.figures.adversarial:save_injection_examples",
             available=lambda s: s.layers_done > 0 and INPUT in s.layers[:s.layers_done]),
)


def summary(state: InjectionState) -> dict:
    snapshot = state.snapshot()
    rate, _, _ = snapshot.ratios()
    return {"samples_done": state.progress_done, "samples_total": state.progress_total, "finished": state.finished,
            "compute_seconds": round(state.seconds, 3), "layers": list(state.layers),
            "real_images_per_class": {state.class_names[c]: int(n) for c, n in
                                      enumerate(np.bincount(state.labels, minlength=len(state.class_names)))},
            "warnings": list(snapshot.warnings),
            "classes": [state.class_names[c] for c in state.injected_classes()],
            "gammas": list(state.config.gammas),
            "ratio": {layer: [None if not np.isfinite(v) else round(float(v), 4) for v in rate[i]]
                      for i, layer in enumerate(state.layers)}}


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    lines = [f"{entry['samples_done']} of {entry['samples_total']} layers, classes {', '.join(entry['classes'])}"
             f"{status}"]
    half = int(np.argmin(np.abs(np.asarray(entry["gammas"]) - 0.5)))
    for layer, values in entry["ratio"].items():
        if values[half] is not None:
            lines.append(f"  {layer:>8}: ratio {values[half]:.3f} at γ = {entry['gammas'][half]:g}")
    return lines  # its warnings: `wna info` prints every run's (core.experiment.run_warnings)


def report(snapshot: InjectionSnapshot) -> list[str]:
    rate, _, _ = snapshot.ratios()
    lines = [f"{snapshot.layers_done} layers, injected classes "
             f"{', '.join(snapshot.class_names[c] for c in snapshot.classes)} (noise images: "
             f"{', '.join(str(int(snapshot.noise_counts[c])) for c in snapshot.classes)}), {snapshot.seconds:.1f} s",
             "γ".ljust(10) + "".join(f"{g:>7.2g}" for g in snapshot.gammas)]
    for i, layer in enumerate(snapshot.layers[:snapshot.layers_done]):
        lines.append(layer.ljust(10) + "".join(f"{v:7.3f}" for v in rate[i]))
    counts = np.bincount(snapshot.labels, minlength=len(snapshot.class_names))
    lines.append(f"real images per class: {', '.join(f'{n}: {int(c)}' for n, c in zip(snapshot.class_names, counts))}")
    return lines + [f"warning: {w}" for w in snapshot.warnings]


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="activation-injection",
    title="Adversarial",
    help="mix the mean activation of noise classified as a class into real images' activations at a layer: "
         "misclassification toward it against γ, per layer (paper Fig. 7C, 21)",
    config=InjectionConfig,
    state=InjectionState,
    experiment=InjectionExperiment,
    unit="layers",
    panel="adversarial",
    artefacts=ARTEFACTS,
    record_version=RECORD_VERSION,
    requires=(Requirement("target", "model", "a model of the session to inject into, e.g. a defended or poisoned "
                          "copy (without it: the session's model)", optional=True),),
    summary=summary,
    describe=describe,
    report=report,
    warnings=lambda snapshot: list(snapshot.warnings),
)
InjectionExperiment.spec = EXPERIMENT

__all__ = ["EXPERIMENT", "INPUT", "InjectionConfig", "InjectionExperiment", "InjectionSnapshot", "InjectionState",
           "injectable_layers"]
