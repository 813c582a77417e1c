"""Psychometric curves and microstimulation (paper §3.4, Figs. 9, 23–25).

A target class's images are mixed with white noise, t = γ·s + (1 − γ)·n, over
a γ grid; the fraction classified as the target traces an S-shaped curve.
Microstimulation (Eq. 6) raises (or lowers) each map's bias of one layer in
proportion to how active that map is for the target class,
b_m ← b_m ± λ·k·ā_m, and the curve shifts. One *condition* is one k; one
*cell* is one (condition, γ, repeat): every image once, with fresh noise. A
point of a curve is a (condition, γ) pair: ``repeats`` cells, images × repeats
trials.

Noise is drawn *by value* (``noise_index = "value"``): a cell's noise block is a
hash of the target, the stimulation actually applied (layer, sign and k; the
same "unstimulated" for every k = 0 and for runs without a layer), γ and the
repeat, under the run's seed (:func:`noise_block`). The same condition gets
the same noise whatever the k list, the batch size, the order of measurement,
pauses and resumes, or whether a single run or the small-multiples grid
measures it. wna-gui 0.1 indexed blocks by list position (``block = condition
index · n_γ + γ index``); its sessions record ``noise_index = "position"`` and
keep that rule, so they continue exactly.

Fits: each curve is fitted alone as soon as it is complete (a preview shown
while the others are measured). When every curve is measured, all are fitted
together under the chosen model (threshold per k; width, guess and lapse each
shared across k or per k) with a bootstrap over images (all their trials at
every k and γ together, so shifts are paired), a Monte-Carlo goodness of fit
and likelihood-ratio tests (core.psyfit.analyse_conditions). Besides the
midpoint threshold α (F = ½) every curve has a performance threshold: the γ at
which P(target) reaches ``performance_level``.

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
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .control import EngineError, RunControl
from .data import load_dataset
from .dataset_choices import DATA_DIR_HELP
from .driver import ProgressView
from .experiment import Artefact, Experiment, ExperimentSpec
from .images import ImageSet, check_fits_model_input, dataset_labels, images_for_model, images_sha256
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise
from .params import config_arrays, param
from .psychometric_report import (
    format_k_values,
    parse_k_values,
    psychometric_data_records,
    psychometric_fit_records,
    psychometric_table,
    psychometric_test_records,
    psychometric_text_tables,
    model_lines,
    stimulation_text,
    write_records,
)
from .state import RunConfig, RunState, class_options
from .stats import noise_to_image_gammas
from .psyfit import (
    LEGACY_GUESS_MAX,
    NOTE,
    SHAREABLE,
    SIGMOIDS,
    BoundFlag,
    LRTest,
    PsychometricFit,
    analyse_conditions,
    bound_flags,
    fit_psychometric,
    performance_threshold,
    shift_interval,
)

KIND = "psychometric"
# chance: fixed at 1/K (0.5 for a binary model); free: fitted in [0, 1 − lapse). A network does not
# guess at random on pure noise: the bundled CNN calls nearly all of it 8 or 3, so most digits'
# curves start at 0, not 1/K, and a guess fixed at 1/K misfits the low-γ levels (digit 0:
# deviance 112 vs 17 over 21 levels) while moving thresholds by only ~0.01. Hence free by default.
GUESS_MODES = ("chance", "free")
LAPSE_MODES = ("bounded", "free")  # bounded: [0, 0.06]; free: [0, 0.5]
SHARING_MODES = ("shared", "per-k")
NOISE_INDEXING = ("value", "position")
DEFAULT_GAMMAS = noise_to_image_gammas(21)
DEFAULT_K_VALUES = tuple(float(k) for k in range(11))
# The paper's λ per layer type (§3.4): sensitivity of the output to a bias differs by layer.
LAMBDA_FULLY_CONNECTED = 0.01
LAMBDA_FIRST_CONV = 0.1
LAMBDA_DEEPER_CONV = 1.0


def _layer_options(model: LoadedModel) -> dict:
    return {None: UNSTIMULATED, **{name: name for name in stimulable_layers(model)}}


UNSTIMULATED = "none (unstimulated)"
SIGNS = {1: "excite (raise biases)", -1: "inhibit (lower biases)"}
SIGN_WORDS = {"excite": 1, "inhibit": -1}
GUESS_LABELS = {"free": "free (fitted in [0, 1 − lapse))", "chance": "chance (1/K)"}
LAPSE_LABELS = {"bounded": "bounded [0, 0.06]", "free": "free [0, 0.5]"}
SHARING_LABELS = {"shared": "shared across k", "per-k": "free per k"}
NOISE_INDEX_LABELS = {"value": "by condition values", "position": "by list position (wna-gui 0.1)"}
DATASET_LABELS = dataset_labels("test")
STIMULATION = "Target and stimulation"
STIMULUS = "Stimulus"
FIT = "Fit ψ = guess + (1 − guess − lapse)·F"

# Tooltips of the fit choices: what each means for the reader of the table.
SIGMOID_HELP = ("the shape F of the curve. Thresholds and shifts barely depend on it; widths do. logistic, gauss, "
                "gumbel: F of γ, widths in γ. weibull: F of ln γ (psignifit's), widths in ln γ; its floor is at γ = 0")
GUESS_HELP = ("the curve's floor as γ → 0. free: fitted in [0, 1 − lapse) (a network does not guess at 1/K on noise: "
              "the bundled CNN calls most of it an 8, so digit 8's floor is ≈0.9); chance: fixed at 1/K")
LAPSE_HELP = ("how far the top stays below 1. bounded: fitted in [0, 0.06], the psychophysics convention; free: "
              "fitted in [0, 0.5], for curves that sag at high γ")
WIDTH_SHARING_HELP = ("shared: one width for every k (stimulation moves the curve without changing its slope); per "
                      "k: each curve its own width. The sharing test, shown with the fit table, says whether one width fits")
GUESS_SHARING_HELP = ("shared: one floor for every k, so a curve whose lower part rises reads as a lower threshold; "
                      "per k: each curve its own floor, which can absorb a shift (watch for a guess at its limit 0.5, "
                      "and read the performance threshold)")
LAPSE_SHARING_HELP = ("shared: one top (1 − lapse) for every k; per k: each curve its own, which can turn a sagging "
                      "top into a threshold shift (watch for a lapse at its limit)")
LEVEL_HELP = ("the performance threshold is the γ at which the fitted P(target) reaches this level. Unlike the "
              "midpoint α (F = ½) it does not depend on how floor, lapse and sigmoid share the curve; curves whose "
              "floor is above the level, or that never reach it, say so")


def k_values_param(default=DEFAULT_K_VALUES):
    """The k values of a curve or of the grid's columns (their defaults differ)."""
    return param(default, "k values", "stimulation levels k: 0:10, 0:10:2 or 0,1,2,5; k = 0 is the reference",
                 kind="text", cli="--k", encode=format_k_values, decode=parse_k_values, group=STIMULATION)


