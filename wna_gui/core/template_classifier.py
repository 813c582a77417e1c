"""Template-matching classifier (paper §3.1, Fig. 2C, 3B, 5): how much of a class do its bias maps hold?

A test image is given the class whose template has the largest similarity with it. Templates come from a
classification-image run of the session (one source per estimator it computed: the hard label's bias maps,
the logit kernel, the probability-weighted maps, …) and, side by side, from two references trained on real
images: the class-mean training images and the weights of a softmax (multinomial logistic) regression
trained on the same images (Fig. 2C). Paper, full MNIST: CNN bias maps 25.8 %, LR bias maps 47.6 %,
class-mean images 63.1 %, LR weights 83.8 % (chance 10 %).

Similarity: the raw dot product (the paper's), the cosine, or the cosine of min–max-normalised templates
(the authors' Gabor notebooks); optionally each template minus the mean template over the classes that
have one (only what tells the classes apart). A class without a template (a hard-label class the noise
never reached) is reported as "no map": it is never predicted, and its test images still count, classified
as some other class (always wrong). Accuracy intervals are Wilson score intervals (95 %).

The unit of work is one template source: build its templates, classify the whole test set.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .control import EngineError, csv_number
from .data import load_dataset
from .dataset_choices import DATA_DIR_HELP
from .estimators import ESTIMATORS
from .experiment import Artefact, Experiment, ExperimentSpec, Requirement
from .images import ImageSet, check_fits_model_input, dataset_labels, images_for_model, images_sha256
from .models import LoadedModel
from .params import param
from .records import require_counts, require_finite, require_shape
from .state import RunConfig, RunSnapshot, RunState
from .stats import wilson_interval

KIND = "template_classifier"
RECORD_VERSION = 1
BASELINES = {"mean-image": "class-mean training images", "lr-weights": "logistic-regression weights"}
SOURCE_LABELS = {**{name: f"{info.label} maps" for name, info in ESTIMATORS.items()}, **BASELINES}
SOURCE_CHOICES = {**{name: info.short for name, info in ESTIMATORS.items()}, **{k: k for k in BASELINES}}
SIMILARITIES = {"dot": "dot product (the paper's)", "cosine": "cosine",
                "minmax-cosine": "cosine of min–max-normalised templates (the authors' Gabor notebooks)"}
DATASET_CHOICES = dataset_labels(None)
# The paper's accuracies on full MNIST (Fig. 2C): source → (accuracy, what the paper measured).
PAPER_MNIST = {"hard": (0.258, "CNN bias maps"), "mean-image": (0.631, "class-mean images"),
               "lr-weights": (0.838, "LR weights")}
PAPER_LR_BIAS_MAPS = 0.476  # LR bias maps: a classification-image run of a logistic-regression model
INTERVAL = "Wilson score interval, 95%"
GROUP = "Templates"
TEST_ROWS = 4096  # test images scored at a time


def _canonical_sources(names) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [name for name in names if name not in SOURCE_CHOICES]
    if unknown:
        raise ValueError(f"unknown template source {unknown[0]!r}; choose from {', '.join(SOURCE_CHOICES)}")
    return tuple(name for name in SOURCE_CHOICES if name in names)


@dataclass(frozen=True)
class TemplateClassifierConfig(RunConfig):
    sources: tuple[str, ...] = param(
        (), "Template sources", "the maps run's estimators and the references trained on real images; none "
        "checked means every estimator the maps run holds and both references", kind="multi",
        choices=SOURCE_CHOICES, cli="--sources", group=GROUP,
        cli_help="template sources, comma-separated: estimators of the maps run (hard, logit, prob, gradient, "
                 "signal) and mean-image, lr-weights; all (default): every estimator the run holds and both")
    similarity: str = param("dot", "Similarity", "how a test image is matched to each template",
                            choices=SIMILARITIES, group=GROUP)
    subtract_mean: bool = param(False, "Subtract mean template", "each template minus the mean template over the "
                                "classes that have one, before matching", group=GROUP)
    dataset: str = param("bundled", "Images", "test images (held-out split) and training images of the "
                         "references (train split)", choices=DATASET_CHOICES, group="Images")
    data_dir: str = param("", "Data folder", DATA_DIR_HELP,
                          kind="text", role="runtime", group="Images")
    lr_l2: float = param(1e-3, "LR L2 penalty", "weight decay of the logistic regression (mean loss + λ/2·|W|²)",
                         low=0.0, high=10.0, step=1e-4, decimals=6, group="Logistic regression")
    lr_steps: int = param(50, "LR L-BFGS steps", "full-batch L-BFGS iterations of the logistic regression (few: "
                          "stopping early regularises)", low=1, high=10_000, group="Logistic regression")
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", _canonical_sources(self.sources))
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; use {', '.join(SIMILARITIES)}")
        if self.dataset not in DATASET_CHOICES:
            raise ValueError(f"unknown images {self.dataset!r}; use {', '.join(DATASET_CHOICES)}")
        if self.lr_l2 < 0 or self.lr_steps < 1:
            raise ValueError("the logistic regression needs λ ≥ 0 and at least one step")

    def inactive_params(self) -> tuple[str, ...]:
        return () if not self.sources or "lr-weights" in self.sources else ("lr_l2", "lr_steps")


# --- the classifier ---

def prepared_templates(templates: np.ndarray, similarity: str, subtract_mean: bool) -> np.ndarray:
    """(K, D) templates as matched: minus the mean template (optional), then min–max normalised (that
    similarity) and scaled to unit length (cosines). Rows without a template stay NaN."""
    t = np.asarray(templates, dtype=np.float64).reshape(len(templates), -1).copy()
    present = np.isfinite(t).all(1)
    if subtract_mean and present.any():
        t[present] -= t[present].mean(0, keepdims=True)
    if similarity == "minmax-cosine":
        low, high = t[present].min(1, keepdims=True), t[present].max(1, keepdims=True)
        t[present] = (t[present] - low) / np.where(high > low, high - low, 1.0)
    if similarity in ("cosine", "minmax-cosine"):
        norm = np.linalg.norm(t[present], axis=1, keepdims=True)
        t[present] = t[present] / np.where(norm > 0, norm, 1.0)
    return t


def classify(images, templates: np.ndarray, similarity: str = "dot", subtract_mean: bool = False) -> np.ndarray:
    """The class of each image (N, ...) whose template (K, ...) matches it best; classes whose template is NaN
    are never chosen. The image's own norm does not change the argmax, so the cosine needs only unit templates.
    """
    t = prepared_templates(templates, similarity, subtract_mean)
    present = np.isfinite(t).all(1)
    if not present.any():
        raise ValueError("no class has a template")
    x = images.reshape(len(images), -1)
    x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.shape[1] != t.shape[1]:
        raise ValueError(f"images of {x.shape[1]} values do not fit templates of {t.shape[1]}")
    rows = np.flatnonzero(present)
    out = np.empty(len(x), dtype=np.int64)
    for first in range(0, len(x), TEST_ROWS):
        scores = x[first:first + TEST_ROWS].astype(np.float64) @ t[rows].T
        out[first:first + TEST_ROWS] = rows[scores.argmax(1)]
    return out


def confusion_matrix(labels, predictions, n_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    return np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes).reshape(n_classes,
                                                                                                  n_classes)


def class_means(images: ImageSet, n_classes: int) -> np.ndarray:
    """(K, D) mean training image per class (NaN for classes without images)."""
    x = images.images.reshape(len(images), -1).to(torch.float64)
    labels = images.labels.to(torch.long)
    sums = torch.zeros(n_classes, x.shape[1], dtype=torch.float64).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=n_classes).to(torch.float64)
    means = (sums / counts.clamp(min=1)[:, None]).numpy()
    means[counts.numpy() == 0] = np.nan
    return means


def logistic_regression_weights(images: ImageSet, n_classes: int, l2: float = 1e-4, steps: int = 100,
                                device: torch.device | str = "cpu") -> np.ndarray:
    """(K, D) weights of a softmax regression on the flattened pixels (full-batch L-BFGS from zeros, so the
    result is deterministic); the biases are fitted and dropped (the classifier matches templates only).
    Classes without training images get NaN."""
    x = images.images.reshape(len(images), -1).to(device=device, dtype=torch.float32)
    y = images.labels.to(device=device, dtype=torch.long)
    weights = torch.zeros(n_classes, x.shape[1], device=device, requires_grad=True)
    bias = torch.zeros(n_classes, device=device, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights, bias], lr=1.0, max_iter=steps, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights.T + bias, y) + 0.5 * l2 * weights.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    out = weights.detach().cpu().to(torch.float64).numpy()
    out[np.bincount(images.labels.numpy(), minlength=n_classes) == 0] = np.nan
    return out


def checked_images(images: ImageSet, model: LoadedModel) -> ImageSet:
    """``images`` labelled in the model's classes, checked against its input shape."""
    images = images_for_model(images, model)
    check_fits_model_input(images, model)
    return images


