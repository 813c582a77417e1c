"""Structured noise fitted to training images: Gabor-PCA (paper Appendix) and autoencoder / VAE samples (Fig. 15).

White noise needs ~1e5–1e6 samples per map because most of its energy lies in directions the network ignores.
Noise with some of the training images' structure lowers that (paper §3.1, Figs. 5, 15):

- **Gabor-PCA** (Greene et al. 2014, as in the Appendix): a bank of Gabor wavelets (2, 4, 10 cycles per image
  for 28×28: 960; 2, 4, 7, 11 for 32×32: 1520 per channel; 4 orientations, 2 quadrature phases, tiled within
  the image), ridge regression (α = 0.1) of each training image onto the bank, PCA of the weights (250
  components for 28×28, 600 per channel for 32×32). A noise image: a score per component drawn uniformly within
  that component's observed range, projected back to wavelet weights and summed; then (the authors' code)
  min–max normalised to [0, 1].
- **Autoencoder / VAE**: trained 2 epochs on the training images (the paper's architectures, Fig. 10); a noise
  image is the decoder's output for a random latent (the VAE's prior N(0, I); for the autoencoder a normal
  with the encoded training images' per-dimension mean and spread).

Fitting needs the model's input shape, which only a run knows; so a source fits itself on first use
(``fit(shape)``, called by ``block``/``score_basis``): the CLI, the forms, notebooks and every experiment with a
noise param get it with no code of their own. The fit is deterministic and, once made, is the source's array
params (``arrays()``): stored in the session beside the run, so a reloaded run regenerates the same noise
from (seed, block) without refitting. The random scores / latents come from the counter-based generator; the
projection is a float32 matrix product on the run's device, which is exact on one device but not across
device types, so these sources report ``device_independent = False`` and a run continues on the device type
it started on.

Gabor-PCA is linear (images = offset + scores·basis before the min–max scaling), so it offers the
``block_with_scores`` / ``score_basis`` pair (core.sta.is_structured): analyses can average in score space and
map back (k = B·STA_a).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .dataset_choices import DATA_DIR_HELP
from .images import dataset_labels, fit_to_model, stratified_subset
from .noise_base import NoiseSource, counter_normal, counter_uniform
from .params import param, params

# Paper Appendix: cycles per image of each wavelet scale, by image side.
GABOR_CYCLES = {28: (2, 4, 10), 32: (2, 4, 7, 11)}
GABOR_ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)
# Components kept by default (paper: 250 for MNIST, 96.1%; 600 per channel for CIFAR-10, ≈97.5%).
DEFAULT_COMPONENTS = {28: 250, 32: 600}
# Envelope σ as a fraction of the wavelength: about a one-octave bandwidth.
SIGMA_PER_WAVELENGTH = 0.5
# own images: the training split (4/5), fitted to the model's input (core.images.fit_to_model)
FIT_DATASETS = dataset_labels("train")
SCALINGS = {"minmax": "min–max to [0, 1] per image (the authors')", "none": "none (offset + scores·basis)"}
# Images of generated noise used to estimate the sources' pixel mean and variance (fixed seed, not the run's).
MOMENT_SAMPLES = 4096
MOMENT_SEED = 0x5EED


class StructuredNoiseError(ValueError):
    """A structured source cannot be fitted for this model (shape, data); one line."""


def gabor_bank(side: int, cycles: tuple[int, ...] | None = None) -> np.ndarray:
    """(n, side·side) unit-norm Gabor wavelets: for each scale c (cycles per image) a c×c grid of centres,
    4 orientations and 2 quadrature phases, truncated to the image (28: 960 wavelets; 32: 1520)."""
    cycles = GABOR_CYCLES.get(side) if cycles is None else cycles
    if cycles is None:
        raise StructuredNoiseError(f"Gabor-PCA noise is defined for 28×28 and 32×32 images, not {side}×{side}")
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5
    rows = []
    for c in cycles:
        wavelength = side / c
        sigma = SIGMA_PER_WAVELENGTH * wavelength
        centres = (np.arange(c) + 0.5) * wavelength
        for cy in centres:
            for cx in centres:
                envelope = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
                for degrees in GABOR_ORIENTATIONS:
                    theta = math.radians(degrees)
                    u = (x - cx) * math.cos(theta) + (y - cy) * math.sin(theta)
                    for phase in (0.0, math.pi / 2):
                        g = envelope * np.cos(2 * math.pi * u / wavelength + phase)
                        rows.append((g / np.linalg.norm(g)).ravel())
    return np.asarray(rows)


def _training_images(dataset: str, data_dir: str, limit: int, shape: tuple[int, ...]) -> np.ndarray:
    """(N, C, H, W) float64 training images in [0, 1] of the model's shape."""
    from .data import bundled_mnist, load_dataset

    try:
        images = bundled_mnist("train") if dataset == "bundled" else \
            fit_to_model(load_dataset(dataset, data_dir or None, train=True), shape)
    except ValueError as exc:
        raise StructuredNoiseError(f"structured noise cannot read its training images: {exc}") from None
    x = images.images
    if tuple(x.shape[1:]) != tuple(shape):
        raise StructuredNoiseError(
            f"structured noise for {'×'.join(map(str, shape))} images needs training images of that shape; "
            f"{FIT_DATASETS[dataset].split(' (')[0]} has {'×'.join(map(str, x.shape[1:]))} "
            "(choose the fit data: --noise-fit-data, --noise-fit-dir)")
    if limit:  # a seeded, class-stratified subset: the training sets may be stored sorted by class
        x = x[torch.from_numpy(stratified_subset(images.labels.numpy(), limit, 0, len(images.class_names)).indices)]
    return x.numpy().astype(np.float64)


