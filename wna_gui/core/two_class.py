"""Two-class classification images (Ahumada 1996; paper §2.1, Fig. 1): a binary CNN sees signal plus noise.

Each trial shows t = γ·s + (1 − γ)·n: s a held-out bundled digit of one of the two classes (drawn 50/50,
then uniformly within the class, from (seed, block) alone), n a block of counter-based noise. The binary
network answers 1 or 2 (the first or the second class of the pair). The noise, and the stimulus, are
accumulated per (stimulus class s, response r) cell in float64 (exact merges, resumable in blocks), for every
γ of the grid on the same noise (common random numbers: the γ's differ by the signal only).

Classification image (SCIENCE.md): c = (n̄12 + n̄22) − (n̄11 + n̄21), n̄sr the mean noise of the trials with
signal s and response r: positive where noise pushes the network to answer the second class. Its z-map is
z = c / (σ·√(Σ 1/n_sr)), σ² the per-pixel noise variance pooled within the four cells. A cell without trials
leaves c undefined (NaN, never a zero map): raise the budget or lower γ. Fig. 1B/C also shows the mean
stimulus of each cell (correct: 1→1, 2→2; incorrect: 1→2, 2→1) and the mean stimulus answered 2 minus the
mean stimulus answered 1.

If the session's model has two classes it is the observer; otherwise a zoo MNIST CNN is trained on the
bundled train digits of the pair (core.train.train_binary_cnn) and kept as a model the run made.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .accumulators import ClassAccumulator, batch_class_stats
from .control import EngineError
from .data import bundled_mnist
from .experiment import Artefact, Experiment, ExperimentSpec
from .images import SignalImages
from .models import LoadedModel
from .noise import NoiseSource, UniformNoise
from .params import config_arrays, param
from .runtime import Runtime
from .state import RunConfig, RunSnapshot, RunState
from .stats import gammas_between

KIND = "two_class"
# 2: the γ range may come from a pilot run (config gamma_range, meta "pilot"); 1: always as set.
RECORD_VERSION = 2
GAMMA_RANGES = {"pilot": "pilot run: where both answers occur", "manual": "as set below"}
# The pilot: a few hundred trials on a fine γ grid, on noise of its own seed stream; a γ qualifies when each of the
# four stimulus → response cells holds at least PILOT_MIN_CELL of its trials (so c and its z-map exist there).
PILOT_GAMMAS = tuple(float(g) for g in np.round(np.arange(0.0, 0.951, 0.05), 10))
PILOT_TRIALS = 1000
PILOT_MIN_CELL = 0.005  # 500 trials per cell at the default 100,000 trials per γ
PILOT_STREAM = 0x9170
CELLS = ("1→1", "1→2", "2→1", "2→2")  # (stimulus class → response), index 2·s + r
STIMULUS = "Stimulus"
OBSERVER = "Binary CNN"


@dataclass(frozen=True)
class TwoClassConfig(RunConfig):
    first: int = param(1, "First class", "first digit of the pair (response 1); a two-class session model uses "
                       "its own classes", low=0, high=9, group=OBSERVER)
    second: int = param(7, "Second class", "second digit of the pair (response 2); the paper's pairs: 1 vs 7 "
                        "and 5 vs 6", low=0, high=9, group=OBSERVER)
    epochs: int = param(5, "Training epochs", "epochs of the binary CNN trained on the bundled digits of the pair",
                        low=1, high=200, group=OBSERVER)
    train_seed: int = param(1, "Training seed", "seed of the binary CNN's training (the authors': 1)", low=0,
                            high=2**31 - 1, group=OBSERVER)
    # The bundled-digit binary CNNs answer one class to nearly all noise up to γ ≈ 0.3 (1 vs 7: "7" up to 0.5) and
    # are always right at high γ: a cell without trials leaves c undefined, so by default a pilot run finds where
    # both answers occur for this observer and the grid spans that.
    gamma_range: str = param("pilot", "γ range", "pilot: a short pilot run (1,000 trials per γ from 0 to 0.95) "
                             "picks the smallest and largest γ where every stimulus → response cell holds ≥ 0.5% of "
                             "trials, recorded with the run; manual: the smallest and largest γ as set",
                             choices=GAMMA_RANGES, group=STIMULUS)
    gamma_min: float = param(0.3, "Smallest γ", "signal strength of the weakest condition, t = γ·s + (1 − γ)·n "
                             "(0: noise alone; with the pilot γ range, set by the pilot)", low=0.0, high=0.95,
                             step=0.05, decimals=3, group=STIMULUS)
    gamma_max: float = param(0.7, "Largest γ", "signal strength of the strongest condition (with the pilot γ range, "
                             "set by the pilot)", low=0.0, high=0.95,
                             step=0.05, decimals=3, group=STIMULUS)
    gamma_points: int = param(5, "γ points", "conditions evenly spaced from the smallest to the largest γ (one "
                              "point: the smallest)", low=1, high=21, group=STIMULUS)
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise",
                               help="noise source: uniform U[low, high] (the paper's) or gaussian", cli="--noise",
                               group=STIMULUS)
    samples: int = param(10_000, "Trials per γ", "trials at each γ (with --resume: the new total)", low=1,
                         high=2_000_000_000, step=10_000, role="budget", group="Run")
    batch_size: int = param(1000, "Batch size", "trials per block (the unit of work; a run keeps its block size)",
                            low=1, high=1_000_000, step=100, group="Run")
    seed: int = param(0, "Seed", "seed of the counter-based noise and of the signal draws", low=0,
                      high=2**31 - 1, group="Run")
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        if self.first == self.second:
            raise ValueError(f"the two classes must differ, got {self.first} twice")
        if self.gamma_range not in GAMMA_RANGES:
            raise ValueError(f"γ range must be {' or '.join(GAMMA_RANGES)}, got {self.gamma_range!r}")
        if not 0 <= self.gamma_min <= self.gamma_max < 1:
            raise ValueError(f"γ must run from a smallest ≥ 0 to a largest < 1 (1 leaves no noise), got "
                             f"{self.gamma_min} to {self.gamma_max}")
        if self.gamma_points < 1:
            raise ValueError(f"at least one γ point, got {self.gamma_points}")
        if self.samples < 1 or self.batch_size < 1:
            raise ValueError("trials and batch size must be positive")

    @property
    def gammas(self) -> tuple[float, ...]:
        return gammas_between(self.gamma_min, self.gamma_max, self.gamma_points)

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)


# --- the estimate ---

@dataclass(frozen=True)
class TwoClassImage:
    """Ahumada's classification image of one γ, from the per-cell noise statistics."""

    counts: np.ndarray  # (4,) trials per cell, CELLS order
    cell_means: np.ndarray  # (4, D) mean noise per cell (NaN: no trials)
    image: np.ndarray  # (D,) c = (n̄12 + n̄22) − (n̄11 + n̄21); NaN if a cell is empty
    zmap: np.ndarray  # (D,) c / (σ √Σ 1/n_sr)
    sigma: np.ndarray  # (D,) pooled within-cell noise SD
    # The paper's Eq. 2 reduction: mean noise answered 2 minus mean noise answered 1, whatever the signal;
    # defined as soon as both answers occur (a biased observer may never err on one class).
    response_image: np.ndarray  # (D,)
    response_zmap: np.ndarray  # (D,) response_image / (σ √(1/n·1 + 1/n·2))


