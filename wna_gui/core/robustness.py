"""Robustness lab: accuracy under noise, blur and gradient attacks as psychometric curves, for several models.

Every model (the session's model, plus extra named models: a control, its
fine-tuned, distilled or slept variants, a noisy ResNet…) classifies the same
test images under each distortion at each level of its grid
(core.distortions: Gaussian noise by variance, Gaussian blur by σ, FGSM by η,
IFGSM by ε; attacks use each model's own loss). From the counts:

- accuracy per level with a 95% Wilson interval (the test images are the
  trials; repetitions are averaged per image first) and the spread of the
  repetitions' accuracies;
- a psychometric fit per model and distortion with the level as stimulus
  (core.psyfit): the *error* rate ψ(x) = guess + (1 − guess − lapse)·F(x)
  rises from the clean error (guess) towards 1 − floor accuracy (lapse);
  the threshold is the level at which the fitted accuracy falls halfway from
  the clean accuracy (measured at level 0) to chance 1/K, with a 95%
  bootstrap interval over test images; the same image resamples serve every
  model, so differences between models' thresholds get paired intervals;
- error consistency (Cohen's κ beyond chance agreement, Geirhos et al. 2020,
  core.agreement) between every pair of models at each level: on trials
  (image, repetition) scored right or wrong by each model, κ = (c_obs −
  c_exp)/(1 − c_exp) with c_exp = p₁p₂ + (1 − p₁)(1 − p₂). Noise images are
  identical for every model (one noise stream per repetition); an attack
  perturbs each image against each model's own gradient, so κ there compares
  which *images* each model loses to its own attack.

Repetitions: a deterministic model under blur or an attack gives the same
answer every time, so only its first repetition is measured and it counts
for all. Gaussian noise is drawn afresh per repetition (the same draw for
every model and every variance: common random numbers), and a stochastic
model (noise inside its forward pass) is run afresh per repetition, its
attack gradients averaged over ``eot_draws`` passes (expectation over
transformation). Unit of work: one model × distortion × level × repetition.

Rules a reviewer asks for (docs/science.md): the test images are a seeded,
class-stratified subset (recorded); a model whose clean accuracy is below
twice chance (or the user's floor) is "at chance" and gets no threshold and no
κ; a threshold outside the measured levels is reported as a bound ("> 0.9",
core.censoring); and each attack is also run on logits/T of a distilled model
and as a transfer attack crafted on the session's undefended control: an image
counts as right only if it survives every attack, and "gradient masking
suspected" is flagged when the model's own-gradient attack leaves > 10 points
more accuracy than a variant, or its input gradient is exactly zero on more
than half the images. Each variant is a unit too (model × attack × level).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import torch

from .agreement import kappa_matrix
from .censoring import INSIDE, bound_text, censored_text, censored_value, side
from .control import RunControl
from .data import load_dataset
from .dataset_choices import DATA_DIR_HELP
from .distortions import gaussian_blur, gaussian_noise, ifgsm_step, input_gradient, model_loss, pgd
from .driver import ProgressView
from .experiment import Artefact, Experiment, ExperimentSpec, Requirement
from .images import SUBSET_RULE, dataset_labels, describe_record, images_for_model, images_sha256, stratified_subset
from .models import LoadedModel
from .noise import block_seed
from .params import param
from .records import require_counts, require_flags, require_int, require_shape, require_strings
from .psychometric_report import parse_k_values, write_records
from .psyfit import (
    CEILING_BELOW,
    FLOOR_ABOVE,
    REACHED,
    SIGMOIDS,
    BootstrapSamples,
    PsychometricFit,
    _interval,
    bootstrap_fit,
    bound_flags,
    performance_threshold,
    shift_interval,
)
from .runtime import Runtime
from .state import RunConfig, RunState
from .stats import wilson_interval
from .train import at_chance, chance_limit, correct_answers

KIND = "robustness"
RECORD_VERSION = 2  # 2: stratified image subset, attack variants (temperature, transfer), zero-gradient counts
LEGACY_FIRST_N = "first"  # the subset rule of version-1 runs: the first N test images
PRIMARY = "model"  # the session's own model, always measured first
DISTORTIONS = {"noise": "Gaussian noise", "blur": "Gaussian blur", "fgsm": "FGSM", "ifgsm": "IFGSM"}
LEVEL_NAMES = {"noise": "variance", "blur": "σ (pixels)", "fgsm": "η", "ifgsm": "ε"}
ATTACKS = ("fgsm", "ifgsm")
EXAMPLES = 8  # example images stored per level (the first test images, distorted for the session's model)
STATUS_WORDS = {REACHED: "reached", FLOOR_ABOVE: "below at level 0", CEILING_BELOW: "never reached"}
# Attacks beside each model's own gradient (Carlini & Wagner 2016): on logits/T for a distilled model, and
# crafted on the undefended control and shown to the model (transfer). The strongest is its robustness.
VARIANTS = {"temperature": "on logits/T", "transfer": "transfer from the control"}
MASKING_GAP = 0.10  # plain attack weaker than a variant by more than this (accuracy): masking suspected
ZERO_GRADIENT_SHARE = 0.5  # input gradient exactly zero on more images than this: masking suspected


# --- level grids ---

def parse_levels(text: str) -> tuple[float, ...]:
    """Levels from a list ("0, 0.1, 0.3"), inclusive ranges ("0:4:0.5"), or both; non-negative, increasing."""
    try:
        values = parse_k_values(str(text))
    except ValueError:
        raise ValueError(f"levels must look like 0:4:0.5 or 0, 0.1, 0.3, got {text!r}") from None
    if any(v < 0 for v in values) or any(np.diff(values) <= 0):
        raise ValueError(f"levels must be increasing numbers >= 0, got {text!r}")
    return tuple(float(v) for v in values)


def format_levels(values) -> str:
    """What parse_levels reads back: "start:stop:step" for four or more evenly spaced levels, else a list."""
    values = tuple(float(v) for v in values)
    if len(values) >= 4:
        step = round(values[1] - values[0], 10)
        text = f"{values[0]:.10g}:{values[-1]:.10g}:{step:.10g}"
        try:
            if parse_levels(text) == values:
                return text
        except ValueError:
            pass
    return ", ".join(f"{v:.10g}" for v in values)


def _levels_param(default: str, label: str, help: str):
    return param(parse_levels(default), label, help, kind="text", encode=format_levels, decode=parse_levels,
                 group=GRIDS)


GRIDS = "Distortions and levels"
RUN = "Models and images"
FIT = "Fit: error rate ψ = guess + (1 − guess − lapse)·F(level)"


@dataclass(frozen=True)
class RobustnessConfig(RunConfig):
    distortions: tuple[str, ...] = param(tuple(DISTORTIONS), "Distortions", "which distortions to measure "
                                         "(comma-separated: noise, blur, fgsm, ifgsm)", kind="multi",
                                         choices=DISTORTIONS, group=GRIDS)
    noise_levels: tuple[float, ...] = _levels_param("0, 0.1, 0.3, 0.5, 0.7, 0.9", "Noise variances",
                                                    "variances of the Gaussian noise added to the pixels (then "
                                                    "clipped to [0, 1]); the sleep paper's grid")
    blur_levels: tuple[float, ...] = _levels_param("0:4:0.5", "Blur σ", "widths σ of the Gaussian blur in pixels "
                                                   "(kernel 2⌈2σ⌉+1, replicate padding)")
    fgsm_levels: tuple[float, ...] = _levels_param("0:0.4:0.005", "FGSM η", "step sizes η of x + η·sign(∇ₓ loss), "
                                                   "pixels in [0, 1]")
    ifgsm_levels: tuple[float, ...] = _levels_param("0:0.4:0.025", "IFGSM ε", "radii ε of the L∞ ball of the "
                                                    "iterative attack")
    ifgsm_steps: int = param(20, "IFGSM steps", "signed-gradient steps of the iterative attack, each projected "
                             "back into the ε ball", low=1, high=1000, group=GRIDS)
    ifgsm_step: float = param(0.0, "IFGSM step", "size of each step (0: 2/255, or 2.5·ε/steps where larger, so "
                              "the steps can reach the ball's edge)", low=0.0, high=1.0, step=0.001, decimals=4,
                              group=GRIDS)
    eot_draws: int = param(8, "EOT draws", "forward passes an attack's gradient is averaged over for a "
                           "stochastic model (expectation over its noise)", low=1, high=1000, group=GRIDS)
    repetitions: int = param(3, "Repetitions", "fresh noise draws (and fresh passes of a stochastic model) per "
                             "level; deterministic models under blur or attack are measured once",
                             low=1, high=100, group=RUN)
    seed: int = param(0, "Seed", "seed of the counter-based noise and of stochastic models' passes", low=0,
                      high=2**31 - 1, group=RUN)
    dataset: str = param("bundled", "Images", "test images: the bundled held-out MNIST digits, or a torchvision "
                         "test set from the data folder", choices=dataset_labels("test"), group=RUN)
    data_dir: str = param("", "Data folder", DATA_DIR_HELP,
                          kind="text", role="runtime", group=RUN)
    images: int = param(0, "Test images", "how many of the test images (a seeded, class-stratified subset; 0: "
                        "all)", low=0, high=10_000_000, step=100, group=RUN)
    chance_floor: float = param(0.0, "At-chance floor", "a model whose clean accuracy is below this (or below "
                                "twice chance) is marked at chance: no thresholds, no κ", low=0.0, high=1.0,
                                step=0.05, decimals=3, role="fit", group=FIT)
    sigmoid: str = param("weibull", "Sigmoid F", "shape of the fitted curve; weibull (of the level, F(0) = 0) "
                         "starts exactly at the clean error", choices={name: name for name in SIGMOIDS},
                         role="fit", group=FIT)
    n_boot: int = param(200, "Bootstrap", "resamples of the test images (the same for every model: paired "
                        "differences) for 95% threshold intervals (0: none)", cli="--boot", low=0, high=100_000,
                        step=50, role="fit", group=FIT)
    batch_size: int = param(1000, "Batch size", "images per forward pass", low=1, high=1_000_000, step=100,
                            role="runtime", group=RUN)
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "distortions", tuple(self.distortions))
        for name in ("noise_levels", "blur_levels", "fgsm_levels", "ifgsm_levels"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not self.distortions:
            raise ValueError("choose at least one distortion")
        unknown = [d for d in self.distortions if d not in DISTORTIONS]
        if unknown:
            raise ValueError(f"unknown distortion {unknown[0]!r}; use {', '.join(DISTORTIONS)}")
        for name in self.distortions:
            levels = self.levels(name)
            if len(levels) < 2:
                raise ValueError(f"{DISTORTIONS[name]} needs at least two levels, got {len(levels)}")
            if any(v < 0 or not math.isfinite(v) for v in levels) or any(np.diff(levels) <= 0):
                raise ValueError(f"{DISTORTIONS[name]} levels must be increasing numbers >= 0")
        for name, low in (("ifgsm_steps", 1), ("eot_draws", 1), ("repetitions", 1), ("batch_size", 1),
                          ("seed", 0), ("images", 0), ("n_boot", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name.replace('_', ' ')} must be at least {low}, got {getattr(self, name)}")
        if self.ifgsm_step < 0:
            raise ValueError(f"the IFGSM step must be >= 0 (0: automatic), got {self.ifgsm_step}")
        if self.sigmoid not in SIGMOIDS:
            raise ValueError(f"unknown sigmoid {self.sigmoid!r}; choose one of {', '.join(SIGMOIDS)}")

    def levels(self, distortion: str) -> tuple[float, ...]:
        return getattr(self, f"{distortion}_levels")

    def inactive_params(self) -> tuple[str, ...]:
        out = [f"{d}_levels" for d in DISTORTIONS if d not in self.distortions]
        if "ifgsm" not in self.distortions:
            out += ["ifgsm_steps", "ifgsm_step"]
        if not any(d in ATTACKS for d in self.distortions):
            out.append("eot_draws")
        return tuple(out)


# --- analysis of one model's curve under one distortion ---

@dataclass(frozen=True)
class CurveFit:
    """A model's fitted curve under a distortion: the error-rate fit, its threshold and bootstrap samples."""

    fit: PsychometricFit | None  # of the error rate
    clean: float  # measured accuracy at the lowest level (level 0 in the papers' grids)
    target: float  # accuracy halfway between clean and chance: the threshold's level
    threshold: float  # level at which the fitted accuracy reaches target (±inf: never / already below)
    threshold_ci: tuple[float, float] | None
    status: int  # psyfit REACHED / FLOOR_ABOVE / CEILING_BELOW
    flags: tuple[str, ...] = ()  # estimates at a limit of the search (psyfit.bound_flags labels)
    note: str = ""  # why there is no fit
    boot: np.ndarray | None = None  # (n_boot,) threshold per image resample (paired across models)
    grid: tuple[float, float] = (0.0, math.inf)  # the measured levels' range: outside it a threshold is censored
    at_chance: bool = False  # the chance guard: clean accuracy too low for a threshold

    @property
    def censored(self) -> str:
        """Where the threshold lies against the grid (censoring.side): inside, above, below or none."""
        return side(self.threshold, *self.grid) if self.fit is not None else "none"

    def threshold_text(self, digits: str = ".3g") -> str:
        """"0.31 [0.28, 0.35]" inside the grid, "> 0.9" / "< 0" outside it, else why there is none."""
        if self.at_chance:
            return "at chance: no threshold"
        if self.fit is None:
            return "no fit"
        ci = self.threshold_ci
        interval = f" [{ci[0]:{digits}}, {ci[1]:{digits}}]" if ci is not None and np.isfinite(ci).all() else ""
        return censored_text(self.threshold, *self.grid, digits, interval)

    def accuracy(self, x) -> np.ndarray:
        """The fitted accuracy 1 − ψ(x)."""
        assert self.fit is not None  # asked of fitted curves only
        return 1.0 - self.fit.predict(x)

    def summary(self) -> dict:
        """JSON facts for `wna info --json`: threshold (±inf as "inf"/"-inf"), interval, accuracies, status."""
        inside = self.censored == INSIDE
        return {"threshold": _json_number(self.threshold) if inside else bound_text(self.threshold, *self.grid)
                or None, "fitted_threshold": _json_number(self.threshold),
                "ci": None if self.threshold_ci is None or not inside else [_json_number(v) for v in self.threshold_ci],
                "clean_accuracy": self.clean, "target_accuracy": self.target,
                "status": STATUS_WORDS[self.status] if self.fit is not None else "no fit", "note": self.note,
                "censored": self.censored, "at_chance": self.at_chance, "text": self.threshold_text()}

    def to_dict(self) -> dict:
        return {"fit": None if self.fit is None else self.fit.to_dict(), "clean": self.clean, "target": self.target,
                "threshold": _json_number(self.threshold),
                "threshold_ci": None if self.threshold_ci is None else [_json_number(v) for v in self.threshold_ci],
                "status": self.status, "flags": list(self.flags), "note": self.note,
                "at_chance": self.at_chance}

    @classmethod
    def from_dict(cls, data: dict, boot: np.ndarray | None, levels) -> "CurveFit":
        ci = data.get("threshold_ci")
        return cls(None if data["fit"] is None else PsychometricFit.from_dict(data["fit"]), float(data["clean"]),
                   float(data["target"]), _from_json_number(data["threshold"]),
                   None if ci is None else (_from_json_number(ci[0]), _from_json_number(ci[1])), int(data["status"]),
                   tuple(data.get("flags", ())), data.get("note", ""), boot, (float(levels[0]), float(levels[-1])),
                   bool(data.get("at_chance", False)))


