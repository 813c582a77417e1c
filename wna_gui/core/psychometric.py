"""Psychometric curves and microstimulation (paper §3.4, Figs. 9, 23–25).

A target class's images are mixed with white noise, t = γ·s + (1 − γ)·n, over
a γ grid; the fraction classified as the target traces an S-shaped curve.
Microstimulation (Eq. 6) raises (or lowers) each map's bias of one layer in
proportion to how active that map is for the target class,
b_m ← b_m ± λ·k·ā_m, and the curve shifts. One *condition* is one k; one
*cell* is one (condition, γ) pair, measured on every image once, with its own
noise block (``block = condition index · n_γ + γ index``), so results do not
depend on the batch size or on where a run was paused and resumed.

ā_m is the mean over the target's clean images of ReLU(layer output) (spatial
mean over the whole conv map, before pooling). For the MNIST CNN this is the
authors' x_1, x_2, x_3 (conv1, conv2, fc1 after their ReLU); for other layers
it is the positive part of the output, so every ā_m ≥ 0 and "excite" never
lowers a bias. Maps
with a spatial extent are normalised by the layer's largest ā_m, as in the
authors' code; fully connected units are not.

The loaded model is never touched: the experiment stimulates its own deep
copy of the network.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from .control import EngineError, RunControl, friendly_errors, pick_device
from .data import ImageSet, load_dataset
from .models import LoadedModel
from .noise import NoiseSpec, noise_block
from .psyfit import SIGMOIDS, PsychometricFit, bootstrap_fit, threshold_shift

KIND = "psychometric"
GRID_KIND = "psychometric_grid"
# chance: fixed at 1/K (0.5 for a binary model); free: fitted in [0, 0.5]. A network does not
# guess at random on pure noise: the bundled CNN calls nearly all of it 8 or 3, so most digits'
# curves start at 0, not 1/K, and a guess fixed at 1/K misfits the low-γ levels (digit 0:
# deviance 112 vs 17 over 21 levels) while moving thresholds by only ~0.01. Hence free by default.
GUESS_MODES = ("chance", "free")
LAPSE_MODES = ("bounded", "free")  # bounded: [0, 0.06]; free: [0, 0.5]
DEFAULT_GAMMAS = tuple(float(g) for g in np.round(np.linspace(0.0, 1.0, 21), 10))
DEFAULT_K_VALUES = tuple(float(k) for k in range(11))
# The paper's λ per layer type (§3.4): sensitivity of the output to a bias differs by layer.
LAMBDA_FULLY_CONNECTED = 0.01
LAMBDA_FIRST_CONV = 0.1
LAMBDA_DEEPER_CONV = 1.0


@dataclass(frozen=True)
class PsychometricConfig:
    target: int = 0  # class index of the model (for a binary model, of its two labels)
    layer: str | None = None  # None: no stimulation, the only condition is k = 0 (see conditions)
    lambda_: float | None = None  # None: the layer's default (see default_lambda)
    k_values: tuple[float, ...] = DEFAULT_K_VALUES
    sign: int = 1  # +1 excite (raise biases), −1 inhibit
    gammas: tuple[float, ...] = DEFAULT_GAMMAS
    seed: int = 0
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    dataset: str = "bundled"  # where the images come from when none are passed (load_dataset name)
    sigmoid: str = "logistic"
    guess: str = "free"
    lapse: str = "bounded"
    n_boot: int = 200  # bootstrap resamples of the images, for 95% intervals (0: none)
    gof_samples: int = 200  # Monte-Carlo samples for the deviance p-value (0: none)
    batch_size: int = 2100  # images per forward pass; whole γ cells are grouped up to it
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        k_values = tuple(float(k) for k in self.k_values)
        gammas = tuple(float(g) for g in self.gammas)
        # Normalised here so configs compare equal however they were written.
        object.__setattr__(self, "k_values", k_values)
        object.__setattr__(self, "gammas", gammas)
        if self.target < 0:
            raise ValueError(f"target class must be non-negative, got {self.target}")
        if self.lambda_ is not None and not self.lambda_ > 0:
            raise ValueError(f"λ must be positive (use sign = -1 to inhibit), got {self.lambda_}")
        if not k_values or any(not np.isfinite(k) or k < 0 for k in k_values):
            raise ValueError(f"k values must be non-negative numbers, got {self.k_values}")
        if len(set(k_values)) != len(k_values):
            raise ValueError(f"k values must be distinct, got {self.k_values}")
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be +1 (excite) or -1 (inhibit), got {self.sign}")
        if len(gammas) < 2 or any(not 0 <= g <= 1 for g in gammas) or any(np.diff(gammas) <= 0):
            raise ValueError(f"γ grid must hold at least two increasing values in [0, 1], got {self.gammas}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.sigmoid not in SIGMOIDS:
            raise ValueError(f"unknown sigmoid {self.sigmoid!r}; choose one of {', '.join(SIGMOIDS)}")
        if self.guess not in GUESS_MODES:
            raise ValueError(f"guess must be {' or '.join(GUESS_MODES)}, got {self.guess!r}")
        if self.lapse not in LAPSE_MODES:
            raise ValueError(f"lapse must be {' or '.join(LAPSE_MODES)}, got {self.lapse!r}")
        if self.n_boot < 0 or self.gof_samples < 0:
            raise ValueError("n_boot and gof_samples must be non-negative")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")

    @property
    def conditions(self) -> tuple[float, ...]:
        """The k values measured: ``k_values``, or only k = 0 when no layer is stimulated."""
        return self.k_values if self.layer is not None else (0.0,)

    @property
    def n_cells(self) -> int:
        return len(self.conditions) * len(self.gammas)

    def to_dict(self) -> dict:
        return {"target": self.target, "layer": self.layer, "lambda": self.lambda_,
                "k_values": list(self.k_values), "sign": self.sign, "gammas": list(self.gammas),
                "seed": self.seed, "noise": self.noise.to_dict(), "dataset": self.dataset,
                "sigmoid": self.sigmoid, "guess": self.guess, "lapse": self.lapse, "n_boot": self.n_boot,
                "gof_samples": self.gof_samples, "batch_size": self.batch_size,
                "snapshot_seconds": self.snapshot_seconds}

    @classmethod
    def from_dict(cls, data: dict) -> "PsychometricConfig":
        names = ("target", "layer", "k_values", "sign", "gammas", "seed", "dataset", "sigmoid", "guess",
                 "lapse", "n_boot", "gof_samples", "batch_size", "snapshot_seconds")
        fields = {k: data[k] for k in names if k in data}
        return cls(lambda_=data.get("lambda"), noise=NoiseSpec.from_dict(data.get("noise", {})), **fields)


def small_multiples_configs(base: PsychometricConfig, digits: Iterable[int] = range(10),
                            layers: Iterable[str] = ("conv1", "conv2", "fc1"),
                            lambdas: dict[str, float] | None = None) -> list[PsychometricConfig]:
    """One config per (digit, layer), digit-major: the grid of Figs. 23–25.

    Each panel uses ``lambdas[layer]`` when given, else its layer's default λ;
    everything else (k values, sign, γ grid, seed, fitting) comes from ``base``.
    Run them one after another with :class:`PsychometricExperiment`.
    """
    lambdas = lambdas or {}
    return [replace(base, target=digit, layer=layer, lambda_=lambdas.get(layer)) for digit in digits
            for layer in layers]


def stimulable_layers(model: LoadedModel) -> dict[str, nn.Module]:
    """Named layers with a bias tensor, the ones Eq. 6 can stimulate."""
    return {name: module for name, module in model.layers().items()
            if isinstance(getattr(module, "bias", None), torch.Tensor)}


def _layer_with_bias(model: LoadedModel, layer: str) -> nn.Module:
    layers = stimulable_layers(model)
    if layer in layers:
        return layers[layer]
    if layer and layer in dict(model.net.named_modules()):
        raise ValueError(f"layer {layer!r} has no bias to stimulate; layers with a bias: {', '.join(layers)}")
    raise ValueError(f"the model has no layer {layer!r}; layers with a bias: {', '.join(layers)}")


def default_lambda(model: LoadedModel, layer: str) -> float:
    """The paper's λ: 0.01 for fully connected layers, 0.1 for the first conv layer, 1 for deeper ones."""
    module = _layer_with_bias(model, layer)
    if not isinstance(module, nn.modules.conv._ConvNd):
        return LAMBDA_FULLY_CONNECTED
    first_conv = next(name for name, m in model.net.named_modules() if isinstance(m, nn.modules.conv._ConvNd))
    return LAMBDA_FIRST_CONV if layer == first_conv else LAMBDA_DEEPER_CONV