def ahumada_image(noise: ClassAccumulator) -> TwoClassImage:
    """c and its z-map from a 4-cell accumulator of the noise (cell 2·s + r, s and r in {0, 1})."""
    counts = noise.count.astype(np.int64)
    means = np.full((4, noise.n_features), np.nan)
    present = noise.classes[counts[noise.classes] > 0]
    means[present] = noise.mean[np.searchsorted(noise.classes, present)]
    m2 = noise.dense("m2")
    dof = counts.sum() - (counts > 0).sum()
    sigma2 = m2.sum(0) / dof if dof > 0 else np.full(noise.n_features, np.nan)
    # Response 2 (cells 1→2 and 2→2) minus response 1 (cells 1→1 and 2→1).
    image = (means[1] + means[3]) - (means[0] + means[2])
    zmap = _z(image, sigma2, counts)
    answered = np.array([counts[0] + counts[2], counts[1] + counts[3]])
    if (answered > 0).all():
        sums = np.nan_to_num(means) * counts[:, None]
        response_image = (sums[1] + sums[3]) / answered[1] - (sums[0] + sums[2]) / answered[0]
    else:
        response_image = np.full(noise.n_features, np.nan)
    return TwoClassImage(counts, means, image, zmap, np.sqrt(sigma2), response_image,
                         _z(response_image, sigma2, answered))