def _json_number(value: float):
    value = float(value)
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _from_json_number(value) -> float:
    return float("nan") if value is None else float(value)


def fit_curve(levels, wrong: np.ndarray, trials: int, chance: float, sigmoid: str, n_boot: int,
              seed: int, chance_floor: float = 0.0) -> CurveFit:
    """Fit the error counts ``wrong`` (images, levels), each out of ``trials``, of one model under one distortion.

    The same ``seed`` and number of images give the same image resamples, so
    the bootstrap thresholds of two models are paired. The target accuracy
    (half-way from the measured clean accuracy to chance) is held at its
    point estimate in the resamples: the interval is that of the level where
    the curve crosses it.
    """
    x = np.asarray(levels, dtype=float)
    grid = (float(x[0]), float(x[-1]))
    correct = 1.0 - wrong.sum(axis=0) / (wrong.shape[0] * trials)
    clean = float(correct[0])
    target = 0.5 * (clean + chance)
    n_classes = round(1.0 / chance)
    if at_chance(clean, n_classes, chance_floor):
        return CurveFit(None, clean, target, float("nan"), None, REACHED, grid=grid, at_chance=True,
                        note=f"at chance: clean accuracy {clean:.3f} < {chance_limit(n_classes, chance_floor):.3f}, "
                             "no threshold")
    try:
        fit, samples = cast("tuple[PsychometricFit, BootstrapSamples]",  # what return_samples=True returns
                            bootstrap_fit(x, wrong, sigmoid=sigmoid, guess=None, lapse="free", n_boot=n_boot,
                                          seed=seed, gof_samples=0, return_samples=True, trials_per_item=trials))
    except ValueError as exc:  # never wrong (or never right) at any level: no curve to fit
        return CurveFit(None, clean, target, float("nan"), None, REACHED, note=str(exc), grid=grid)
    error_level = 1.0 - target
    threshold, status = performance_threshold(sigmoid, error_level, fit.threshold, fit.width, fit.guess, fit.lapse)
    boot, ci = None, None
    if n_boot:
        boot, _ = performance_threshold(sigmoid, error_level, samples.threshold, samples.width, samples.guess,
                                        samples.lapse)
        boot = np.asarray(boot, dtype=float)
        ci = _interval(boot) if not np.isnan(boot).any() else None
    flags = tuple(flag.label for flag in bound_flags(fit, x, None, "free") if flag.severity == "warning")
    return CurveFit(fit, clean, target, float(threshold), ci, int(status), flags, "", boot, grid)


