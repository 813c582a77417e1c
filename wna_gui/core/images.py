"""Images as experiments use them: the image set, fitted and labelled for a model, subsets, fingerprints,
the signal images of signal-plus-noise trials and the one wording of the image sources. Reading them from disk is core.data's (which imports this module).

Subsets: every subset of a data set is drawn seeded and class-stratified.

The bundled digits (and many data sets on disk) are stored sorted by class, so
"the first N" of them is a few classes only. :func:`stratified_subset` is the
one way experiments draw N images: equal counts per class where possible
(the remainder goes to classes picked by the seed), images within a class
chosen by the seed, and the chosen indices returned in file order so that
reading them stays sequential.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .dataset_choices import OWN_DATASETS

if TYPE_CHECKING:
    from .models import LoadedModel

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's RGB -> L


class DatasetError(ValueError):
    """A dataset cannot be found or read, or does not fit the model; the message names the folder or file."""


@dataclass(frozen=True)
class ImageSet:
    """Images as float32 [0, 1] tensors (N, C, H, W) with integer labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    # Own images: fit_to_model still has to match them to a model's channels, size and classes. An empty
    # class_names then means the labels are already indices into the model's classes (an .npz without names).
    own: bool = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def of_class(self, label: int) -> torch.Tensor:
        return self.images[self.labels == label]

    def subset(self, mask_or_index) -> "ImageSet":
        return dataclasses.replace(self, images=self.images[mask_or_index], labels=self.labels[mask_or_index])

    def relabelled(self, classes: tuple[int, ...]) -> "ImageSet":
        """Only the given classes, relabelled 0..len(classes)-1 (for binary models)."""
        keep = torch.isin(self.labels, torch.tensor(classes))
        remap = torch.full((int(self.labels.max()) + 1,), -1, dtype=torch.long)
        for new, old in enumerate(classes):
            remap[old] = new
        names = tuple(self.class_names[c] for c in classes)
        return ImageSet(f"{self.name}[{','.join(map(str, classes))}]", self.images[keep],
                        remap[self.labels[keep]], names)


def fit_to_model(images: ImageSet, shape: tuple[int, ...], class_names: tuple[str, ...] | None = None) -> ImageSet:
    """One's own images as a model of input ``shape`` (C, H, W) and ``class_names`` takes them (None: a model
    still to be trained on them, with their own classes; an .npz without names gets 0..max label).

    Channels: grey is copied to R, G and B; RGB becomes grey by ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B).
    Size: the whole image is resized to H×W, bilinear with antialiasing (aspect ratio not kept).
    Classes: matched by name when every class name is one of the model's; otherwise by position (class i is
    the model's class i), which needs as many classes as the model has. An .npz without class_names gives
    the model's class indices directly.
    """
    if not images.own:
        return images
    if class_names is None:
        top = int(images.labels.max()) + 1 if len(images) else 0
        class_names = images.class_names or tuple(str(c) for c in range(top))
    labels = images.labels
    if not images.class_names:
        if labels.numel() and int(labels.max()) >= len(class_names):
            raise DatasetError(f"{images.name}: label {int(labels.max())} is outside the model's "
                               f"{len(class_names)} classes (0 to {len(class_names) - 1})")
    elif set(images.class_names) <= set(class_names):
        remap = torch.tensor([class_names.index(name) for name in images.class_names], dtype=torch.long)
        labels = remap[labels]
    elif len(images.class_names) != len(class_names):
        raise DatasetError(f"{images.name} has {len(images.class_names)} classes "
                           f"({', '.join(images.class_names[:10])}) but the model has {len(class_names)} "
                           f"({', '.join(class_names[:10])}); name the classes after the model's or give as many")
    x = images.images
    channels, height, width = (tuple(shape) + (0, 0, 0))[:3]
    if channels not in (1, 3):
        raise DatasetError(f"the model takes {channels}-channel images; own images can be fitted to 1 or 3")
    if x.shape[1] != channels:
        x = x.repeat(1, 3, 1, 1) if channels == 3 else (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if tuple(x.shape[2:]) != (height, width):
        x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True,
                                            align_corners=False).clamp_(0.0, 1.0)
    return ImageSet(images.name, x.contiguous(), labels, tuple(class_names))