@contextmanager
def _one_thread():
    """Fit on one CPU thread: the same fit whatever the machine's core count (a thread count can change the
    order of floating-point sums), and no thread contention for the small operations of a decoder's training
    (on a busy 2-core machine two threads made it 5–10× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class FittedSource(NoiseSource):
    """Base of sources fitted to training images on first use; ``fitted`` holds the arrays of the fit."""

    generator = "counter"  # the scores / latents: counter-based
    fit_params: ClassVar[tuple[str, ...]] = ()  # declared params the fit depends on
    # Each source's dataclass field (the fit's arrays and its "_key"); an annotation only, as NoiseSource.generator.
    fitted: dict | None

    def __post_init__(self) -> None:
        # ``dataclasses.replace`` carries the fit over: drop it when a setting it was made with changed.
        if self.fitted is not None and self.fitted.get("_key") != self._fit_key():
            object.__setattr__(self, "fitted", None)

    def _fit_key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.fit_params)

    def _fit_arrays(self) -> dict:
        """The fit, which every draw makes first (``fit``); an error before it."""
        if self.fitted is None:
            raise StructuredNoiseError(f"the {self.label} noise is not fitted yet")
        return self.fitted

    # --- the fit ---

    def fit(self, shape: tuple[int, ...]) -> "FittedSource":
        """Fit for images of ``shape`` (once; later calls check the shape). Returns self."""
        shape = tuple(int(s) for s in shape)
        if self.fitted is None:
            with _one_thread():
                arrays = self._fit(shape)
            arrays["shape"] = np.asarray(shape, dtype=np.int64)
            arrays.update(self._moments(arrays, shape))
            object.__setattr__(self, "fitted", {**arrays, "_key": self._fit_key()})
        fitted_shape = tuple(int(s) for s in self._fit_arrays()["shape"])
        if fitted_shape != shape:
            raise StructuredNoiseError(f"this {self.label} noise was fitted to {'×'.join(map(str, fitted_shape))} "
                                       f"images; the model takes {'×'.join(map(str, shape))}")
        return self

    def _fit(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _moments(self, arrays: dict, shape) -> dict[str, np.ndarray]:
        """Pixel mean and variance of the noise (the analyses subtract the mean), from a fixed-seed sample."""
        object.__setattr__(self, "fitted", {**arrays, "_key": self._fit_key()})
        x = self._generate(MOMENT_SEED, 0, MOMENT_SAMPLES, shape, torch.device("cpu"))[0].to(torch.float64)
        return {"pixel_mean": np.float64(x.mean()), "pixel_variance": np.float64(x.var())}

    def arrays(self) -> dict[str, np.ndarray]:
        """The fit (empty before the first use: a source fits when a run first draws from it)."""
        if self.fitted is None:
            return {}
        return {name: np.asarray(value) for name, value in self.fitted.items() if name != "_key"}

    @classmethod
    def from_dict(cls, data: dict, arrays: dict[str, np.ndarray] | None = None) -> "FittedSource":
        source = cls(**{p.name: data[p.key] for p in params(cls) if p.key in data})
        if arrays:
            object.__setattr__(source, "fitted", {**{k: np.asarray(v) for k, v in arrays.items()},
                                                  "_key": source._fit_key()})
        return source

    def _tensor(self, name: str, device) -> torch.Tensor:
        """A fitted array as a float32 tensor on ``device`` (cached per device)."""
        cache = self.__dict__.setdefault("_tensors", {})
        key = (name, str(device))
        fitted = self._fit_arrays()
        if key not in cache or cache[key][0] is not fitted:
            cache[key] = (fitted, torch.as_tensor(np.asarray(fitted[name], dtype=np.float32), device=device))
        return cache[key][1]

    # --- drawing ---

    def _generate(self, seed: int, block: int, block_size: int, shape, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, *shape), the random scores / latents (B, K)) of block ``block``."""
        raise NotImplementedError

    def block(self, seed: int, block: int, block_size: int, shape: tuple[int, ...],
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        self.fit(shape)
        return self._generate(seed, block, block_size, tuple(shape), torch.device(device))[0].to(dtype)

    def block_pixels(self, seed: int, block: int, block_size: int, shape: tuple[int, ...], pixels,
                     device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # Every pixel depends on every score: the whole image is drawn, then cropped.
        pixels = torch.as_tensor(pixels, dtype=torch.int64, device=torch.device(device))
        return self.block(seed, block, block_size, shape, device, dtype).reshape(block_size, -1)[:, pixels]

    def shape_values(self, values: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{self.label} noise is not made from independent pixel values")

    @property
    def device_independent(self) -> bool:
        return False  # counter-based scores, but a float32 matrix product on the device

    @property
    def expected_mean(self) -> float:
        return float(self.fitted["pixel_mean"]) if self.fitted is not None else 0.5

    @property
    def expected_variance(self) -> float:
        return float(self.fitted["pixel_variance"]) if self.fitted is not None else 1.0 / 12.0

    def fit_summary(self) -> str:
        """One line describing the fit (empty before it)."""
        return ""


_FIT_DATA: dict[str, Any] = dict(
    label="Fit data", help="training images the noise is fitted to (bundled: the bundled MNIST training digits, "
    "for 28×28 greyscale models)", cli="--noise-fit-data", choices=FIT_DATASETS, group="Noise stimulus")
_FIT_DIR: dict[str, Any] = dict(label="Fit data folder", help=DATA_DIR_HELP, kind="text", cli="--noise-fit-dir",
                                group="Noise stimulus")
_FIT_IMAGES: dict[str, Any] = dict(label="Fit images", help="training images used for the fit (0: all)",
                                   cli="--noise-fit-images", low=0, high=10_000_000, step=1000, group="Noise stimulus")


def _check_fit_data(dataset: str, limit: int) -> None:
    if dataset not in FIT_DATASETS:
        raise ValueError(f"unknown fit data {dataset!r}; use {', '.join(FIT_DATASETS)}")
    if limit < 0:
        raise ValueError(f"fit images must be non-negative (0: all), got {limit}")


@dataclass(frozen=True)
class GaborPCANoise(FittedSource):
    """Gabor-PCA noise (paper Appendix): uniform scores on the PCA of training images' Gabor weights."""

    kind: ClassVar[str] = "gabor-pca"
    label: ClassVar[str] = "Gabor-PCA (structured)"
    components: int = param(0, "Components", "principal components kept per channel (0: the paper's 250 for "
                            "28×28, 600 for 32×32)", cli="--noise-components", low=0, high=4000,
                            group="Noise stimulus")
    ridge: float = param(0.1, "Ridge α", "ridge penalty of the regression onto the Gabor bank (authors: 0.1)",
                         cli="--noise-ridge", low=0.0, high=1e6, step=0.1, group="Noise stimulus")
    scaling: str = param("minmax", "Scaling", "what is done to each noise image after projecting back",
                         choices=SCALINGS, cli="--noise-scaling", group="Noise stimulus")
    fit_data: str = param("bundled", **_FIT_DATA)
    fit_data_dir: str = param("", **_FIT_DIR)
    fit_images: int = param(0, **_FIT_IMAGES)
    fitted: dict | None = field(default=None, compare=False, repr=False)
    fit_params: ClassVar[tuple[str, ...]] = ("components", "ridge", "fit_data", "fit_images")

    def __post_init__(self) -> None:
        _check_fit_data(self.fit_data, self.fit_images)
        if self.components < 0:
            raise ValueError(f"components must be non-negative (0: the paper's number), got {self.components}")
        if not self.ridge >= 0:
            raise ValueError(f"ridge α must be non-negative, got {self.ridge}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; use {' or '.join(SCALINGS)}")
        super().__post_init__()

    def _fit(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in GABOR_CYCLES:
            raise StructuredNoiseError(f"Gabor-PCA noise is defined for C×28×28 and C×32×32 images; the model "
                                       f"takes {'×'.join(map(str, shape))}")
        channels, side = shape[0], shape[1]
        bank = gabor_bank(side)
        k = self.components or DEFAULT_COMPONENTS[side]
        if k > len(bank):
            raise StructuredNoiseError(f"{k} components asked of {len(bank)} Gabor weights")
        images = _training_images(self.fit_data, self.fit_data_dir, self.fit_images, shape)
        if len(images) < k:
            raise StructuredNoiseError(f"{k} components need at least {k} training images; the fit data has "
                                       f"{len(images)}")
        # Ridge: W = X Gᵀ (G Gᵀ + αI)⁻¹ = X·Rᵀ with R = (G Gᵀ + αI)⁻¹ G, shared by every image and channel.
        # float64 torch (not numpy): its thread count is set by _one_thread, numpy's BLAS has no such control.
        g = torch.from_numpy(bank)
        regression = torch.linalg.solve(g @ g.T + self.ridge * torch.eye(len(bank), dtype=torch.float64), g)
        offsets, bases, explained, ranges, r2 = [], [], [], [], []
        for c in range(channels):
            x = torch.from_numpy(np.ascontiguousarray(images[:, c].reshape(len(images), -1)))
            # With an intercept, as the authors' Ridge (scikit-learn's default): the bank models each image's
            # departure from the mean image, and R² is the standard centred one (0.967 for the bundled digits; the
            # bank alone, without the mean image, leaves much of the digits' common shape unexplained).
            intercept = x.mean(0)
            x = x - intercept
            weights = x @ regression.T
            r2.append(float(1.0 - ((weights @ g - x) ** 2).sum() / (x ** 2).sum()))
            mean = weights.mean(0)
            centred = weights - mean
            # PCA from the weights' covariance (eigh of a 960×960 matrix: far cheaper than an SVD of N×960).
            variance, vectors = torch.linalg.eigh(centred.T @ centred)
            variance, vt = variance.flip(0).clamp_min(0.0).numpy(), vectors.flip(1).T[:k]
            vt = vt * torch.where(vt.sum(1, keepdim=True) < 0, -1.0, 1.0)  # a fixed sign per component
            scores = centred @ vt.T
            low, high = scores.amin(0).numpy(), scores.amax(0).numpy()
            explained.append(variance[:k] / variance.sum())
            # scores a = centre + s·(high − low)/√12, s zero-mean unit-variance ⇒ image = offset + s·basis.
            pixels = (vt @ g).numpy()  # (k, H·W) each component as an image
            offsets.append((intercept + mean @ g).numpy() + (0.5 * (low + high)) @ pixels)
            bases.append(((high - low) / math.sqrt(12.0))[:, None] * pixels)
            ranges.append(np.stack([low, high]))
        return {"offset": np.asarray(offsets, np.float32), "basis": np.asarray(bases, np.float32),
                "explained": np.asarray(explained), "score_range": np.asarray(ranges),
                "ridge_r2": np.asarray(r2), "bank_size": np.int64(len(bank)),
                "fit_count": np.int64(len(images))}

    @property
    def explained_variance(self) -> np.ndarray:
        """(C,) fraction of the Gabor weights' variance the kept components explain, per channel."""
        return np.asarray(self._fit_arrays()["explained"]).sum(-1)

    def fit_summary(self) -> str:
        if self.fitted is None:
            return ""
        basis = self.fitted["basis"]
        per_channel = "" if basis.shape[0] == 1 else " per channel"
        explained = ", ".join(f"{v:.1%}" for v in self.explained_variance)
        return (f"Gabor-PCA: {int(self.fitted['bank_size'])} wavelets{per_channel}, {basis.shape[1]} components"
                f"{per_channel} explaining {explained} of the weights' variance, fitted to "
                f"{int(self.fitted['fit_count']):,} images (ridge R² {np.mean(self.fitted['ridge_r2']):.3f})")

    def _scores(self, seed: int, block: int, block_size: int, device) -> torch.Tensor:
        channels, k = self._fit_arrays()["basis"].shape[:2]
        u = counter_uniform(seed, block, block_size * channels * k, device).reshape(block_size, channels, k)
        return u.sub_(0.5).mul_(math.sqrt(12.0))  # zero mean, unit variance

    def _generate(self, seed, block, block_size, shape, device):
        scores = self._scores(seed, block, block_size, device)
        x = torch.einsum("bck,ckp->bcp", scores, self._tensor("basis", device)) + self._tensor("offset", device)
        x = x.reshape(block_size, *shape)
        if self.scaling == "minmax":
            flat = x.reshape(block_size, -1)
            low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
            x = ((flat - low) / (high - low).clamp_min(1e-12)).reshape(block_size, *shape)
        return x, scores.reshape(block_size, -1)

    def block_with_scores(self, seed: int, block: int, block_size: int, shape: tuple[int, ...],
                          device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Block ``block``'s images and the zero-mean, unit-variance scores (B, C·K) that made them."""
        self.fit(shape)
        return self._generate(seed, block, block_size, tuple(shape), torch.device(device))

    def score_basis(self, shape: tuple[int, ...]) -> np.ndarray:
        """(C·K, C·H·W): images = offset + scores·basis before the scaling (block-diagonal over channels)."""
        self.fit(shape)
        basis = np.asarray(self._fit_arrays()["basis"], dtype=np.float64)
        channels, k, p = basis.shape
        out = np.zeros((channels * k, channels * p))
        for c in range(channels):
            out[c * k:(c + 1) * k, c * p:(c + 1) * p] = basis[c]
        return out


def has_scores(noise) -> bool:
    """Whether ``noise`` is made linearly from white scores (images = offset + scores·B): Gabor-PCA."""
    return callable(getattr(noise, "block_with_scores", None)) and callable(getattr(noise, "score_basis", None))


def score_space_maps(acc, basis: np.ndarray, support_name: str = "hard"):
    """Hard-label maps averaged in score space and mapped back to pixels, k = B·STA_a (SCIENCE.md).

    ``acc`` is a ClassAccumulator over the scores (K features), ``basis`` B (K, D). The mean view is the
    class's mean scores through B (the noise pattern about the source's offset), centred: its difference from
    the grand mean's, and z: the centred map over its standard error under the null, by the delta method from
    the scores' per-class standard errors (var(k_d) = Σ_j B_jd² se_kj²; the scores are independent).
    """
    from .accumulators import class_maps
    from .estimators import EstimatorMaps

    maps = class_maps(acc)
    basis = np.asarray(basis, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        se2 = np.where(np.isfinite(maps.zmap) & (maps.zmap != 0), (maps.centered / maps.zmap) ** 2, 0.0)
        centered = maps.centered @ basis
        scale = np.sqrt(se2 @ (basis * basis))
        zmap = np.where(scale > 0, centered / np.where(scale > 0, scale, 1.0), np.nan)
    zmap[~np.isfinite(centered)] = np.nan
    return EstimatorMaps(support_name, maps.classes, maps.mean @ basis, centered, zmap,
                         maps.counts.astype(np.float64), int(maps.counts.sum()))


# --- autoencoder and VAE samples (paper Fig. 10, 15) ---

def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _linears(net: nn.Sequential) -> list[nn.Linear]:
    return [m for m in net if isinstance(m, nn.Linear)]


def _decode(weights: list[tuple[torch.Tensor, torch.Tensor]], z: torch.Tensor) -> torch.Tensor:
    """The decoder MLP (ReLU between layers, no output activation: the caller's)."""
    for i, (w, b) in enumerate(weights):
        z = torch.addmm(b, z, w.t())
        if i < len(weights) - 1:
            z = z.clamp_min_(0.0)
    return z


@dataclass(frozen=True)
class DecoderNoise(FittedSource):
    """Samples of a decoder trained briefly on the training images: noise = decoder(random latent)."""

    latent: int = 0
    epochs: int = 2
    fit_data: str = "bundled"
    fit_data_dir: str = ""
    fit_images: int = 0
    train_seed: int = 1
    fitted: dict | None = field(default=None, compare=False, repr=False)
    fit_params: ClassVar[tuple[str, ...]] = ("latent", "epochs", "fit_data", "fit_images", "train_seed")
    variational: ClassVar[bool] = False
    default_latent: ClassVar[int] = 9
    LEARNING_RATE: ClassVar[float] = 1e-3
    BATCH: ClassVar[int] = 128

    def __post_init__(self) -> None:
        _check_fit_data(self.fit_data, self.fit_images)
        if not 0 <= self.latent <= 1024:
            raise ValueError(f"latent dimensions must be in 0…1024 (0: the paper's), got {self.latent}")
        if self.epochs < 1:
            raise ValueError(f"training epochs must be at least 1, got {self.epochs}")
        if self.train_seed < 0:
            raise ValueError(f"training seed must be non-negative, got {self.train_seed}")
        super().__post_init__()

    @property
    def latent_size(self) -> int:
        return self.latent or self.default_latent

    def _networks(self, d: int) -> tuple[nn.Module, nn.Sequential]:
        raise NotImplementedError

    def _loss(self, encoder, decoder, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _fit(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        images = _training_images(self.fit_data, self.fit_data_dir, self.fit_images, shape)
        x = torch.as_tensor(images.reshape(len(images), -1), dtype=torch.float32)
        d = x.shape[1]
        generator = torch.Generator().manual_seed(self.train_seed)
        with torch.random.fork_rng(devices=[]):  # the layers' initialisation, without touching global state
            torch.manual_seed(self.train_seed)
            encoder, decoder = self._networks(d)
        optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=self.LEARNING_RATE)
        losses = []
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for batch in order.split(self.BATCH):
                loss = self._loss(encoder, decoder, x[batch], generator)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(x))
        arrays: dict[str, np.ndarray] = {"losses": np.asarray(losses), "fit_count": np.int64(len(x))}
        for i, layer in enumerate(_linears(decoder)):
            arrays[f"weight_{i}"] = layer.weight.detach().numpy().astype(np.float32)
            arrays[f"bias_{i}"] = layer.bias.detach().numpy().astype(np.float32)
        arrays.update(self._latent_arrays(encoder, x))
        return arrays

    def _latent_arrays(self, encoder, x: torch.Tensor) -> dict[str, np.ndarray]:
        return {}

    def _layers(self, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = sum(1 for name in self._fit_arrays() if name.startswith("weight_"))
        return [(self._tensor(f"weight_{i}", device), self._tensor(f"bias_{i}", device)) for i in range(n)]

    def _latents(self, seed: int, block: int, block_size: int, device) -> torch.Tensor:
        return counter_normal(seed, block, block_size * self.latent_size, device).reshape(block_size, -1)

    def _output(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _generate(self, seed, block, block_size, shape, device):
        z = self._latents(seed, block, block_size, device)
        with torch.no_grad():
            x = self._output(_decode(self._layers(device), self._to_code(z, device)))
        return x.reshape(block_size, *shape), z

    def _to_code(self, z: torch.Tensor, device) -> torch.Tensor:
        return z

    def fit_summary(self) -> str:
        if self.fitted is None:
            return ""
        losses = ", ".join(f"{v:.4g}" for v in np.asarray(self.fitted["losses"]))
        return (f"{self.label}: {self.latent_size}-dimensional latent, trained {self.epochs} epochs on "
                f"{int(self.fitted['fit_count']):,} images (loss per epoch {losses})")


_LATENT: dict[str, Any] = dict(
    label="Latent dimensions", help="size of the decoder's latent code (0: the paper's, 9 for the autoencoder, 20 "
    "for the VAE)", cli="--noise-latent", low=0, high=1024, group="Noise stimulus")
_EPOCHS: dict[str, Any] = dict(
    label="Training epochs", help="epochs the decoder is trained (paper: 2, just enough for faint structure)",
    cli="--noise-epochs", low=1, high=1000, group="Noise stimulus")
_TRAIN_SEED: dict[str, Any] = dict(label="Training seed", help="seed of the decoder's initialisation and batch order",
                                   cli="--noise-train-seed", low=0, high=2**31 - 1, group="Noise stimulus")


@dataclass(frozen=True)
class AutoencoderNoise(DecoderNoise):
    """Decoder samples of the paper's MLP autoencoder (784-128-64-12-9, tanh output), trained briefly."""

    kind: ClassVar[str] = "autoencoder"
    label: ClassVar[str] = "Autoencoder samples (structured)"
    latent: int = param(0, **_LATENT)
    epochs: int = param(2, **_EPOCHS)
    fit_data: str = param("bundled", **_FIT_DATA)
    fit_data_dir: str = param("", **_FIT_DIR)
    fit_images: int = param(0, **_FIT_IMAGES)
    train_seed: int = param(1, **_TRAIN_SEED)
    fitted: dict | None = field(default=None, compare=False, repr=False)

    def _networks(self, d):
        return _mlp([d, 128, 64, 12, self.latent_size]), _mlp([self.latent_size, 12, 64, 128, d])

    def _loss(self, encoder, decoder, x, generator):
        # tanh output against images scaled to [-1, 1], as the paper's loader normalised them.
        return ((torch.tanh(decoder(encoder(x))) - (2 * x - 1)) ** 2).mean()

    def _latent_arrays(self, encoder, x):
        with torch.no_grad():
            codes = encoder(x).double()
        # The code's spread over the training images: latents drawn there decode to image-like noise.
        return {"code_mean": codes.mean(0).numpy(), "code_std": codes.std(0).numpy()}

    def _to_code(self, z, device):
        return z * self._tensor("code_std", device) + self._tensor("code_mean", device)

    def _output(self, h):
        return torch.tanh(h).add_(1.0).mul_(0.5)


@dataclass(frozen=True)
class VAENoise(DecoderNoise):
    """Decoder samples of the paper's VAE (784-400-latent, sigmoid output) from its N(0, I) prior."""

    kind: ClassVar[str] = "vae"
    label: ClassVar[str] = "VAE samples (structured)"
    latent: int = param(0, **_LATENT)
    epochs: int = param(2, **_EPOCHS)
    fit_data: str = param("bundled", **_FIT_DATA)
    fit_data_dir: str = param("", **_FIT_DIR)
    fit_images: int = param(0, **_FIT_IMAGES)
    train_seed: int = param(1, **_TRAIN_SEED)
    fitted: dict | None = field(default=None, compare=False, repr=False)
    variational: ClassVar[bool] = True
    default_latent: ClassVar[int] = 20

    def _networks(self, d):
        return _mlp([d, 400, 2 * self.latent_size]), _mlp([self.latent_size, 400, d])

    def _loss(self, encoder, decoder, x, generator):
        mu, logvar = encoder(x).chunk(2, dim=1)
        z = mu + torch.randn(mu.shape, generator=generator) * (0.5 * logvar).exp()
        logits = decoder(z)
        reconstruction = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum()
        return (reconstruction + kl) / len(x)

    def _output(self, h):
        return torch.sigmoid(h)


STRUCTURED_SOURCES: tuple[type[NoiseSource], ...] = (GaborPCANoise, AutoencoderNoise, VAENoise)  # core.noise lists them

__all__ = ["AutoencoderNoise", "GaborPCANoise", "STRUCTURED_SOURCES", "StructuredNoiseError", "VAENoise",
           "gabor_bank"]