# --- the state ---

@dataclass
class RobustnessState(RunState):
    """Per model, distortion, level and repetition: which test images it classified correctly; then the fits."""

    config: RobustnessConfig
    model_names: tuple[str, ...]
    model_labels: tuple[str, ...]
    losses: tuple[str, ...]
    stochastic: tuple[bool, ...]
    class_names: tuple[str, ...]
    n_images: int
    images_sha256: str
    example_labels: np.ndarray  # (E,)
    correct: dict[str, np.ndarray] = field(default_factory=dict)  # distortion → (M, L, R, N) uint8
    done: dict[str, np.ndarray] = field(default_factory=dict)  # distortion → (M, L, R) bool
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # distortion → (L, E, C, H, W) uint8
    example_predictions: dict[str, np.ndarray] = field(default_factory=dict)  # distortion → (M, L, E) int16
    fits: dict[str, list] = field(default_factory=dict)  # distortion → per model CurveFit | None
    noise_device: str = ""
    seconds: float = 0.0
    subset: dict = field(default_factory=dict)  # the test images drawn (images.Subset.record())
    temperatures: tuple[float, ...] = ()  # per model: distillation temperature T (0: none)
    transfer_source: int = -1  # the undefended control transfer attacks are crafted on (-1: none)
    variant_plan: tuple[tuple[str, int, str], ...] = ()  # (attack, model, variant) measured besides the plain one
    variant_correct: dict[str, np.ndarray] = field(default_factory=dict)  # "attack/variant" → (M, L, N) uint8
    variant_done: dict[str, np.ndarray] = field(default_factory=dict)  # "attack/variant" → (M, L) bool
    zero_gradient: np.ndarray | None = None  # (M, N) int8: input gradient exactly zero (1), not (0), unknown (-1)

    def __post_init__(self) -> None:
        m, r, n = len(self.model_names), self.config.repetitions, self.n_images
        for d in self.config.distortions:
            levels = len(self.config.levels(d))
            self.correct.setdefault(d, np.zeros((m, levels, r, n), dtype=np.uint8))
            self.done.setdefault(d, np.zeros((m, levels, r), dtype=bool))
            self.example_predictions.setdefault(d, np.full((m, levels, len(self.example_labels)), -1, np.int16))
            self.fits.setdefault(d, [None] * m)
        self.variant_plan = tuple((str(d), int(i), str(v)) for d, i, v in self.variant_plan)
        for d, _, v in self.variant_plan:
            levels = len(self.config.levels(d))
            self.variant_correct.setdefault(f"{d}/{v}", np.zeros((m, levels, n), dtype=np.uint8))
            self.variant_done.setdefault(f"{d}/{v}", np.zeros((m, levels), dtype=bool))
        if self.zero_gradient is None:
            self.zero_gradient = np.full((m, n), -1, dtype=np.int8)
        self.temperatures = tuple(self.temperatures) or (0.0,) * m

    def variants(self, model: int, distortion: str) -> tuple[str, ...]:
        """The attack variants measured for a model besides its own gradient."""
        return tuple(v for d, i, v in self.variant_plan if d == distortion and i == model)

    @property
    def n_models(self) -> int:
        return len(self.model_names)

    @property
    def chance(self) -> float:
        return 1.0 / len(self.class_names)

    def repetitions(self, model: int, distortion: str) -> int:
        """Repetitions measured: all for noise or a stochastic model, else one (it would answer the same)."""
        return self.config.repetitions if distortion == "noise" or self.stochastic[model] else 1

    def units(self):
        """Every (distortion, model, repetition, level index[, variant]) to measure, in run order."""
        for d in self.config.distortions:
            for m in range(self.n_models):
                for r in range(self.repetitions(m, d)):
                    for li in range(len(self.config.levels(d))):
                        yield d, m, r, li
                for v in self.variants(m, d):
                    for li in range(len(self.config.levels(d))):
                        yield d, m, 0, li, v

    def unit_done(self, unit) -> bool:
        if len(unit) == 5:
            d, m, _, li, v = unit
            return bool(self.variant_done[f"{d}/{v}"][m, li])
        d, m, r, li = unit
        return bool(self.done[d][m, li, r])

    def _variants_done(self) -> int:
        return sum(int(self.variant_done[f"{d}/{v}"][m].sum()) for d, m, v in self.variant_plan)

    @property
    def progress_done(self) -> int:
        return (sum(int(self.done[d][m, :, :self.repetitions(m, d)].sum()) for d in self.config.distortions
                    for m in range(self.n_models)) + self._variants_done()) * self.n_images

    @property
    def progress_total(self) -> int:
        plain = sum(len(self.config.levels(d)) * self.repetitions(m, d) for d in self.config.distortions
                    for m in range(self.n_models))
        return (plain + sum(len(self.config.levels(d)) for d, _, _ in self.variant_plan)) * self.n_images

    @staticmethod
    def new_run_text(config: RobustnessConfig) -> str:
        grids = ", ".join(f"{DISTORTIONS[d]} × {len(config.levels(d))}" for d in config.distortions)
        return f"Start measures every model under {grids} levels."

    def curve_complete(self, model: int, distortion: str) -> bool:
        return bool(self.done[distortion][model, :, :self.repetitions(model, distortion)].all()) and all(
            self.variant_done[f"{distortion}/{v}"][model].all() for v in self.variants(model, distortion))

    def trials(self, model: int, distortion: str) -> np.ndarray:
        """(L, R, N) correctness of a model's trials; a model measured once counts its answer for every repetition.
        Under an attack an image counts as right only if it survives every variant measured (the strongest
        attack per image is the model's robustness)."""
        measured = self.repetitions(model, distortion)
        values = self.correct[distortion][model]
        values = values if measured == values.shape[1] else np.repeat(values[:, :1], values.shape[1], axis=1)
        for v in self.variants(model, distortion):
            values = np.minimum(values, self.variant_correct[f"{distortion}/{v}"][model][:, None, :])
        return values

    def zero_gradient_share(self, model: int) -> float:
        """Share of the test images whose input gradient (of the model's own loss) is exactly zero (NaN: not
        measured)."""
        assert self.zero_gradient is not None  # __post_init__ fills it
        known = self.zero_gradient[model] >= 0
        return float(self.zero_gradient[model][known].mean()) if known.any() else float("nan")

    def clean_at_chance(self, model: int, distortion: str) -> bool:
        """The chance guard on the model's measured accuracy at the distortion's lowest level."""
        reps = self.repetitions(model, distortion)
        done = self.done[distortion][model, 0, :reps]
        if not done.any():
            return False
        clean = float(self.correct[distortion][model, 0, :reps][done].mean())
        return at_chance(clean, len(self.class_names), self.config.chance_floor)

    def refit(self, model: int, distortion: str) -> None:
        trials = self.trials(model, distortion)  # (L, R, N)
        wrong = (trials.shape[1] - trials.sum(axis=1, dtype=np.int64)).T  # (N, L) errors out of R
        self.fits[distortion][model] = fit_curve(self.config.levels(distortion), wrong, trials.shape[1],
                                                 self.chance, self.config.sigmoid, self.config.n_boot,
                                                 self.config.seed, self.config.chance_floor)

    def refitted(self, config: RobustnessConfig) -> "RobustnessState":
        self.config = replace(self.config, sigmoid=config.sigmoid, n_boot=config.n_boot,
                              chance_floor=config.chance_floor)
        for d in self.config.distortions:
            for m in range(self.n_models):
                self.fits[d][m] = None
                if self.curve_complete(m, d):
                    self.refit(m, d)
        return self

    def snapshot(self, samples_per_second: float = 0.0) -> "RobustnessSnapshot":
        return RobustnessSnapshot(
            model_names=self.model_names, model_labels=self.model_labels, losses=self.losses,
            stochastic=self.stochastic, class_names=self.class_names, n_images=self.n_images,
            repetitions=self.config.repetitions, example_labels=self.example_labels.copy(),
            distortions=tuple(self._result(d) for d in self.config.distortions),
            samples_done=self.progress_done, samples_total=self.progress_total, seconds=self.seconds,
            samples_per_second=samples_per_second, subset=dict(self.subset),
            transfer_source=self.model_names[self.transfer_source] if self.transfer_source >= 0 else "",
            ifgsm_steps=self.config.ifgsm_steps)

    def _result(self, d: str) -> "DistortionResult":
        levels = np.asarray(self.config.levels(d), dtype=float)
        m, n = self.n_models, self.n_images
        accuracy = np.full((m, len(levels)), np.nan)
        spread = np.full((m, len(levels)), np.nan)
        trials_done = np.zeros((m, len(levels)), dtype=bool)
        plain = np.full((m, len(levels)), np.nan)
        variant_accuracy = {v: np.full((m, len(levels)), np.nan) for v in VARIANTS}
        for i in range(m):
            reps = self.repetitions(i, d)
            done = self.done[d][i, :, :reps]  # (L, reps)
            values = self.correct[d][i, :, :reps]
            counted = done.sum(axis=1)
            have = counted > 0
            plain[i, have] = (values.mean(axis=2) * done).sum(axis=1)[have] / counted[have]
            for v in self.variants(i, d):
                measured = self.variant_done[f"{d}/{v}"][i]
                variant_accuracy[v][i, measured] = self.variant_correct[f"{d}/{v}"][i, measured].mean(axis=1)
                done = done & measured[:, None]
                values = np.minimum(values, self.variant_correct[f"{d}/{v}"][i][:, None, :])
            values = values.astype(np.float64).mean(axis=2)  # (L, reps)
            counted = done.sum(axis=1)
            have = counted > 0
            trials_done[i] = done.all(axis=1)
            accuracy[i, have] = (values * done).sum(axis=1)[have] / counted[have]
            several = counted > 1
            if several.any():
                spread[i, several] = np.array([values[li, done[li]].std(ddof=1) for li in np.flatnonzero(several)])
        low, high = wilson_interval(accuracy * n, n)  # accuracy: a mean over n test images
        guarded = [i for i in range(m) if self.clean_at_chance(i, d)]
        kappa = np.full((len(levels), m, m), np.nan)
        for li in range(len(levels)):
            ready = [i for i in range(m) if trials_done[i, li] and i not in guarded]  # no κ for a model at chance
            if ready:
                rows = np.stack([self.trials(i, d)[li].reshape(-1) for i in ready]).astype(bool)
                k, _, _ = kappa_matrix(rows)
                kappa[li][np.ix_(ready, ready)] = k
        fits = tuple(self.fits[d])
        thresholds = np.array([f.threshold if f is not None else np.nan for f in fits])
        differences = np.full((m, m), np.nan)
        difference_ci = np.full((m, m, 2), np.nan)
        for a in range(m):
            for b in range(m):
                fa, fb = fits[a], fits[b]
                # A censored threshold is a bound, not a number to subtract.
                if a == b or fa is None or fb is None or fa.censored != INSIDE or fb.censored != INSIDE:
                    continue
                with np.errstate(invalid="ignore"):
                    differences[a, b] = fa.threshold - fb.threshold
                if fa.boot is not None and fb.boot is not None and len(fa.boot) == len(fb.boot):
                    interval = shift_interval(fa.boot, fb.boot)
                    if interval is not None:
                        difference_ci[a, b] = interval
        masking = tuple(self._masking(i, d, plain[i], variant_accuracy) for i in range(m)) if d in ATTACKS \
            else ("",) * m
        examples = self.examples.get(d)
        return DistortionResult(
            name=d, label=DISTORTIONS[d], level_name=LEVEL_NAMES[d], levels=levels, accuracy=accuracy,
            accuracy_low=low, accuracy_high=high, spread=spread, complete=trials_done, fits=fits,
            thresholds=thresholds, differences=differences, difference_ci=difference_ci, kappa=kappa,
            examples=None if examples is None else examples.astype(np.float32) / 255.0,
            example_predictions=self.example_predictions[d].copy(), plain_accuracy=plain,
            variant_accuracy={v: a for v, a in variant_accuracy.items() if not np.isnan(a).all()}, masking=masking,
            at_chance=tuple(i in guarded for i in range(m)),
            steps=tuple(self.ifgsm_step_at(eps) for eps in levels) if d == "ifgsm" else ())

    def ifgsm_step_at(self, eps: float) -> float:
        """The IFGSM step used at ε: the configured one, else distortions.ifgsm_step's rule."""
        return float(self.config.ifgsm_step or ifgsm_step(eps, self.config.ifgsm_steps))

    def _masking(self, model: int, d: str, plain: np.ndarray, variant_accuracy: dict) -> str:
        """Why gradient masking is suspected for a model under an attack ("" when it is not)."""
        reasons = []
        for v in self.variants(model, d):
            with np.errstate(invalid="ignore"):
                gaps = plain - variant_accuracy[v][model]
            if np.isfinite(gaps).any() and np.nanmax(gaps) > MASKING_GAP:
                li = int(np.nanargmax(gaps))
                reasons.append(f"the attack {VARIANTS[v]} leaves {100 * np.nanmax(gaps):.0f} points less accuracy "
                               f"(at {self.config.levels(d)[li]:g})")
        share = self.zero_gradient_share(model)
        if share > ZERO_GRADIENT_SHARE:
            reasons.append(f"the input gradient is exactly zero on {100 * share:.0f}% of the images")
        return "gradient masking suspected: " + "; ".join(reasons) if reasons else ""

    # --- session records ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        assert self.zero_gradient is not None  # __post_init__ fills it
        meta = {"config": self.config.to_dict(), "model_names": list(self.model_names),
                "model_labels": list(self.model_labels), "losses": list(self.losses),
                "stochastic": [bool(s) for s in self.stochastic], "class_names": list(self.class_names),
                "n_images": self.n_images, "images_sha256": self.images_sha256, "noise_device": self.noise_device,
                "seconds": self.seconds, "samples_done": self.progress_done,
                "fits": {d: [None if f is None else f.to_dict() for f in fits] for d, fits in self.fits.items()},
                "subset": self.subset, "temperatures": list(self.temperatures),
                "transfer_source": self.transfer_source, "variant_plan": [list(p) for p in self.variant_plan]}
        arrays = {"example_labels": np.asarray(self.example_labels, dtype=np.int64),
                  "zero_gradient": self.zero_gradient}
        for key in self.variant_correct:
            arrays[f"variants/{key}/correct"] = self.variant_correct[key]
            arrays[f"variants/{key}/done"] = self.variant_done[key].astype(np.uint8)
        for d in self.config.distortions:
            arrays[f"{d}/correct"] = self.correct[d]
            arrays[f"{d}/done"] = self.done[d].astype(np.uint8)
            arrays[f"{d}/example_predictions"] = self.example_predictions[d]
            if d in self.examples:
                arrays[f"{d}/examples"] = self.examples[d]
            for m, fit in enumerate(self.fits[d]):
                if fit is not None and fit.boot is not None:
                    arrays[f"{d}/boot/{m}"] = fit.boot
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "RobustnessState":
        config = RobustnessConfig.from_dict(meta["config"], arrays)
        state = cls(config, tuple(meta["model_names"]), tuple(meta["model_labels"]), tuple(meta["losses"]),
                    tuple(bool(s) for s in meta["stochastic"]), tuple(meta["class_names"]), int(meta["n_images"]),
                    meta["images_sha256"], np.asarray(arrays["example_labels"], dtype=np.int64),
                    correct={d: np.array(arrays[f"{d}/correct"], dtype=np.uint8) for d in config.distortions},
                    done={d: np.asarray(arrays[f"{d}/done"]).astype(bool) for d in config.distortions},
                    examples={d: np.array(arrays[f"{d}/examples"], dtype=np.uint8) for d in config.distortions
                              if f"{d}/examples" in arrays},
                    example_predictions={d: np.array(arrays[f"{d}/example_predictions"], dtype=np.int16)
                                         for d in config.distortions},
                    noise_device=meta.get("noise_device", ""), seconds=float(meta.get("seconds", 0.0)),
                    subset=dict(meta["subset"]), temperatures=tuple(float(t) for t in meta["temperatures"]),
                    transfer_source=int(meta["transfer_source"]),
                    variant_plan=tuple(tuple(p) for p in meta["variant_plan"]),
                    variant_correct={f"{d}/{v}": np.array(arrays[f"variants/{d}/{v}/correct"], dtype=np.uint8)
                                     for d, _, v in meta["variant_plan"]},
                    variant_done={f"{d}/{v}": np.asarray(arrays[f"variants/{d}/{v}/done"]).astype(bool)
                                  for d, _, v in meta["variant_plan"]},
                    zero_gradient=np.array(arrays["zero_gradient"], dtype=np.int8))
        _check_robustness_record(state, meta, arrays)
        for d, fits in meta.get("fits", {}).items():
            state.fits[d] = [None if f is None else CurveFit.from_dict(f, np.asarray(arrays[f"{d}/boot/{m}"])
                                                                       if f"{d}/boot/{m}" in arrays else None,
                                                                       config.levels(d))
                             for m, f in enumerate(fits)]
        return state