@dataclass(frozen=True)
class PsychometricSettings:
    """What the curves and the small-multiples grid share: the stimulus (γ grid, noise, images) and the fit.

    A config lists its own stimulation fields first (forms and `wna run --help` show them first), so it
    inherits them from a base of their own placed after this one: dataclass fields follow the reversed MRO.
    """

    gammas: tuple[float, ...] = param(DEFAULT_GAMMAS, "γ points in [0, 1]", "points of the γ grid, evenly spaced "
                                      "from 0 (pure noise) to 1 (clean image)", kind="int", encode=len,
                                      decode=noise_to_image_gammas, low=2, high=201, group=STIMULUS)
    repeats: int = param(1, "Noise samples per image", "fresh noise samples of every image at each (k, γ): a point "
                         "has images × this many trials; the bootstrap resamples images with all their trials",
                         low=1, high=1000, group=STIMULUS)
    seed: int = param(0, "Seed", "seed of the counter-based noise", low=0, high=2**31 - 1, group=STIMULUS)
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise", cli="--noise", group=STIMULUS,
                               help="noise source mixed with the images: uniform (the paper's) or gaussian")
    noise_index: str = param("value", "Noise blocks", "how a cell finds its noise: by its values (target, stimulation, "
                             "k, γ, sample: a condition gets the same noise in any run, grid or k list) or by its "
                             "list positions (how wna-gui 0.1 drew it; its sessions keep that)",
                             choices=NOISE_INDEX_LABELS, group=STIMULUS)
    dataset: str = param("bundled", "Images", "where the target's images come from", choices=DATASET_LABELS,
                         group=STIMULUS)
    data_dir: str = param("", "Data folder", DATA_DIR_HELP,
                          kind="text", role="runtime", group=STIMULUS)
    sigmoid: str = param("logistic", "Sigmoid F", SIGMOID_HELP, choices={name: name for name in SIGMOIDS}, role="fit",
                         group=FIT)
    guess: str = param("free", "Guess rate", GUESS_HELP, choices=GUESS_LABELS, role="fit", group=FIT)
    lapse: str = param("bounded", "Lapse rate", LAPSE_HELP, choices=LAPSE_LABELS, role="fit", group=FIT)
    width_across_k: str = param("shared", "Width across k", WIDTH_SHARING_HELP, choices=SHARING_LABELS, role="fit",
                                group=FIT)
    guess_across_k: str = param("shared", "Guess across k", GUESS_SHARING_HELP, choices=SHARING_LABELS, role="fit",
                                group=FIT)
    lapse_across_k: str = param("shared", "Lapse across k", LAPSE_SHARING_HELP, choices=SHARING_LABELS, role="fit",
                                group=FIT)
    performance_level: float = param(0.5, "Performance level", LEVEL_HELP, kind="float", low=0.01, high=0.99, step=0.05,
                                     decimals=3, role="fit", group=FIT)
    batch_size: int = param(2100, "Batch size", "stimuli per forward pass; whole γ points are grouped up to it",
                            low=1, high=1_000_000, step=100, role="runtime", group=STIMULUS)


def _check_shared_settings(config) -> None:
    """Checks of the settings the curves and the grid share."""
    if config.repeats < 1:
        raise ValueError(f"noise samples per image must be at least 1, got {config.repeats}")
    if config.noise_index not in NOISE_INDEXING:
        raise ValueError(f"noise blocks must be {' or '.join(NOISE_INDEXING)}, got {config.noise_index!r}")
    for name in ("width_across_k", "guess_across_k", "lapse_across_k"):
        if getattr(config, name) not in SHARING_MODES:
            raise ValueError(f"{name.replace('_', ' ')} must be {' or '.join(SHARING_MODES)}, "
                             f"got {getattr(config, name)!r}")
    if not 0 < config.performance_level < 1:
        raise ValueError(f"the performance level must lie strictly between 0 and 1, got {config.performance_level}")


@dataclass(frozen=True)
class _CurveStimulation:
    target: int = param(0, "Target class", "class index or name", options=class_options, group=STIMULATION)
    layer: str | None = param(None, "Layer", "layer whose biases are stimulated, e.g. fc1 (none: unstimulated)",
                              options=_layer_options, optional=True, group=STIMULATION)
    # None: the layer's default (see default_lambda); a run records the λ it used.
    lambda_: float | None = param(None, "λ", "b ← b ± λ·k·ā (default: the paper's, 0.01 fully connected / 0.1 "
                                  "first conv / 1 deeper conv)", kind="float", key="lambda", optional=True,
                                  low=0.0001, high=1000.0, step=0.01, decimals=4, group=STIMULATION)
    k_values: tuple[float, ...] = k_values_param()
    sign: int = param(1, "Sign", "excite (raise biases) or inhibit (lower them)", choices=SIGNS, tokens=SIGN_WORDS,
                      group=STIMULATION)


