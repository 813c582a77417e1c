"""A person as the observer: reverse-correlation trials at the keyboard, beside the network on the same stimuli.

Tasks (SCIENCE.md, "People as observers"):

- **n-way** (Gosselin & Schyns; Ahumada): one image, t = γ·s + (1 − γ)·n, "which class?" (γ = 0: pure noise,
  no correct answer). Maps: mean noise per response minus the mean noise (core.accumulators.class_maps).
- **yes/no** on a pair (Ahumada 1996): the signal is one of the pair's digits; c = (n̄12 + n̄22) − (n̄11 + n̄21)
  (core.two_class.ahumada_image).
- **2IFC** (Dotsch & Todorov; rcicr): base + (1 − γ)·n′ beside base − (1 − γ)·n′ (n′ = n − E n, the base the
  mean of the pair's digits), "which looks more like <second>?"; CI = mean chosen noise − mean unchosen noise.

Trial t's noise is block t of the counter-based source (one image per block; a repeated trial reuses the block
of the trial it repeats), its signal draw comes from (seed, t) alone and its γ from the answers before it
(the staircase), so any trial is regenerated from its index and the answers recorded: a session stores the
answers, never noise. A double-pass block (Burgess & Colborne 1988) repeats ``double_pass`` earlier trials
exactly, in a seeded shuffled order, after the fresh trials.

A person answers only in the app's run screen (app/human_screen.py). `wna run human-observer --observer
simulated` runs the simulated template observer headless (demos, tests); `wna info` / `wna export`
re-analyse and export any session. The network's answer to every trial is computed on the very stimuli
shown, when the trial is made, and stored with it.

Each trial is also appended to a journal (one JSON line, flushed and fsynced) when the run screen is given
one: a crash loses at most the trial on screen, and ``state_from_journal`` rebuilds the state.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import torch

from .accumulators import ClassAccumulator, batch_class_stats, class_maps
from .agreement import error_consistency
from .control import csv_number
from .data import bundled_mnist
from .experiment import Artefact, Experiment, ExperimentSpec
from .images import SignalImages
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise
from .params import config_arrays, param
from .records import (
    require_array,
    require_choice,
    require_counts,
    require_finite,
    require_int,
    require_shape,
    require_strings,
)
from .runtime import Runtime
from .state import RunConfig, RunSnapshot, RunState
from .two_class import ahumada_image

KIND = "human_observer"
RECORD_VERSION = 1
TASKS = {"yes-no": "two-class yes/no on the pair (Ahumada)",
         "2ifc": "two intervals: base + noise beside base − noise (rcicr)",
         "n-way": "single interval, n-way: which class?"}
OBSERVERS = {"person": "a person at the keyboard (in the app)",
             "simulated": "simulated template observer with internal noise"}
PROCEDURES = {"fixed": "γ fixed", "staircase": "weighted up/down staircase on γ (Kaernbach 1991)"}
GAMMA_CEILING = 0.95  # the staircase never leaves less than 5% noise
PRACTICE_STREAM = 0x7A1C  # practice trials draw noise and signals from a seed of their own: never the session's
ORDER_STREAM = 0x0DE5  # interval order and the double-pass shuffle
INTERNAL_STREAM = 0x1A7E  # the simulated observer's internal noise
PARTICIPANT_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_TRIALS = 20_000
NETWORK_BATCH = 100  # the network answers the trials in batches of this many (one image a pass is slow)
TRIAL_FIELDS = ("noise_index", "repeat_of", "gamma", "signal_class", "signal_image", "order", "response",
                "rt_ms", "network_answer")
OBSERVER = "Observer"
STIMULUS = "Stimulus"
SCREEN = "Run screen"
ANALYSIS = "Analysis"


@dataclass(frozen=True)
class HumanObserverConfig(RunConfig):
    participant: str = param("P01", "Participant code", "a code, never a name (letters, digits, - and _; at most "
                             "32): the session is stored and exported under it", group=OBSERVER)
    observer: str = param("person", "Observer", "person: a person answers in the app's run screen (wna cannot "
                          "run one); simulated: a template observer with internal noise answers", choices=OBSERVERS,
                          group=OBSERVER)
    internal_noise: float = param(1.0, "Internal noise", "simulated observer: SD of its internal noise over the SD "
                                  "the stimulus noise gives its decision variable (Burgess–Colborne's ratio)",
                                  low=0.0, high=100.0, step=0.1, decimals=2, group=OBSERVER)
    task: str = param("yes-no", "Task", "n-way: one image, which class?; yes-no: which of the pair?; 2ifc: base ± "
                      "noise side by side, which looks more like the second digit?", choices=TASKS, group=STIMULUS)
    first: int = param(1, "First class", "first digit of the pair (yes/no; 2IFC base)", low=0, high=9,
                       group=STIMULUS)
    second: int = param(7, "Second class", "second digit of the pair (yes/no; 2IFC: 'which looks more like it?')",
                        low=0, high=9, group=STIMULUS)
    procedure: str = param("fixed", "γ procedure", "fixed: every trial at γ; staircase: γ adapts to hold the target "
                           "accuracy (signal tasks only)", choices=PROCEDURES, group=STIMULUS)
    gamma: float = param(0.3, "γ", "signal strength t = γ·s + (1 − γ)·n (the staircase's start; 2IFC: the base's "
                         "weight; n-way at 0: pure noise, no correct answer)", low=0.0, high=GAMMA_CEILING, step=0.05,
                         decimals=3, group=STIMULUS)
    target: float = param(0.75, "Target accuracy", "accuracy the staircase holds (Kaernbach: step down = step up "
                          "× (1 − p)/p)", low=0.55, high=0.95, step=0.05, decimals=3, group=STIMULUS)
    step: float = param(0.04, "Staircase step up", "γ added after a wrong answer", low=0.001, high=0.5, step=0.01,
                        decimals=3, group=STIMULUS)
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise",
                               help="noise source: uniform U[low, high] (the paper's) or gaussian", cli="--noise",
                               group=STIMULUS)
    # Analyses hold every trial's noise in memory (20,000 trials of 28×28: 125 MB).
    trials: int = param(500, "Trials", "fresh trials (a person manages ~500 in 20 min at 2 s a trial)", low=1,
                        high=MAX_TRIALS, step=50, group="Run")
    double_pass: int = param(100, "Double-pass trials", "earlier trials shown again, exactly, after the fresh ones "
                             "(Burgess–Colborne internal noise); at most the fresh trials", low=0, high=MAX_TRIALS,
                             step=50, group="Run")
    seed: int = param(0, "Seed", "seed of the counter-based noise, the signal draws and the interval order", low=0,
                      high=2**31 - 1, group="Run")
    smoothing: float = param(1.0, "Smoothing (px)", "SD in stimulus pixels of the Gaussian that smooths the maps "
                             "before the pixel test (0: none)", low=0.0, high=10.0, step=0.5, decimals=2,
                             role="fit", group=ANALYSIS)
    alpha: float = param(0.05, "Family-wise α", "pixel test: |z| above the Bonferroni bound for all pixels "
                         "(controls false positives over the whole map)", low=0.0001, high=0.5, step=0.01,
                         decimals=4, role="fit", group=ANALYSIS)
    practice: int = param(10, "Practice trials", "trials with feedback before the session (not recorded)", low=0,
                          high=200, role="runtime", group=SCREEN)
    presentation_ms: int = param(0, "Presentation (ms)", "how long the stimulus shows (0: until the answer)",
                                 low=0, high=60_000, step=50, role="runtime", group=SCREEN)
    iti_ms: int = param(500, "Inter-trial interval (ms)", "blank screen with the fixation mark between trials",
                        low=0, high=10_000, step=50, role="runtime", group=SCREEN)
    fixation_ms: int = param(300, "Fixation (ms)", "fixation mark alone before the stimulus", low=0, high=10_000,
                             step=50, role="runtime", group=SCREEN)
    break_every: int = param(100, "Break every", "trials between breaks (0: none)", low=0, high=100_000,
                             role="runtime", group=SCREEN)
    scale: int = param(0, "Scale", "screen pixels per stimulus pixel, nearest-neighbour (0: the largest that fits "
                       "half the screen height)", low=0, high=100, role="runtime", group=SCREEN)
    screen: int = param(0, "Screen", "index of the screen the run screen fills (0: the primary)", low=0, high=16,
                        role="runtime", group=SCREEN)
    viewing_distance_cm: float = param(57.0, "Viewing distance (cm)", "eye to screen (57 cm: 1 cm is 1°)",
                                       low=10.0, high=500.0, step=1.0, decimals=1, role="runtime", group=SCREEN)
    screen_width_cm: float = param(0.0, "Screen width (cm)", "visible width of the screen, for sizes in degrees "
                                   "(0: from the screen's reported physical size)", low=0.0, high=1000.0, step=1.0,
                                   decimals=1, role="runtime", group=SCREEN)
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        if not PARTICIPANT_CODE.fullmatch(self.participant or ""):
            raise ValueError(f"participant code {self.participant!r} must be 1–32 letters, digits, - or _ "
                             "(a code, never a name)")
        require_choice(self.task, TASKS, "task")
        require_choice(self.observer, OBSERVERS, "observer")
        require_choice(self.procedure, PROCEDURES, "γ procedure")
        if self.task != "n-way" and self.first == self.second:
            raise ValueError(f"the two classes must differ, got {self.first} twice")
        if self.procedure == "staircase" and self.task == "2ifc":
            raise ValueError("the staircase needs a correct answer: use it with the n-way or yes/no task")
        if not 0 <= self.gamma <= GAMMA_CEILING:
            raise ValueError(f"γ must lie in [0, {GAMMA_CEILING}], got {self.gamma}")
        if self.double_pass > self.trials:
            raise ValueError(f"double-pass trials ({self.double_pass}) repeat fresh ones: at most {self.trials}")

    @property
    def total_trials(self) -> int:
        return self.trials + self.double_pass

    @property
    def down_step(self) -> float:
        """γ taken away after a correct answer: the weighted up/down rule's p·down = (1 − p)·up."""
        return self.step * (1.0 - self.target) / self.target