def _check_robustness_record(state: "RobustnessState", meta: dict, arrays: dict) -> None:
    """The stored answers agree with the run's models, levels, images and classes (a damaged file does not)."""
    m, n, k = len(state.model_names), require_int(meta["n_images"], "n_images"), len(state.class_names)
    require_strings(list(state.model_names), "model_names")
    require_strings(list(state.class_names), "class_names")
    for key in ("model_labels", "losses", "stochastic"):
        if len(meta[key]) != m:
            raise ValueError(f"{key} has {len(meta[key])} entries for {m} models")
    labels = require_counts(arrays["example_labels"], "example_labels", (None,))
    if labels.size and labels.max() >= k:
        raise ValueError(f"example_labels name class {labels.max()} of {k}")
    for d in state.config.distortions:
        levels = len(state.config.levels(d))
        correct = require_flags(arrays[f"{d}/correct"], f"{d}/correct", (m, levels, None, n))
        require_flags(arrays[f"{d}/done"], f"{d}/done", (m, levels, correct.shape[2]))
        predictions = require_shape(arrays[f"{d}/example_predictions"], (m, levels, labels.size),
                                    f"{d}/example_predictions")
        if predictions.size and not (-1 <= predictions.min() and predictions.max() < k):
            raise ValueError(f"{d}/example_predictions must hold class indices below {k}")
        if f"{d}/examples" in arrays:
            require_shape(arrays[f"{d}/examples"], (levels, labels.size, None, None, None), f"{d}/examples")
    for d, _, v in state.variant_plan:
        correct = require_flags(arrays[f"variants/{d}/{v}/correct"], f"variants/{d}/{v}/correct")
        if correct.ndim < 1 or correct.shape[-1] != n:
            raise ValueError(f"variants/{d}/{v}/correct has shape {correct.shape}, expected {n} images last")
    zero = require_shape(arrays["zero_gradient"], (m, n), "zero_gradient")
    if zero.size and not (-1 <= zero.min() and zero.max() <= 1):
        raise ValueError("zero_gradient must hold −1, 0 or 1")