def images_for_model(images: ImageSet, model: LoadedModel) -> ImageSet:
    """``images`` fitted to ``model`` (own images: its input shape) and labelled in its classes: a 10-class set is
    relabelled for a binary model; a class of the model the set lacks is a one-line error."""
    images = fit_to_model(images, model.input_spec.shape, tuple(model.class_names))  # own images only
    if tuple(images.class_names) == tuple(model.class_names):
        return images
    missing = [name for name in model.class_names if name not in images.class_names]
    if missing:
        raise ValueError(f"{images.name} has no class {missing[0]!r} of the model "
                         f"(model classes: {', '.join(model.class_names[:20])})")
    return images.relabelled(tuple(images.class_names.index(name) for name in model.class_names))


def check_fits_model_input(images: ImageSet, model: LoadedModel) -> None:
    """A one-line ValueError naming both shapes unless every image of ``images`` has the model's input shape.

    Call it on what :func:`images_for_model` returns: own images are fitted there and pass; a bundled or
    torchvision set is not fitted, so one of another size or channel count is refused here.
    """
    shape, wanted = tuple(images.images.shape[1:]), tuple(model.input_spec.shape)
    if shape != wanted:
        raise ValueError(f"{images.name} images of shape {shape} do not fit the model's input {wanted}")


# The torchvision data sets by the name a run records (core.data.DATASETS loads them), as the user reads them.
TORCHVISION_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_BUNDLED_LABELS = {"test": "bundled MNIST digits (held out)", "train": "bundled MNIST digits (training split)",
                   None: "bundled MNIST digits"}
_SPLIT_WORDS = {"test": " test set", "train": " training set", None: ""}


def dataset_labels(split: str | None, own: bool = True) -> dict[str, str]:
    """The image sources a setting offers, name → label, in one wording for every experiment.

    ``split``: "test" (the run reads held-out images), "train" (training images) or None (both: the run trains
    and tests); ``own``: offer the user's own images (a folder or an .npz file) too.
    """
    labels = {"bundled": _BUNDLED_LABELS[split],
              **{name: f"{label}{_SPLIT_WORDS[split]} (data folder)" for name, label in TORCHVISION_LABELS.items()}}
    return {**labels, **OWN_DATASETS} if own else labels


def images_sha256(images, labels=None) -> str:
    """The fingerprint a run records of the images it read: sha256 of their values (C order, as stored) and,
    when given, of their labels as int64."""
    values = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    digest = hashlib.sha256(values.tobytes())
    if labels is not None:
        labels = labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels
        digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


# Signal trials draw from their own stream of (seed, block), apart from the noise's.
SIGNAL_STREAM = 0x5167