def _z(image: np.ndarray, sigma2: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """image / (σ √Σ 1/n) for a difference of independent means of ``counts`` trials (NaN if one is empty)."""
    if not (counts > 0).all():
        return np.full(image.shape, np.nan)
    se = np.sqrt(sigma2 * (1.0 / counts).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(se > 0, image / np.where(se > 0, se, 1.0), np.nan)


def response_difference(stimuli: ClassAccumulator) -> np.ndarray:
    """Mean stimulus answered 2 minus mean stimulus answered 1 (Fig. 1B, fifth column); NaN if a response
    never occurred."""
    counts = stimuli.count.astype(np.float64)
    sums = stimuli.dense("mean") * counts[:, None]
    answered_2, answered_1 = counts[1] + counts[3], counts[0] + counts[2]
    if answered_1 == 0 or answered_2 == 0:
        return np.full(stimuli.n_features, np.nan)
    return (sums[1] + sums[3]) / answered_2 - (sums[0] + sums[2]) / answered_1


def cell_stimulus_means(stimuli: ClassAccumulator) -> np.ndarray:
    """(4, D) mean stimulus per cell (NaN: no trials)."""
    out = np.full((4, stimuli.n_features), np.nan)
    present = stimuli.classes[stimuli.count[stimuli.classes] > 0]
    out[present] = stimuli.mean[np.searchsorted(stimuli.classes, present)]
    return out


# --- state ---

@dataclass
class TwoClassState(RunState):
    config: TwoClassConfig
    class_names: tuple[str, ...]  # the observer's two classes
    image_shape: tuple[int, ...]
    model_name: str = ""  # the binary CNN this run trained (in the session's models); "": the session's model
    blocks_done: int = 0
    noise_device: str = ""
    seconds: float = 0.0
    noise: list = field(default_factory=list)  # per γ: ClassAccumulator(4, D) of the noise by cell
    stimuli: list = field(default_factory=list)  # per γ: of the stimuli by cell
    signal_images: dict = field(default_factory=dict)
    binary: LoadedModel | None = None  # the trained observer (not part of the record: saved under /models)
    pilot: dict = field(default_factory=dict)  # how the γ range was chosen (empty: as set)

    budget_unit = "trials"

    def __post_init__(self) -> None:
        n_features = int(np.prod(self.image_shape))
        for name in ("noise", "stimuli"):
            accumulators = getattr(self, name)
            while len(accumulators) < len(self.config.gammas):
                accumulators.append(ClassAccumulator(4, n_features))

    @property
    def samples_done(self) -> int:
        return min(self.blocks_done * self.config.batch_size, self.config.samples)

    progress_done = samples_done

    @property
    def progress_total(self) -> int:
        return self.config.samples

    @staticmethod
    def new_run_text(config: TwoClassConfig) -> str:
        return (f"Start runs {config.samples:,} trials at each of {len(config.gammas)} γ "
                f"({', '.join(f'{g:g}' for g in config.gammas)}), after training a binary CNN for "
                f"{config.first} vs {config.second} unless the model has two classes.")

    def observer(self, model: LoadedModel) -> LoadedModel:
        """The network that answers: the trained binary CNN, or the session's two-class model."""
        if self.model_name:
            if self.binary is None:
                raise EngineError(f"the binary CNN {self.model_name!r} of this run is missing from the session")
            return self.binary
        return model

    def made_models(self) -> dict[str, LoadedModel]:
        return {self.model_name: self.binary} if self.model_name and self.binary is not None else {}

    def attach_models(self, models: dict[str, LoadedModel]) -> None:
        if self.model_name in models:
            self.binary = models[self.model_name]

    def snapshot(self, samples_per_second: float = 0.0) -> "TwoClassSnapshot":
        images = tuple(ahumada_image(acc) for acc in self.noise)
        return TwoClassSnapshot(
            **self.progress_fields(samples_per_second),
            class_names=tuple(self.class_names), image_shape=tuple(self.image_shape),
            gammas=tuple(self.config.gammas), images=images,
            stimulus_means=tuple(cell_stimulus_means(acc) for acc in self.stimuli),
            stimulus_difference=tuple(response_difference(acc) for acc in self.stimuli),
            model_name=self.model_name, noise_mean=self.config.noise.expected_mean)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"config": self.config.to_dict(), "class_names": list(self.class_names),
                "image_shape": list(self.image_shape), "model_name": self.model_name,
                "blocks_done": self.blocks_done, "samples_done": self.samples_done,
                "noise_device": self.noise_device, "seconds": self.seconds,
                "signal_images": dict(self.signal_images), "pilot": dict(self.pilot)}
        arrays: dict[str, np.ndarray] = dict(config_arrays(self.config))
        shape = tuple(self.image_shape)
        for g, (noise, stimuli) in enumerate(zip(self.noise, self.stimuli)):
            for group, acc in (("noise", noise), ("stimuli", stimuli)):
                for name, value in acc.state().items():
                    arrays[f"gamma/{g}/{group}/{name}"] = value
            image = ahumada_image(noise)  # for readers of the file: the results, computed from the above
            arrays[f"results/{g}/classification_image"] = image.image.reshape(shape)
            arrays[f"results/{g}/zmap"] = image.zmap.reshape(shape)
            arrays[f"results/{g}/response_image"] = image.response_image.reshape(shape)
            arrays[f"results/{g}/counts"] = image.counts
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "TwoClassState":
        config = TwoClassConfig.from_dict(meta["config"], arrays)
        accumulators: dict[str, list[ClassAccumulator]] = {"noise": [], "stimuli": []}
        for g in range(len(config.gammas)):
            for group, out in accumulators.items():
                prefix = f"gamma/{g}/{group}/"
                out.append(ClassAccumulator.from_state({name: arrays[prefix + name]
                                                        for name in ClassAccumulator.FIELDS}))
        return cls(config=config, class_names=tuple(meta["class_names"]),
                   image_shape=tuple(int(s) for s in meta["image_shape"]), model_name=meta.get("model_name", ""),
                   blocks_done=int(meta["blocks_done"]), noise_device=meta.get("noise_device", ""),
                   seconds=float(meta.get("seconds", 0.0)), noise=accumulators["noise"],
                   stimuli=accumulators["stimuli"], signal_images=dict(meta.get("signal_images") or {}),
                   pilot=dict(meta.get("pilot") or {}))


@dataclass(frozen=True)
class TwoClassSnapshot(RunSnapshot):
    """Progress in trials per γ."""

    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    gammas: tuple[float, ...]
    images: tuple[TwoClassImage, ...]  # per γ
    stimulus_means: tuple[np.ndarray, ...]  # per γ: (4, D)
    stimulus_difference: tuple[np.ndarray, ...]  # per γ: (D,)
    model_name: str
    noise_mean: float = 0.5

    def cell_label(self, cell: int) -> str:
        s, r = divmod(cell, 2)
        return f"{self.class_names[s]}→{self.class_names[r]}"

    def correct(self, g: int) -> float:
        counts = self.images[g].counts
        total = counts.sum()
        return float((counts[0] + counts[3]) / total) if total else float("nan")

    def empty_cells(self, g: int) -> list[str]:
        return [self.cell_label(c) for c in range(4) if self.images[g].counts[c] == 0]


# --- the experiment ---

@lru_cache(maxsize=4)
def _binary_cnn(first: int, second: int, epochs: int, seed: int) -> LoadedModel:
    """Deterministic (seeded, on the CPU), so a run started again reuses the network instead of retraining."""
    from .train import train_binary_cnn

    return train_binary_cnn((first, second), epochs=epochs, seed=seed, device="cpu")


def default_pair_observer(model: LoadedModel, config: TwoClassConfig) -> tuple[LoadedModel | None, str]:
    """(trained binary CNN, its model name) when the session's model is not a two-class model, else (None, "")."""
    if model.n_classes == 2:
        return None, ""
    binary = _binary_cnn(config.first, config.second, config.epochs, config.train_seed)
    return binary, f"binary-cnn-{config.first}v{config.second}-e{config.epochs}-s{config.train_seed}"


def pilot_gamma_range(observer: LoadedModel, config: TwoClassConfig, device: str | None = None) -> dict:
    """A short pilot of ``observer`` on PILOT_GAMMAS (bundled held-out digits, noise of its own seed): the smallest
    and largest γ where every stimulus → response cell holds at least PILOT_MIN_CELL of the trials. When no γ
    does, the γ whose emptiest cell is fullest, ± 0.05. What it measured is returned for the run's record."""
    runtime = Runtime(observer, device)
    signals = SignalImages(bundled_mnist("heldout"), observer)
    seed = (config.seed + PILOT_STREAM) % 2**31
    x = config.noise.block(seed, 0, PILOT_TRIALS, tuple(observer.input_spec.shape), runtime.device)
    index, drawn_class = signals.draw(seed, 0, PILOT_TRIALS)
    shown = signals.images[torch.as_tensor(index)].to(runtime.device)
    signal_class = torch.as_tensor(drawn_class, device=runtime.device)
    emptiest_per_gamma = []
    with torch.inference_mode():
        for gamma in PILOT_GAMMAS:
            answers = runtime.logits(gamma * shown + (1 - gamma) * x, context=f"in the γ pilot at γ = {gamma:g}"
                                     ).argmax(1)
            cells = torch.bincount(2 * signal_class + answers, minlength=4).cpu().numpy()
            emptiest_per_gamma.append(float(cells.min() / PILOT_TRIALS))
    emptiest = np.asarray(emptiest_per_gamma)
    both = np.flatnonzero(emptiest >= PILOT_MIN_CELL)
    if both.size:
        low, high = PILOT_GAMMAS[both[0]], PILOT_GAMMAS[both[-1]]
    else:
        best = PILOT_GAMMAS[int(np.argmax(emptiest))]
        low, high = best, best
    if low == high and config.gamma_points > 1:
        low, high = max(0.0, low - 0.05), min(0.95, high + 0.05)
    return {"gammas": list(PILOT_GAMMAS), "emptiest_cell": [round(v, 4) for v in emptiest], "trials": PILOT_TRIALS,
            "min_cell": PILOT_MIN_CELL, "gamma_min": float(low), "gamma_max": float(high),
            "found": bool(both.size)}


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 always used the γ range as set."""
    return {**meta, "config": {**meta["config"], "gamma_range": "manual"}, "pilot": {}}, arrays


class TwoClassExperiment(Experiment):
    """A unit is one block of trials, shown at every γ. ``signals``: an ImageSet replacing the bundled digits."""

    def __init__(self, model: LoadedModel, config=None, state=None, device=None, control=None, signals=None) -> None:
        super().__init__(model, config, state, device, control)
        observer = self.state.observer(model)
        self.runtime = Runtime(observer, device)  # the observer answers, not the session's model
        self.device = self.runtime.device
        self._signals = SignalImages(signals if signals is not None else bundled_mnist("heldout"), observer)
        if self.state.progress_done and self.state.signal_images.get("sha256") not in (None, self._signals.sha256):
            raise EngineError("these signal images differ from the ones the run showed; choose the same images")
        self.state.signal_images = self._signals.record()
        self._signal_images = self._signals.images.to(self.device)

    @classmethod
    def new_state(cls, model: LoadedModel, config: TwoClassConfig, **_) -> TwoClassState:
        if model.n_classes != 2:
            if tuple(model.input_spec.shape) != (1, 28, 28):
                raise ValueError("two-class images train a binary MNIST CNN on the bundled digits: open a 28×28 "
                                 "grey-scale model or a two-class model")
        binary, name = default_pair_observer(model, config)
        observer = binary if binary is not None else model
        pilot = {}
        if config.gamma_range == "pilot":
            pilot = pilot_gamma_range(observer, config)
            config = replace(config, gamma_min=pilot["gamma_min"], gamma_max=pilot["gamma_max"])
        # A two-class model's own class names must be digits of the signal images (checked when the run starts).
        return TwoClassState(config, tuple(observer.class_names), tuple(observer.input_spec.shape),
                             model_name=name, binary=binary, pilot=pilot)

    def pending(self):
        while not self.state.finished:
            yield self.state.blocks_done

    def run_unit(self, block: int) -> None:
        cfg, state = self.config, self.state
        size = min(cfg.batch_size, cfg.samples - block * cfg.batch_size)
        x = cfg.noise.block(cfg.seed, block, cfg.batch_size, tuple(state.image_shape), self.device)[:size]
        index, drawn_class = self._signals.draw(cfg.seed, block, size)
        shown = self._signal_images[torch.as_tensor(index, device=self.device)]
        signal_class = torch.as_tensor(drawn_class, device=self.device)
        with torch.inference_mode():
            for g, gamma in enumerate(cfg.gammas):
                stimuli = gamma * shown + (1 - gamma) * x
                answers = self.runtime.logits(stimuli, context=f"at γ = {gamma:g}, trial {state.samples_done:,}"
                                              ).argmax(1)
                cells = 2 * signal_class + answers
                state.noise[g].merge_stats(batch_class_stats(x, cells, 4))
                state.stimuli[g].merge_stats(batch_class_stats(stimuli, cells, 4))
        state.blocks_done += 1

    def snapshot(self) -> TwoClassSnapshot:
        return self.state.snapshot(self.rate)


# --- exports ---

def write_table(snapshot: TwoClassSnapshot, path) -> Path:
    """Per γ (CSV): trials per (stimulus → response) cell, fraction correct, the classification image's peak |z|
    and the cells without trials."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["gamma", *(f"n_{snapshot.cell_label(c)}" for c in range(4)), "fraction_correct",
                         "max_abs_z", "empty_cells"])
        for g, gamma in enumerate(snapshot.gammas):
            image = snapshot.images[g]
            z = np.abs(image.zmap)
            writer.writerow([f"{gamma:g}", *(int(n) for n in image.counts),
                             f"{snapshot.correct(g):.6f}" if np.isfinite(snapshot.correct(g)) else "",
                             f"{np.nanmax(z):.6f}" if np.isfinite(z).any() else "",
                             " ".join(snapshot.empty_cells(g))])
    return path