def incompatibility(other: LoadedModel, model: LoadedModel) -> str | None:
    """Why ``other`` cannot be measured beside the session's ``model`` (another task), or None."""
    if tuple(other.input_spec.shape) != tuple(model.input_spec.shape):
        return (f"takes inputs of shape {'×'.join(map(str, other.input_spec.shape))}, the session's model "
                f"{'×'.join(map(str, model.input_spec.shape))}")
    if other.n_classes != model.n_classes:
        return f"has {other.n_classes} classes, the session's model {model.n_classes}"
    return None


@dataclass(frozen=True)
class DistortionResult:
    """One distortion's results for every model (arrays indexed [model, level] unless said otherwise)."""

    name: str
    label: str
    level_name: str
    levels: np.ndarray
    accuracy: np.ndarray  # NaN where not measured yet
    accuracy_low: np.ndarray  # 95% Wilson interval over test images
    accuracy_high: np.ndarray
    spread: np.ndarray  # standard deviation of the repetitions' accuracies (NaN with one)
    complete: np.ndarray  # (M, L) bool: every repetition measured
    fits: tuple[CurveFit | None, ...]
    thresholds: np.ndarray  # (M,)
    differences: np.ndarray  # (M, M): threshold[a] − threshold[b]
    difference_ci: np.ndarray  # (M, M, 2) paired 95% bootstrap interval
    kappa: np.ndarray  # (L, M, M) error consistency
    examples: np.ndarray | None  # (L, E, C, H, W) float in [0, 1], as the session's model saw them
    example_predictions: np.ndarray  # (M, L, E), -1 where not measured
    plain_accuracy: np.ndarray | None = None  # (M, L) under the model's own gradient alone (attacks)
    variant_accuracy: dict = field(default_factory=dict)  # variant → (M, L), NaN where not measured
    masking: tuple[str, ...] = ()  # per model: "gradient masking suspected: …" or ""
    at_chance: tuple[bool, ...] = ()  # per model: the chance guard on its clean accuracy
    steps: tuple[float, ...] = ()  # IFGSM: the step used at each ε