def image_set_record(images: ImageSet) -> dict:
    return {"name": images.name, "count": len(images), "sha256": images_sha256(images.images, images.labels)}


# --- results ---

@dataclass(frozen=True)
class SourceResult:
    """One template source on the test set."""

    source: str
    confusion: np.ndarray  # (K, K) counts, row = true class, column = predicted
    has_template: np.ndarray  # (K,) bool
    test_counts: np.ndarray  # (K,) test images per class (the rows' sums, unless no class has a template)

    @property
    def n(self) -> int:
        """Every test image: those of classes without a template count, as misses."""
        return int(self.test_counts.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    @property
    def recall(self) -> np.ndarray:
        """(K,) fraction of each class's test images classified right (NaN for classes without test images)."""
        totals = self.test_counts
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, np.diag(self.confusion) / np.maximum(totals, 1), np.nan)

    def no_map(self, class_names) -> list[str]:
        return [str(class_names[k]) for k in np.flatnonzero(~self.has_template)]


@dataclass(frozen=True)
class TemplateSnapshot(RunSnapshot):
    """Progress in template sources done."""

    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    sources: tuple[str, ...]
    templates: Mapping[str, np.ndarray]  # source → (K, D) as built (NaN rows: no map)
    results: Mapping[str, SourceResult]  # sources done
    similarity: str
    subtract_mean: bool
    test_images: dict
    test_counts: np.ndarray  # (K,) test images per class
    maps_samples: int
    dataset: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def chance(self) -> float:
        """Uniform guessing among the classes the test set holds."""
        present = int((self.test_counts > 0).sum())
        return 1.0 / present if present else float("nan")

    @property
    def mnist(self) -> bool:
        return self.dataset in ("bundled", "mnist")

    def paper_reference(self, source: str) -> tuple[float, str] | None:
        """The paper's accuracy for this source on full MNIST (shown where the images are MNIST digits)."""
        return PAPER_MNIST.get(source) if self.mnist else None