def write_arrays(snapshot: TwoClassSnapshot, path) -> Path:
    """Arrays (.npz), first axis γ: ``classification_image`` and ``zmap`` (G, C, H, W), ``response_image`` (mean
    noise answered 2 − answered 1) and ``response_zmap``, ``noise_cell_means`` and
    ``stimulus_cell_means`` (G, 4, C, H, W; cells 1→1, 1→2, 2→1, 2→2), ``stimulus_difference`` (answered 2 −
    answered 1), ``counts`` (G, 4); ``gammas``, ``class_names``, ``trials``."""
    path = Path(path)
    shape = snapshot.image_shape
    np.savez_compressed(
        path, gammas=np.asarray(snapshot.gammas), class_names=np.asarray(snapshot.class_names),
        trials=snapshot.samples_done,
        classification_image=np.stack([i.image.reshape(shape) for i in snapshot.images]),
        zmap=np.stack([i.zmap.reshape(shape) for i in snapshot.images]),
        response_image=np.stack([i.response_image.reshape(shape) for i in snapshot.images]),
        response_zmap=np.stack([i.response_zmap.reshape(shape) for i in snapshot.images]),
        noise_cell_means=np.stack([i.cell_means.reshape(4, *shape) for i in snapshot.images]),
        stimulus_cell_means=np.stack([m.reshape(4, *shape) for m in snapshot.stimulus_means]),
        stimulus_difference=np.stack([d.reshape(shape) for d in snapshot.stimulus_difference]),
        counts=np.stack([i.counts for i in snapshot.images]))
    return path