@dataclass(frozen=True)
class RobustnessSnapshot(ProgressView):
    model_names: tuple[str, ...]
    model_labels: tuple[str, ...]
    losses: tuple[str, ...]
    stochastic: tuple[bool, ...]
    class_names: tuple[str, ...]
    n_images: int
    repetitions: int
    example_labels: np.ndarray
    distortions: tuple[DistortionResult, ...]
    samples_done: int
    samples_total: int
    seconds: float  # compute time spent so far
    samples_per_second: float = 0.0
    subset: dict = field(default_factory=dict)  # the test images drawn (images.Subset.record())
    transfer_source: str = ""  # the model transfer attacks were crafted on ("" for none)
    ifgsm_steps: int = 0

    @property
    def images_text(self) -> str:
        return describe_record(self.subset) if self.subset else f"{self.n_images:,} images"

    @property
    def finished(self) -> bool:
        return self.samples_done >= self.samples_total

    @property
    def chance(self) -> float:
        return 1.0 / len(self.class_names)

    def distortion(self, name: str) -> DistortionResult:
        return next(result for result in self.distortions if result.name == name)

    @property
    def reference(self) -> int:
        """The model differences are shown against: one named "control" if there is one, else the session's."""
        return self.model_names.index("control") if "control" in self.model_names else 0


# --- the experiment ---

def _is_stochastic(model: LoadedModel, images: torch.Tensor) -> bool:
    """Declared (``extra['stochastic']``) or seen: two passes over the same images disagree."""
    declared = model.extra.get("stochastic")
    if declared is not None:
        return bool(declared)
    network = model.pixel_model
    with torch.inference_mode():
        x = images[:16].to(next(iter(network.parameters()), torch.zeros(0)).device)
        return not torch.equal(network(x), network(x))


