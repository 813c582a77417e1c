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

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .control import EngineError, RunControl
from .data import DATASETS, ImageSet, load_dataset
from .driver import ProgressView
from .experiment import Artefact, Experiment, ExperimentSpec
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise
from .params import config_arrays, config_from_dict, config_to_dict, param
from .psychometric_report import (
    PSYCHOMETRIC_COLUMNS,
    format_k_values,
    gamma_grid,
    parse_k_values,
    psychometric_data_records,
    psychometric_fit_records,
    psychometric_table,
    stimulation_text,
    write_records,
)
from .psyfit import SIGMOIDS, PsychometricFit, bootstrap_fit, threshold_shift

KIND = "psychometric"
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


def _class_options(model: LoadedModel) -> dict:
    return dict(enumerate(model.class_names))


def _layer_options(model: LoadedModel) -> dict:
    return {None: UNSTIMULATED, **{name: name for name in stimulable_layers(model)}}


UNSTIMULATED = "none (unstimulated)"
SIGNS = {1: "excite (raise biases)", -1: "inhibit (lower biases)"}
SIGN_WORDS = {"excite": 1, "inhibit": -1}
GUESS_LABELS = {"free": "free (fitted in [0, 0.5])", "chance": "chance (1/K)"}
LAPSE_LABELS = {"bounded": "bounded [0, 0.06]", "free": "free [0, 0.5]"}
DATASET_LABELS = {"bundled": "bundled MNIST digits (held out)",
                  **{name: f"{name} test set (data folder)" for name in DATASETS}}
STIMULATION = "Target and stimulation"
STIMULUS = "Stimulus"
FIT = "Fit ψ = guess + (1 − guess − lapse)·F"


def _k_values_param(group: str = STIMULATION, default=DEFAULT_K_VALUES):
    return param(default, "k values", "stimulation levels k: 0:10, 0:10:2 or 0,1,2,5; k = 0 is the reference",
                 kind="text", cli="--k", encode=format_k_values, decode=parse_k_values, group=group)


def _gammas_param():
    return param(DEFAULT_GAMMAS, "γ points in [0, 1]", "points of the γ grid, evenly spaced from 0 (pure noise) "
                 "to 1 (clean image)", kind="int", encode=len, decode=gamma_grid, low=2, high=201, group=STIMULUS)


def _shared_params() -> dict:
    """Declarations the curves and the small-multiples grid share (fresh fields for each dataclass)."""
    return dict(
        gammas=_gammas_param(),
        seed=param(0, "Seed", "seed of the counter-based noise", low=0, high=2**31 - 1, group=STIMULUS),
        noise=param(kind="noise", default_factory=UniformNoise, label="Noise", cli="--noise", group=STIMULUS,
                    help="noise source mixed with the images: uniform (the paper's) or gaussian"),
        dataset=param("bundled", "Images", "where the target's images come from", choices=DATASET_LABELS,
                      group=STIMULUS),
        data_dir=param("", "Data folder", "folder of a torchvision dataset (not needed for bundled)",
                       kind="text", role="runtime", group=STIMULUS),
        sigmoid=param("logistic", "Sigmoid F", "the psychometric function's shape",
                      choices={name: name for name in SIGMOIDS}, role="fit", group=FIT),
        guess=param("free", "Guess rate", "free (default: the network does not guess at 1/K on noise) or "
                    "chance (1/K)", choices=GUESS_LABELS, role="fit", group=FIT),
        lapse=param("bounded", "Lapse rate", "bounded [0, 0.06] or free [0, 0.5]", choices=LAPSE_LABELS,
                    role="fit", group=FIT),
        batch_size=param(2100, "Batch size", "stimuli per forward pass; whole γ points are grouped up to it",
                         low=1, high=1_000_000, step=100, role="runtime", group=STIMULUS),
    )