@dataclass(frozen=True)
class PsychometricConfig(RunConfig, PsychometricSettings, _CurveStimulation):
    n_boot: int = param(200, "Bootstrap", "bootstrap resamples of the images (each with all its trials, at every k "
                        "and γ) for 95% intervals and paired shifts (0: none)",
                        cli="--boot", low=0, high=100_000, step=50, role="fit", group=FIT)
    gof_samples: int = param(200, "GoF samples", "data sets simulated from the fit for the deviance's Monte-Carlo "
                             "p-value (0: none); a small p says the model misses the curves' shape",
                             low=0, high=100_000, step=50, role="fit", group=FIT)
    lr_samples: int = param(200, "LR-test samples", "data sets simulated under each null hypothesis for the "
                            "likelihood-ratio tests' Monte-Carlo p-values (0: χ² p-values only)",
                            low=0, high=100_000, step=50, role="fit", group=FIT)
    snapshot_seconds: float = 0.2  # how often a run shows progress; not a result setting

    def __post_init__(self) -> None:
        k_values = tuple(float(k) for k in self.k_values)
        gammas = tuple(float(g) for g in self.gammas)
        # Normalised here so configs compare equal however they were written.
        object.__setattr__(self, "k_values", k_values)
        object.__setattr__(self, "gammas", gammas)
        object.__setattr__(self, "performance_level", float(self.performance_level))
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
        if self.n_boot < 0 or self.gof_samples < 0 or self.lr_samples < 0:
            raise ValueError("n_boot, gof_samples and lr_samples must be non-negative")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        _check_shared_settings(self)

    @property
    def conditions(self) -> tuple[float, ...]:
        """The k values measured: ``k_values``, or only k = 0 when no layer is stimulated."""
        return self.k_values if self.layer is not None else (0.0,)

    @property
    def shared(self) -> tuple[str, ...]:
        """The parameters the fit shares across k (those fitted: a guess fixed at chance is common anyway)."""
        return tuple(name for name in SHAREABLE if getattr(self, f"{name}_across_k") == "shared")

    def inactive_params(self) -> tuple[str, ...]:
        """Settings that mean nothing with the others as they are: k, sign and λ without a stimulated layer;
        sharing and the tests with a single curve; the guess's sharing with the guess fixed at chance."""
        inactive = ["lambda_", "k_values", "sign"] if self.layer is None else []
        if len(self.conditions) == 1:
            inactive += ["width_across_k", "guess_across_k", "lapse_across_k", "lr_samples"]
        elif self.guess == "chance":
            inactive.append("guess_across_k")
        return tuple(inactive)

    @property
    def n_cells(self) -> int:
        """Cells to measure: (k, γ, noise sample) triples, each every image once."""
        return len(self.conditions) * len(self.gammas) * self.repeats


def condition_key(target: int, layer: str | None, sign: int, k: float, gamma: float, repeat: int) -> str:
    """The values that choose a cell's noise (see the module doc): stimulation only where it is applied."""
    stimulation = ("unstimulated" if layer is None or k == 0
                   else f"layer={layer}|sign={'+' if sign > 0 else '-'}|k={k:.10g}")
    return f"psychometric|target={int(target)}|{stimulation}|gamma={gamma:.10g}|repeat={int(repeat)}"


def noise_block(config: PsychometricConfig, condition: int, gamma_index: int, repeat: int = 0) -> int:
    """The noise block of cell (condition index, γ index, repeat) of a run with ``config``.

    By value: the first 62 bits of SHA-256 of :func:`condition_key`. By position
    (wna-gui 0.1): ``(repeat · n_k + condition) · n_γ + γ index``.
    """
    if config.noise_index == "position":
        return (repeat * len(config.conditions) + condition) * len(config.gammas) + gamma_index
    key = condition_key(config.target, config.layer, config.sign, config.conditions[condition],
                        config.gammas[gamma_index], repeat)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 2


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


def _bias(layer: nn.Module) -> torch.Tensor:
    """The layer's bias tensor (a module's ``bias`` may be None, or absent)."""
    bias = getattr(layer, "bias", None)
    if not isinstance(bias, torch.Tensor):
        raise ValueError(f"layer {type(layer).__name__} has no bias tensor to stimulate")
    return bias


def default_lambda(model: LoadedModel, layer: str) -> float:
    """The paper's λ: 0.01 for fully connected layers, 0.1 for the first conv layer, 1 for deeper ones."""
    module = _layer_with_bias(model, layer)
    if not isinstance(module, nn.modules.conv._ConvNd):
        return LAMBDA_FULLY_CONNECTED
    first_conv = next(name for name, m in model.net.named_modules() if isinstance(m, nn.modules.conv._ConvNd))
    return LAMBDA_FIRST_CONV if layer == first_conv else LAMBDA_DEEPER_CONV