# --- state ---

@dataclass
class TemplateClassifierState(RunState):
    config: TemplateClassifierConfig
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    sources: tuple[str, ...]  # resolved: what this run evaluates, in order
    templates: dict[str, np.ndarray] = field(default_factory=dict)  # source → (K, D) float64, NaN rows: no map
    confusion: dict[str, np.ndarray] = field(default_factory=dict)  # sources done → (K, K)
    test_images: dict = field(default_factory=dict)  # name, count, sha256
    test_counts: np.ndarray | None = None
    maps_samples: int = 0
    seconds: float = 0.0
    noise_device: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def progress_done(self) -> int:
        return len(self.confusion)

    @property
    def progress_total(self) -> int:
        return len(self.sources)

    @staticmethod
    def new_run_text(config: TemplateClassifierConfig) -> str:
        return "Start classifies the test images by each source's templates."

    def pending_sources(self) -> list[str]:
        return [source for source in self.sources if source not in self.confusion]

    def result(self, source: str) -> SourceResult:
        counts = self.test_counts if self.test_counts is not None else self.confusion[source].sum(1)
        return SourceResult(source, self.confusion[source], np.isfinite(self.templates[source]).all(1),
                            np.asarray(counts, dtype=np.int64))

    def snapshot(self, samples_per_second: float = 0.0) -> TemplateSnapshot:
        counts = self.test_counts if self.test_counts is not None else np.zeros(self.n_classes, np.int64)
        return TemplateSnapshot(
            **self.progress_fields(samples_per_second),
            class_names=tuple(self.class_names), image_shape=tuple(self.image_shape), sources=tuple(self.sources),
            templates={s: t for s, t in self.templates.items()},
            results={s: self.result(s) for s in self.sources if s in self.confusion},
            similarity=self.config.similarity, subtract_mean=self.config.subtract_mean,
            test_images=dict(self.test_images), test_counts=np.asarray(counts).copy(),
            maps_samples=self.maps_samples, dataset=self.config.dataset)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"config": self.config.to_dict(), "class_names": list(self.class_names),
                "image_shape": list(self.image_shape), "sources": list(self.sources),
                "test_images": dict(self.test_images), "maps_samples": self.maps_samples, "seconds": self.seconds}
        arrays = {f"templates/{s}": t for s, t in self.templates.items()}
        arrays.update({f"confusion/{s}": c for s, c in self.confusion.items()})
        if self.test_counts is not None:
            arrays["test_counts"] = np.asarray(self.test_counts, dtype=np.int64)
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "TemplateClassifierState":
        sources = tuple(meta["sources"])
        state = cls(config=TemplateClassifierConfig.from_dict(meta["config"]),
                    class_names=tuple(meta["class_names"]), image_shape=tuple(int(s) for s in meta["image_shape"]),
                    sources=sources, test_images=dict(meta.get("test_images") or {}),
                    maps_samples=int(meta.get("maps_samples", 0)), seconds=float(meta.get("seconds", 0.0)))
        k = state.n_classes
        for key, value in arrays.items():
            group, _, source = key.partition("/")
            if group == "templates":
                template = require_shape(value, (k, int(np.prod(state.image_shape))), key)
                # A class without a map has a row of NaN (it is never predicted); any other row is finite.
                rows = np.isnan(template).all(axis=1)
                require_finite(template[~rows], key)
                state.templates[source] = template.astype(np.float64)
            elif group == "confusion":
                state.confusion[source] = require_counts(value, key, (k, k)).astype(np.int64)
        if "test_counts" in arrays:
            state.test_counts = require_counts(arrays["test_counts"], "test_counts", (k,)).astype(np.int64)
        missing = [s for s in state.confusion if s not in state.templates]
        if missing:
            raise ValueError(f"the templates of {missing[0]} are missing")
        return state