def _images_for_model(images: ImageSet, model: LoadedModel) -> ImageSet:
    """The images labelled in the model's classes: a 10-class set is relabelled for a binary model."""
    if tuple(images.class_names) == tuple(model.class_names):
        return images
    missing = [name for name in model.class_names if name not in images.class_names]
    if missing:
        raise ValueError(f"{images.name} has no class {missing[0]!r} of the model "
                         f"(model classes: {', '.join(model.class_names)})")
    return images.relabelled(tuple(images.class_names.index(name) for name in model.class_names))


def _fingerprint(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


@dataclass
class PsychometricState:
    """Everything needed to continue a run exactly: per cell, what the model answered."""

    config: PsychometricConfig
    class_names: tuple[str, ...]
    n_images: int
    images_sha256: str  # of the target's images: a resumed run must see the same ones
    lambda_: float | None = None  # λ in use (the layer default when the config leaves it open)
    mean_activation: np.ndarray | None = None  # ā_m per map (conv: normalised to max 1)
    correct: np.ndarray | None = None  # (n_k, n_images, n_γ) bool: image i classified as the target
    responses: np.ndarray | None = None  # (n_k, n_γ, K) counts per predicted class
    done: np.ndarray | None = None  # (n_k, n_γ) bool
    fits: list[PsychometricFit | None] = field(default_factory=list)
    fit_errors: list[str | None] = field(default_factory=list)  # why a complete curve has no fit
    boot_thresholds: np.ndarray | None = None  # (n_k, n_boot); NaN rows until fitted
    noise_device: str = ""  # device type whose generator drew the noise ("cpu" / "cuda")
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n_k, n_gamma = len(self.config.conditions), len(self.config.gammas)
        if self.correct is None:
            self.correct = np.zeros((n_k, self.n_images, n_gamma), dtype=bool)
        if self.responses is None:
            self.responses = np.zeros((n_k, n_gamma, self.n_classes), dtype=np.int64)
        if self.done is None:
            self.done = np.zeros((n_k, n_gamma), dtype=bool)
        if self.boot_thresholds is None:
            self.boot_thresholds = np.full((n_k, self.config.n_boot), np.nan)
        self.fits = self.fits or [None] * n_k
        self.fit_errors = self.fit_errors or [None] * n_k

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def cells_done(self) -> int:
        return int(self.done.sum())

    @property
    def finished(self) -> bool:
        return bool(self.done.all()) and all(f is not None or e is not None
                                             for f, e in zip(self.fits, self.fit_errors))

    def n_correct(self) -> np.ndarray:
        """(n_k, n_γ) images classified as the target (0 where not measured)."""
        return self.correct.sum(axis=1)

    def fraction_correct(self) -> np.ndarray:
        """(n_k, n_γ), NaN where not yet measured."""
        return np.where(self.done, self.n_correct() / max(self.n_images, 1), np.nan)

    def snapshot(self, samples_per_second: float = 0.0) -> PsychometricSnapshot:
        """An immutable view for plots and progress bars; ``samples_per_second``: of the run measuring it, if any.

        It needs neither the model nor the images, so a saved run shows anywhere.
        """
        cfg = self.config
        n_k = len(cfg.conditions)
        shifts, intervals = np.full(n_k, np.nan), np.full((n_k, 2), np.nan)
        reference = cfg.conditions.index(0.0) if 0.0 in cfg.conditions else None
        if reference is not None and self.fits[reference] is not None:
            for condition, fit in enumerate(self.fits):
                if fit is None:
                    continue
                boot = (self.boot_thresholds[condition], self.boot_thresholds[reference]) if cfg.n_boot else ()
                shift, interval = threshold_shift(fit, self.fits[reference], *boot)
                shifts[condition] = shift
                if interval is not None:
                    intervals[condition] = interval
        return PsychometricSnapshot(
            target=cfg.target,
            class_names=tuple(self.class_names),
            layer=cfg.layer,
            lambda_=self.lambda_,
            sign=cfg.sign,
            gammas=np.asarray(cfg.gammas),
            k_values=np.asarray(cfg.conditions),
            n_images=self.n_images,
            fraction_correct=self.fraction_correct(),
            n_correct=self.n_correct(),
            trials=np.where(self.done, self.n_images, 0),
            responses=self.responses.copy(),
            fits=tuple(self.fits),
            fit_errors=tuple(self.fit_errors),
            threshold_shifts=shifts,
            shift_intervals=intervals,
            conditions_done=sum(f is not None or e is not None for f, e in zip(self.fits, self.fit_errors)),
            cells_done=self.cells_done,
            cells_total=cfg.n_cells,
            samples_per_second=samples_per_second,
            seconds=self.seconds,
            finished=self.finished,
        )

    # --- records for the session file (session.py writes them to HDF5) ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "config": self.config.to_dict(),
            "class_names": list(self.class_names),
            "n_images": self.n_images,
            "images_sha256": self.images_sha256,
            "lambda": self.lambda_,
            "fits": [None if fit is None else fit.to_dict() for fit in self.fits],
            "fit_errors": list(self.fit_errors),
            "noise_device": self.noise_device,
            "seconds": self.seconds,
        }
        arrays = {
            "correct": self.correct.astype(np.uint8),
            "responses": self.responses,
            "done": self.done.astype(np.uint8),
            "boot_thresholds": self.boot_thresholds,
            "results/fraction_correct": self.fraction_correct(),
        }
        if self.mean_activation is not None:
            arrays["mean_activation"] = self.mean_activation
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "PsychometricState":
        return cls(
            config=PsychometricConfig.from_dict(meta["config"]),
            class_names=tuple(meta["class_names"]),
            n_images=int(meta["n_images"]),
            images_sha256=meta["images_sha256"],
            lambda_=meta.get("lambda"),
            mean_activation=arrays.get("mean_activation"),
            correct=arrays["correct"].astype(bool),
            responses=arrays["responses"].astype(np.int64),
            done=arrays["done"].astype(bool),
            fits=[None if fit is None else PsychometricFit.from_dict(fit) for fit in meta["fits"]],
            fit_errors=list(meta["fit_errors"]),
            boot_thresholds=arrays["boot_thresholds"].astype(float),
            noise_device=meta.get("noise_device", ""),
            seconds=float(meta.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class PsychometricSnapshot:
    """An immutable view of a run for plots and progress bars (all arrays are copies)."""

    target: int
    class_names: tuple[str, ...]
    layer: str | None
    lambda_: float | None
    sign: int
    gammas: np.ndarray  # (n_γ,)
    k_values: np.ndarray  # (n_k,)
    n_images: int
    fraction_correct: np.ndarray  # (n_k, n_γ), NaN where not yet measured
    n_correct: np.ndarray  # (n_k, n_γ)
    trials: np.ndarray  # (n_k, n_γ), 0 where not yet measured
    responses: np.ndarray  # (n_k, n_γ, K) counts per predicted class
    fits: tuple[PsychometricFit | None, ...]  # per k, once its curve is complete and fitted
    fit_errors: tuple[str | None, ...]
    threshold_shifts: np.ndarray  # (n_k,) threshold(k) − threshold(k = 0), NaN where unknown
    shift_intervals: np.ndarray  # (n_k, 2) paired-bootstrap 95% interval, NaN where unknown
    conditions_done: int  # curves complete and fitted (or failed to fit)
    cells_done: int
    cells_total: int
    samples_per_second: float  # stimuli per second over the active run (pauses excluded); 0 when not running
    seconds: float
    finished: bool

    @property
    def target_name(self) -> str:
        return self.class_names[self.target]

    # A sample is one stimulus: one image in one (k, γ) cell.
    @property
    def samples_done(self) -> int:
        return self.cells_done * self.n_images

    @property
    def samples_total(self) -> int:
        return self.cells_total * self.n_images

    @property
    def eta_seconds(self) -> float | None:
        if self.samples_per_second <= 0:
            return None
        return (self.samples_total - self.samples_done) / self.samples_per_second

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([np.nan if fit is None else fit.threshold for fit in self.fits])

    @property
    def thresholds_in_range(self) -> np.ndarray:
        """Per k, whether the threshold lies within the measured γ range.

        Outside it the threshold is an extrapolation the data barely constrain
        (e.g. the bundled CNN calls most pure noise an 8, so the 8's curve is
        above 50% already at γ = 0).
        """
        thresholds = self.thresholds
        return np.isfinite(thresholds) & (thresholds >= self.gammas[0]) & (thresholds <= self.gammas[-1])


@dataclass
class PsychometricGridState:
    """The small-multiples grid of Figs. 23–25: one run per sign × class × layer, measured one after another.

    ``base`` holds what every plot shares (k values, γ grid, seed, noise, fit
    settings); each plot stimulates its layer with the layer's default λ.
    ``cells[i]`` is the run of ``configs[i]``, None until its turn comes.
    """

    base: PsychometricConfig
    targets: tuple[int, ...]
    layers: tuple[str, ...]
    signs: tuple[int, ...]
    cells: list[PsychometricState | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Set per plot, so fixed here: grids with the same plots compare equal.
        self.base = replace(self.base, target=0, layer=None, lambda_=None, sign=1)
        self.targets, self.layers = tuple(int(t) for t in self.targets), tuple(self.layers)
        self.signs = tuple(int(s) for s in self.signs)
        if not (self.targets and self.layers and self.signs):
            raise ValueError("a grid needs at least one class, one layer and one sign")
        self.cells = self.cells or [None] * len(self.configs)
        if len(self.cells) != len(self.configs):
            raise ValueError(f"{len(self.cells)} runs for a grid of {len(self.configs)} plots")

    @property
    def configs(self) -> tuple[PsychometricConfig, ...]:
        """Sign-major, then class, then layer: rows are classes, columns layer × sign, as in Fig. 23."""
        return tuple(config for sign in self.signs for config in
                     small_multiples_configs(replace(self.base, sign=sign), self.targets, self.layers))

    @property
    def plots_done(self) -> int:
        return sum(cell is not None and cell.finished for cell in self.cells)

    @property
    def finished(self) -> bool:
        return self.plots_done == len(self.cells)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"config": self.base.to_dict(), "targets": list(self.targets), "layers": list(self.layers),
                "signs": list(self.signs), "cells": []}
        arrays = {}
        for index, cell in enumerate(self.cells):
            if cell is None:
                meta["cells"].append(None)
                continue
            cell_meta, cell_arrays = cell.to_record()
            meta["cells"].append(cell_meta)
            arrays.update({f"cells/{index}/{path}": array for path, array in cell_arrays.items()})
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "PsychometricGridState":
        cells = []
        for index, cell_meta in enumerate(meta["cells"]):
            prefix = f"cells/{index}/"
            cell_arrays = {path[len(prefix):]: array for path, array in arrays.items() if path.startswith(prefix)}
            cells.append(None if cell_meta is None else PsychometricState.from_record(cell_meta, cell_arrays))
        return cls(PsychometricConfig.from_dict(meta["config"]), tuple(meta["targets"]), tuple(meta["layers"]),
                   tuple(meta["signs"]), cells)


class PsychometricExperiment:
    """Measures (or continues measuring) psychometric curves of a model, stimulated or not."""

    kind = KIND

    def __init__(
        self,
        model: LoadedModel,
        config: PsychometricConfig | None = None,
        state: PsychometricState | None = None,
        images: ImageSet | None = None,
        device: str | torch.device | None = None,
        control: RunControl | None = None,
    ) -> None:
        config = state.config if state is not None else config or PsychometricConfig()
        if config.target >= model.n_classes:
            raise ValueError(f"target class {config.target} is out of range: the model has {model.n_classes} classes")
        if config.layer is not None:
            _layer_with_bias(model, config.layer)
        image_set = _images_for_model(images if images is not None else load_dataset(config.dataset), model)
        target_images = image_set.of_class(config.target)
        if len(target_images) == 0:
            raise ValueError(f"{image_set.name} has no images of class {model.class_names[config.target]!r}")
        if tuple(target_images.shape[1:]) != tuple(model.input_spec.shape):
            raise ValueError(f"images of shape {tuple(target_images.shape[1:])} do not fit the model's input "
                             f"{tuple(model.input_spec.shape)}")
        fingerprint = _fingerprint(target_images)
        self.device = pick_device(device if not isinstance(device, torch.device) else str(device))
        if state is None:
            lambda_ = None
            if config.layer is not None:
                lambda_ = config.lambda_ if config.lambda_ is not None else default_lambda(model, config.layer)
            state = PsychometricState(config, tuple(model.class_names), len(target_images), fingerprint, lambda_)
        else:
            if tuple(state.class_names) != tuple(model.class_names):
                raise EngineError(f"session was measured on classes {', '.join(state.class_names)}; "
                                  f"this model has {', '.join(model.class_names)}")
            if state.images_sha256 != fingerprint:
                raise EngineError("these target images differ from the ones the session was measured on")
            if state.noise_device and state.cells_done and not state.done.all() \
                    and state.noise_device != self.device.type:
                raise EngineError(f"this session's noise was drawn on {state.noise_device}; continue it on "
                                  f"{state.noise_device} to get the same noise (device is {self.device.type})")
        self.model = model
        self.state = state
        self.control = control or RunControl()
        self._rate = 0.0
        self._images = target_images.to(self.device)
        self._network, self._stimulated = self._copy_network()
        if self._stimulated is not None:
            self._original_bias = self._stimulated.bias.detach().clone()
            if state.mean_activation is None:
                state.mean_activation = self._mean_activation()

    @property
    def config(self) -> PsychometricConfig:
        return self.state.config

    def _copy_network(self) -> tuple[nn.Module, nn.Module | None]:
        """A private copy of the pixel-space model, and its layer to stimulate (None without stimulation)."""
        network = copy.deepcopy(self.model.pixel_model).to(self.device).eval()
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        self._channels_last = len(self.model.input_spec.shape) == 3 and any(
            isinstance(m, nn.Conv2d) for m in network.modules())
        if self._channels_last:
            # NHWC convolutions run ~2x faster on CPU (oneDNN) and use tensor cores on GPU.
            network = network.to(memory_format=torch.channels_last)
        layer = None if self.config.layer is None else network.net.get_submodule(self.config.layer)
        return network, layer

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self._network(x)
        if logits.ndim != 2 or logits.shape[1] != self.state.n_classes:
            raise EngineError(f"model returned shape {tuple(logits.shape)}; expected (batch, {self.state.n_classes})")
        if not torch.isfinite(logits).all():
            raise EngineError("model produced NaN or infinite outputs"
                              + (f" with {self.config.layer} stimulated" if self.config.layer else ""))
        return logits

    def _mean_activation(self) -> np.ndarray:
        """ā_m: mean ReLU(output) of each map of the stimulated layer over the clean target images."""
        layer, n_maps = self.config.layer, self._stimulated.bias.numel()
        total = torch.zeros(n_maps, dtype=torch.float64, device=self.device)
        spatial = False

        def accumulate(module, inputs, output):
            nonlocal total, spatial
            if not isinstance(output, torch.Tensor) or output.ndim < 2 or output.shape[1] != n_maps:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(f"layer {layer!r} outputs {shape}; cannot match its {n_maps} biases to maps")
            spatial = output.ndim > 2
            per_image = torch.relu(output).flatten(2).mean(2) if spatial else torch.relu(output)
            total += per_image.double().sum(0)

        handle = self._stimulated.register_forward_hook(accumulate)
        try:
            with torch.inference_mode(), friendly_errors(self.config.batch_size):
                for start in range(0, len(self._images), self.config.batch_size):
                    self._forward(self._images[start:start + self.config.batch_size])
        finally:
            handle.remove()
        mean = (total / len(self._images)).cpu().numpy()
        if spatial:
            # The authors normalise conv maps by the layer's most active one; λ is calibrated for that.
            largest = mean.max()
            if largest <= 0:
                raise ValueError(f"every map of layer {layer!r} is silent for class "
                                 f"{self.state.class_names[self.config.target]!r}: nothing to stimulate")
            mean = mean / largest
        return mean

    def bias_offset(self, condition: int) -> np.ndarray | None:
        """±λ·k·ā_m added to the layer's biases in condition ``condition`` (None without stimulation)."""
        if self.config.layer is None:
            return None
        return self.config.sign * self.state.lambda_ * self.config.conditions[condition] * self.state.mean_activation

    def _stimulate(self, condition: int) -> None:
        if self._stimulated is None:
            return
        offset = torch.as_tensor(self.bias_offset(condition), dtype=self._original_bias.dtype, device=self.device)
        with torch.no_grad():
            self._stimulated.bias.copy_(self._original_bias + offset)

    def stimuli(self, gamma_index: int, condition: int = 0) -> torch.Tensor:
        """The exact stimuli of one cell, γ·s + (1 − γ)·n for every target image, in [0, 1] pixels."""
        cfg = self.config
        block = condition * len(cfg.gammas) + gamma_index
        gamma = cfg.gammas[gamma_index]
        noise = noise_block(cfg.noise, cfg.seed, block, len(self._images), tuple(self.model.input_spec.shape),
                            self.device)
        return noise.mul_(1.0 - gamma).add_(self._images, alpha=gamma)

    def _batches(self) -> Iterator[tuple[int, list[int]]]:
        """Pending cells grouped by condition, whole cells per batch, conditions in order."""
        per_batch = max(1, self.config.batch_size // len(self._images))
        for condition in range(len(self.config.conditions)):
            pending = np.flatnonzero(~self.state.done[condition]).tolist()
            for start in range(0, len(pending), per_batch):
                yield condition, pending[start:start + per_batch]

    def run_cells(self, condition: int, gamma_indices: list[int]) -> None:
        """Measure the given γ cells of one condition and record them."""
        state, cfg = self.state, self.config
        self._stimulate(condition)
        x = torch.cat([self.stimuli(j, condition) for j in gamma_indices])
        with torch.inference_mode(), friendly_errors(cfg.batch_size):
            predicted = torch.cat([self._forward(x[start:start + cfg.batch_size]).argmax(1)
                                   for start in range(0, len(x), cfg.batch_size)])
        predicted = predicted.reshape(len(gamma_indices), state.n_images)
        offsets = torch.arange(len(gamma_indices), device=predicted.device)[:, None] * state.n_classes
        counts = torch.bincount((predicted + offsets).flatten(), minlength=len(gamma_indices) * state.n_classes)
        state.responses[condition, gamma_indices] = counts.reshape(len(gamma_indices), -1).cpu().numpy()
        state.correct[condition][:, gamma_indices] = (predicted == cfg.target).T.cpu().numpy()
        state.done[condition, gamma_indices] = True

    def _fit_complete_curves(self) -> None:
        """Fit every condition whose curve is complete and not yet fitted."""
        state, cfg = self.state, self.config
        guess = 1.0 / state.n_classes if cfg.guess == "chance" else None
        for condition in range(len(cfg.conditions)):
            if (not state.done[condition].all() or state.fits[condition] is not None
                    or state.fit_errors[condition] is not None):
                continue
            try:
                # One bootstrap seed for all conditions: the same image resamples, so shifts are paired.
                fit, samples = bootstrap_fit(
                    np.asarray(cfg.gammas), state.correct[condition], sigmoid=cfg.sigmoid, guess=guess,
                    lapse=cfg.lapse, n_boot=cfg.n_boot, seed=cfg.seed, gof_samples=cfg.gof_samples,
                    return_samples=True)
            except ValueError as exc:  # e.g. no image ever classified as the target
                state.fit_errors[condition] = str(exc)
                continue
            state.fits[condition] = fit
            state.boot_thresholds[condition] = samples.threshold

    def run(self) -> Iterator[PsychometricSnapshot]:
        """Measure the remaining cells, yielding a snapshot every ``snapshot_seconds`` and at the end.

        Pause and cancel take effect between batches (``Cancelled`` propagates
        with the state consistent, so the run can be saved and resumed). A
        condition is fitted as soon as its curve is complete.
        """
        state = self.state
        if not state.cells_done:  # nothing drawn yet: the noise will come from this device
            state.noise_device = self.device.type
        started = last_yield = time.perf_counter()
        start_cells = state.cells_done
        paused_for = 0.0
        self._fit_complete_curves()
        for condition, gamma_indices in self._batches():
            pause_began = time.perf_counter()
            self.control.checkpoint()
            paused_for += time.perf_counter() - pause_began
            batch_start = time.perf_counter()
            self.run_cells(condition, gamma_indices)
            self._fit_complete_curves()
            now = time.perf_counter()
            state.seconds += now - batch_start
            active = now - started - paused_for
            self._rate = (state.cells_done - start_cells) * state.n_images / active if active > 0 else 0.0
            if now - last_yield >= self.config.snapshot_seconds and not state.finished:
                last_yield = now
                yield self.snapshot()
        yield self.snapshot()

    def run_to_end(self) -> PsychometricSnapshot:
        snapshot = None
        for snapshot in self.run():
            pass
        return snapshot

    def snapshot(self) -> PsychometricSnapshot:
        return self.state.snapshot(self._rate)


def run_psychometric(model: LoadedModel, config: PsychometricConfig, images: ImageSet | None = None,
                     device: str | None = None) -> PsychometricSnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return PsychometricExperiment(model, config, images=images, device=device).run_to_end()


__all__ = [
    "GRID_KIND", "GUESS_MODES", "KIND", "LAPSE_MODES", "PsychometricConfig", "PsychometricExperiment",
    "PsychometricFit", "PsychometricGridState", "PsychometricSnapshot", "PsychometricState", "default_lambda",
    "run_psychometric", "small_multiples_configs", "stimulable_layers",
]