@dataclass
class PsychometricState(RunState):
    """Everything needed to continue a run exactly: per cell, what the model answered; then the fits."""

    config: PsychometricConfig
    class_names: tuple[str, ...]
    n_images: int
    images_sha256: str  # of the target's images: a resumed run must see the same ones
    correct: np.ndarray  # (n_k, repeats, n_images, n_γ) bool: image i classified as the target
    responses: np.ndarray  # (n_k, n_γ, K) counts per predicted class, over the repeats
    done: np.ndarray  # (n_k, repeats, n_γ) bool
    boot_params: np.ndarray  # (n_k, n_boot, 4) threshold, width, guess, lapse; NaN until fitted
    mean_activation: np.ndarray | None = None  # ā_m per map (conv: normalised to max 1); None until computed
    curve_fits: list[PsychometricFit | None] = field(default_factory=list)  # each curve alone, once complete
    fit_errors: list[str | None] = field(default_factory=list)  # why a complete curve has no fit
    fits: list[PsychometricFit | None] = field(default_factory=list)  # under the model, once all are measured
    model: dict | None = None  # the model fitted to all curves, its fit and tests (None until then)
    noise_device: str = ""  # device type whose generator drew the noise ("cpu" / "cuda")
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n_k = len(self.config.conditions)
        self.curve_fits = self.curve_fits or [None] * n_k
        self.fit_errors = self.fit_errors or [None] * n_k
        self.fits = self.fits or [None] * n_k

    @classmethod
    def unmeasured(cls, config: PsychometricConfig, class_names: tuple[str, ...], n_images: int, images_sha256: str,
                   mean_activation: np.ndarray | None = None) -> "PsychometricState":
        """A state with nothing measured yet and nothing fitted."""
        n_k, n_gamma = len(config.conditions), len(config.gammas)
        return cls(config, class_names, n_images, images_sha256,
                   correct=np.zeros((n_k, config.repeats, n_images, n_gamma), dtype=bool),
                   responses=np.zeros((n_k, n_gamma, len(class_names)), dtype=np.int64),
                   done=np.zeros((n_k, config.repeats, n_gamma), dtype=bool),
                   boot_params=np.full((n_k, config.n_boot, 4), np.nan), mean_activation=mean_activation)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def lambda_(self) -> float | None:
        """λ in use: a new run records its layer's default in the config when the config leaves it open."""
        return self.config.lambda_

    @property
    def guess_value(self) -> float | None:
        """The guess rate as the fitter takes it: None (fitted) or 1/K."""
        return 1.0 / self.n_classes if self.config.guess == "chance" else None

    @property
    def boot_thresholds(self) -> np.ndarray:
        """(n_k, n_boot) bootstrap thresholds (NaN where not fitted)."""
        return self.boot_params[..., 0]

    @property
    def cells_done(self) -> int:
        return int(self.done.sum())

    # Progress is counted in stimuli: one image in one (k, γ, repeat) cell.
    @property
    def progress_done(self) -> int:
        return self.cells_done * self.n_images

    @property
    def progress_total(self) -> int:
        return self.config.n_cells * self.n_images

    @staticmethod
    def new_run_text(config: PsychometricConfig) -> str:
        curves = len(config.conditions)
        samples = f" × {config.repeats} noise samples" if config.repeats > 1 else ""
        together = " each, then fits them together" if curves > 1 else ", then fits it"
        return (f"Start measures {curves} curve{'s' if curves > 1 else ''} × {len(config.gammas)} γ points"
                f"{samples}{together}.")

    def refitted(self, config: PsychometricConfig) -> "PsychometricState":
        """The measurements of this run under ``config``'s fit settings, to be fitted anew."""
        unfitted = PsychometricState.unmeasured(config, self.class_names, self.n_images, self.images_sha256,
                                                self.mean_activation)
        return replace(unfitted, correct=self.correct.copy(), responses=self.responses.copy(), done=self.done.copy(),
                       noise_device=self.noise_device, seconds=self.seconds)

    @property
    def finished(self) -> bool:
        return bool(self.done.all()) and self.model is not None

    def n_correct(self) -> np.ndarray:
        """(n_k, n_γ) trials classified as the target (0 where not measured)."""
        return self.correct.sum(axis=(1, 2))

    def trials(self) -> np.ndarray:
        """(n_k, n_γ) trials measured: images × noise samples done."""
        return self.done.sum(axis=1) * self.n_images

    def fraction_correct(self, n_correct: np.ndarray | None = None, trials: np.ndarray | None = None) -> np.ndarray:
        """(n_k, n_γ), NaN where not yet measured (``n_correct``/``trials``: the counts, if already made)."""
        n_correct = self.n_correct() if n_correct is None else n_correct
        trials = self.trials() if trials is None else trials
        return np.where(trials > 0, n_correct / np.maximum(trials, 1), np.nan)

    def item_counts(self) -> np.ndarray:
        """(n_images, n_k, n_γ): per image, how often it was classified as the target over its noise samples."""
        return np.moveaxis(self.correct.sum(axis=1), 1, 0)

    # --- fitting ---

    def fit_complete_curves(self) -> None:
        """Fit each complete curve alone (once), then, when every curve is measured, all under the model."""
        cfg = self.config
        for condition in range(len(cfg.conditions)):
            if (not self.done[condition].all() or self.curve_fits[condition] is not None
                    or self.fit_errors[condition] is not None):
                continue
            try:
                self.curve_fits[condition] = fit_psychometric(
                    np.asarray(cfg.gammas), self.n_correct()[condition], self.trials()[condition],
                    sigmoid=cfg.sigmoid, guess=self.guess_value, lapse=cfg.lapse)
            except ValueError as exc:  # e.g. no image ever classified as the target
                self.fit_errors[condition] = str(exc)
        if self.done.all() and self.model is None:
            self.analyse()

    def analyse(self) -> None:
        """Fit every fittable curve together under the config's model, with bootstrap, GoF and tests."""
        cfg = self.config
        fitted = [c for c, fit in enumerate(self.curve_fits) if fit is not None]
        if not fitted:
            self.model = {"conditions": [], "error": "no curve could be fitted"}
            return
        reference = cfg.conditions.index(0.0) if 0.0 in cfg.conditions else None
        try:
            analysis = analyse_conditions(
                np.asarray(cfg.gammas), self.item_counts()[:, fitted], cfg.repeats, sigmoid=cfg.sigmoid,
                guess=self.guess_value, lapse=cfg.lapse, shared=cfg.shared, n_boot=cfg.n_boot,
                gof_samples=cfg.gof_samples, lr_samples=cfg.lr_samples, seed=cfg.seed,
                reference=fitted.index(reference) if reference in fitted else None,
                curve_fits=[self.curve_fits[c] for c in fitted])
        except ValueError as exc:
            self.model = {"conditions": fitted, "error": str(exc)}
            return
        for index, condition in enumerate(fitted):
            self.fits[condition] = analysis.fits[index]
            self.boot_params[condition] = analysis.boot[index]
        self.model = {
            "conditions": fitted, "shared": list(analysis.shared), "n_params": analysis.n_params,
            "n_points": analysis.n_points, "deviance": analysis.deviance, "p_value": analysis.p_value,
            "gof_samples": cfg.gof_samples, "guess_fixed": self.guess_value,
            "lr_tests": [{**test.to_dict(), "conditions": [fitted[c] for c in test.conditions]}
                         for test in analysis.lr_tests],
        }

    # --- what is shown ---

    def snapshot(self, samples_per_second: float = 0.0) -> PsychometricSnapshot:
        """An immutable view for plots and progress bars; ``samples_per_second``: of the run measuring it, if any.

        It needs neither the model nor the images, so a saved run shows anywhere.
        """
        cfg = self.config
        n_k = len(cfg.conditions)
        model = self.model if self.model is not None and "error" not in self.model else None
        fits = tuple(self.fits) if model is not None else tuple(self.curve_fits)
        boot = self.boot_params if model is not None else np.full((n_k, 0, 4), np.nan)
        shared = tuple(model.get("shared", ())) if model is not None else ()
        gammas = np.asarray(cfg.gammas)
        reference = cfg.conditions.index(0.0) if 0.0 in cfg.conditions else None
        reference_fit = None if reference is None else fits[reference]

        thresholds = np.array([np.nan if fit is None else fit.threshold for fit in fits])
        performance, status = performance_threshold(
            cfg.sigmoid, cfg.performance_level, thresholds,
            *(np.array([np.nan if fit is None else getattr(fit, name) for fit in fits])
              for name in ("width", "guess", "lapse")))
        boot_performance = performance_threshold(cfg.sigmoid, cfg.performance_level, *np.moveaxis(boot, -1, 0))[0]
        performance_intervals = np.full((n_k, 2), np.nan)
        shifts, intervals = np.full(n_k, np.nan), np.full((n_k, 2), np.nan)
        performance_shifts, performance_shift_intervals = np.full(n_k, np.nan), np.full((n_k, 2), np.nan)
        has_boot = boot.shape[1] > 0
        for condition, fit in enumerate(fits):
            if fit is None:
                continue
            if has_boot and not np.isnan(boot_performance[condition]).any():
                performance_intervals[condition] = _percentile_interval(boot_performance[condition])
            if reference is None or reference_fit is None:
                continue
            shifts[condition] = fit.threshold - reference_fit.threshold
            with np.errstate(invalid="ignore"):
                performance_shifts[condition] = performance[condition] - performance[reference]
            if not has_boot:
                continue
            interval = shift_interval(boot[condition, :, 0], boot[reference, :, 0])
            if interval is not None:
                intervals[condition] = interval
            interval = shift_interval(boot_performance[condition], boot_performance[reference])
            if interval is not None:
                performance_shift_intervals[condition] = interval
        # A fit made by wna-gui 0.1 searched the guess rate below 0.5: its flags say where it was stopped.
        guess_limit = LEGACY_GUESS_MAX if model is not None and model.get("legacy") else None
        flags = tuple(() if fit is None else bound_flags(fit, gammas, self.guess_value, cfg.lapse, shared,
                                                         guess_limit=guess_limit) for fit in fits)
        n_correct, trials = self.n_correct(), self.trials()
        return PsychometricSnapshot(
            target=cfg.target,
            class_names=tuple(self.class_names),
            layer=cfg.layer,
            lambda_=self.lambda_,
            sign=cfg.sign,
            gammas=gammas,
            k_values=np.asarray(cfg.conditions),
            n_images=self.n_images,
            repeats=cfg.repeats,
            fraction_correct=self.fraction_correct(n_correct, trials),
            n_correct=n_correct,
            trials=trials,
            responses=self.responses.copy(),
            fits=fits,
            fit_errors=tuple(self.fit_errors),
            threshold_shifts=shifts,
            shift_intervals=intervals,
            sigmoid=cfg.sigmoid,
            performance_level=cfg.performance_level,
            performance_thresholds=performance,
            performance_status=status,
            performance_intervals=performance_intervals,
            performance_shifts=performance_shifts,
            performance_shift_intervals=performance_shift_intervals,
            flags=flags,
            preliminary=self.model is None and any(fit is not None for fit in fits),
            fit_model=_model_summary(self, model),
            lr_tests=tuple(LRTest.from_dict(test) for test in (model or {}).get("lr_tests", ())),
            conditions_done=sum(f is not None or e is not None for f, e in zip(self.curve_fits, self.fit_errors)),
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
            "curve_fits": [None if fit is None else fit.to_dict() for fit in self.curve_fits],
            "fit_errors": list(self.fit_errors),
            "fits": [None if fit is None else fit.to_dict() for fit in self.fits],
            "model": self.model,
            "noise_device": self.noise_device,
            "seconds": self.seconds,
        }
        arrays = {
            **config_arrays(self.config),
            "correct": self.correct.astype(np.uint8),
            "responses": self.responses,
            "done": self.done.astype(np.uint8),
            "boot_params": self.boot_params,
            "results/fraction_correct": self.fraction_correct(),
        }
        if self.mean_activation is not None:
            arrays["mean_activation"] = self.mean_activation
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "PsychometricState":
        def fits(key):
            return [None if fit is None else PsychometricFit.from_dict(fit) for fit in meta[key]]

        return cls(
            config=PsychometricConfig.from_dict(meta["config"], arrays),
            class_names=tuple(meta["class_names"]),
            n_images=int(meta["n_images"]),
            images_sha256=meta["images_sha256"],
            mean_activation=arrays.get("mean_activation"),
            correct=arrays["correct"].astype(bool),
            responses=arrays["responses"].astype(np.int64),
            done=arrays["done"].astype(bool),
            curve_fits=fits("curve_fits"),
            fit_errors=list(meta["fit_errors"]),
            fits=fits("fits"),
            boot_params=arrays["boot_params"].astype(float),
            model=meta.get("model"),
            noise_device=meta.get("noise_device", ""),
            seconds=float(meta.get("seconds", 0.0)),
        )