# --- the experiment ---

class TemplateClassifierExperiment(Experiment):
    """One unit per template source. ``test_set`` / ``train_set`` (ImageSets) replace the config's images."""

    def __init__(self, model: LoadedModel, config=None, state=None, device=None, control=None, maps=None,
                 test_set: ImageSet | None = None, train_set: ImageSet | None = None) -> None:
        super().__init__(model, config, state, device, control, maps=maps)
        cfg = self.state.config
        self._train_set = train_set
        self._test = checked_images(test_set if test_set is not None else
                                      load_dataset(cfg.dataset, cfg.data_dir or None, train=False), model)
        record = image_set_record(self._test)
        if self.state.progress_done and self.state.test_images.get("sha256") not in (None, record["sha256"]):
            raise EngineError("these test images differ from the ones the run classified; choose the same images")
        self.state.test_images = record
        self.state.test_counts = np.bincount(self._test.labels.numpy(), minlength=model.n_classes)

    @classmethod
    def new_state(cls, model: LoadedModel, config: TemplateClassifierConfig, maps=None, **_) -> \
            TemplateClassifierState:
        if maps is None:
            raise EngineError("the template classifier reads a classification-image run: run "
                              "`wna run classification-images` first")
        if tuple(maps.class_names) != tuple(model.class_names) or \
                tuple(maps.image_shape) != tuple(model.input_spec.shape):
            raise EngineError("the classification-image run was made for another model's classes or input")
        held = tuple(maps.estimators)
        sources = config.sources or (*held, *BASELINES)
        missing = [s for s in sources if s not in BASELINES and s not in held]
        if missing:
            raise ValueError(f"the classification-image run has no {missing[0]} maps (it has: {', '.join(held)})")
        state = TemplateClassifierState(config, tuple(model.class_names), tuple(model.input_spec.shape), sources,
                                        maps_samples=int(maps.samples_done))
        classes = np.arange(model.n_classes)
        for source in sources:
            if source not in BASELINES:
                state.templates[source] = maps.estimator_maps(source, classes).of("mean", classes)
        return state

    def pending(self):
        yield from self.state.pending_sources()

    def _training_images(self) -> ImageSet:
        if self._train_set is None:
            cfg = self.state.config
            self._train_set = checked_images(load_dataset(cfg.dataset, cfg.data_dir or None, train=True),
                                               self.model)
        return self._train_set

    def run_unit(self, source: str) -> None:
        state, cfg = self.state, self.state.config
        if source == "mean-image":
            state.templates[source] = class_means(self._training_images(), state.n_classes)
        elif source == "lr-weights":
            state.templates[source] = logistic_regression_weights(self._training_images(), state.n_classes,
                                                                  cfg.lr_l2, cfg.lr_steps, self.device)
        templates = state.templates[source]
        labels = self._test.labels.numpy()
        if np.isfinite(templates).all(1).any():
            predictions = classify(self._test.images, templates, cfg.similarity, cfg.subtract_mean)
            state.confusion[source] = confusion_matrix(labels, predictions, state.n_classes)
        else:  # no class has a map: nothing is predicted, every test image counts as wrong (see SourceResult)
            state.confusion[source] = np.zeros((state.n_classes, state.n_classes), dtype=np.int64)

    def snapshot(self) -> TemplateSnapshot:
        return self.state.snapshot(self.rate)