class SignalImages:
    """The images shown through the noise in signal-plus-noise trials, labelled in the model's classes.

    Trial i of block b shows a class drawn uniformly from the classes that have images, then an image of
    it drawn uniformly, both from (seed, b) alone: a resumed run shows the same trials.
    """

    def __init__(self, images: ImageSet, model: LoadedModel) -> None:
        images = images_for_model(images, model)
        check_fits_model_input(images, model)
        self.name = images.name
        self.images = images.images.to(torch.float32).contiguous()
        self.labels = images.labels.to(torch.long).numpy()
        counts = np.bincount(self.labels, minlength=model.n_classes)
        self.classes = np.flatnonzero(counts)
        if self.classes.size < 2:
            raise ValueError(f"{images.name} has images of {self.classes.size} of the model's classes; "
                             "signal-plus-noise trials need at least two")
        self.order = np.argsort(self.labels, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.counts = counts
        self.sha256 = images_sha256(self.images, self.labels)

    def record(self) -> dict:
        return {"name": self.name, "count": int(len(self.labels)), "sha256": self.sha256}

    def draw(self, seed: int, block: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(image index, class) of each trial of block ``block``."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), SIGNAL_STREAM]))
        classes = self.classes[rng.integers(0, self.classes.size, size)]
        within = np.minimum((rng.random(size) * self.counts[classes]).astype(np.int64), self.counts[classes] - 1)
        index = self.order[self.starts[classes] + within]
        return index, self.labels[index]

# What a run records about a subset, so a reader can redraw it: the rule's name and version.
SUBSET_RULE = "stratified-v1"


@dataclass(frozen=True)
class Subset:
    """The indices drawn and what a run records about them."""

    indices: np.ndarray  # int64, ascending (file order)
    seed: int
    requested: int  # the N asked for (None-like 0: every image)
    label_counts: tuple[int, ...]  # images per class in the subset

    def record(self) -> dict:
        """JSON-able: how to redraw the subset and what it holds."""
        return {"rule": SUBSET_RULE, "seed": int(self.seed), "requested": int(self.requested),
                "size": int(self.indices.size), "label_counts": [int(c) for c in self.label_counts]}

    def describe(self) -> str:
        """One line for panels, `wna info` and exports: '500 images, 50 per class (0–9)'."""
        return describe_counts(self.label_counts)


def describe_counts(label_counts) -> str:
    """'500 images, 50 per class' from the images per class (what :meth:`Subset.describe` and
    :func:`describe_record` print)."""
    counts = [int(c) for c in label_counts]
    present = [c for c in counts if c > 0]
    if not present:
        return "no images"
    if min(present) == max(present):
        per = f"{present[0]} per class"
    else:
        per = f"{min(present)}–{max(present)} per class"
    missing = len(counts) - len(present)
    return f"{sum(counts):,} images, {per}" + (f"; {missing} classes have none" if missing else "")


def describe_record(record: dict | None) -> str:
    """The line of a recorded subset (:meth:`Subset.record`), with how it was drawn when not stratified."""
    if not record:
        return "images not recorded"
    if "label_counts" not in record:
        return f"the {record.get('rule', SUBSET_RULE)} {record.get('requested') or 'all'} images"
    text = describe_counts(record["label_counts"])
    rule = record.get("rule", SUBSET_RULE)
    return text if rule == SUBSET_RULE else f"{text} ({rule} N, drawn before subsets were stratified)"


def stratified_subset(labels, n: int | None, seed: int, n_classes: int | None = None) -> Subset:
    """A seeded, class-stratified subset of ``n`` of the images labelled ``labels`` (None or ≥ all: every image).

    Each class gets ⌊n / k⌋ images (k = classes present) and the remaining n mod k go one each to classes
    the seed picks; a class with fewer images than its share gives all it has and the rest is spread over
    the others, so the subset has exactly min(n, len(labels)) images.
    """
    labels = np.asarray(labels).astype(np.int64, copy=False).ravel()
    n_classes = int(n_classes if n_classes is not None else (labels.max() + 1 if labels.size else 0))
    total = labels.size
    want = total if n is None or n <= 0 or n >= total else int(n)
    rng = np.random.default_rng([int(seed), 0x5EB5E7])
    if want == total:
        indices = np.arange(total, dtype=np.int64)
    else:
        by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]
        available = np.array([idx.size for idx in by_class], dtype=np.int64)
        quota = _quotas(available, want, rng)
        chosen = [rng.choice(idx, size=q, replace=False) for idx, q in zip(by_class, quota) if q > 0]
        indices = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    counts = np.bincount(labels[indices], minlength=n_classes)[:n_classes] if n_classes else np.zeros(0, int)
    return Subset(indices.astype(np.int64), int(seed), int(n or 0), tuple(int(c) for c in counts))


def _quotas(available: np.ndarray, want: int, rng: np.random.Generator) -> np.ndarray:
    """Images per class: as equal as the classes' sizes allow, summing to ``want`` (≤ available.sum())."""
    quota = np.zeros_like(available)
    remaining = want
    open_classes = np.flatnonzero(available > 0)
    while remaining > 0 and open_classes.size:
        share, extra = divmod(remaining, open_classes.size)
        give = np.full(open_classes.size, share, dtype=np.int64)
        give[rng.permutation(open_classes.size)[:extra]] += 1
        room = available[open_classes] - quota[open_classes]
        give = np.minimum(give, room)
        quota[open_classes] += give
        remaining -= int(give.sum())
        open_classes = open_classes[quota[open_classes] < available[open_classes]]
    return quota