def _percentile_interval(samples) -> tuple[float, float]:
    from .psyfit import _interval

    return _interval(samples)


def _model_summary(state: PsychometricState, model: dict | None) -> dict | None:
    """What the table's model line says: the model, its size and goodness of fit (None before it is fitted)."""
    if state.model is not None and "error" in state.model:
        return {"error": state.model["error"]}
    if model is None:
        return None
    return {key: model.get(key) for key in ("shared", "n_params", "n_points", "deviance", "p_value", "gof_samples",
                                            "guess_fixed", "legacy")} | {"conditions": len(model.get("conditions", ()))}


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
    fits: tuple[PsychometricFit | None, ...]  # per k: under the model, or each curve alone while preliminary
    fit_errors: tuple[str | None, ...]
    threshold_shifts: np.ndarray  # (n_k,) threshold(k) − threshold(k = 0), NaN where unknown
    shift_intervals: np.ndarray  # (n_k, 2) paired-bootstrap 95% interval, NaN where unknown
    conditions_done: int  # curves complete and fitted (or failed to fit)
    cells_done: int
    cells_total: int
    samples_per_second: float  # stimuli per second over the active run (pauses excluded); 0 when not running
    seconds: float
    finished: bool
    performance_thresholds: np.ndarray  # (n_k,) γ where ψ = level; −inf / +inf: see the status
    performance_status: np.ndarray  # (n_k,) psyfit REACHED, FLOOR_ABOVE, CEILING_BELOW
    performance_intervals: np.ndarray  # (n_k, 2), NaN where unknown
    performance_shifts: np.ndarray  # (n_k,) vs k = 0
    performance_shift_intervals: np.ndarray  # (n_k, 2), NaN where unknown
    repeats: int = 1  # noise samples per image at each point
    sigmoid: str = "logistic"
    performance_level: float = 0.5
    flags: tuple[tuple[BoundFlag, ...], ...] = ()  # per k: estimates at a bound of the search
    preliminary: bool = False  # the fits are each curve's alone; the model's fit comes when all are measured
    fit_model: dict | None = None  # shared, n_params, n_points, deviance, p_value; {"error": …} when it failed
    lr_tests: tuple[LRTest, ...] = ()

    @property
    def target_name(self) -> str:
        return self.class_names[self.target]

    # A sample is one stimulus: one image in one (k, γ, repeat) cell.
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
        return self._in_range(self.thresholds)

    @property
    def performance_in_range(self) -> np.ndarray:
        """Per k, whether the performance threshold lies within the measured γ range."""
        return self._in_range(self.performance_thresholds)

    def _in_range(self, values) -> np.ndarray:
        from .censoring import in_grid

        return in_grid(values, self.gammas[0], self.gammas[-1])

    @property
    def reference(self) -> int | None:
        """Index of k = 0, the reference of shifts and tests."""
        zero = np.flatnonzero(self.k_values == 0)
        return int(zero[0]) if zero.size else None

    def warnings(self, condition: int) -> tuple[BoundFlag, ...]:
        """The condition's flags that constrain its fit (not the notes of a rate at its natural 0)."""
        return tuple(flag for flag in (self.flags[condition] if self.flags else ()) if flag.severity != NOTE)

    def test_against_reference(self, condition: int) -> LRTest | None:
        """The likelihood-ratio test of this k's threshold against k = 0's, if made."""
        return next((test for test in self.lr_tests if test.name == "pair" and test.conditions[-1] == condition),
                    None)

    def test_named(self, name: str) -> LRTest | None:
        return next((test for test in self.lr_tests if test.name == name), None)


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 kept the λ in use beside the config (whose λ could be None) and every noise field of either
    kind; version 2 records the λ in use in the config and only the noise source's own parameters."""
    from .noise import noise_from_dict

    config = dict(meta["config"])
    if meta.get("lambda") is not None:
        config["lambda"] = meta["lambda"]
    config["noise"] = noise_from_dict(config.get("noise", {})).to_dict()
    return {**{k: v for k, v in meta.items() if k != "lambda"}, "config": config}, arrays