# --- trials ---

@dataclass(frozen=True)
class Trial:
    """One trial, regenerated from its index (and, under the staircase, the answers before it)."""

    index: int  # position in the session (0-based); practice trials count from 0 in their own stream
    noise_index: int  # block of the counter-based noise
    repeat_of: int  # -1: fresh; else the trial it repeats (double pass)
    gamma: float
    signal_class: int  # model class shown (-1: none: 2IFC, or n-way at γ = 0)
    signal_image: int  # index into the signal images (-1: none)
    order: int  # 2IFC: 0 base + noise left, 1 right; else 0
    noise: np.ndarray  # (D,) float64, the noise image
    stimuli: np.ndarray  # (intervals, C, H, W) float32, in presentation order (left, right)
    practice: bool = False

    @property
    def fresh(self) -> bool:
        return self.repeat_of < 0


def repeat_order(config: HumanObserverConfig) -> np.ndarray:
    """Which earlier trial each double-pass trial repeats: the first ``double_pass`` fresh trials, shuffled."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, ORDER_STREAM]))
    return rng.permutation(config.double_pass).astype(np.int64)


def interval_order(seed: int, noise_index: int) -> int:
    rng = np.random.default_rng(np.random.SeedSequence([seed, noise_index, ORDER_STREAM]))
    return int(rng.integers(0, 2))


def staircase_gamma(config: HumanObserverConfig, gammas, correct) -> float:
    """The γ of the next fresh trial: the start γ, then up ``step`` after an error and down ``down_step`` after a
    correct answer, within [0, GAMMA_CEILING] (fixed procedure: always ``config.gamma``)."""
    if config.procedure != "staircase" or len(gammas) == 0:
        return float(config.gamma)
    last = float(gammas[-1]) + (-config.down_step if correct[-1] else config.step)
    return float(round(min(max(last, 0.0), GAMMA_CEILING), 10))


class Stimuli:
    """What trials are made of for one config and model: signal images, the 2IFC base, the noise source."""

    def __init__(self, config: HumanObserverConfig, model: LoadedModel) -> None:
        self.config = config
        self.shape = tuple(model.input_spec.shape)
        digits = bundled_mnist("heldout")
        if tuple(digits.images.shape[1:]) != self.shape:
            raise ValueError(f"the human observer shows the bundled 28×28 digits: the model takes "
                             f"{self.shape}; open a 28×28 grey-scale model")
        if config.task != "n-way":
            for digit in (config.first, config.second):
                if str(digit) not in model.class_names:
                    raise ValueError(f"the model has no class named {digit!r} for the pair")
            pair = torch.isin(digits.labels, torch.tensor([config.first, config.second]))
            digits = digits.subset(pair)
        self.signals = SignalImages(digits, model)
        self.class_names = tuple(model.class_names)
        self.pair = (model.class_names.index(str(config.first)), model.class_names.index(str(config.second))) \
            if config.task != "n-way" else (-1, -1)
        means = {int(c): self.signals.images[torch.as_tensor(self.signals.labels == c)].mean(0)
                 for c in self.signals.classes}
        if config.task == "n-way":
            grand = torch.stack(list(means.values())).mean(0)
            self.templates = {c: (m - grand).numpy().ravel().astype(np.float64) for c, m in means.items()}
            self.base = None
            self.mean_signal = grand.numpy()
        else:
            first, second = self.pair
            self.base = (0.5 * (means[first] + means[second])).numpy().astype(np.float32)
            self.templates = {0: (means[second] - means[first]).numpy().ravel().astype(np.float64)}
            self.mean_signal = self.base
        self.noise_mean = float(config.noise.expected_mean)

    def trial(self, index: int, noise_index: int, repeat_of: int, gamma: float, practice: bool = False) -> Trial:
        cfg = self.config
        seed = (cfg.seed + PRACTICE_STREAM) % 2**31 if practice else cfg.seed
        noise = cfg.noise.block(seed, noise_index, 1, self.shape)[0].numpy()
        signal_class, signal_image, order = -1, -1, 0
        if cfg.task == "2ifc":
            assert self.base is not None  # a two-class task's
            order = interval_order(seed, noise_index)
            plus = gamma * self.base + (1 - gamma) * noise
            minus = gamma * self.base + (1 - gamma) * (2 * self.noise_mean - noise)
            stimuli = np.stack([plus, minus] if order == 0 else [minus, plus])
        else:
            image_index, labels = self.signals.draw(seed, noise_index, 1)
            signal = self.signals.images[int(image_index[0])].numpy()
            if cfg.task == "yes-no" or gamma > 0 or cfg.procedure == "staircase":
                signal_class, signal_image = int(labels[0]), int(image_index[0])
            stimuli = (gamma * signal + (1 - gamma) * noise)[None] if signal_image >= 0 else noise[None].copy()
        return Trial(index, noise_index, repeat_of, float(gamma), signal_class, signal_image, order,
                     noise.reshape(-1).astype(np.float64), stimuli.astype(np.float32), practice)

    def recorded(self, state: HumanObserverState, t: int) -> Trial:
        """Trial ``t`` of ``state`` as it was shown, rebuilt from its record alone."""
        cfg, row = self.config, {name: state.trials[name][t] for name in TRIAL_FIELDS}
        noise = cfg.noise.block(cfg.seed, int(row["noise_index"]), 1, self.shape)[0].numpy()
        gamma = float(row["gamma"])
        if cfg.task == "2ifc":
            assert self.base is not None  # a two-class task's
            plus = gamma * self.base + (1 - gamma) * noise
            minus = gamma * self.base + (1 - gamma) * (2 * self.noise_mean - noise)
            stimuli = np.stack([plus, minus] if row["order"] == 0 else [minus, plus])
        elif row["signal_image"] >= 0:
            stimuli = (gamma * self.signals.images[int(row["signal_image"])].numpy() + (1 - gamma) * noise)[None]
        else:
            stimuli = noise[None].copy()
        return Trial(t, int(row["noise_index"]), int(row["repeat_of"]), gamma, int(row["signal_class"]),
                     int(row["signal_image"]), int(row["order"]), noise.reshape(-1).astype(np.float64),
                     stimuli.astype(np.float32))

    def response_choices(self) -> tuple[int, ...]:
        """The answers a trial takes: model classes (n-way, yes/no) or interval 0 (left) / 1 (right)."""
        if self.config.task == "n-way":
            return tuple(range(len(self.class_names)))
        return self.pair if self.config.task == "yes-no" else (0, 1)


def network_answers(runtime: Runtime, trials: list[Trial], stimuli: Stimuli) -> list[int]:
    """The network's answers to the stimuli the person saw, in one forward pass: its top class (n-way), the pair's
    class with the larger logit (yes/no), or the interval whose logit of the second class is larger (2IFC)."""
    if not trials:
        return []
    x = torch.from_numpy(np.concatenate([trial.stimuli for trial in trials])).to(runtime.device)
    with torch.inference_mode():
        logits = runtime.logits(x, context=f"on trials {trials[0].index + 1}–{trials[-1].index + 1}").cpu().numpy()
    task = stimuli.config.task
    if task == "n-way":
        return [int(v) for v in logits.argmax(1)]
    if task == "yes-no":
        first, second = stimuli.pair
        return [second if row[second] > row[first] else first for row in logits]
    second = stimuli.pair[1]
    return [int(logits[2 * i + 1, second] > logits[2 * i, second]) for i in range(len(trials))]


def fill_network_answers(state: HumanObserverState, stimuli: Stimuli, runtime: Runtime, batch: int = 256) -> int:
    """Compute the network's answers still pending (-1), on the trials rebuilt from their records, in batches
    (in the run screen's pauses, never between a key press and the next trial); returns how many."""
    pending = [t for t, answer in enumerate(state.trials["network_answer"]) if answer < 0]
    for start in range(0, len(pending), batch):
        chunk = pending[start:start + batch]
        for t, answer in zip(chunk, network_answers(runtime, [stimuli.recorded(state, t) for t in chunk], stimuli)):
            state.trials["network_answer"][t] = answer
    return len(pending)


class TemplateObserver:
    """A linear template observer with internal noise (for tests and demos).

    Its decision variable: each class's template (class mean digit − mean of the class means) · stimulus (n-way);
    the template (second − first mean digit) · stimulus less its value at the pair's midpoint (yes/no); or the
    template · (left − right) (2IFC). Gaussian internal noise of SD ``internal_noise`` × the SD that the stimulus
    noise gives that variable is added, drawn from (seed, trial) so a rerun answers alike.
    """

    def __init__(self, stimuli: Stimuli, internal_noise: float | None = None) -> None:
        self.stimuli = stimuli
        cfg = stimuli.config
        self.internal_noise = cfg.internal_noise if internal_noise is None else internal_noise
        self.noise_sd = math.sqrt(cfg.noise.expected_variance)
        # The template is applied to the stimulus less its expectation, so neither the noise's mean nor the
        # average digit biases the answer: an unbiased observer, as the double-pass model assumes.
        self.mean_signal = stimuli.mean_signal.reshape(-1).astype(np.float64)

    def respond(self, trial: Trial) -> int:
        cfg, stimuli = self.stimuli.config, self.stimuli
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, trial.index, int(trial.practice),
                                                            INTERNAL_STREAM]))
        expected = trial.gamma * self.mean_signal + (1 - trial.gamma) * stimuli.noise_mean
        flat = trial.stimuli.reshape(trial.stimuli.shape[0], -1).astype(np.float64) - expected
        external = (1 - trial.gamma) * self.noise_sd
        if cfg.task == "n-way":
            classes = sorted(stimuli.templates)
            templates = np.stack([stimuli.templates[c] for c in classes])
            sd = external * np.linalg.norm(templates, axis=1)
            decision = templates @ flat[0] + self.internal_noise * sd * rng.standard_normal(len(classes))
            return int(classes[int(np.argmax(decision))])
        template = stimuli.templates[0]
        if cfg.task == "yes-no":
            sd = external * np.linalg.norm(template)
            decision = template @ flat[0] + self.internal_noise * sd * rng.standard_normal()
            return stimuli.pair[1] if decision > 0 else stimuli.pair[0]
        sd = 2 * external * np.linalg.norm(template)  # left − right = ±2(1 − γ)·n′
        decision = template @ (flat[0] - flat[1]) + self.internal_noise * sd * rng.standard_normal()
        return 0 if decision > 0 else 1