def run_template_classifier(model: LoadedModel, maps, config: TemplateClassifierConfig | None = None,
                            device: str | None = None, **images) -> TemplateSnapshot:
    """Convenience for notebooks: classify by every source and return the final snapshot."""
    return TemplateClassifierExperiment(model, config, device=device, maps=maps, **images).run_to_end()


# --- exports ---


def write_results(snapshot: TemplateSnapshot, path) -> Path:
    """Per source and class (CSV): accuracy with its Wilson 95% interval, chance, and the class's recall, test
    images and whether it has a template; the paper's MNIST value where there is one."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "label", "accuracy", "ci_low", "ci_high", "test_images", "chance",
                         "paper_mnist", "class", "name", "has_template", "class_test_images", "recall"])
        for source, result in snapshot.results.items():
            low, high = result.interval
            reference = snapshot.paper_reference(source)
            recall = result.recall
            for k, name in enumerate(snapshot.class_names):
                writer.writerow([source, SOURCE_LABELS[source], csv_number(result.accuracy), csv_number(low),
                                 csv_number(high), result.n, csv_number(snapshot.chance),
                                 csv_number(reference[0]) if reference else "", k, name,
                                 int(result.has_template[k]), int(result.test_counts[k]), csv_number(recall[k])])
    return path


def write_data(snapshot: TemplateSnapshot, path) -> Path:
    """Arrays (.npz): per source ``<source>_confusion`` (K, K; row = true class), ``<source>_templates``
    (K, C, H, W as built; NaN: no map), ``<source>_accuracy`` and ``<source>_interval`` (Wilson 95%); and
    ``sources``, ``class_names``, ``test_counts``, ``chance``, ``similarity``, ``subtract_mean``."""
    path = Path(path)
    arrays: dict[str, Any] = {}  # Any: savez's stubs would take a key of ** for its allow_pickle flag
    for source, result in snapshot.results.items():
        arrays[f"{source}_confusion"] = result.confusion
        arrays[f"{source}_templates"] = snapshot.templates[source].reshape(-1, *snapshot.image_shape)
        arrays[f"{source}_accuracy"] = np.float64(result.accuracy)
        arrays[f"{source}_interval"] = np.asarray(result.interval)
    np.savez_compressed(path, sources=np.asarray(list(snapshot.results)), class_names=np.asarray(
        snapshot.class_names), test_counts=snapshot.test_counts, chance=np.float64(snapshot.chance),
        similarity=snapshot.similarity, subtract_mean=snapshot.subtract_mean, **arrays)
    return path


def _has_results(snapshot: TemplateSnapshot) -> bool:
    return bool(snapshot.results)


ARTEFACTS = (
    Artefact("accuracy", "Accuracy per template source with chance and 95% intervals (figure)",
             (".png", ".pdf", ".svg"), figure="wna_gui.figures.template_classifier:save_accuracy_figure",
             available=_has_results),
    Artefact("confusion", "Confusion matrices with counts (figure)", (".png", ".pdf", ".svg"),
             figure="wna_gui.figures.template_classifier:save_confusion_figure", available=_has_results),
    Artefact("templates", "The templates of every source (figure)", (".png", ".pdf"),
             figure="wna_gui.figures.template_classifier:save_templates_figure", available=_has_results),
    Artefact("template_results", "Accuracy, intervals and per-class recall (CSV)", (".csv",), write_results),
    Artefact("template_data", "Confusion matrices and templates (.npz)", (".npz",), write_data),
)


# --- `wna info` and `wna run` text ---

def summary(state: TemplateClassifierState) -> dict:
    snapshot = state.snapshot()
    results = snapshot.results
    return {
        "samples_done": state.progress_done, "samples_total": state.progress_total, "finished": state.finished,
        "compute_seconds": round(state.seconds, 3), "test_images": dict(state.test_images),
        "similarity": state.config.similarity, "subtract_mean": state.config.subtract_mean,
        "maps_samples": state.maps_samples, "chance": snapshot.chance, "interval": INTERVAL,
        "accuracy": {source: result.accuracy for source, result in results.items()},
        "accuracy_interval": {source: list(result.interval) for source, result in results.items()},
        "no_map": {source: result.no_map(state.class_names) for source, result in results.items()
                   if not result.has_template.all()},
    }


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    test = entry.get("test_images") or {}
    lines = [f"{entry['samples_done']} of {entry['samples_total']} template sources{status}; "
             f"{test.get('count', 0):,} test images ({test.get('name', '?')}), similarity {entry['similarity']}"
             + (", mean template subtracted" if entry.get("subtract_mean") else "")
             + f"; chance {entry['chance']:.1%}"]
    for source, accuracy in entry["accuracy"].items():
        low, high = entry["accuracy_interval"][source]
        missing = entry["no_map"].get(source)
        lines.append(f"  {source:>10}: {accuracy:.1%} [{low:.1%}, {high:.1%}]"
                     + (f"; no map: {', '.join(missing)}" if missing else ""))
    return lines


def report(snapshot: TemplateSnapshot) -> list[str]:
    test = snapshot.test_images
    lines = [f"{test.get('count', 0):,} test images ({test.get('name', '?')}) classified by the template with the "
             f"largest {SIMILARITIES[snapshot.similarity]}; chance {snapshot.chance:.1%}; {INTERVAL}"]
    for source, result in snapshot.results.items():
        low, high = result.interval
        reference = snapshot.paper_reference(source)
        text = f"{SOURCE_LABELS[source]}: {result.accuracy:.1%} [{low:.1%}, {high:.1%}]"
        if reference:
            text += f" (paper, full MNIST: {reference[0]:.1%})"
        missing = result.no_map(snapshot.class_names)
        if missing:
            text += (f"; no map for {', '.join(missing)}: never predicted, their "
                     f"{int(result.test_counts[~result.has_template].sum()):,} test images count as misses")
        lines.append(text)
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="template-classifier",
    title="Template classifier",
    help="classify real images by the bias maps of a classification-image run, beside class-mean images and "
         "logistic-regression weights (paper Fig. 2C)",
    config=TemplateClassifierConfig,
    state=TemplateClassifierState,
    experiment=TemplateClassifierExperiment,
    unit="template sources",
    panel="template_classifier",
    artefacts=ARTEFACTS,
    record_version=RECORD_VERSION,
    requires=(Requirement("maps", "classification_images", "the classification-image run whose maps are the "
                          "templates"),),
    summary=summary,
    describe=describe,
    report=report,
)
TemplateClassifierExperiment.spec = EXPERIMENT

__all__ = ["EXPERIMENT", "TemplateClassifierConfig", "TemplateClassifierExperiment", "TemplateClassifierState",
           "TemplateSnapshot", "SourceResult", "classify", "confusion_matrix", "class_means",
           "logistic_regression_weights", "run_template_classifier"]