def _migrate_v2(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 2 had one noise sample per image, noise blocks by list position, per-curve fits only (with
    per-curve bootstrap thresholds) and no tests. Version 3 adds the noise samples axis, records the noise
    rule and the fit model in the config, keeps each curve's own fit beside the model's, and stores every
    bootstrap parameter. A finished version-2 run keeps its fits as a per-k model fitted by wna-gui 0.1."""
    config = {**meta["config"], "repeats": 1, "noise_index": "position", "width_across_k": "per-k",
              "guess_across_k": "per-k", "lapse_across_k": "per-k", "performance_level": 0.5, "lr_samples": 0}
    arrays = dict(arrays)
    arrays["correct"] = np.asarray(arrays["correct"])[:, None]
    arrays["done"] = np.asarray(arrays["done"])[:, None]
    thresholds = np.asarray(arrays.pop("boot_thresholds"), dtype=float)
    boot = np.full((*thresholds.shape, 4), np.nan)
    boot[..., 0] = thresholds
    arrays["boot_params"] = boot
    fits, errors = meta["fits"], meta["fit_errors"]
    curve_fits = [None if fit is None else {**fit, "threshold_ci": None, "width_ci": None, "p_value": None}
                  for fit in fits]
    finished = bool(np.all(arrays["done"])) and all(f is not None or e is not None for f, e in zip(fits, errors))
    model = None
    if finished:
        fitted = [c for c, fit in enumerate(fits) if fit is not None]
        per_curve = 3 + (config.get("guess") == "free")  # threshold, width, lapse (always fitted), guess if free
        model = {"conditions": fitted, "shared": [], "n_params": per_curve * len(fitted),
                 "n_points": sum(fits[c]["n_levels"] for c in fitted),
                 "deviance": float(sum(fits[c]["deviance"] for c in fitted)), "p_value": None,
                 "gof_samples": config.get("gof_samples", 0), "lr_tests": [],
                 "guess_fixed": 1.0 / len(meta["class_names"]) if config.get("guess") == "chance" else None,
                 "legacy": "fitted curve by curve by wna-gui 0.1, without tests"}
    migrated = {**{k: v for k, v in meta.items() if k not in ("fits",)}, "config": config, "curve_fits": curve_fits,
                "fits": fits if finished else [None] * len(fits), "model": model}
    return migrated, arrays


def target_images(model: LoadedModel, config: PsychometricConfig, images: ImageSet | None = None) -> torch.Tensor:
    """The target class's images the run shows (from ``images``, else the config's dataset), checked."""
    if config.target >= model.n_classes:
        raise ValueError(f"target class {config.target} is out of range: the model has {model.n_classes} classes")
    image_set = images_for_model(images if images is not None else
                                  load_dataset(config.dataset, config.data_dir or None), model)
    chosen = image_set.of_class(config.target)
    if len(chosen) == 0:
        raise ValueError(f"{image_set.name} has no images of class {model.class_names[config.target]!r}")
    check_fits_model_input(image_set, model)  # the chosen images have the set's shape
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
            if state.images_sha256 != images_sha256(chosen):
                raise EngineError("these target images differ from the ones the session was measured on")
            if config.layer is not None:
                try:
                    _layer_with_bias(model, config.layer)
                except ValueError as exc:
                    raise EngineError(f"the session stimulated layer {config.layer!r}, which this model cannot: "
                                      f"{exc}") from exc
        super().__init__(model, state=state, device=device, control=control)
        self._images = chosen.to(self.device)
        self._stimulated = None if self.config.layer is None else self.runtime.layer(self.config.layer)
        if self._stimulated is not None:
            self._original_bias = _bias(self._stimulated).detach().clone()
            if state.mean_activation is None:
                state.mean_activation = self._mean_activation(self._stimulated)

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
        return PsychometricState.unmeasured(config, tuple(model.class_names), len(chosen), images_sha256(chosen))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        context = f"with {self.config.layer} stimulated" if self.config.layer else ""
        return self.runtime.logits(x, self.config.batch_size, context)

    def _mean_activation(self, stimulated: nn.Module) -> np.ndarray:
        """ā_m: mean ReLU(output) of each map of the stimulated layer over the clean target images."""
        layer, n_maps = self.config.layer, _bias(stimulated).numel()
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

        handle = stimulated.register_forward_hook(accumulate)
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
            _bias(self._stimulated).copy_(self._original_bias + offset)

    def stimuli(self, gamma_index: int, condition: int = 0, repeat: int = 0) -> torch.Tensor:
        """The exact stimuli of one cell, γ·s + (1 − γ)·n for every target image, in [0, 1] pixels."""
        cfg = self.config
        gamma = cfg.gammas[gamma_index]
        noise = cfg.noise.block(cfg.seed, noise_block(cfg, condition, gamma_index, repeat), len(self._images),
                                tuple(self.model.input_spec.shape), self.device)
        return noise.mul_(1.0 - gamma).add_(self._images, alpha=gamma)

    def prepare(self) -> None:
        super().prepare()
        self.state.fit_complete_curves()

    def pending(self) -> Iterator[tuple[int, list[int], int]]:
        """Pending cells as (condition, γ indices, noise sample): whole cells per unit, conditions in order."""
        per_batch = max(1, self.config.batch_size // len(self._images))
        for condition in range(len(self.config.conditions)):
            for repeat in range(self.config.repeats):
                pending = np.flatnonzero(~self.state.done[condition, repeat]).tolist()
                for start in range(0, len(pending), per_batch):
                    yield condition, pending[start:start + per_batch], repeat

    def run_unit(self, unit: tuple) -> None:
        """Measure the given γ cells of one condition and noise sample (0 when the unit names none)."""
        condition, gamma_indices, *rest = unit
        repeat = rest[0] if rest else 0
        state, cfg = self.state, self.config
        self._stimulate(condition)
        x = torch.cat([self.stimuli(j, condition, repeat) for j in gamma_indices])
        with torch.inference_mode():
            predicted = self._forward(x).argmax(1)
        predicted = predicted.reshape(len(gamma_indices), state.n_images)
        offsets = torch.arange(len(gamma_indices), device=predicted.device)[:, None] * state.n_classes
        counts = torch.bincount((predicted + offsets).flatten(), minlength=len(gamma_indices) * state.n_classes)
        state.responses[condition, gamma_indices] += counts.reshape(len(gamma_indices), -1).cpu().numpy()
        state.correct[condition, repeat][:, gamma_indices] = (predicted == cfg.target).T.cpu().numpy()
        state.done[condition, repeat, gamma_indices] = True

    def after_unit(self) -> None:
        self.state.fit_complete_curves()

    def snapshot(self) -> PsychometricSnapshot:
        return self.state.snapshot(self.rate)


def run_psychometric(model: LoadedModel, config: PsychometricConfig, images: ImageSet | None = None,
                     device: str | None = None) -> PsychometricSnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return PsychometricExperiment(model, config, images=images, device=device).run_to_end()


# --- exports: one writer per artefact, shared by `wna export` and File > Export ---

def _measured(snapshot: PsychometricSnapshot) -> bool:
    return snapshot.cells_done > 0


ARTEFACTS = (
    Artefact("psychometric_fits", "Fit table: thresholds, widths, intervals, shifts", (".csv",),
             lambda snapshot, path: write_records(psychometric_fit_records(snapshot), path), available=_measured),
    Artefact("psychometric_data", "Curve data: targets / trials per k and γ", (".csv", ".npy"),
             lambda snapshot, path: write_records(psychometric_data_records(snapshot), path), available=_measured),
    Artefact("psychometric_curves", "Psychometric curves plot", (".png", ".pdf", ".svg"),
             figure="wna_gui.figures.psychometric:save_curves_plot",
             available=_measured),
    Artefact("psychometric_tests", "Likelihood-ratio tests of the thresholds", (".csv",),
             lambda snapshot, path: write_records(psychometric_test_records(snapshot), path),
             available=lambda snapshot: bool(snapshot.lr_tests)),
)


# --- `wna info` and `wna run` text ---

def _numbers(values) -> list:  # JSON has no NaN or infinity
    return [None if not np.isfinite(v) else float(v) for v in values]


def _intervals(values) -> list:
    return [None if np.isnan(pair).any() else _numbers(pair) for pair in np.asarray(values, dtype=float)]


PERFORMANCE_STATUS_WORDS = {0: "reached", -1: "floor above level", 1: "never reaches level"}


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
        # Added in record version 3.
        "noise_samples_per_image": snapshot.repeats,
        "trials_per_point": snapshot.n_images * snapshot.repeats,
        "noise_index": state.config.noise_index,
        "threshold_intervals": _intervals([fit.threshold_ci if fit and fit.threshold_ci else (np.nan, np.nan)
                                           for fit in snapshot.fits]),
        "threshold_shift_intervals": _intervals(snapshot.shift_intervals),
        "performance_level": snapshot.performance_level,
        "performance_thresholds": _numbers(snapshot.performance_thresholds),
        "performance_status": [PERFORMANCE_STATUS_WORDS[int(s)] for s in snapshot.performance_status],
        "performance_in_range": [bool(v) for v in snapshot.performance_in_range],
        "performance_intervals": _intervals(snapshot.performance_intervals),
        "performance_shifts": _numbers(snapshot.performance_shifts),
        "performance_shift_intervals": _intervals(snapshot.performance_shift_intervals),
        "width_unit": "ln γ" if snapshot.sigmoid == "weibull" else "γ",
        "flags": [[flag.to_dict() for flag in flags] for flags in snapshot.flags],
        "fit_model": snapshot.fit_model, "fits_preliminary": snapshot.preliminary,
        "lr_tests": [{**test.to_dict(), "conditions": [float(snapshot.k_values[c]) for c in test.conditions],
                      "condition_indices": list(test.conditions)} for test in snapshot.lr_tests],
    }


def describe(entry: dict) -> list[str]:
    stimulation = stimulation_text(entry["layer"], entry["sign"], entry["lambda"])
    progress = "" if entry["finished"] else f" (unfinished: {entry['cells_done']} of {entry['cells_total']} cells)"
    samples = entry.get("noise_samples_per_image", 1)
    lines = [f"target {entry['target_name']}, {stimulation}, {len(entry['k_values'])} k × "
             f"{len(entry['gammas'])} γ × {entry['images_per_gamma']} images"
             f"{f' × {samples} noise samples' if samples > 1 else ''}{progress}"]
    level = entry.get("performance_level", 0.5)
    for index, row in enumerate(entry["table"]):
        if not any(row[2:]):
            lines.append(f"  k = {row[0]:>4}: {row[1]}")
            continue
        shift = f", shift {row[2]}" if row[2] and row[2] != "reference" else ""
        performance = f"; γ at P = {level:.2f}: {row[3]}" + (f", shift {row[4]}" if row[4] and row[4] != "reference"
                                                           else "")
        flags = entry["flags"][index] if entry.get("flags") else []
        warned = [flag["label"] for flag in flags if flag["severity"] != NOTE]
        lines.append(f"  k = {row[0]:>4}: threshold {row[1]}{shift}{performance}"
                     + (f"  ⚠ {', '.join(warned)}" if warned else ""))
    return lines


def result_warnings(snapshot: PsychometricSnapshot) -> list[str]:
    """Fits held by a limit of their search, and threshold intervals reaching past the γ range measured (a γ
    below 0 or above 1 is no mixture at all)."""
    lines = []
    low, high = float(snapshot.gammas[0]), float(snapshot.gammas[-1])
    for index, k in enumerate(snapshot.k_values):
        fit = snapshot.fits[index] if index < len(snapshot.fits) else None
        if fit is None:
            continue
        held = snapshot.warnings(index)
        if held:
            lines.append(f"k = {k:g}: fit at a bound of its search ({', '.join(flag.label for flag in held)})")
        if fit.threshold_ci is not None and np.all(np.isfinite(fit.threshold_ci)) and \
                (fit.threshold_ci[0] < low or fit.threshold_ci[1] > high):
            lines.append(f"k = {k:g}: threshold interval [{fit.threshold_ci[0]:.3g}, {fit.threshold_ci[1]:.3g}] "
                         f"crosses the γ range measured ({low:g}–{high:g}): an extrapolation")
    return lines


def report(snapshot: PsychometricSnapshot) -> list[str]:
    stimulation = stimulation_text(snapshot.layer, snapshot.sign, snapshot.lambda_)
    samples = f" × {snapshot.repeats} noise samples" if snapshot.repeats > 1 else ""
    lines = [f"{snapshot.cells_done} cells × {snapshot.n_images} images in {snapshot.seconds:.1f} s",
             f"target {snapshot.target_name} · {stimulation} · {snapshot.n_images} images{samples} per γ"]
    lines += model_lines(snapshot)
    lines += psychometric_text_tables(snapshot)
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
    record_version=3,
    migrations={1: _migrate_v1, 2: _migrate_v2},
    summary=summary,
    describe=describe,
    report=report,
    warnings=result_warnings,
)
PsychometricExperiment.spec = EXPERIMENT

__all__ = [
    "EXPERIMENT", "GUESS_MODES", "KIND", "LAPSE_MODES", "NOISE_INDEXING", "SHARING_MODES", "PsychometricConfig",
    "PsychometricExperiment", "PsychometricFit", "PsychometricSnapshot", "PsychometricState", "condition_key",
    "default_lambda", "noise_block", "run_psychometric", "stimulable_layers",
]