def _unit_seed(seed: int, *key) -> int:
    text = "robustness|" + "|".join(str(k) for k in key)
    return block_seed(seed, int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big"))


class RobustnessExperiment(Experiment):
    """Measures every model under every distortion level; a unit is one model × distortion × level × repetition."""

    def __init__(self, model: LoadedModel, config: RobustnessConfig | None = None,
                 state: RobustnessState | None = None, device: str | None = None,
                 control: RunControl | None = None, models: dict[str, LoadedModel] | None = None,
                 images=None) -> None:
        config = state.config if state is not None else config or RobustnessConfig()
        rule = state.subset.get("rule", SUBSET_RULE) if state is not None else SUBSET_RULE
        self._images, subset = (images, {}) if images is not None else _test_images(config, model, rule)
        super().__init__(model, config, state, device, control, models=models, images=self._images, subset=subset)
        named = {PRIMARY: model, **(models or {})}
        missing = [name for name in self.state.model_names if name not in named]
        if missing:
            raise ValueError(f"the run measured model {missing[0]!r}, which is not in the session any more")
        self._models = [named[name] for name in self.state.model_names]
        self._runtimes: dict[int, Runtime] = {0: self.runtime}
        self._gradient_key: tuple | None = None
        self._gradient: torch.Tensor | None = None

    @classmethod
    def new_state(cls, model: LoadedModel, config: RobustnessConfig, models: dict | None = None,
                  images=None, subset: dict | None = None) -> RobustnessState:
        if images is None:
            images, subset = _test_images(config, model)
        names = [PRIMARY, *[name for name in (models or {}) if name != PRIMARY]]
        every = [model, *[(models or {})[name] for name in names[1:]]]
        for name, other in zip(names, every):
            if tuple(other.input_spec.shape) != tuple(images.images.shape[1:]):
                raise ValueError(f"model {name!r} takes inputs of shape {tuple(other.input_spec.shape)} but the "
                                 f"{images.name} images are {tuple(images.images.shape[1:])}")
            reason = incompatibility(other, model)
            if reason:
                raise ValueError(f"model {name!r} {reason}: compare models of one task")
        labels = tuple(model.display_name if name == PRIMARY else name for name in names)
        temperatures = tuple(_temperature(m) for m in every)
        source = _transfer_source(names, every)
        plan = tuple((d, i, v) for d in config.distortions if d in ATTACKS for i in range(len(every))
                     for v in VARIANTS if (v == "temperature" and temperatures[i] > 1)
                     or (v == "transfer" and source >= 0 and i != source))
        return RobustnessState(
            config, tuple(names), labels, tuple(model_loss(m) for m in every),
            tuple(_is_stochastic(m, images.images) for m in every), tuple(model.class_names), len(images),
            images_sha256(images.images), images.labels[:EXAMPLES].numpy().astype(np.int64),
            subset=dict(subset or {}), temperatures=temperatures, transfer_source=source, variant_plan=plan)

    def prepare(self) -> None:
        if images_sha256(self._images.images) != self.state.images_sha256:
            raise ValueError("these test images differ from the ones the run started on (dataset, folder or count)")
        if not self.state.noise_device:
            self.state.noise_device = self.device.type  # the noise is counter-based: any device continues it

    def runtime_of(self, m: int) -> Runtime:
        if m not in self._runtimes:
            self._runtimes[m] = Runtime(self._models[m], str(self.device))
        return self._runtimes[m]

    def pending(self):
        for unit in self.state.units():
            if not self.state.unit_done(unit):
                yield unit

    def run_unit(self, unit) -> None:
        if len(unit) == 5:
            self._run_variant(*unit)
            return
        d, m, r, li = unit
        level = self.config.levels(d)[li]
        runtime = self.runtime_of(m)
        stochastic = self.state.stochastic[m]
        if stochastic:  # the model's own noise: reproducible per unit on one device
            torch.manual_seed(_unit_seed(self.config.seed, "model", self.state.model_names[m], d, level, r))
        images, labels = self._images.images, self._images.labels
        correct = np.empty(len(labels), dtype=np.uint8)
        step = self.config.batch_size
        examples = None
        classify = self._classifier(runtime, f"under {DISTORTIONS[d]} {level:g}")
        for start in range(0, len(labels), step):
            x = images[start:start + step].to(self.device)
            y = labels[start:start + step].to(self.device)
            distorted = self._distort(d, m, r, li, level, x, y, start, runtime, stochastic)
            correct[start:start + len(y)] = correct_answers(classify, distorted, y, len(y))
            if start == 0:
                examples = distorted[:EXAMPLES]
                with torch.inference_mode():
                    predicted = classify(examples).argmax(1)
                self.state.example_predictions[d][m, li, :len(examples)] = predicted.cpu().numpy()
        self.state.correct[d][m, li, r] = correct
        if m == 0 and r == 0 and examples is not None:
            stored = self.state.examples.setdefault(
                d, np.zeros((len(self.config.levels(d)), *examples.shape), dtype=np.uint8))
            stored[li] = np.round(examples.detach().cpu().numpy() * 255).astype(np.uint8)
        self.state.done[d][m, li, r] = True

    @staticmethod
    def _classifier(runtime: Runtime, context: str):
        return lambda x: runtime.logits(x, context=context)

    def _run_variant(self, d: str, m: int, r: int, li: int, variant: str) -> None:
        """One level of an attack variant: on logits/T of model m, or crafted on the control and shown to m."""
        level = self.config.levels(d)[li]
        runtime = self.runtime_of(m)
        stochastic = self.state.stochastic[m]
        if stochastic:
            torch.manual_seed(_unit_seed(self.config.seed, "variant", variant, self.state.model_names[m], d, level))
        attacked: Runtime | Callable[[torch.Tensor], torch.Tensor]
        if variant == "temperature":
            temperature = self.state.temperatures[m]
            attacked, loss, draws = (lambda x: runtime.network(x) / temperature), "cross_entropy", \
                (self.config.eot_draws if stochastic else 1)
        else:
            source = self.state.transfer_source
            attacked, loss = self.runtime_of(source), self.state.losses[source]
            draws = self.config.eot_draws if self.state.stochastic[source] else 1
        images, labels = self._images.images, self._images.labels
        correct = np.empty(len(labels), dtype=np.uint8)
        classify = self._classifier(runtime, f"under {DISTORTIONS[d]} {level:g} ({VARIANTS[variant]})")
        for start in range(0, len(labels), self.config.batch_size):
            x = images[start:start + self.config.batch_size].to(self.device)
            y = labels[start:start + self.config.batch_size].to(self.device)
            if level == 0:
                distorted = x
            elif d == "fgsm":
                distorted = (x + level * input_gradient(attacked, x, y, loss, draws).sign()).clamp_(0.0, 1.0)
            else:
                distorted = pgd(attacked, x, y, level, steps=self.config.ifgsm_steps,
                                step=self.config.ifgsm_step or None, loss=loss, draws=draws)
            correct[start:start + len(y)] = correct_answers(classify, distorted, y, len(y))
        self.state.variant_correct[f"{d}/{variant}"][m, li] = correct
        self.state.variant_done[f"{d}/{variant}"][m, li] = True

    def _note_zero_gradients(self, m: int, start: int, gradient: torch.Tensor) -> None:
        """Which images' input gradient is exactly zero (a saturated softmax masks the attack's direction)."""
        zero = (gradient.reshape(len(gradient), -1) == 0).all(dim=1)
        self.state.zero_gradient[m, start:start + len(zero)] = zero.cpu().numpy().astype(np.int8)

    def _distort(self, d, m, r, li, level, x, y, start, runtime, stochastic) -> torch.Tensor:
        draws = self.config.eot_draws if stochastic else 1
        loss = self.state.losses[m]
        if d == "noise":  # one stream per repetition, the same for every model and variance
            return gaussian_noise(x, level, seed=self.config.seed, block=r, start=start)
        if d == "blur":
            return gaussian_blur(x, level)
        if level > 0 and self.state.zero_gradient[m, start] < 0:  # the masking check, once per model and chunk
            gradient = self._own_gradient(m, r, start, runtime, x, y, loss, draws, stochastic)
            self._note_zero_gradients(m, start, gradient)
        if d == "fgsm":
            if level == 0:
                return x.clone()
            # FGSM's direction does not depend on η: one gradient per model, repetition and chunk serves every level.
            return (x + level * self._own_gradient(m, r, start, runtime, x, y, loss, draws, stochastic).sign()
                    ).clamp_(0.0, 1.0)
        if d == "ifgsm":
            return pgd(runtime, x, y, level, steps=self.config.ifgsm_steps,
                       step=self.config.ifgsm_step or None, loss=loss, draws=draws)
        raise ValueError(f"unknown distortion {d!r}")

    def _own_gradient(self, m, r, start, runtime, x, y, loss, draws, stochastic) -> torch.Tensor:
        """∇ₓ of the model's own loss at the clean chunk, kept for the chunk (FGSM at every η, masking check)."""
        key = (m, r, start)
        if self._gradient_key != key:
            if stochastic:
                torch.manual_seed(_unit_seed(self.config.seed, "eot", self.state.model_names[m], r, start))
            self._gradient = input_gradient(runtime, x, y, loss, draws)
            self._gradient_key = key
        assert self._gradient is not None  # set with its key
        return self._gradient

    def after_unit(self) -> None:
        for d in self.config.distortions:
            for m in range(self.state.n_models):
                if self.state.fits[d][m] is None and self.state.curve_complete(m, d):
                    self.state.refit(m, d)

    def snapshot(self) -> RobustnessSnapshot:
        return self.state.snapshot(self.rate)


def _test_images(config: RobustnessConfig, model: LoadedModel, rule: str = SUBSET_RULE):
    """(the test images, their subset record): a seeded, class-stratified subset of ``images`` of them (rule
    "first": the first N, as version-1 runs took them)."""
    images = images_for_model(load_dataset(config.dataset, config.data_dir or None), model)
    if config.images > len(images):
        raise ValueError(f"{images.name} holds {len(images):,} images; asked for {config.images:,}")
    labels = images.labels.numpy()
    if rule == LEGACY_FIRST_N:
        chosen = images.subset(slice(0, config.images)) if config.images else images
        counts = np.bincount(chosen.labels.numpy(), minlength=len(images.class_names))
        return chosen, {"rule": LEGACY_FIRST_N, "requested": config.images, "size": len(chosen),
                        "label_counts": counts.tolist()}
    subset = stratified_subset(labels, config.images, config.seed, len(images.class_names))
    chosen = images if subset.indices.size == len(images) else images.subset(torch.from_numpy(subset.indices))
    return chosen, subset.record()


def _temperature(model: LoadedModel) -> float:
    """A distilled model's training temperature T (0: not distilled)."""
    return float(model.extra.get("temperature") or 0.0)


def _transfer_source(names, models) -> int:
    """The undefended control that transfer attacks are crafted on: a model named "control", else one trained
    as a defence's control; -1 when the session has none."""
    if "control" in names:
        return list(names).index("control")
    return next((i for i, m in enumerate(models) if m.extra.get("defence") == "control"), -1)


# --- exports ---

def accuracy_records(snapshot: RobustnessSnapshot) -> list[dict]:
    records = []
    for result in snapshot.distortions:
        for m, name in enumerate(snapshot.model_names):
            for li, level in enumerate(result.levels):
                plain = result.plain_accuracy
                records.append({"distortion": result.name, "model": name, "level": float(level),
                                "accuracy": float(result.accuracy[m, li]),
                                "ci_low": float(result.accuracy_low[m, li]),
                                "ci_high": float(result.accuracy_high[m, li]),
                                "repetition_sd": float(result.spread[m, li]),
                                "own_gradient_accuracy": np.nan if plain is None else float(plain[m, li]),
                                **{f"{v}_accuracy": float(result.variant_accuracy[v][m, li])
                                   if v in result.variant_accuracy else np.nan for v in VARIANTS},
                                "ifgsm_step": float(result.steps[li]) if result.steps else np.nan,
                                "at_chance": bool(result.at_chance[m]) if result.at_chance else False,
                                "images": snapshot.n_images, "image_subset": snapshot.images_text,
                                "complete": bool(result.complete[m, li])})
    return records


def threshold_records(snapshot: RobustnessSnapshot) -> list[dict]:
    records = []
    for result in snapshot.distortions:
        for m, name in enumerate(snapshot.model_names):
            curve = result.fits[m]
            fit = curve.fit if curve is not None else None
            ci = curve.threshold_ci if curve is not None and curve.threshold_ci is not None else (np.nan, np.nan)
            inside = curve is not None and curve.censored == INSIDE
            if not inside:
                ci = (np.nan, np.nan)
            records.append({
                "distortion": result.name, "model": name, "loss": snapshot.losses[m],
                "stochastic": bool(snapshot.stochastic[m]),
                "at_chance": bool(curve is not None and curve.at_chance),
                "clean_accuracy": np.nan if curve is None else curve.clean,
                "target_accuracy": np.nan if curve is None else curve.target,
                # Outside the measured grid a threshold is a bound ("> 0.9"); the fitted value is only a note.
                "threshold": np.nan if curve is None or curve.fit is None
                else censored_value(curve.threshold, *curve.grid),
                "fitted_threshold": np.nan if curve is None else curve.threshold,
                "threshold_ci_low": float(ci[0]), "threshold_ci_high": float(ci[1]),
                "status": "" if curve is None else "no fit" if fit is None else STATUS_WORDS[curve.status] if inside
                else f"censored: {curve.censored} the levels measured",
                "sigmoid": "" if fit is None else fit.sigmoid, "width": np.nan if fit is None else fit.width,
                "floor_accuracy": np.nan if fit is None else fit.lapse,
                "fitted_clean_accuracy": np.nan if fit is None else 1 - fit.guess,
                "flags": "" if curve is None else " ".join(curve.flags), "note": "" if curve is None else curve.note,
                "gradient_masking": result.masking[m] if result.masking else "",
                "image_subset": snapshot.images_text})
    return records


def difference_records(snapshot: RobustnessSnapshot) -> list[dict]:
    """Every ordered pair of models (the full matrix, diagonal included): threshold difference and its paired 95%
    bootstrap interval."""
    records = []
    for result in snapshot.distortions:
        for a, name_a in enumerate(snapshot.model_names):
            for b, name_b in enumerate(snapshot.model_names):
                curve = result.fits[a]
                same = a == b and curve is not None and curve.fit is not None
                records.append({"distortion": result.name, "model": name_a, "minus": name_b,
                                "difference": 0.0 if same else float(result.differences[a, b]),
                                "ci_low": 0.0 if same else float(result.difference_ci[a, b, 0]),
                                "ci_high": 0.0 if same else float(result.difference_ci[a, b, 1])})
    return records


def kappa_records(snapshot: RobustnessSnapshot) -> list[dict]:
    """κ between every ordered pair of models at every level (the full matrix, as the panel shows it)."""
    records = []
    for result in snapshot.distortions:
        for li, level in enumerate(result.levels):
            for a, name_a in enumerate(snapshot.model_names):
                for b, name_b in enumerate(snapshot.model_names):
                    records.append({"distortion": result.name, "level": float(level), "model": name_a,
                                    "other": name_b, "kappa": float(result.kappa[li, a, b])})
    return records


def _table(records_of):
    def write(snapshot: RobustnessSnapshot, path) -> Path:
        records = records_of(snapshot)
        if not records:
            raise ValueError("nothing to export yet: run the robustness lab first")
        return write_records(records, path)

    return write


def write_examples(snapshot: RobustnessSnapshot, path) -> Path:
    path = Path(path)
    # Any: savez's stubs would take a key of ** for its allow_pickle flag
    arrays: dict[str, Any] = {"example_labels": snapshot.example_labels}
    for result in snapshot.distortions:
        if result.examples is not None:
            arrays[f"{result.name}_images"] = result.examples
            arrays[f"{result.name}_levels"] = result.levels
            arrays[f"{result.name}_predictions"] = result.example_predictions
    np.savez_compressed(path, model_names=np.array(snapshot.model_names), **arrays)
    return path


def _measured(snapshot: RobustnessSnapshot) -> bool:
    return snapshot.samples_done > 0


def _fitted(snapshot: RobustnessSnapshot) -> bool:
    return any(f is not None for result in snapshot.distortions for f in result.fits)


ARTEFACTS = (
    Artefact("robustness_curves", "Accuracy curves plot", (".png", ".svg"),
             figure="wna_gui.figures.robustness:save_curves", available=_measured),
    Artefact("robustness_accuracy", "Accuracy per level", (".csv", ".npy"), _table(accuracy_records),
             available=_measured),
    Artefact("robustness_thresholds", "Thresholds table", (".csv",), _table(threshold_records), available=_fitted),
    Artefact("robustness_differences", "Threshold differences (paired)", (".csv",), _table(difference_records),
             available=_fitted),
    Artefact("robustness_kappa", "Error consistency κ", (".csv",), _table(kappa_records), available=_measured),
    Artefact("robustness_kappa_plot", "Error consistency plot", (".png", ".svg"),
             figure="wna_gui.figures.robustness:save_kappa_curves", available=_measured),
    Artefact("robustness_examples", "Example distorted images", (".npz",), write_examples, available=_measured),
)


def summary(state: RobustnessState) -> dict:
    snapshot = state.snapshot()
    thresholds: dict[str, dict[str, Any]] = {}
    for result in snapshot.distortions:
        thresholds[result.name] = {}
        for m, name in enumerate(snapshot.model_names):
            curve = result.fits[m]
            thresholds[result.name][name] = None if curve is None else curve.summary()
    return {"samples_done": snapshot.samples_done, "samples_total": snapshot.samples_total,
            "finished": state.finished, "models": list(state.model_names), "losses": list(state.losses),
            "stochastic": [bool(s) for s in state.stochastic], "images": state.n_images,
            "distortions": list(state.config.distortions),
            "levels": {d: list(state.config.levels(d)) for d in state.config.distortions},
            "thresholds": thresholds, "subset": state.subset, "images_text": snapshot.images_text,
            "gradient_masking": {result.name: {name: text for name, text in zip(snapshot.model_names, result.masking)
                                               if text} for result in snapshot.distortions if result.masking},
            "at_chance": sorted({snapshot.model_names[m] for result in snapshot.distortions
                                 for m, flag in enumerate(result.at_chance) if flag}),
            "ifgsm_steps": _ifgsm_step_text(snapshot)}


def _ifgsm_step_text(snapshot: RobustnessSnapshot) -> str:
    """The IFGSM step at each ε, as the export names it."""
    result = next((r for r in snapshot.distortions if r.name == "ifgsm"), None)
    if result is None:
        return ""
    return f"{snapshot.ifgsm_steps} steps of " + ", ".join(f"{step:.4g} at ε {eps:g}"
                                                          for eps, step in zip(result.levels, result.steps))


def threshold_text(entry: dict | None) -> str:
    """"0.31 [0.28, 0.35]", "> 0.9" (censored), or why there is no threshold, from a summary entry."""
    if entry is None:
        return "not fitted yet"
    if "text" in entry:
        return entry["text"]
    return entry["status"]


def result_warnings(snapshot: RobustnessSnapshot) -> list[str]:
    """Models at chance (no threshold, no κ) and fits held by a limit of their search."""
    guarded = sorted({snapshot.model_names[m] for result in snapshot.distortions
                      for m, flag in enumerate(result.at_chance) if flag})
    lines = [f"{name} at chance: no thresholds, no κ" for name in guarded]
    for result in snapshot.distortions:
        for name, curve in zip(snapshot.model_names, result.fits):
            if curve is not None and curve.flags:
                lines.append(f"{result.label}, {name}: fit at a bound ({', '.join(curve.flags)})")
    return lines


def describe(entry: dict) -> list[str]:
    models = entry["models"]
    images = entry.get("images_text") or f"{entry['images']:,} images"
    lines = [f"{len(models)} model{'s' if len(models) > 1 else ''} ({', '.join(models)}) × "
             f"{', '.join(entry['distortions'])} on {images}"]
    for d, per_model in entry["thresholds"].items():
        lines.append(f"{DISTORTIONS[d]} threshold ({LEVEL_NAMES[d]} at half-way accuracy): "
                     + "; ".join(f"{name} {threshold_text(value)}" for name, value in per_model.items()))
    lines += [f"{name} at chance: no thresholds, no κ" for name in entry.get("at_chance", ())]
    for d, per_model in entry.get("gradient_masking", {}).items():
        lines += [f"{DISTORTIONS[d]}, {name}: {text}" for name, text in per_model.items()]
    if entry.get("ifgsm_steps"):
        lines.append(f"IFGSM: {entry['ifgsm_steps']}")
    return lines


def report(snapshot: RobustnessSnapshot) -> list[str]:
    lines = [f"test images: {snapshot.images_text}"]
    for result in snapshot.distortions:
        lines.append(f"{result.label} threshold ({result.level_name} at half-way accuracy): "
                     + "; ".join(f"{name} {threshold_text(None if curve is None else curve.summary())}"
                                 for name, curve in zip(snapshot.model_names, result.fits)))
        lines += [f"{result.label}, {name}: {text}" for name, text in zip(snapshot.model_names, result.masking)
                  if text]
    return lines


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 measured the first N test images and no attack variants."""
    models, n = len(meta["model_names"]), int(meta["n_images"])
    meta = {**meta, "subset": {"rule": LEGACY_FIRST_N, "requested": int(meta["config"].get("images", 0)),
                               "size": n}, "temperatures": [0.0] * models, "transfer_source": -1, "variant_plan": []}
    return meta, {**arrays, "zero_gradient": np.full((models, n), -1, dtype=np.int8)}


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="robustness",
    title="Robustness",
    help="accuracy of several models under Gaussian noise, blur, FGSM and IFGSM as psychometric curves, with "
         "half-way thresholds and error consistency (κ)",
    config=RobustnessConfig,
    state=RobustnessState,
    experiment=RobustnessExperiment,
    unit="images",
    panel="robustness",
    artefacts=ARTEFACTS,
    can_refit=True,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1},
    requires=(Requirement("models", "model", "extra models to compare with the session's model (default: every "
                          "extra model of the session of the same task: input shape and classes)",
                          optional=True, many=True, compatible=incompatibility),),
    summary=summary,
    describe=describe,
    report=report,
    warnings=result_warnings,
)
RobustnessExperiment.spec = EXPERIMENT