ARTEFACTS = (
    Artefact("two_class_maps", "Cells, stimulus difference, classification image and z-map per γ (figure)",
             (".png", ".pdf", ".svg"), figure="wna_gui.figures.two_class:save_two_class_figure",
             available=lambda snapshot: snapshot.samples_done > 0),
    Artefact("two_class_counts", "Trials per cell and fraction correct per γ (CSV)", (".csv",), write_table),
    Artefact("two_class_arrays", "Classification images, z-maps and cell means per γ (.npz)", (".npz",),
             write_arrays),
)


# --- `wna info` and `wna run` text ---

def summary(state: TwoClassState) -> dict:
    snapshot = state.snapshot()
    return {
        "samples_done": state.samples_done, "samples_total": state.config.samples, "finished": state.finished,
        "compute_seconds": round(state.seconds, 3), "classes": list(state.class_names),
        "observer": state.model_name or "the session's model", "gammas": list(snapshot.gammas),
        "counts": {f"{g:g}": {snapshot.cell_label(c): int(n) for c, n in enumerate(snapshot.images[i].counts)}
                   for i, g in enumerate(snapshot.gammas)},
        "fraction_correct": {f"{g:g}": snapshot.correct(i) for i, g in enumerate(snapshot.gammas)},
        "gamma_range": pilot_text(state.pilot),
    }