@dataclass(frozen=True)
class PsychometricConfig:
    target: int = param(0, "Target class", "class index or name", options=_class_options, group=STIMULATION)
    layer: str | None = param(None, "Layer", "layer whose biases are stimulated, e.g. fc1 (none: unstimulated)",
                              options=_layer_options, optional=True, group=STIMULATION)
    # None: the layer's default (see default_lambda); a run records the λ it used.
    lambda_: float | None = param(None, "λ", "b ← b ± λ·k·ā (default: the paper's, 0.01 fully connected / 0.1 "
                                  "first conv / 1 deeper conv)", kind="float", key="lambda", optional=True,
                                  low=0.0001, high=1000.0, step=0.01, decimals=4, group=STIMULATION)
    k_values: tuple[float, ...] = _k_values_param()
    sign: int = param(1, "Sign", "excite (raise biases) or inhibit (lower them)", choices=SIGNS, tokens=SIGN_WORDS,
                      group=STIMULATION)
    gammas: tuple[float, ...] = _shared_params()["gammas"]
    seed: int = _shared_params()["seed"]
    noise: NoiseSource = _shared_params()["noise"]
    dataset: str = _shared_params()["dataset"]
    data_dir: str = _shared_params()["data_dir"]
    sigmoid: str = _shared_params()["sigmoid"]
    guess: str = _shared_params()["guess"]
    lapse: str = _shared_params()["lapse"]
    n_boot: int = param(200, "Bootstrap", "bootstrap resamples of the images for 95% intervals (0: none)",
                        cli="--boot", low=0, high=100_000, step=50, role="fit", group=FIT)
    gof_samples: int = param(200, "GoF samples", "Monte-Carlo samples for the deviance p-value (0: none)",
                             low=0, high=100_000, step=50, role="fit", group=FIT)
    batch_size: int = _shared_params()["batch_size"]
    snapshot_seconds: float = 0.2  # how often a run shows progress; not a result setting

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

    def inactive_params(self) -> tuple[str, ...]:
        """Settings that mean nothing with the others as they are: k, sign and λ without a stimulated layer."""
        return ("lambda_", "k_values", "sign") if self.layer is None else ()

    @property
    def n_cells(self) -> int:
        return len(self.conditions) * len(self.gammas)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, arrays: dict | None = None) -> "PsychometricConfig":
        return config_from_dict(cls, data, arrays)


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
    def lambda_(self) -> float | None:
        """λ in use: a new run records its layer's default in the config when the config leaves it open."""
        return self.config.lambda_

    @property
    def cells_done(self) -> int:
        return int(self.done.sum())

    # Progress is counted in stimuli: one image in one (k, γ) cell.
    @property
    def progress_done(self) -> int:
        return self.cells_done * self.n_images

    @property
    def progress_total(self) -> int:
        return self.config.n_cells * self.n_images

    @staticmethod
    def new_run_text(config: PsychometricConfig) -> str:
        curves = len(config.conditions)
        return (f"Start measures {curves} curve{'s' if curves > 1 else ''} × {len(config.gammas)} γ points, "
                "then fits each curve.")

    def refitted(self, config: PsychometricConfig) -> "PsychometricState":
        """The measurements of this run under ``config``'s fit settings, to be fitted anew."""
        return PsychometricState(config, self.class_names, self.n_images, self.images_sha256, self.mean_activation,
                                 correct=self.correct.copy(), responses=self.responses.copy(), done=self.done.copy(),
                                 noise_device=self.noise_device, seconds=self.seconds)

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
            "fits": [None if fit is None else fit.to_dict() for fit in self.fits],
            "fit_errors": list(self.fit_errors),
            "noise_device": self.noise_device,
            "seconds": self.seconds,
        }
        arrays = {
            **config_arrays(self.config),
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
            config=PsychometricConfig.from_dict(meta["config"], arrays),
            class_names=tuple(meta["class_names"]),
            n_images=int(meta["n_images"]),
            images_sha256=meta["images_sha256"],
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
class PsychometricSnapshot(ProgressView):
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


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 kept the λ in use beside the config (whose λ could be None) and every noise field of either
    kind; version 2 records the λ in use in the config and only the noise source's own parameters."""
    from .noise import noise_from_dict

    config = dict(meta["config"])
    if meta.get("lambda") is not None:
        config["lambda"] = meta["lambda"]
    config["noise"] = noise_from_dict(config.get("noise", {})).to_dict()
    return {**{k: v for k, v in meta.items() if k != "lambda"}, "config": config}, arrays


def target_images(model: LoadedModel, config: PsychometricConfig, images: ImageSet | None = None) -> torch.Tensor:
    """The target class's images the run shows (from ``images``, else the config's dataset), checked."""
    if config.target >= model.n_classes:
        raise ValueError(f"target class {config.target} is out of range: the model has {model.n_classes} classes")
    image_set = _images_for_model(images if images is not None else
                                  load_dataset(config.dataset, config.data_dir or None), model)
    chosen = image_set.of_class(config.target)
    if len(chosen) == 0:
        raise ValueError(f"{image_set.name} has no images of class {model.class_names[config.target]!r}")
    if tuple(chosen.shape[1:]) != tuple(model.input_spec.shape):
        raise ValueError(f"images of shape {tuple(chosen.shape[1:])} do not fit the model's input "
                         f"{tuple(model.input_spec.shape)}")
    return chosen


class PsychometricExperiment(Experiment):
    """Measures (or continues measuring) psychometric curves of a model, stimulated or not.

    A unit of work is a group of pending γ cells of one condition (whole
    cells, up to ``batch_size`` stimuli); a condition is fitted as soon as its
    curve is complete.
    """

    def __init__(self, model: LoadedModel, config: PsychometricConfig | None = None,
                 state: PsychometricState | None = None, device: str | None = None,
                 control: RunControl | None = None, images: ImageSet | None = None) -> None:
        config = state.config if state is not None else config or PsychometricConfig()
        chosen = target_images(model, config, images)
        if state is None:
            state = self.new_state(model, config, images=chosen)
        else:
            if tuple(state.class_names) != tuple(model.class_names):
                raise EngineError(f"session was measured on classes {', '.join(state.class_names)}; "
                                  f"this model has {', '.join(model.class_names)}")
            if state.images_sha256 != _fingerprint(chosen):
                raise EngineError("these target images differ from the ones the session was measured on")
        super().__init__(model, state=state, device=device, control=control)
        self._images = chosen.to(self.device)
        self._stimulated = None if self.config.layer is None else self.runtime.layer(self.config.layer)
        if self._stimulated is not None:
            self._original_bias = self._stimulated.bias.detach().clone()
            if state.mean_activation is None:
                state.mean_activation = self._mean_activation()

    @classmethod
    def new_state(cls, model: LoadedModel, config: PsychometricConfig, images=None) -> PsychometricState:
        """A fresh state; ``images``: the target's images (a tensor), or an ImageSet / None to choose them."""
        chosen = images if isinstance(images, torch.Tensor) else target_images(model, config, images)
        if config.layer is None:
            config = replace(config, lambda_=None)
        else:
            _layer_with_bias(model, config.layer)
            if config.lambda_ is None:
                config = replace(config, lambda_=default_lambda(model, config.layer))
        return PsychometricState(config, tuple(model.class_names), len(chosen), _fingerprint(chosen))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        context = f"with {self.config.layer} stimulated" if self.config.layer else ""
        return self.runtime.logits(x, self.config.batch_size, context)

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
            with torch.inference_mode():
                self._forward(self._images)
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
        noise = cfg.noise.block(cfg.seed, block, len(self._images), tuple(self.model.input_spec.shape), self.device)
        return noise.mul_(1.0 - gamma).add_(self._images, alpha=gamma)

    def prepare(self) -> None:
        super().prepare()
        self._fit_complete_curves()

    def pending(self) -> Iterator[tuple[int, list[int]]]:
        """Pending cells grouped by condition, whole cells per unit, conditions in order."""
        per_batch = max(1, self.config.batch_size // len(self._images))
        for condition in range(len(self.config.conditions)):
            pending = np.flatnonzero(~self.state.done[condition]).tolist()
            for start in range(0, len(pending), per_batch):
                yield condition, pending[start:start + per_batch]

    def run_unit(self, unit: tuple[int, list[int]]) -> None:
        """Measure the given γ cells of one condition and record them."""
        condition, gamma_indices = unit
        state, cfg = self.state, self.config
        self._stimulate(condition)
        x = torch.cat([self.stimuli(j, condition) for j in gamma_indices])
        with torch.inference_mode():
            predicted = self._forward(x).argmax(1)
        predicted = predicted.reshape(len(gamma_indices), state.n_images)
        offsets = torch.arange(len(gamma_indices), device=predicted.device)[:, None] * state.n_classes
        counts = torch.bincount((predicted + offsets).flatten(), minlength=len(gamma_indices) * state.n_classes)
        state.responses[condition, gamma_indices] = counts.reshape(len(gamma_indices), -1).cpu().numpy()
        state.correct[condition][:, gamma_indices] = (predicted == cfg.target).T.cpu().numpy()
        state.done[condition, gamma_indices] = True

    def after_unit(self) -> None:
        self._fit_complete_curves()

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

    def snapshot(self) -> PsychometricSnapshot:
        return self.state.snapshot(self.rate)


def run_psychometric(model: LoadedModel, config: PsychometricConfig, images: ImageSet | None = None,
                     device: str | None = None) -> PsychometricSnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return PsychometricExperiment(model, config, images=images, device=device).run_to_end()


# --- exports: one writer per artefact, shared by `wna export` and File > Export ---

def _write_curves_plot(snapshot: PsychometricSnapshot, path) -> Path:
    from ..figures.psychometric import save_curves_plot  # Qt painting, only when asked

    return save_curves_plot(snapshot, path)


def _measured(snapshot: PsychometricSnapshot) -> bool:
    return snapshot.cells_done > 0


ARTEFACTS = (
    Artefact("psychometric_fits", "Fit table: thresholds, widths, intervals, shifts", (".csv",),
             lambda snapshot, path: write_records(psychometric_fit_records(snapshot), path), available=_measured),
    Artefact("psychometric_data", "Curve data: targets / trials per k and γ", (".csv", ".npy"),
             lambda snapshot, path: write_records(psychometric_data_records(snapshot), path), available=_measured),
    Artefact("psychometric_curves", "Psychometric curves plot", (".png", ".svg"), _write_curves_plot,
             available=_measured),
)


# --- `wna info` and `wna run` text ---

def _numbers(values) -> list:  # JSON has no NaN
    return [None if not np.isfinite(v) else float(v) for v in values]


def summary(state: PsychometricState) -> dict:
    snapshot = state.snapshot()
    return {
        "samples_done": snapshot.samples_done,
        "target": snapshot.target, "target_name": snapshot.target_name, "layer": snapshot.layer,
        "lambda": snapshot.lambda_, "sign": snapshot.sign, "k_values": _numbers(snapshot.k_values),
        "images_per_gamma": snapshot.n_images, "gammas": _numbers(snapshot.gammas),
        "cells_done": snapshot.cells_done, "cells_total": snapshot.cells_total, "finished": snapshot.finished,
        "thresholds": _numbers(snapshot.thresholds),
        "thresholds_in_range": [bool(v) for v in snapshot.thresholds_in_range],
        "threshold_shifts": _numbers(snapshot.threshold_shifts),
        "fit_errors": list(snapshot.fit_errors),
        "compute_seconds": round(snapshot.seconds, 3),
        "table": psychometric_table(snapshot),
    }


def describe(entry: dict) -> list[str]:
    stimulation = stimulation_text(entry["layer"], entry["sign"], entry["lambda"])
    progress = "" if entry["finished"] else f" (unfinished: {entry['cells_done']} of {entry['cells_total']} cells)"
    lines = [f"target {entry['target_name']}, {stimulation}, {len(entry['k_values'])} k × "
             f"{len(entry['gammas'])} γ × {entry['images_per_gamma']} images{progress}"]
    for row in entry["table"]:
        shift = f", shift {row[5]}" if row[5] else ""
        lines.append(f"  k = {row[0]:>4}: threshold {row[1]}{shift}")
    return lines


def report(snapshot: PsychometricSnapshot) -> list[str]:
    stimulation = stimulation_text(snapshot.layer, snapshot.sign, snapshot.lambda_)
    lines = [f"{snapshot.cells_done} (k, γ) cells × {snapshot.n_images} images in {snapshot.seconds:.1f} s",
             f"target {snapshot.target_name} · {stimulation} · {snapshot.n_images} images per γ"]
    rows = [list(PSYCHOMETRIC_COLUMNS), *psychometric_table(snapshot)]
    # A curve without a fit has one note instead of numbers; it must not widen the threshold column.
    fitted = [row for row in rows if any(row[2:])]
    widths = [max(len(row[c]) for row in fitted) for c in range(len(PSYCHOMETRIC_COLUMNS))]
    for row in rows:
        cells = zip(row, widths) if any(row[2:]) else [(row[0], widths[0]), (row[1], 0)]
        lines.append("  " + "  ".join(text.ljust(width) for text, width in cells).rstrip())
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="psychometric",
    title="Psychometric curves",
    help="psychometric curves of one class, with or without microstimulation (Eq. 6)",
    config=PsychometricConfig,
    state=PsychometricState,
    experiment=PsychometricExperiment,
    unit="stimuli",
    panel="psychometric",
    artefacts=ARTEFACTS,
    can_refit=True,
    record_version=2,
    migrations={1: _migrate_v1},
    summary=summary,
    describe=describe,
    report=report,
)
PsychometricExperiment.spec = EXPERIMENT

__all__ = [
    "EXPERIMENT", "GUESS_MODES", "KIND", "LAPSE_MODES", "PsychometricConfig", "PsychometricExperiment",
    "PsychometricFit", "PsychometricSnapshot", "PsychometricState", "default_lambda", "run_psychometric",
    "stimulable_layers",
]