# --- analysis ---

def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) row-normalised Gaussian smoothing of SD ``sigma`` pixels (identity for 0)."""
    if sigma <= 0:
        return np.eye(size)
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum(1, keepdims=True)


def smooth(images: np.ndarray, se: np.ndarray, shape: tuple, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed images, their z-maps): the smoothing is linear, so under white noise (independent pixel means)
    var(Σ k·c) = Σ k²·se², exactly."""
    _, height, width = shape
    rows, cols = gaussian_matrix(height, sigma), gaussian_matrix(width, sigma)
    img = np.nan_to_num(images).reshape(-1, *shape)
    var = np.nan_to_num(se**2).reshape(-1, *shape)
    smoothed = np.einsum("ij,rcjk,lk->rcil", rows, img, cols)
    smoothed_var = np.einsum("ij,rcjk,lk->rcil", rows**2, var, cols**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(smoothed_var > 0, smoothed / np.sqrt(smoothed_var), np.nan)
    missing = ~np.isfinite(images).any(axis=1)
    smoothed = smoothed.reshape(len(images), -1)
    z = z.reshape(len(images), -1)
    smoothed[missing] = np.nan
    z[missing] = np.nan
    return smoothed, z


def bonferroni_z(alpha: float, pixels: int) -> float:
    """Two-sided |z| bound holding the family-wise false-positive rate at ``alpha`` over ``pixels`` tests."""
    return NormalDist().inv_cdf(1 - alpha / (2 * pixels))


@dataclass(frozen=True)
class ObserverMaps:
    """One observer's classification images (one row per class for n-way; one row otherwise)."""

    labels: tuple[str, ...]  # what each row shows
    counts: np.ndarray  # (R,) trials behind each row
    images: np.ndarray  # (R, D)
    zmaps: np.ndarray  # (R, D)
    smoothed: np.ndarray  # (R, D)
    smoothed_z: np.ndarray  # (R, D)
    significant: np.ndarray  # (R, D) bool: |smoothed z| above the family-wise bound


def observer_maps(task: str, noise: np.ndarray, responses: np.ndarray, signal_class: np.ndarray,
                  order: np.ndarray, class_names: tuple, pair: tuple, noise_mean: float, shape: tuple,
                  sigma: float, z_bound: float) -> ObserverMaps:
    """The maps of one observer's answers to the trials whose noise is ``noise`` (N, D)."""
    n, d = noise.shape
    if task == "n-way":
        k = len(class_names)
        acc = ClassAccumulator(k, d)
        if n:
            acc.merge_stats(batch_class_stats(torch.from_numpy(noise), torch.from_numpy(responses), k))
        maps = class_maps(acc)
        images, zmaps = maps.of("centered"), maps.of("zmap")
        labels, counts = tuple(class_names), acc.count.copy()
    elif task == "yes-no":
        acc = ClassAccumulator(4, d)
        first, second = pair
        if n:
            cells = 2 * (signal_class == second).astype(np.int64) + (responses == second).astype(np.int64)
            acc.merge_stats(batch_class_stats(torch.from_numpy(noise), torch.from_numpy(cells), 4))
        image = ahumada_image(acc)
        images, zmaps = image.image[None], image.zmap[None]
        labels = (f"{class_names[second]} − {class_names[first]}",)
        counts = np.array([n])
    else:
        # Chosen − unchosen = 2·mean(s·n′), s = +1 when the base + noise interval was chosen.
        sign = np.where(responses == order, 1.0, -1.0)
        x = sign[:, None] * (noise - noise_mean)
        images = 2 * x.mean(0, keepdims=True) if n else np.full((1, d), np.nan)
        se = 2 * x.std(0, ddof=1, keepdims=True) / math.sqrt(n) if n > 1 else np.full((1, d), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            zmaps = np.where(se > 0, images / se, np.nan)
        labels, counts = (f"more like {class_names[pair[1]]}",), np.array([n])
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.abs(images / zmaps)
    smoothed, smoothed_z = smooth(images, se, shape, sigma)
    return ObserverMaps(labels, counts, images, zmaps, smoothed, smoothed_z,
                        np.nan_to_num(np.abs(smoothed_z)) > z_bound)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    norm = np.linalg.norm(a[ok]) * np.linalg.norm(b[ok])
    return float(a[ok] @ b[ok] / norm) if norm > 0 else float("nan")


def cohen_kappa(a, b) -> float:
    """Cohen's κ of two observers' categorical answers to the same trials (agreement beyond chance)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0:
        return float("nan")
    observed = float((a == b).mean())
    labels = np.union1d(a, b)
    expected = float(sum((a == v).mean() * (b == v).mean() for v in labels))
    return (observed - expected) / (1 - expected) if expected < 1 else float("nan")


def double_pass_agreement_of(internal_noise: float, accuracy: float = 0.5) -> float:
    """Agreement between two passes of the same trials for an observer whose decision variable is
    μ + external + internal noise (SD ratio ``internal_noise``), at ``accuracy`` (0.5: no signal, 2IFC)."""
    rho = 1.0 / (1.0 + internal_noise**2)
    return _agreement(rho, NormalDist().inv_cdf(min(max(accuracy, 1e-9), 1 - 1e-9)))


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)


def _agreement(rho: float, mu: float) -> float:
    """P(both passes agree) for u_i = μ + √ρ·x + √(1 − ρ)·e_i (x shared, e_i independent, all N(0, 1))."""
    if rho >= 1:
        return 1.0
    from scipy.special import ndtr

    p = ndtr((mu + math.sqrt(rho) * _NODES) / math.sqrt(1 - rho))
    return float((_WEIGHTS * (p**2 + (1 - p) ** 2)).sum() / math.sqrt(2 * math.pi))


def internal_noise_estimate(agreement: float, accuracy: float = 0.5) -> float:
    """Burgess & Colborne: the internal/external noise ratio whose double-pass agreement at this accuracy is the
    one observed (inf when agreement is at or below chance's, 0 at perfect agreement)."""
    if not np.isfinite(agreement):
        return float("nan")
    mu = NormalDist().inv_cdf(min(max(accuracy, 1e-6), 1 - 1e-6))
    if agreement >= 1:
        return 0.0
    if agreement <= _agreement(0.0, mu):
        return float("inf")
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if _agreement(mid, mu) < agreement else (low, mid)
    rho = 0.5 * (low + high)
    return math.sqrt(max(1.0 / rho - 1.0, 0.0))


# --- state ---

@dataclass
class HumanObserverState(RunState):
    """The trials answered so far, one list per trial field. Its record is written by hand (one checked array per
    trial field, the layout saved sessions have; the default record would put the trials in the JSON). No
    budget setting: a session is not extended."""

    config: HumanObserverConfig
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    trials: dict = field(default_factory=lambda: {name: [] for name in TRIAL_FIELDS})  # one list per field
    seconds: float = 0.0
    noise_device: str = "cpu"
    display: dict = field(default_factory=dict)  # the run screen as it was: scale, size in px and degrees
    _noise: list = field(default_factory=list, repr=False)  # per trial (D,) noise, regenerated, never stored

    @property
    def trials_done(self) -> int:
        return len(self.trials["response"])

    progress_done = trials_done

    @property
    def progress_total(self) -> int:
        return self.config.total_trials

    @staticmethod
    def new_run_text(config: HumanObserverConfig) -> str:
        who = "a person answers in the run screen" if config.observer == "person" else \
            f"the simulated template observer (internal noise {config.internal_noise:g}) answers"
        return (f"Start runs {config.trials:,} {config.task} trials and {config.double_pass:,} repeated ones for "
                f"participant {config.participant}; {who}.")

    def refitted(self, config: HumanObserverConfig) -> HumanObserverState:
        """The same trials under new analysis settings (smoothing, α): nothing is measured again."""
        return replace(self, config=replace(self.config, smoothing=config.smoothing, alpha=config.alpha),
                       trials={k: list(v) for k, v in self.trials.items()}, _noise=list(self._noise))

    def column(self, name: str) -> np.ndarray:
        dtype = np.float64 if name in ("gamma", "rt_ms") else np.int64
        return np.asarray(self.trials[name], dtype=dtype)

    def correct(self, answers: np.ndarray | None = None) -> np.ndarray:
        """Per trial: 1 correct, 0 wrong, -1 no correct answer (2IFC, pure noise)."""
        answers = self.column("response") if answers is None else answers
        signal = self.column("signal_class")
        return np.where(signal >= 0, (answers == signal).astype(np.int64), -1)

    def next_trial(self, stimuli: Stimuli) -> Trial:
        """Trial ``trials_done``: fresh (γ from the staircase over the fresh trials so far) or a repeat."""
        index, cfg = self.trials_done, self.config
        if index >= cfg.trials:
            original = int(repeat_order(cfg)[index - cfg.trials])
            return stimuli.trial(index, int(self.trials["noise_index"][original]), original,
                                 float(self.trials["gamma"][original]))
        gammas = self.trials["gamma"]
        return stimuli.trial(index, index, -1, staircase_gamma(cfg, gammas, self.correct()[-1:] == 1))

    def record(self, trial: Trial, response: int, rt_ms: float, network: int = -1) -> dict:
        """Add the answer to ``trial`` (the next one); returns the row as stored (for the journal). ``network``
        -1: the network's answer is computed later (fill_network_answers)."""
        if trial.index != self.trials_done or trial.practice:
            raise ValueError(f"trial {trial.index + 1} is not the next one ({self.trials_done + 1})")
        row = {"noise_index": trial.noise_index, "repeat_of": trial.repeat_of, "gamma": trial.gamma,
               "signal_class": trial.signal_class, "signal_image": trial.signal_image, "order": trial.order,
               "response": int(response), "rt_ms": float(rt_ms), "network_answer": int(network)}
        for name, value in row.items():
            self.trials[name].append(value)
        self._noise.append(trial.noise)
        return row

    def noise_matrix(self) -> np.ndarray:
        """(N, D) the noise of every trial, regenerated from the noise indices where not yet in memory."""
        d = int(np.prod(self.image_shape))
        indices = self.trials["noise_index"]
        while len(self._noise) < len(indices):
            b = indices[len(self._noise)]
            self._noise.append(self.config.noise.block(self.config.seed, int(b), 1, self.image_shape)[0]
                               .numpy().reshape(-1).astype(np.float64))
        return np.stack(self._noise) if self._noise else np.zeros((0, d))

    def snapshot(self, samples_per_second: float = 0.0) -> HumanObserverSnapshot:
        return analyse(self, samples_per_second)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        # An autosave may read the state while the run screen adds a trial: ``record`` appends network_answer
        # last, so every field holds at least its count of trials.
        done = len(self.trials["network_answer"])
        meta = {"config": self.config.to_dict(), "class_names": list(self.class_names),
                "image_shape": list(self.image_shape), "trials_done": done,
                "seconds": self.seconds, "noise_device": self.noise_device, "display": dict(self.display)}
        arrays = dict(config_arrays(self.config))
        for name in TRIAL_FIELDS:
            arrays[f"trials/{name}"] = self.column(name)[:done]
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> HumanObserverState:
        config = HumanObserverConfig.from_dict(meta["config"], arrays)
        class_names = require_strings(meta["class_names"], "class_names")
        shape = tuple(require_int(s, "image_shape", 1, 4096) for s in meta["image_shape"])
        done = require_int(meta["trials_done"], "trials_done", 0, config.total_trials)
        trials = {}
        for name in TRIAL_FIELDS:
            values = require_shape(require_array(arrays, f"trials/{name}"), (done,), f"trials/{name}")
            trials[name] = require_finite(values, f"trials/{name}").tolist()
        require_counts(np.asarray(trials["noise_index"], dtype=np.int64), "trials/noise_index")
        if done and min(trials["rt_ms"]) < 0:
            raise ValueError("trials/rt_ms holds a negative response time")
        answers = set(range(len(class_names))) if config.task != "2ifc" else {0, 1}
        for name, allowed in (("response", answers), ("network_answer", answers | {-1})):
            bad = [v for v in trials[name] if v not in allowed]
            if bad:
                raise ValueError(f"trials/{name} holds {bad[0]}, not an answer of the {config.task} task")
        for t, original in enumerate(trials["repeat_of"]):
            if not -1 <= original < min(t, config.trials) or (original >= 0) != (t >= config.trials):
                raise ValueError(f"trials/repeat_of[{t}] = {original} names no earlier fresh trial")
        if done and not all(0 <= g <= GAMMA_CEILING for g in trials["gamma"]):
            raise ValueError(f"trials/gamma holds a γ outside [0, {GAMMA_CEILING}]")
        return cls(config=config, class_names=class_names, image_shape=shape, trials=trials,
                   seconds=float(meta.get("seconds", 0.0)), noise_device=meta.get("noise_device", "cpu"),
                   display=dict(meta.get("display") or {}))


def new_state(model: LoadedModel, config: HumanObserverConfig) -> HumanObserverState:
    """A fresh session for a person or the simulated observer (checks the model can be shown the digits)."""
    stimuli = Stimuli(config, model)
    return HumanObserverState(config, stimuli.class_names, stimuli.shape)


# --- the journal: every answer on disk the moment it is given ---

def journal_path(folder, config: HumanObserverConfig) -> Path:
    return Path(folder) / f"{config.participant}-{config.task}-seed{config.seed}.trials.jsonl"


class TrialJournal:
    """Append-only JSON lines: the session's first line (config, classes, shape), then one line per answer, each
    flushed and fsynced before the next trial shows."""

    def __init__(self, path, state: HumanObserverState) -> None:
        self.path = Path(path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._write({"config": state.config.to_dict(), "class_names": list(state.class_names),
                         "image_shape": list(state.image_shape)})
            for t in range(state.trials_done):
                self._write({name: state.trials[name][t] for name in TRIAL_FIELDS})

    def append(self, row: dict) -> None:
        self._write(row)

    def _write(self, entry: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def state_from_journal(path) -> HumanObserverState:
    """The state a journal holds (a last line cut by a crash is ignored); ValueError names a damaged one."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the crash came mid-write: that answer is the one lost
            raise ValueError(f"{path}: line {number} is not JSON") from None
    if not entries or "config" not in entries[0]:
        raise ValueError(f"{path} is not a human-observer trial journal (no settings line)")
    head, rows = entries[0], entries[1:]
    arrays = {f"trials/{name}": np.asarray([row[name] for row in rows],
                                           dtype=np.float64 if name in ("gamma", "rt_ms") else np.int64)
              for name in TRIAL_FIELDS}
    meta = {"config": head["config"], "class_names": head["class_names"], "image_shape": head["image_shape"],
            "trials_done": len(rows)}
    try:
        return HumanObserverState.from_record(meta, arrays)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: a trial line lacks {exc}") from None


# --- the snapshot: every analysis, from the trials alone ---

@dataclass(frozen=True)
class DoublePass:
    pairs: int
    agreement: float  # fraction of repeated trials answered as the first time
    accuracy: float  # fraction correct over both passes (0.5 for 2IFC: no correct answer)
    internal_noise: float  # Burgess–Colborne ratio σ_int / σ_ext (NaN: n-way, no model)
    network_agreement: float  # the network's own (1: it is deterministic)


@dataclass(frozen=True)
class HumanObserverSnapshot(RunSnapshot):
    participant: str
    task: str
    procedure: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    trials: dict  # field → array, one entry per trial
    human_correct: np.ndarray  # 1 / 0 / -1 (no correct answer)
    network_correct: np.ndarray
    human: ObserverMaps
    network: ObserverMaps
    cosines: np.ndarray  # per row: human vs network smoothed maps
    kappa: float  # error consistency (Geirhos) where trials have a correct answer, else NaN
    response_kappa: float  # Cohen's κ on the answers themselves
    agreement: float  # fraction of trials where person and network answered alike
    double_pass: DoublePass
    smoothing: float
    z_bound: float
    alpha: float
    fit: dict  # psychometric fit of accuracy against γ (empty: fewer than two γ levels)
    target: float
    display: dict = field(default_factory=dict)

    def row_pairs(self) -> list[int]:
        """Rows with a map for both observers."""
        return [r for r in range(len(self.human.labels)) if np.isfinite(self.human.images[r]).any()
                and np.isfinite(self.network.images[r]).any()]


def analyse(state: HumanObserverState, samples_per_second: float = 0.0) -> HumanObserverSnapshot:
    cfg = state.config
    noise = state.noise_matrix()
    trials = {name: state.column(name) for name in TRIAL_FIELDS}
    pair = ((state.class_names.index(str(cfg.first)), state.class_names.index(str(cfg.second)))
            if cfg.task != "n-way" and str(cfg.second) in state.class_names else (0, 1))
    d = int(np.prod(state.image_shape))
    z_bound = bonferroni_z(cfg.alpha, d)
    fresh = trials["repeat_of"] < 0  # maps and agreement from fresh trials: a repeat adds no new noise

    # The network's answers still pending (-1, computed in batches) leave its maps and the comparisons for now.
    both = fresh & (trials["network_answer"] >= 0)

    def maps(answers, rows):
        return observer_maps(cfg.task, noise[rows], answers[rows], trials["signal_class"][rows],
                             trials["order"][rows], state.class_names, pair, cfg.noise.expected_mean,
                             tuple(state.image_shape), cfg.smoothing, z_bound)

    human, network = maps(trials["response"], fresh), maps(trials["network_answer"], both)
    cosines = np.array([cosine(human.smoothed[r], network.smoothed[r]) for r in range(len(human.labels))])
    human_correct = state.correct()
    network_correct = np.where(trials["network_answer"] >= 0, state.correct(trials["network_answer"]), -1)
    scored = both & (human_correct >= 0)
    kappa = error_consistency(human_correct[scored], network_correct[scored])[0] if scored.sum() > 1 else np.nan
    response_kappa = cohen_kappa(trials["response"][both], trials["network_answer"][both])
    agreement = float((trials["response"][both] == trials["network_answer"][both]).mean()) if both.any() \
        else float("nan")
    return HumanObserverSnapshot(
        **state.progress_fields(samples_per_second), participant=cfg.participant, task=cfg.task,
        procedure=cfg.procedure, class_names=tuple(state.class_names), image_shape=tuple(state.image_shape),
        trials=trials, human_correct=human_correct, network_correct=network_correct, human=human, network=network,
        cosines=cosines, kappa=float(kappa), response_kappa=float(response_kappa), agreement=agreement,
        double_pass=double_pass(trials, human_correct, cfg.task), smoothing=cfg.smoothing, z_bound=z_bound,
        alpha=cfg.alpha, fit=psychometric_fit(trials, human_correct, cfg, len(state.class_names)),
        target=cfg.target, display=dict(state.display))


def double_pass(trials: dict, correct: np.ndarray, task: str) -> DoublePass:
    repeats = np.flatnonzero(trials["repeat_of"] >= 0)
    if repeats.size == 0:
        return DoublePass(0, float("nan"), float("nan"), float("nan"), float("nan"))
    first = trials["repeat_of"][repeats]
    agreement = float((trials["response"][repeats] == trials["response"][first]).mean())
    answered = (trials["network_answer"][repeats] >= 0) & (trials["network_answer"][first] >= 0)
    network = float((trials["network_answer"][repeats] == trials["network_answer"][first])[answered].mean()) \
        if answered.any() else float("nan")
    if task == "2ifc":
        accuracy = 0.5
    elif (correct[repeats] >= 0).all():
        accuracy = float(np.concatenate([correct[repeats], correct[first]]).mean())
    else:
        return DoublePass(int(repeats.size), agreement, float("nan"), float("nan"), network)
    # The two-alternative model (2IFC; yes/no with an unbiased criterion) has no n-way counterpart.
    k = internal_noise_estimate(agreement, accuracy) if task != "n-way" else float("nan")
    return DoublePass(int(repeats.size), agreement, accuracy, k, network)


def psychometric_fit(trials: dict, correct: np.ndarray, config: HumanObserverConfig, n_classes: int) -> dict:
    """Maximum-likelihood fit of accuracy against γ (core.psyfit) with the γ where it reaches the target."""
    from .psyfit import fit_psychometric, sigmoid_inverse

    scored = (correct >= 0) & (trials["repeat_of"] < 0)
    levels, index = np.unique(np.round(trials["gamma"][scored], 6), return_inverse=True)
    if levels.size < 3:
        return {}
    n = np.bincount(index, minlength=levels.size)
    k = np.bincount(index, weights=correct[scored], minlength=levels.size)
    guess = 0.5 if config.task == "yes-no" else 1.0 / n_classes
    try:
        fit = fit_psychometric(levels, k, n, sigmoid="logistic", guess=guess)
    except ValueError:
        return {}
    f = (config.target - fit.guess) / (1 - fit.guess - fit.lapse)
    at_target = float(sigmoid_inverse("logistic", f, fit.threshold, fit.width)) if 0 < f < 1 else float("nan")
    return {"levels": levels.tolist(), "n": n.tolist(), "correct": k.tolist(), "fit": fit.to_dict(),
            "gamma_at_target": at_target}


# --- the headless run: the simulated observer only ---

class HumanObserverExperiment(Experiment):
    """One unit is one trial. Only the simulated observer runs here; a person answers in the app's run screen,
    which makes and records trials with the same ``next_trial`` / ``network_answer`` / ``record``."""

    def __init__(self, model: LoadedModel, config=None, state=None, device=None, control=None) -> None:
        super().__init__(model, config, state, device, control)
        self.stimuli = Stimuli(self.config, model)
        self.observer = TemplateObserver(self.stimuli)

    @classmethod
    def new_state(cls, model: LoadedModel, config: HumanObserverConfig, **_) -> HumanObserverState:
        if config.observer == "person":
            raise ValueError("a person runs the human observer in the app (wna-gui, tab Human observer); wna "
                             "re-analyses and exports its sessions (wna info, wna export), and runs only "
                             "--observer simulated")
        return new_state(model, config)

    def prepare(self) -> None:
        if self.config.observer == "person":
            raise ValueError("this session's observer is a person: continue it in the app's run screen")

    def pending(self):
        while not self.state.finished:
            yield self.state.trials_done

    def run_unit(self, _index: int) -> None:
        trial = self.state.next_trial(self.stimuli)
        self.state.record(trial, self.observer.respond(trial), 0.0)
        if self.state.trials_done % NETWORK_BATCH == 0 or self.state.finished:
            fill_network_answers(self.state, self.stimuli, self.runtime)

    def snapshot(self) -> HumanObserverSnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_trials(snapshot: HumanObserverSnapshot, path) -> Path:
    """One row per trial, the layout PsychoPy's data files use (``trials.thisN``, ``key_resp.keys``,
    ``key_resp.corr``, ``key_resp.rt`` in seconds), with the noise index, γ, signal, interval order and the
    network's answer to the same stimuli."""
    path = Path(path)
    t, names = snapshot.trials, snapshot.class_names

    def answer(value):
        return ("left" if value == 0 else "right") if snapshot.task == "2ifc" else names[value]

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["participant", "task", "trials.thisN", "noise_index", "repeat_of", "gamma",
                         "signal_class", "signal_image", "interval_order", "key_resp.keys", "key_resp.corr",
                         "key_resp.rt", "rt_ms", "network_answer", "network_corr", "same_answer"])
        for i in range(snapshot.samples_done):
            signal = int(t["signal_class"][i])
            order = ("noise+ left" if t["order"][i] == 0 else "noise+ right") if snapshot.task == "2ifc" else ""
            corr = snapshot.human_correct[i]
            writer.writerow([snapshot.participant, snapshot.task, i, int(t["noise_index"][i]),
                             int(t["repeat_of"][i]) if t["repeat_of"][i] >= 0 else "", csv_number(t["gamma"][i]),
                             names[signal] if signal >= 0 else "", int(t["signal_image"][i]) if signal >= 0 else "",
                             order, answer(int(t["response"][i])), int(corr) if corr >= 0 else "",
                             csv_number(t["rt_ms"][i] / 1000), csv_number(t["rt_ms"][i]),
                             answer(int(t["network_answer"][i])),
                             int(snapshot.network_correct[i]) if corr >= 0 else "",
                             int(t["response"][i] == t["network_answer"][i])])
    return path


def write_maps(snapshot: HumanObserverSnapshot, path) -> Path:
    """Arrays (.npz): ``human_*`` and ``network_*`` ``image``, ``zmap``, ``smoothed``, ``smoothed_z`` and
    ``significant`` (R, C, H, W; rows ``row_labels``), ``cosines``, ``smoothing_px``, ``z_bound``, the double-pass
    numbers and every trial field (``trial_*``)."""
    path = Path(path)
    shape = (-1, *snapshot.image_shape)
    arrays: dict[str, Any] = {
        "row_labels": np.asarray(snapshot.human.labels), "cosines": snapshot.cosines,
        "smoothing_px": snapshot.smoothing, "z_bound": snapshot.z_bound, "kappa": snapshot.kappa,
        "response_kappa": snapshot.response_kappa, "double_pass_agreement": snapshot.double_pass.agreement,
        "internal_noise": snapshot.double_pass.internal_noise}
    for who, maps in (("human", snapshot.human), ("network", snapshot.network)):
        for name in ("images", "zmaps", "smoothed", "smoothed_z", "significant"):
            arrays[f"{who}_{name.rstrip('s') if name in ('images', 'zmaps') else name}"] = \
                getattr(maps, name).reshape(shape)
    arrays.update({f"trial_{name}": value for name, value in snapshot.trials.items()})
    np.savez_compressed(path, **arrays)
    return path


ARTEFACTS = (
    Artefact("human_trials", "Every trial, one row each (CSV, PsychoPy layout)", (".csv",), write_trials),
    Artefact("human_maps", "Person's and network's classification images, z-maps and tests (.npz)", (".npz",),
             write_maps),
)


# --- `wna info` and `wna run` text ---

def summary(state: HumanObserverState) -> dict:
    s = state.snapshot()
    dp = s.double_pass
    return {"samples_done": state.trials_done, "samples_total": state.config.total_trials,
            "finished": state.finished, "participant": s.participant, "task": s.task,
            "observer": state.config.observer, "procedure": s.procedure,
            "human_accuracy": _fraction(s.human_correct), "network_accuracy": _fraction(s.network_correct),
            "agreement": _finite(s.agreement), "kappa": _finite(s.kappa), "response_kappa": _finite(s.response_kappa),
            "cosines": {label: _finite(c) for label, c in zip(s.human.labels, s.cosines)},
            "double_pass": {"pairs": dp.pairs, "agreement": _finite(dp.agreement),
                            "internal_noise": _finite(dp.internal_noise)},
            "gamma_at_target": _finite(s.fit.get("gamma_at_target", float("nan"))),
            "median_rt_ms": _finite(float(np.median(s.trials["rt_ms"])) if s.samples_done else float("nan"))}


def _finite(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _fraction(correct: np.ndarray) -> float | None:
    scored = correct[correct >= 0]
    return round(float(scored.mean()), 6) if scored.size else None


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished: continue it in the app)"
    lines = [f"participant {entry['participant']}: {entry['samples_done']:,} of {entry['samples_total']:,} "
             f"{entry['task']} trials{status}; observer {entry['observer']}, γ {entry['procedure']}"]
    if entry["human_accuracy"] is not None:
        lines.append(f"  accuracy: observer {entry['human_accuracy']:.1%}, network {entry['network_accuracy']:.1%}"
                     + (f"; error consistency κ {entry['kappa']:.2f}" if entry["kappa"] is not None else ""))
    if entry["agreement"] is not None:
        kappa = entry["response_kappa"]
        lines.append(f"  same answer as the network on {entry['agreement']:.1%} of trials"
                     + (f" (Cohen's κ {kappa:.2f})" if kappa is not None else ""))
    cosines = {k: v for k, v in entry["cosines"].items() if v is not None}
    if cosines:
        lines.append("  cosine person vs network map: " + ", ".join(f"{k} {v:.2f}" for k, v in cosines.items()))
    dp = entry["double_pass"]
    if dp["pairs"]:
        noise = dp["internal_noise"]
        lines.append(f"  double pass: {dp['agreement']:.1%} agreement over {dp['pairs']} repeats"
                     + (f", internal/external noise {noise:.2f}" if noise is not None else ""))
    if entry["gamma_at_target"] is not None:
        lines.append(f"  fitted γ at the target accuracy: {entry['gamma_at_target']:.3f}")
    return lines


def report(snapshot: HumanObserverSnapshot) -> list[str]:
    dp = snapshot.double_pass
    lines = [f"{snapshot.samples_done:,} {snapshot.task} trials of participant {snapshot.participant}; maps "
             f"smoothed σ = {snapshot.smoothing:g} px, pixel test |z| > {snapshot.z_bound:.2f} (family-wise α "
             f"{snapshot.alpha:g}, Bonferroni)"]
    for r, label in enumerate(snapshot.human.labels):
        if np.isfinite(snapshot.cosines[r]):
            lines.append(f"{label}: cosine person vs network {snapshot.cosines[r]:.2f}; significant pixels: person "
                         f"{int(snapshot.human.significant[r].sum())}, network "
                         f"{int(snapshot.network.significant[r].sum())}")
    lines.append(f"same answer as the network on {snapshot.agreement:.1%} of trials, Cohen's κ "
                 f"{snapshot.response_kappa:.2f}" + (f", error consistency κ {snapshot.kappa:.2f}"
                                                      if np.isfinite(snapshot.kappa) else ""))
    if dp.pairs:
        lines.append(f"double pass: {dp.agreement:.1%} agreement over {dp.pairs} repeats; internal/external noise "
                     f"{dp.internal_noise:.2f}" if np.isfinite(dp.internal_noise) else
                     f"double pass: {dp.agreement:.1%} agreement over {dp.pairs} repeats")
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="human-observer",
    title="Human observer",
    help="a person (in the app) or a simulated template observer answers noise trials; their classification "
         "images beside the network's on the same stimuli",
    config=HumanObserverConfig,
    state=HumanObserverState,
    experiment=HumanObserverExperiment,
    unit="trials",
    panel="human_observer",
    artefacts=ARTEFACTS,
    can_refit=True,
    record_version=RECORD_VERSION,
    summary=summary,
    describe=describe,
    report=report,
)
HumanObserverExperiment.spec = EXPERIMENT

__all__ = [
    "EXPERIMENT",
    "HumanObserverConfig",
    "HumanObserverExperiment",
    "HumanObserverSnapshot",
    "HumanObserverState",
    "Stimuli",
    "TemplateObserver",
    "Trial",
    "TrialJournal",
    "fill_network_answers",
    "internal_noise_estimate",
    "network_answers",
    "new_state",
    "staircase_gamma",
    "state_from_journal",
]