def pilot_text(pilot: dict) -> str:
    """How the γ range was chosen, in words."""
    if not pilot:
        return "γ range as set"
    found = (f"where every cell held ≥ {pilot['min_cell']:.0%} of {pilot['trials']} trials" if pilot["found"] else
             f"no γ gave every cell {pilot['min_cell']:.0%} of {pilot['trials']} trials: around the best one")
    return f"γ {pilot['gamma_min']:g}–{pilot['gamma_max']:g} from a pilot run, {found}"


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    first, second = entry["classes"]
    lines = [f"{entry['samples_done']:,} of {entry['samples_total']:,} trials per γ{status}; {first} vs {second}, "
             f"observer {entry['observer']}"]
    if entry.get("gamma_range"):
        lines.append(f"  {entry['gamma_range']}")
    for gamma, counts in entry["counts"].items():
        correct = entry["fraction_correct"][gamma]
        lines.append(f"  γ = {gamma}: " + ", ".join(f"{cell} {n:,}" for cell, n in counts.items())
                     + (f"; {correct:.1%} correct" if correct == correct else ""))
    return lines


def report(snapshot: TwoClassSnapshot) -> list[str]:
    first, second = snapshot.class_names
    lines = [f"{snapshot.samples_done:,} trials per γ in {snapshot.seconds:.1f} s, {first} vs {second} "
             f"(observer: {snapshot.model_name or 'the session model'}); c = (n̄12 + n̄22) − (n̄11 + n̄21): positive "
             f"where noise pushes the answer to {second}"]
    for g, gamma in enumerate(snapshot.gammas):
        image = snapshot.images[g]
        empty = snapshot.empty_cells(g)
        peak = f"peak |z| {np.nanmax(np.abs(image.zmap)):.1f}" if np.isfinite(image.zmap).any() else \
            f"no classification image: no trials in {', '.join(empty)}"
        if np.isfinite(image.response_zmap).any():
            peak += f"; by response alone peak |z| {np.nanmax(np.abs(image.response_zmap)):.1f}"
        lines.append(f"γ = {gamma:g}: {snapshot.correct(g):.1%} correct; cells "
                     + ", ".join(f"{snapshot.cell_label(c)} {int(n):,}" for c, n in enumerate(image.counts))
                     + f"; {peak}")
    return lines


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="two-class",
    title="Two-class images",
    help="Ahumada's two-class classification images of a binary CNN shown signal plus noise (paper Fig. 1)",
    config=TwoClassConfig,
    state=TwoClassState,
    experiment=TwoClassExperiment,
    unit="trials per γ",
    panel="two_class",
    artefacts=ARTEFACTS,
    can_extend=True,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1},
    summary=summary,
    describe=describe,
    report=report,
)
TwoClassExperiment.spec = EXPERIMENT

__all__ = ["EXPERIMENT", "TwoClassConfig", "TwoClassExperiment", "TwoClassImage", "TwoClassSnapshot",
           "TwoClassState", "ahumada_image", "response_difference"]
