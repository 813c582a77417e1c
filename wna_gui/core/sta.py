"""Spike-triggered analysis of single units (paper §3.3, Figs. 8, 20, 22; STC beyond the paper): the experiment.

For every unit of one conv or linear layer at once, at one position of its
output map (default: the centre), noise block (seed, b) → the units'
activations (post-nonlinearity by default) → float64 streaming accumulators
over each unit's receptive-field crop of the noise:

- **STA**: Σ aᵢ(xᵢ − x̄) / Σ aᵢ and the unnormalised Σ aᵢ(xᵢ − x̄) / N, with
  z-maps; even and odd blocks accumulate apart (split-half reliability).
  Receptive fields come from the network's layers (core.receptive_field).
  Where the field lies inside the image and no padding is on the way, the
  network runs on the crop alone (the unit cannot see anything else), which
  is checked against the full forward pass when the run starts.
- **Learned kernels**: for the first conv layer, the cosine of each unit's
  STA with its kernel (in pixel space).
- **STC** over the first ``stc_samples`` samples: the spike-triggered
  covariance against the stimulus covariance of the crop, eigen-decomposed,
  tested against a shuffle null (core.spike_triggered), nested.
- **Layer activation maps**: per class, the mean activation of every conv
  and linear layer for noise (by predicted class, first ``map_samples``
  samples) and for the bundled real digits (by true class, MNIST models),
  and the mean L2 distance between classes per layer (Fig. 20).

Structured (correlated) noise: a source that offers ``block_with_scores`` and
``score_basis`` (see :func:`is_structured`) is analysed on its white scores,
and the results are mapped back to pixels (k = STA_scores·(BBᵀ)⁺B, which is
STA_scores·B for orthonormal components).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import numpy as np
import torch
from torch import nn

from .accumulators import reliability_grid
from .control import EngineError
from .distributed import BlockSet
from .experiment import Artefact, Experiment, ExperimentSpec
from .models import MNIST_CLASSES, LoadedModel
from .noise import NoiseSource, UniformNoise
from .params import config_arrays, param
from .records import require_counts, require_finite, require_flags, require_shape
from .receptive_field import (
    Geometry,
    LayerGeometry,
    PostActivation,
    ReceptiveFieldError,
    capture,
    capture_all,
    is_first_conv,
    layer_geometry,
    post_activation,
    trace,
    unit_layers,
)
from .spike_triggered import (
    STAAccumulator,
    STCAccumulator,
    cosine_rows,
    nested_test,
    null_spectra,
    pearson_rows,
    permutations,
    shuffle_null,
)
from .state import BlockState, RunConfig, RunSnapshot

KIND = "sta"
# 2: the blocks done as ranges (done_blocks), so the sampling splits over workers; 1: a count of blocks.
RECORD_VERSION = 2
ACTIVATIONS = {"post": "after the nonlinearity", "pre": "before the nonlinearity"}
STA_VIEWS = ("sta", "unnormalised", "zmap")
STA_VIEW_TITLES = {"sta": "STA  Σa(x − x̄)/Σa", "unnormalised": "unnormalised  Σa(x − x̄)/N", "zmap": "z-map"}
MAX_STC_DIMS = 8  # significant directions sought per unit
STC_MAX_BYTES = 256 * 2**20  # the Σaxxᵀ accumulator of one layer
NULL_WORK_FLOPS = 2e10  # about this much null arithmetic per unit of work (pause and progress between)
NULL_COLUMNS = 256  # and at least this many (unit, shuffle) weight columns per product: a GEMM wide enough to be fast
MAP_MAX_CLASSES = 100  # activation maps per class for at most this many classes
MAP_FULL_LIMIT = 2**22  # per-class activation values of one layer kept in full up to this many (else channel means)
REAL_BATCH = 500
# The network's own outputs as a layer of units (each sees the whole image): the one layer a TorchScript model
# offers, since it can be neither traced nor hooked. Its STA is the logit kernel of each output.
OUTPUT_LAYER = "output"


def _is_script(net) -> bool:
    return isinstance(net, torch.jit.ScriptModule)


def _image_shape(values) -> tuple[int, int, int]:
    """(C, H, W) of a model's input or a record's list (ValueError unless three numbers)."""
    channels, height, width = (int(v) for v in values)
    return channels, height, width


def _pair(values) -> tuple[int, int]:
    first, second = (int(v) for v in values)
    return first, second


def output_geometry(model: LoadedModel) -> LayerGeometry:
    return LayerGeometry(OUTPUT_LAYER, "linear", model.n_classes, (1, 1), _image_shape(model.input_spec.shape),
                         Geometry(whole=True))


def layer_options(model) -> dict:
    """The model's conv and linear layers, labelled with their kind and number of units, then its outputs."""
    out = {}
    for name, module in unit_layers(model.net).items():
        if isinstance(module, nn.Conv2d):
            out[name] = f"{name} (conv, {module.out_channels} units)"
        else:
            out[name] = f"{name} (linear, {module.out_features} units)"
    out[OUTPUT_LAYER] = f"output ({model.n_classes} units: the network's outputs)"
    return out


def parse_position(text: str) -> tuple[int, int] | None:
    """"centre" → None; "row,col" → (row, col); ValueError (one line) otherwise."""
    word = str(text).strip().lower()
    if word in ("", "centre", "center", "middle", "none", "default"):
        return None
    parts = [p for p in word.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        row, col = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"position must be centre or row,col (two whole numbers), got {text!r}") from None
    if row < 0 or col < 0:
        raise ValueError(f"position must be non-negative, got {text!r}")
    return row, col


class ScoredNoise(Protocol):
    """A structured source: ``block_with_scores(seed, b, size, shape, device)`` → (images, scores (size, K)), block
    b's images and the independent, zero-mean, unit-variance scores that made them, and ``score_basis(shape)`` →
    (K, C·H·W): images = offset + scores·basis (before any clipping)."""

    def block_with_scores(self, seed: int, block: int, block_size: int, shape: tuple[int, ...],
                          device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]: ...

    def score_basis(self, shape: tuple[int, ...]) -> np.ndarray: ...


def is_structured(noise: object) -> TypeGuard[ScoredNoise]:
    """Whether ``noise`` is a structured source (:class:`ScoredNoise`) analysed on its scores."""
    return callable(getattr(noise, "block_with_scores", None)) and callable(getattr(noise, "score_basis", None))


def score_basis(noise: NoiseSource, shape: tuple[int, ...]) -> np.ndarray:
    """(K, C·H·W) float64 basis of a structured source (TypeError for any other)."""
    if not is_structured(noise):
        raise TypeError(f"{noise.kind} noise is not made from scores: it has no score basis")
    return np.asarray(noise.score_basis(shape), dtype=np.float64)


@dataclass(frozen=True)
class STAConfig(RunConfig):
    layer: str = param("conv1", "Layer", "conv or linear layer whose units are mapped (all its units at once), "
                       "or output: the network's outputs (the only layer of a TorchScript model)",
                       options=layer_options, group="Units")
    position: str = param("centre", "Position", "the units' place in the layer's output map: centre, or row,col "
                          "(conv layers; a linear layer's units see the whole image)", group="Units")
    activation: str = param("post", "Activation", "weight the noise by the activation after the layer's "
                            "nonlinearity (post) or before it (pre)", choices=ACTIVATIONS, group="Units")
    noise: NoiseSource = param(kind="noise", default_factory=UniformNoise, label="Noise",
                               help="noise source: uniform U[low, high] (the paper's) or gaussian N(mean, std²) "
                                    "(Stein's lemma exact; what STC assumes)", cli="--noise", group="Noise stimulus")
    samples: int = param(100_000, "Sample budget", "noise images to draw (with --resume: the new total)",
                         low=1, high=2_000_000_000, step=10_000, role="budget", group="Run")
    batch_size: int = param(1000, "Batch size", "noise images per block (a block is the unit of work; a run keeps "
                            "its block size)", low=1, high=1_000_000, step=100, group="Run")
    seed: int = param(0, "Seed", "seed of the counter-based noise: the same seed gives the same STAs",
                      low=0, high=2**31 - 1, group="Run")
    stc_samples: int = param(20_000, "STC samples", "the first this many samples also feed the spike-triggered "
                             "covariance (its eigen-analysis against a shuffle null); 0: no STC",
                             low=0, high=10_000_000, step=10_000, group="Covariance (STC)")
    shuffles: int = param(100, "Shuffles", "repeats of the shuffle null (activations permuted across trials); "
                          "significant: outside the null's extremes", low=100, high=10_000, step=10, role="fit",
                          group="Covariance (STC)")
    map_samples: int = param(10_000, "Map samples", "the first this many samples also give per-class mean "
                             "activation maps of every layer (full forward passes)", low=0, high=10_000_000,
                             step=10_000, group="Activation maps")
    snapshot_seconds: float = 0.2  # how often a run shows progress; not a result setting

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"sample budget must be positive, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; use {' or '.join(ACTIVATIONS)}")
        if self.stc_samples < 0 or self.stc_samples == 1:
            raise ValueError(f"STC samples must be 0 (no STC) or at least 2, got {self.stc_samples}")
        if self.shuffles < 100:
            raise ValueError(f"the shuffle null needs at least 100 shuffles, got {self.shuffles}")
        if self.map_samples < 0:
            raise ValueError(f"map samples must not be negative, got {self.map_samples}")
        position = parse_position(self.position)
        object.__setattr__(self, "position", "centre" if position is None else f"{position[0]},{position[1]}")

    @property
    def stc(self) -> bool:
        return self.stc_samples > 0

    def inactive_params(self) -> tuple[str, ...]:
        return () if self.stc else ("shuffles",)

    @property
    def position_rc(self) -> tuple[int, int] | None:
        return parse_position(self.position)

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)

    @property
    def stc_limit(self) -> int:
        """Samples that feed the STC (0 when it is off)."""
        return min(self.stc_samples, self.samples) if self.stc else 0

    @property
    def map_limit(self) -> int:
        return min(self.map_samples, self.samples)


# --- per-class mean activations of every layer (Fig. 20) ---

class ClassMeans:
    """Per class: a count and the float64 sum of each layer's (flattened) activations."""

    def __init__(self, n_classes: int, dims: dict[str, int]) -> None:
        self.counts = np.zeros(n_classes, dtype=np.int64)
        self.sums = {name: np.zeros((n_classes, d)) for name, d in dims.items()}

    def update(self, labels: torch.Tensor, activations: dict[str, torch.Tensor]) -> None:
        labels = labels.to(torch.int64)
        for name, values in activations.items():
            total = torch.zeros((len(self.counts), values.shape[1]), dtype=torch.float64, device=values.device)
            total.index_add_(0, labels, values.to(torch.float64))
            self.sums[name] += total.cpu().numpy()
        self.counts += np.bincount(labels.cpu().numpy(), minlength=len(self.counts))

    def means(self, name: str) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.sums[name] / self.counts[:, None]
        out[self.counts == 0] = np.nan
        return out

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}/counts": self.counts.copy()}
        out.update({f"{prefix}/sums/{name}": value.copy() for name, value in self.sums.items()})
        return out

    @classmethod
    def from_state(cls, arrays: dict, prefix: str, names: list[str]) -> "ClassMeans":
        counts = require_counts(arrays[f"{prefix}/counts"], f"{prefix}/counts", (None,)).astype(np.int64)
        out = cls(len(counts), {})
        out.counts = counts.copy()
        out.sums = {name: require_finite(arrays[f"{prefix}/sums/{name}"], f"{prefix}/sums/{name}",
                                         (len(counts), None)).astype(np.float64) for name in names}
        return out


@dataclass(frozen=True)
class MapLayer:
    """How one layer's activations are kept per class: ``shape`` of one sample's values and their ``form``."""

    name: str
    shape: tuple[int, ...]  # (C, H, W) or (U,)
    form: str  # "full" or "channel_mean" (a large conv layer: its spatial map averaged over channels)

    @property
    def dims(self) -> int:
        if self.form == "channel_mean":
            return int(np.prod(self.shape[1:]))
        return int(np.prod(self.shape))

    def reduce(self, output: torch.Tensor) -> torch.Tensor:
        if self.form == "channel_mean":
            return output.mean(1).flatten(1)
        return output.flatten(1)

    def display(self, means: np.ndarray) -> np.ndarray:
        """(K, D) class means → (K, h, w) images: a conv map averaged over channels, a vector as a near-square grid."""
        k = means.shape[0]
        if len(self.shape) == 3:
            if self.form == "full":
                return means.reshape(k, *self.shape).mean(1)
            return means.reshape(k, *self.shape[1:])
        return vector_grid(means)


def vector_grid(values: np.ndarray) -> np.ndarray:
    """(K, D) → (K, rows, cols): each row laid out on a near-square grid (NaN padding)."""
    k, d = values.shape
    cols = int(math.ceil(math.sqrt(d)))
    rows = int(math.ceil(d / cols))
    out = np.full((k, rows * cols), np.nan)
    out[:, :d] = values
    return out.reshape(k, rows, cols)


def mean_pairwise_distance(means: np.ndarray, counts: np.ndarray, min_count: int = 1) -> float:
    """Mean L2 distance between the mean activations of every two classes with samples (NaN for fewer than two)."""
    rows = means[counts >= min_count]
    if len(rows) < 2:
        return float("nan")
    squared = (rows * rows).sum(1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * rows @ rows.T, 0))
    upper = np.triu_indices(len(rows), 1)
    return float(distances[upper].mean())


# --- the state ---

@dataclass
class STAState(BlockState):
    """Everything needed to continue a run exactly (accumulators, progress) and to show it without the model."""

    config: STAConfig
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    layer_type: str  # conv | linear
    units: int
    output_size: tuple[int, int]
    position: tuple[int, int]
    field_size: tuple[int, int]  # receptive field (rows, cols) in input pixels
    field_start: tuple[int, int]  # top-left input pixel of the field of unit (0, 0) (negative with padding)
    field_jump: tuple[int, int]
    crop: tuple[int, int, int, int]  # (top, left, height, width) of the field at ``position``, within the image
    post_description: str  # the nonlinearity "post" applies ("none": the layer has none)
    features: int  # P: pixels of the crop, or a structured source's scores
    structured: bool = False
    kernels: np.ndarray | None = None  # (U, C, h, w) pixel-space kernels of a first conv layer
    map_layers: tuple[MapLayer, ...] = ()
    map_note: str = ""
    stc_note: str = ""
    done: BlockSet = field(default_factory=BlockSet)  # the noise blocks merged into the accumulators
    noise_device: str = ""
    # Made empty by __post_init__ (a new or blank state), then filled by the blocks or read from a record.
    even: STAAccumulator = field(init=False)
    odd: STAAccumulator = field(init=False)
    stc: STCAccumulator | None = None
    # the shuffle test, per unit (filled as the null's units of work run; reset when the STC data grow)
    null_count: int = 0  # STC samples the test below was computed on
    null_shuffles: int = 0
    stc_tested: np.ndarray = field(init=False)  # (U,) bool
    stc_eigenvalues: np.ndarray = field(init=False)  # (U, P)
    stc_band: np.ndarray = field(init=False)  # (U, 2)
    stc_count: np.ndarray = field(init=False)  # (U,) int
    stc_values: np.ndarray = field(init=False)  # (U, MAX_STC_DIMS)
    stc_vectors: np.ndarray = field(init=False)  # (U, MAX_STC_DIMS, P)
    stc_bands: np.ndarray = field(init=False)  # (U, MAX_STC_DIMS + 1, 2)
    noise_maps: ClassMeans | None = None
    real_maps: ClassMeans | None = None
    real_done: bool = False
    reliability_samples: list[int] = field(default_factory=list)
    reliability: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.even = STAAccumulator(self.units, self.features)
        self.odd = STAAccumulator(self.units, self.features)
        self.reset_null()

    # --- progress ---


    @staticmethod
    def new_run_text(config: STAConfig) -> str:
        stc = f", STC over the first {config.stc_limit:,}" if config.stc else ""
        return f"Start begins a new run of {config.samples:,} samples{stc}."

    @property
    def stc_active(self) -> bool:
        return self.stc is not None

    @property
    def stc_complete(self) -> bool:
        """All the STC's samples are in."""
        return self.stc is not None and self.stc.count >= self.config.stc_limit

    @property
    def null_complete(self) -> bool:
        return self.stc is None or (self.null_count == self.stc.count and self.null_shuffles ==
                                    self.config.shuffles and bool(self.stc_tested.all()))

    @property
    def maps_wanted(self) -> bool:
        return bool(self.map_layers)

    @property
    def real_wanted(self) -> bool:
        return self.maps_wanted and self.real_maps is not None

    @property
    def finished(self) -> bool:
        return (self.blocks_done >= self.config.n_blocks and (self.real_done or not self.real_wanted)
                and self.null_complete)

    def next_unit(self) -> tuple[str, int]:
        if self.real_wanted and not self.real_done:
            return ("real", 0)
        if self.stc_active and self.stc_complete and not self.null_complete:
            if self.stc_tested.all():  # a test of other data or shuffles: run it again
                self.reset_null()
            return ("null", int(np.flatnonzero(~self.stc_tested)[0]))
        return ("block", next(self.done.pending(self.config.n_blocks)))

    def reset_null(self) -> None:
        u, p = self.units, self.features
        self.null_count, self.null_shuffles = 0, 0
        self.stc_tested = np.zeros(u, dtype=bool)
        self.stc_eigenvalues = np.full((u, p), np.nan)
        self.stc_band = np.full((u, 2), np.nan)
        self.stc_count = np.zeros(u, dtype=np.int64)
        self.stc_values = np.full((u, MAX_STC_DIMS), np.nan)
        self.stc_vectors = np.full((u, MAX_STC_DIMS, p), np.nan)
        self.stc_bands = np.full((u, MAX_STC_DIMS + 1, 2), np.nan)

    def total(self) -> STAAccumulator:
        return self.even.merged(self.odd)

    # --- blocks for workers (core.distributed): a blank state, its statistics, merges ---

    def blank(self) -> "STAState":
        """The same run with nothing measured: what a worker runs its noise blocks into (the real-digit maps and
        the shuffle test are not blocks: the merged run does them)."""
        return replace(self, done=BlockSet(),
                       stc=STCAccumulator(self.units, self.features) if self.stc is not None else None,
                       noise_maps=None if self.noise_maps is None else
                       ClassMeans(len(self.class_names), {m.name: m.dims for m in self.map_layers}),
                       real_maps=None, real_done=False, reliability_samples=[], reliability=[], seconds=0.0)

    def statistics(self) -> dict[str, np.ndarray]:
        """The sufficient statistics of the blocks done: the float64 accumulators and the blocks."""
        arrays = {"done_blocks": self.done.to_array()}
        for half, acc in (("even", self.even), ("odd", self.odd)):
            arrays.update({f"accumulators/{half}/{name}": value for name, value in acc.state().items()})
        if self.stc is not None:
            arrays.update({f"stc/accumulator/{name}": value for name, value in self.stc.state().items()})
        if self.noise_maps is not None:
            arrays.update(self.noise_maps.state("maps/noise"))
        return arrays

    def merge(self, statistics) -> None:
        """Merge a worker's :meth:`statistics` (Chan's update and sums; ValueError if a block would count twice)."""
        done = self.done.copy()
        done.update(BlockSet.from_array(statistics["done_blocks"]))
        for half in ("even", "odd"):
            getattr(self, half).merge(STAAccumulator.from_state(
                {name: statistics[f"accumulators/{half}/{name}"] for name in STAAccumulator.FIELDS}))
        if self.stc is not None:
            grew = int(np.asarray(statistics["stc/accumulator/count"])) > 0
            for name in STCAccumulator.FIELDS:  # raw sums: they add
                value = np.asarray(statistics[f"stc/accumulator/{name}"])
                setattr(self.stc, name, self.stc.count + int(value) if name == "count" else
                        getattr(self.stc, name) + value)
            if grew and self.null_count:
                self.reset_null()  # the STC grew (an extended run): its test runs again
        if self.noise_maps is not None:
            other = ClassMeans.from_state(statistics, "maps/noise", [m.name for m in self.map_layers])
            self.noise_maps.counts = self.noise_maps.counts + other.counts
            for name, value in other.sums.items():
                self.noise_maps.sums[name] = self.noise_maps.sums[name] + value
        self.done = done

    def statistics_bytes(self) -> int:
        """The size of :meth:`statistics` (fixed by the layer, field and maps)."""
        return int(sum(value.nbytes for value in self.blank().statistics().values()))

    def refitted(self, config: STAConfig) -> "STAState":
        """The same measurements under new fit settings (shuffles): the shuffle test runs again."""
        self.config = replace(self.config, shuffles=config.shuffles)
        self.reset_null()
        return self

    def record_reliability(self) -> None:
        n = self.samples_done
        recorded = self.reliability_samples[-1] if self.reliability_samples else 0
        grid = reliability_grid(self.config.samples)
        due = grid[(grid > recorded) & (grid <= n)]
        if (due.size or self.blocks_done >= self.config.n_blocks) and n != recorded:
            self.reliability_samples.append(n)
            self.reliability.append(STAAccumulator.reliability(self.even, self.odd))

    # --- the view ---

    def snapshot(self, samples_per_second: float = 0.0, phase: str = "") -> "STASnapshot":
        total = self.total()
        c, h, w = self.input_shape[0], self.crop[2], self.crop[3]
        to_crop = self._to_crop
        sta, unnormalised = to_crop(total.normalised()), to_crop(total.unnormalised())
        zmap = self._zmap(total)
        cosines = None
        if self.kernels is not None:
            # The unnormalised form: the same direction as the STA where Σa > 0, and no sign flip where a unit's
            # activations sum to less than zero (tanh, pre-activations).
            cosines = cosine_rows(unnormalised.reshape(self.units, -1), self.kernels.reshape(self.units, -1))
        stc_view = None
        if self.stc is not None:
            tested = self.stc_tested.copy()
            stc_view = STCView(
                samples=int(self.stc.count), target=int(self.config.stc_limit), shuffles=self.config.shuffles,
                tested=tested, eigenvalues=self.stc_eigenvalues.copy(), band=self.stc_band.copy(),
                count=self.stc_count.copy(), values=self.stc_values.copy(),
                vectors=to_crop(self.stc_vectors.reshape(-1, self.features)).reshape(self.units, MAX_STC_DIMS, c, h, w),
                bands=self.stc_bands.copy(), structured=self.structured)
        return STASnapshot(
            **self.progress_fields(samples_per_second),
            phase=phase or self.phase_text(),
            layer=self.config.layer, layer_type=self.layer_type, units=self.units,
            position=self.position, output_size=self.output_size, field_size=self.field_size,
            field_start=self.field_start, field_jump=self.field_jump, crop=self.crop,
            activation=self.config.activation, post_description=self.post_description,
            noise_label=_noise_text(self.config.noise), structured=self.structured,
            input_shape=self.input_shape, class_names=tuple(self.class_names),
            sta=sta, unnormalised=unnormalised, zmap=zmap,
            sum_activation=total.sum_a.copy(), mean_activation=total.mean_a.copy(),
            active_fraction=total.active / max(total.count, 1),
            reliability_samples=np.asarray(self.reliability_samples, dtype=np.int64),
            reliability=(np.vstack(self.reliability) if self.reliability else np.zeros((0, self.units))),
            kernels=None if self.kernels is None else self.kernels.astype(np.float64),
            kernel_cosines=cosines, stc=stc_view, stc_note=self.stc_note, maps=self._maps_view())

    def phase_text(self) -> str:
        if self.real_wanted and not self.real_done:
            return "real-digit activation maps"
        if self.stc_active and self.stc_complete and not self.null_complete:
            return f"STC shuffle test: {int(self.stc_tested.sum())} of {self.units} units"
        if self.blocks_done < self.config.n_blocks:
            return "sampling"
        return "done"

    def _map_back(self) -> np.ndarray:
        """(K, C·H·W) the rows that turn score-space vectors into pixel images: (B Bᵀ)⁺ B for images = scores·B.

        A filter acts on the noise only through its scores' directions B·k; the pixel image with those scores
        lying in the basis's span is (B Bᵀ)⁺ B·…: the least-squares map back (k = STA·B when B's rows are
        orthonormal). A pseudo-inverse in score space, never the rank-deficient pixel covariance.
        """
        cached = self.__dict__.get("_map_back_cache")
        if cached is None or cached[0] is not self.config.noise:
            basis = score_basis(self.config.noise, self.input_shape)
            cached = (self.config.noise, np.linalg.pinv(basis @ basis.T, rcond=1e-10, hermitian=True) @ basis)
            self.__dict__["_map_back_cache"] = cached
        return cached[1]

    def _to_crop(self, vectors: np.ndarray) -> np.ndarray:
        """(N, P) feature-space vectors → (N, C, h, w) over the crop (mapped back to pixels if structured)."""
        top, left, h, w = self.crop
        vectors = np.asarray(vectors, dtype=np.float64)
        if not self.structured:
            return vectors.reshape(len(vectors), self.input_shape[0], h, w)
        pixels = (vectors @ self._map_back()).reshape(len(vectors), *self.input_shape)
        return pixels[:, :, top:top + h, left:left + w]

    def _zmap(self, total: STAAccumulator) -> np.ndarray:
        if not self.structured:
            return self._to_crop(total.zmap())
        # The mapped-back unnormalised STA over its standard error under no dependence (delta method):
        # Var(k_d) = Σ_k M_kd² · v_k · M2_a / N², v_k the scores' variances.
        back = self._map_back()
        n = max(total.count, 1)
        variance = (total.m2_x / n) @ (back * back)
        scale = np.sqrt(np.outer(total.m2_a / n**2, variance))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (total.unnormalised() @ back) / scale
        z[~(scale > 0)] = np.nan
        top, left, h, w = self.crop
        return z.reshape(self.units, *self.input_shape)[:, :, top:top + h, left:left + w]

    def _maps_view(self) -> "ActivationMaps | None":
        if not self.maps_wanted:
            return None if not self.map_note else ActivationMaps(note=self.map_note)
        noise_maps = self.noise_maps
        assert noise_maps is not None  # new_state and from_record keep noise maps for every map layer
        real_maps = self.real_maps if self.real_done else None
        noise, real, distances, real_distances, similarity = [], [], [], [], []
        for layer in self.map_layers:
            means = noise_maps.means(layer.name)
            noise.append(layer.display(means))
            distances.append(mean_pairwise_distance(means, noise_maps.counts))
            if real_maps is not None:
                real_means = real_maps.means(layer.name)
                real.append(layer.display(real_means))
                real_distances.append(mean_pairwise_distance(real_means, real_maps.counts))
                both = (noise_maps.counts > 0) & (real_maps.counts > 0)
                r = pearson_rows(means[both], real_means[both]) if both.any() else np.array([np.nan])
                similarity.append(float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"))
        has_real = real_maps is not None
        return ActivationMaps(
            layers=tuple(layer.name for layer in self.map_layers),
            forms=tuple(layer.form for layer in self.map_layers),
            noise=tuple(noise), noise_counts=noise_maps.counts.copy(),
            real=tuple(real) if has_real else None,
            real_counts=real_maps.counts.copy() if real_maps is not None else None,
            noise_distance=np.asarray(distances), real_distance=np.asarray(real_distances) if has_real else None,
            similarity=np.asarray(similarity) if has_real else None,
            noise_samples=int(noise_maps.counts.sum()), note=self.map_note)

    # --- records for the session file ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "config": self.config.to_dict(), "class_names": list(self.class_names),
            "input_shape": list(self.input_shape), "layer_type": self.layer_type, "units": self.units,
            "output_size": list(self.output_size), "position": list(self.position),
            "field_size": list(self.field_size), "field_start": list(self.field_start),
            "field_jump": list(self.field_jump), "crop": list(self.crop),
            "post_description": self.post_description, "features": self.features, "structured": self.structured,
            "map_layers": [{"name": m.name, "shape": list(m.shape), "form": m.form} for m in self.map_layers],
            "map_note": self.map_note, "stc_note": self.stc_note, "blocks_done": self.blocks_done,
            "samples_done": self.samples_done, "noise_device": self.noise_device, "null_count": self.null_count,
            "null_shuffles": self.null_shuffles, "real_done": self.real_done, "has_real": self.real_maps is not None,
            "seconds": self.seconds,
        }
        arrays: dict[str, np.ndarray] = dict(config_arrays(self.config))
        arrays.update(self.statistics())  # accumulators, noise maps and done_blocks
        if self.stc is not None:
            for name in ("tested", "eigenvalues", "band", "count", "values", "vectors", "bands"):
                value = getattr(self, f"stc_{name}")
                arrays[f"stc/{name}"] = value.astype(np.uint8) if name == "tested" else value
        if self.kernels is not None:
            arrays["kernels"] = self.kernels
        if self.real_maps is not None:
            arrays.update(self.real_maps.state("maps/real"))
        arrays["convergence/samples"] = np.asarray(self.reliability_samples, dtype=np.int64)
        arrays["convergence/reliability"] = (np.vstack(self.reliability) if self.reliability
                                             else np.zeros((0, self.units)))
        snapshot = self.snapshot()
        arrays["results/sta"] = snapshot.sta
        arrays["results/unnormalised"] = snapshot.unnormalised
        arrays["results/zmap"] = snapshot.zmap
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "STAState":
        top, left, height, width = (int(v) for v in meta["crop"])
        state = cls(
            config=STAConfig.from_dict(meta["config"], arrays), class_names=tuple(meta["class_names"]),
            input_shape=_image_shape(meta["input_shape"]), layer_type=meta["layer_type"],
            units=int(meta["units"]), output_size=_pair(meta["output_size"]), position=_pair(meta["position"]),
            field_size=_pair(meta["field_size"]), field_start=_pair(meta["field_start"]),
            field_jump=_pair(meta["field_jump"]), crop=(top, left, height, width),
            post_description=meta["post_description"],
            features=int(meta["features"]), structured=bool(meta.get("structured", False)),
            kernels=np.asarray(arrays["kernels"]) if "kernels" in arrays else None,
            map_layers=tuple(MapLayer(m["name"], tuple(int(s) for s in m["shape"]), m["form"])
                             for m in meta.get("map_layers", [])),
            map_note=meta.get("map_note", ""), stc_note=meta.get("stc_note", ""),
            done=BlockSet.from_array(arrays["done_blocks"]), noise_device=meta.get("noise_device", ""),
            real_done=bool(meta.get("real_done", False)), seconds=float(meta.get("seconds", 0.0)),
        )
        for half in ("even", "odd"):
            setattr(state, half, STAAccumulator.from_state(
                {name: arrays[f"accumulators/{half}/{name}"] for name in STAAccumulator.FIELDS}))
        if "stc/accumulator/count" in arrays:
            state.stc = STCAccumulator.from_state(
                {name: arrays[f"stc/accumulator/{name}"] for name in STCAccumulator.FIELDS})
            state.null_count, state.null_shuffles = int(meta["null_count"]), int(meta["null_shuffles"])
            state.stc_tested = require_flags(arrays["stc/tested"], "stc/tested").astype(bool)
            for name in ("eigenvalues", "band", "count", "values", "vectors", "bands"):
                setattr(state, f"stc_{name}", np.array(arrays[f"stc/{name}"]))
            _check_stc_results(state, state.stc)
        names = [m.name for m in state.map_layers]
        if "maps/noise/counts" in arrays:
            state.noise_maps = ClassMeans.from_state(arrays, "maps/noise", names)
        if "maps/real/counts" in arrays:
            state.real_maps = ClassMeans.from_state(arrays, "maps/real", names)
        state.reliability_samples = [int(s) for s in arrays.get("convergence/samples", [])]
        state.reliability = list(arrays.get("convergence/reliability", np.zeros((0, state.units))))
        return state


def _check_stc_results(state: "STAState", stc: STCAccumulator) -> None:
    """The stored STC analysis agrees with its accumulator ``stc``: one row per unit, finite where a unit was
    tested."""
    units = stc.sum_a.shape[0]
    tested = state.stc_tested
    require_shape(tested, (units,), "stc/tested")
    require_counts(state.stc_count, "stc/count", (units,))
    features = stc.sum_ax.shape[1]
    ranks = {"eigenvalues": 2, "band": 2, "values": 2, "vectors": 3, "bands": 3}
    for name, rank in ranks.items():
        values = getattr(state, f"stc_{name}")
        if values.ndim != rank or values.shape[0] != units:
            raise ValueError(f"stc/{name} has shape {values.shape}, expected {rank} axes and one row per unit "
                             f"({units})")
        if values.dtype.kind not in "biuf":
            raise ValueError(f"stc/{name} must hold numbers, not {values.dtype}")
        if values.dtype.kind == "f" and tested.any() and np.isinf(values[tested]).any():
            raise ValueError(f"stc/{name} holds infinite values")
    if state.stc_eigenvalues.shape[1] != features or state.stc_vectors.shape[2] != features or \
            state.stc_band.shape[1] != 2 or state.stc_bands.shape[2] != 2 or \
            state.stc_vectors.shape[1] != state.stc_values.shape[1]:
        raise ValueError("stc results disagree in shape with each other or with the receptive field")


def _noise_text(noise: NoiseSource) -> str:
    values = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in noise.to_dict().items()
                       if k != "kind")
    return f"{noise.kind} ({values})" if values else noise.kind


# --- the views a snapshot carries ---

@dataclass(frozen=True)
class STCView:
    """The STC of every unit: its ΔC spectrum, the null band and the significant directions (as crops)."""

    samples: int
    target: int
    shuffles: int
    tested: np.ndarray  # (U,) bool
    eigenvalues: np.ndarray  # (U, P) ascending, of ΔC = STC − stimulus covariance
    band: np.ndarray  # (U, 2) the first round's null band
    count: np.ndarray  # (U,) significant directions found
    values: np.ndarray  # (U, MAX_STC_DIMS), NaN beyond count
    vectors: np.ndarray  # (U, MAX_STC_DIMS, C, h, w), NaN beyond count
    bands: np.ndarray  # (U, MAX_STC_DIMS + 1, 2) each round's null band
    structured: bool = False

    @property
    def done(self) -> bool:
        return bool(self.tested.all())


@dataclass(frozen=True)
class ActivationMaps:
    """Per layer, per class mean activation maps for noise (by predicted class) and real digits (by true class)."""

    layers: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()
    noise: tuple[np.ndarray, ...] = ()  # per layer (K, h, w), NaN for classes without samples
    noise_counts: np.ndarray | None = None
    real: tuple[np.ndarray, ...] | None = None
    real_counts: np.ndarray | None = None
    noise_distance: np.ndarray | None = None  # (L,) mean L2 distance between class means
    real_distance: np.ndarray | None = None
    similarity: np.ndarray | None = None  # (L,) mean over classes of r(noise mean, real mean)
    noise_samples: int = 0
    note: str = ""


@dataclass(frozen=True)
class STASnapshot(RunSnapshot):
    """An immutable view of a run for plots, progress bars and exports (arrays are copies)."""

    phase: str
    layer: str
    layer_type: str
    units: int
    position: tuple[int, int]
    output_size: tuple[int, int]
    field_size: tuple[int, int]
    field_start: tuple[int, int]
    field_jump: tuple[int, int]
    crop: tuple[int, int, int, int]
    activation: str
    post_description: str
    noise_label: str
    structured: bool
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    sta: np.ndarray  # (U, C, h, w)
    unnormalised: np.ndarray
    zmap: np.ndarray
    sum_activation: np.ndarray  # (U,)
    mean_activation: np.ndarray
    active_fraction: np.ndarray  # (U,) share of samples with activation > 0
    reliability_samples: np.ndarray
    reliability: np.ndarray  # (T, U)
    kernels: np.ndarray | None
    kernel_cosines: np.ndarray | None
    stc: STCView | None
    stc_note: str
    maps: ActivationMaps | None

    def view(self, name: str) -> np.ndarray:
        """The STAs of one view (sta, unnormalised or zmap) as (U, C, h, w)."""
        return {"sta": self.sta, "unnormalised": self.unnormalised, "zmap": self.zmap}[name]

    @property
    def field_offset(self) -> tuple[int, int]:
        """Top-left input pixel of the receptive field at ``position`` (may lie outside the image)."""
        return (self.field_start[0] + self.position[0] * self.field_jump[0],
                self.field_start[1] + self.position[1] * self.field_jump[1])

    @property
    def reliability_mean(self) -> np.ndarray:
        if self.reliability.size == 0:
            return np.zeros(0)
        r = self.reliability
        valid = np.isfinite(r)
        return np.where(valid.any(1), np.nansum(r, 1) / np.maximum(valid.sum(1), 1), np.nan)

    def location_text(self) -> str:
        if self.layer_type == "linear":
            return f"{self.layer}: {self.units} units, each sees the whole image"
        rows, cols = self.field_size
        top, left = self.field_offset
        return (f"{self.layer}: {self.units} units at ({self.position[0]}, {self.position[1]}) of its "
                f"{self.output_size[0]}×{self.output_size[1]} map · receptive field {rows}×{cols} from pixel "
                f"({top}, {left})")


# --- the experiment ---

def _pixel_kernels(model_net: nn.Module, layer: str, input_spec) -> np.ndarray:
    """A conv layer's kernels in pixel space (U, C, h, w): weight / the input normalisation's std; dilation spread."""
    module = dict(model_net.named_modules())[layer]
    weight = module.weight.detach().double().cpu().numpy()
    std = np.broadcast_to(np.asarray(input_spec.std, dtype=np.float64), (weight.shape[1],))
    weight = weight / std[None, :, None, None]
    dilation = module.dilation if isinstance(module.dilation, tuple) else (module.dilation,) * 2
    if dilation == (1, 1):
        return weight.astype(np.float32)
    u, c, kh, kw = weight.shape
    out = np.zeros((u, c, dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1))
    out[:, :, ::dilation[0], ::dilation[1]] = weight
    return out.astype(np.float32)


def _map_layers(model: LoadedModel, traced) -> tuple[tuple[MapLayer, ...], str]:
    if model.n_classes > MAP_MAX_CLASSES:
        return (), f"activation maps per class are kept for models of at most {MAP_MAX_CLASSES} classes"
    out = []
    for name in unit_layers(model.net):
        try:
            node = traced.layer_node(name)
        except ReceptiveFieldError:
            continue
        shape = traced.shapes.get(node)
        if shape is None or len(shape) not in (1, 3):
            continue
        full = int(np.prod(shape)) * model.n_classes <= MAP_FULL_LIMIT or len(shape) == 1
        out.append(MapLayer(name, tuple(int(s) for s in shape), "full" if full else "channel_mean"))
    return tuple(out), ""


class STAExperiment(Experiment):
    """Runs (or continues) a spike-triggered analysis; a unit of work is a noise block, the real-digit maps, or
    the shuffle test of a group of units."""

    def __init__(self, model: LoadedModel, config: STAConfig | None = None, state: STAState | None = None,
                 device: str | None = None, control=None) -> None:
        if state is not None and (tuple(state.input_shape) != tuple(model.input_spec.shape)
                                  or len(state.class_names) != model.n_classes):
            raise EngineError(f"session was made with {len(state.class_names)} classes of "
                              f"{tuple(state.input_shape)} images; this model has {model.n_classes} classes of "
                              f"{tuple(model.input_spec.shape)}")
        super().__init__(model, config, state, device, control)
        state = self.state
        net = self.runtime.network.net
        shape = tuple(model.input_spec.shape)
        try:
            if state.config.layer == OUTPUT_LAYER:
                traced = None if _is_script(net) else trace(net, shape)
                self._geometry, self._post = output_geometry(model), PostActivation()
            else:
                traced = trace(net, shape)  # a TorchScript model: ReceptiveFieldError
                self._geometry = layer_geometry(net, shape, state.config.layer, traced)
                self._post = post_activation(traced, state.config.layer)
        except ReceptiveFieldError as exc:
            raise EngineError(str(exc)) from None
        if self._geometry.units != state.units:
            raise EngineError(f"layer {state.config.layer} has {self._geometry.units} units in this model; the "
                              f"session's run has {state.units}")
        self._layer = None if state.config.layer == OUTPUT_LAYER else self.runtime.layer(state.config.layer)
        self._map_posts: dict[str, PostActivation] = {}
        if state.map_layers:
            if traced is None:
                raise EngineError(f"this run keeps per-class activation maps of layers "
                                  f"{', '.join(m.name for m in state.map_layers)}, which a TorchScript model can be "
                                  "neither traced nor hooked for; continue it with the eager model")
            self._map_posts = {m.name: post_activation(traced, m.name) for m in state.map_layers}
        self._map_modules = {m.name: self.runtime.layer(m.name) for m in state.map_layers}
        self._stc_data: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pixels: torch.Tensor | None = None
        self.crop_path = self._crop_path_works()

    @classmethod
    def new_state(cls, model: LoadedModel, config: STAConfig) -> STAState:
        shape = _image_shape(model.input_spec.shape)
        try:
            traced = None if _is_script(model.net) else trace(model.net, shape)
            if config.layer == OUTPUT_LAYER:
                geometry, post = output_geometry(model), PostActivation()
            elif traced is None:
                raise ReceptiveFieldError(f"a TorchScript model can be neither traced nor hooked: map its outputs "
                                          f"(--layer {OUTPUT_LAYER}), not {config.layer}")
            else:
                geometry = layer_geometry(model.net, shape, config.layer, traced)
                post = post_activation(traced, config.layer)
            position = geometry.check_position(config.position_rc)
        except ReceptiveFieldError as exc:
            raise EngineError(str(exc)) from None
        crop = geometry.crop_at(position)
        structured = is_structured(config.noise)
        if structured:
            basis = score_basis(config.noise, shape)
            if basis.ndim != 2 or basis.shape[1] != int(np.prod(shape)):
                raise EngineError(f"the noise's score basis has shape {basis.shape}; expected (K, {np.prod(shape)})")
            features = basis.shape[0]
        else:
            features = shape[0] * crop[2] * crop[3]
        kernels = None
        if geometry.layer_type == "conv" and traced is not None and is_first_conv(model.net, config.layer, traced) \
                and geometry.inside(position):
            kernels = _pixel_kernels(model.net, config.layer, model.input_spec)
            if kernels.shape[2:] != tuple(crop[2:]):
                kernels = None
        stc, stc_note = None, ""
        if config.stc:
            needed = STCAccumulator.nbytes(geometry.units, features)
            if needed > STC_MAX_BYTES:
                stc_note = (f"STC skipped: {geometry.units} units × {features} features need "
                            f"{needed / 2**20:,.0f} MB of covariance sums (limit {STC_MAX_BYTES // 2**20} MB); "
                            "choose a layer with fewer units or a smaller field")
            else:
                stc = STCAccumulator(geometry.units, features)
        map_layers, map_note = _map_layers(model, traced) if config.map_samples > 0 and traced is not None \
            else ((), "")
        noise_maps = ClassMeans(model.n_classes, {m.name: m.dims for m in map_layers}) if map_layers else None
        real_maps = None
        if map_layers and tuple(model.class_names) == MNIST_CLASSES and shape == (1, 28, 28):
            real_maps = ClassMeans(model.n_classes, {m.name: m.dims for m in map_layers})
        elif map_layers:
            map_note = "real-data maps need an MNIST model (the bundled digits); noise maps only"
        return STAState(
            config=config, class_names=tuple(model.class_names), input_shape=shape,
            layer_type=geometry.layer_type, units=geometry.units, output_size=geometry.output_size,
            position=position, field_size=geometry.size, field_start=geometry.field.start
            if not geometry.whole else (0, 0), field_jump=geometry.field.jump if not geometry.whole
            else (0, 0), crop=crop, post_description=post.description, features=features, structured=structured,
            kernels=kernels, map_layers=map_layers, map_note=map_note, stc_note=stc_note, stc=stc,
            noise_maps=noise_maps, real_maps=real_maps)

    # --- the work ---

    def pending(self):
        while not self.state.finished:
            yield self.state.next_unit()

    @staticmethod
    def block_unit(block: int) -> tuple[str, int]:
        """The unit that samples noise block ``block`` (core.distributed hands out blocks)."""
        return ("block", block)

    def run_unit(self, unit: tuple[str, int]) -> None:
        kind, index = unit
        with torch.inference_mode():
            if kind == "real":
                self._real_maps()
            elif kind == "null":
                self._null_group(index)
            else:
                self._block(index)

    def after_unit(self) -> None:
        self.state.record_reliability()

    def snapshot(self) -> STASnapshot:
        return self.state.snapshot(self.rate)

    # --- activations ---

    def _crop_path_works(self) -> bool:
        """Whether running the network on the receptive-field crop alone gives the layer's units exactly.

        True only without padding on the way and with the field inside the image, and then checked
        numerically on a few random images (a model whose forward pass does something the trace did not see
        falls back to full forward passes).
        """
        g, state = self._geometry, self.state
        if g.whole or g.field.padded or not g.field.exact or not g.inside(state.position):
            return False
        generator = torch.Generator(device=self.device).manual_seed(12345)
        x = torch.rand((8, *state.input_shape), generator=generator, device=self.device)
        with torch.inference_mode():
            try:
                cropped = self._pre_activations(x, crop=True)
            except Exception:
                return False
            full = self._pre_activations(x, crop=False)
        scale = float(full.abs().max()) or 1.0
        return cropped.shape == full.shape and bool(torch.allclose(cropped, full, rtol=1e-4, atol=1e-5 * scale))

    def _pre_activations(self, x: torch.Tensor, crop: bool, cropped: bool = False) -> torch.Tensor:
        """(B, U) the layer's outputs at the run's position, before its nonlinearity (``cropped``: ``x`` is
        already the receptive-field crop)."""
        network, layer = self.runtime.network, self._layer
        if layer is None:  # the outputs (whole field: never cropped)
            return self.runtime.logits(x)
        if crop:
            top, left, h, w = self.state.crop
            if not cropped:
                x = x[:, :, top:top + h, left:left + w]
            if self.runtime.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            select = (lambda out: out[:, :, 0, 0]) if self.state.layer_type == "conv" else (lambda out: out)
            return capture(network, layer, x, select)
        row, col = self.state.position
        select = (lambda out: out[:, :, row, col]) if self.state.layer_type == "conv" else (lambda out: out)
        if self.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step = min(s for s in (self.runtime.chunk, len(x)) if s)
        return torch.cat([capture(network, layer, chunk, select) for chunk in x.split(max(step, 1))])

    def activations(self, x: torch.Tensor, cropped: bool = False) -> torch.Tensor:
        """(B, U) float32 activations of the run's units for pixel-space noise ``x`` (B, C, H, W) on the device,
        or its receptive-field crop (B, C, h, w) when ``cropped`` (crop path only)."""
        a = self._pre_activations(x, self.crop_path, cropped).float()
        if self.config.activation == "post":
            a = self._post(a)
        if not torch.isfinite(a).all():
            raise EngineError(f"layer {self.config.layer} produced NaN or infinite activations at sample "
                              f"{self.state.samples_done:,}")
        return a

    def features(self, x: torch.Tensor, scores: torch.Tensor | None, cropped: bool = False) -> torch.Tensor:
        """(B, P) the stimulus as the estimators see it: the mean-subtracted crop, or a structured source's scores."""
        if scores is not None:
            return scores.to(torch.float64)
        if not cropped:
            top, left, h, w = self.state.crop
            x = x[:, :, top:top + h, left:left + w]
        return x.reshape(len(x), -1).to(torch.float64) - self.config.noise.expected_mean

    def _draw_crop(self, block: int) -> torch.Tensor:
        """Block ``block``'s receptive-field crops (size, C, h, w), drawn alone: the same values as the crops of the
        full images (counter-based noise computes only these pixels)."""
        cfg, state = self.config, self.state
        size = min(cfg.batch_size, cfg.samples - block * cfg.batch_size)
        top, left, h, w = state.crop
        channels, rows, cols = state.input_shape
        if self._pixels is None:
            grid = (torch.arange(channels)[:, None, None] * rows * cols + (top + torch.arange(h))[None, :, None] * cols
                    + (left + torch.arange(w))[None, None, :])
            self._pixels = grid.flatten().to(self.device)
        values = cfg.noise.block_pixels(cfg.seed, block, cfg.batch_size, tuple(state.input_shape), self._pixels,
                                        self.device)
        return values[:size].reshape(size, channels, h, w)

    def _crop_only(self, block: int) -> bool:
        """Whether block ``block`` needs no more than the crops (no activation maps from it, no structured scores)."""
        start = block * self.config.batch_size
        return self.crop_path and not self.state.structured and not (
            self.state.maps_wanted and self.config.map_limit > start)

    def _draw(self, block: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        cfg = self.config
        size = min(cfg.batch_size, cfg.samples - block * cfg.batch_size)
        shape = tuple(self.state.input_shape)
        if self.state.structured:
            x, scores = cfg.noise.block_with_scores(cfg.seed, block, cfg.batch_size, shape, self.device)
            return x[:size], scores[:size], size
        return cfg.noise.block(cfg.seed, block, cfg.batch_size, shape, self.device)[:size], None, size

    # --- units of work ---

    def _block(self, block: int) -> None:
        cfg, state = self.config, self.state
        if self._crop_only(block):
            x, scores = self._draw_crop(block), None
            size = len(x)
        else:
            x, scores, size = self._draw(block)
        a = self.activations(x, cropped=self._crop_only(block))
        features = self.features(x, scores, cropped=self._crop_only(block))
        (state.even if block % 2 == 0 else state.odd).add(a, features)
        start = block * cfg.batch_size
        stc_rows = max(0, min(size, cfg.stc_limit - start))
        if state.stc is not None and stc_rows:
            state.stc.add(a[:stc_rows], features[:stc_rows])
            if state.null_count:
                state.reset_null()  # the STC grew (an extended run): its test runs again
            self._stc_data = None
        map_rows = max(0, min(size, cfg.map_limit - start))
        if state.maps_wanted and map_rows:
            self._noise_maps(x[:map_rows])
        state.done.add(block)

    def _layer_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Full forward passes: the model's outputs and every map layer's activations (reduced as kept)."""
        state = self.state
        layers = {m.name: m for m in state.map_layers}

        def select(name: str, output: torch.Tensor) -> torch.Tensor:
            if self.config.activation == "post":
                output = self._map_posts[name](output)
            return layers[name].reduce(output.float())

        if self.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step = min(s for s in (self.runtime.chunk, len(x)) if s)
        logits: list[torch.Tensor] = []
        captured: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        for chunk in x.split(max(step, 1)):
            out, values = capture_all(self.runtime.network, self._map_modules, chunk, select)
            logits.append(out)
            for name, value in values.items():
                captured[name].append(value)
        output = torch.cat(logits)
        if output.ndim != 2 or output.shape[1] != len(state.class_names):
            raise EngineError(f"model returned shape {tuple(output.shape)}; expected (batch, {len(state.class_names)})")
        return output, {name: torch.cat(values) for name, values in captured.items()}

    def _noise_maps(self, x: torch.Tensor) -> None:
        logits, values = self._layer_outputs(x)
        self.state.noise_maps.update(logits.argmax(1), values)

    def _real_maps(self) -> None:
        from .data import load_dataset  # the bundled digits, loaded here, in the engine thread

        digits = load_dataset("bundled")
        for start in range(0, len(digits), REAL_BATCH):
            x = digits.images[start:start + REAL_BATCH].to(self.device)
            _, values = self._layer_outputs(x)
            self.state.real_maps.update(digits.labels[start:start + REAL_BATCH].to(self.device), values)
        self.state.real_done = True

    def _regenerate_stc_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The STC's features (N, P) and activations (N, U), drawn again from their seeds (nothing was stored)."""
        if self._stc_data is None:
            cfg = self.config
            features, activations = [], []
            for block in range(-(-cfg.stc_limit // cfg.batch_size)):
                cropped = self.crop_path and not self.state.structured
                if cropped:
                    x, scores = self._draw_crop(block), None
                else:
                    x, scores, _ = self._draw(block)
                rows = min(len(x), cfg.stc_limit - block * cfg.batch_size)
                features.append(self.features(x[:rows], None if scores is None else scores[:rows], cropped).float())
                activations.append(self.activations(x[:rows], cropped))
            self._stc_data = (torch.cat(features), torch.cat(activations))
        return self._stc_data

    def _null_group(self, first: int) -> None:
        """The shuffle test of the units from ``first`` on, about NULL_WORK_FLOPS of arithmetic."""
        state, cfg = self.state, self.config
        x, a = self._regenerate_stc_data()
        n, p = x.shape
        if len(x) != state.stc.count:
            raise EngineError("the regenerated STC samples do not match the accumulated ones")
        per_unit = cfg.shuffles * n * p * (p + 1) / 2 * 2
        # At least NULL_COLUMNS (unit, shuffle) columns per product (an efficient width), else ~NULL_WORK_FLOPS.
        wanted = max(-(-NULL_COLUMNS // cfg.shuffles), int(NULL_WORK_FLOPS // max(per_unit, 1)))
        group = max(1, min(state.units - first, wanted))
        units = [u for u in range(first, first + group) if not state.stc_tested[u]]
        if state.null_count != state.stc.count or state.null_shuffles != cfg.shuffles:
            state.reset_null()
            state.null_count, state.null_shuffles = state.stc.count, cfg.shuffles
        stimulus = state.stc.stimulus_covariance()
        live = [u for u in units if state.stc.sum_a[u] > 0 and np.isfinite(state.stc.sum_a[u])
                and float(a[:, u].std()) > 0]
        if live:
            orders = permutations(n, cfg.shuffles, cfg.seed)
            null = shuffle_null(x, a[:, live], orders, stimulus)
            for i, u in enumerate(live):
                delta = state.stc.spike_covariance(u) - stimulus
                result = nested_test(delta, null_spectra(null[i]), MAX_STC_DIMS)
                state.stc_eigenvalues[u] = result.eigenvalues
                state.stc_band[u] = result.band
                state.stc_count[u] = result.count
                state.stc_values[u, :result.count] = result.values
                state.stc_vectors[u, :result.count] = result.vectors
                state.stc_bands[u, :len(result.bands)] = result.bands
        for u in units:
            state.stc_tested[u] = True
        if state.stc_tested.all():
            self._stc_data = None  # free the regenerated samples


def run_sta(model: LoadedModel, config: STAConfig, device: str | None = None) -> STASnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return STAExperiment(model, config, device=device).run_to_end()


def gradient_sta(model: LoadedModel, config: STAConfig, samples: int, device: str | None = None) -> np.ndarray:
    """σ²·E[∇ₓa] over the crop, (U, C, h, w): what the unnormalised STA equals for Gaussian noise (Stein's lemma).

    Autograd on the private copy: each sample's activation depends on its own image only, so the gradient of
    the activations summed over the block holds every sample's gradient; all units at once by a batched backward
    pass (one per unit where the model's operations do not batch).
    """
    experiment = STAExperiment(model, replace(config, samples=samples, stc_samples=0, map_samples=0), device=device)
    state, cfg = experiment.state, experiment.config
    top, left, h, w = state.crop
    total = torch.zeros((state.units, state.input_shape[0], h, w), dtype=torch.float64)
    eye = torch.eye(state.units, device=experiment.device)
    for block in range(cfg.n_blocks):
        cropped = experiment._crop_only(block)
        x = experiment._draw_crop(block) if cropped else experiment._draw(block)[0]
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            a = experiment.activations(x, cropped=cropped)
            try:
                (gradients,) = torch.autograd.grad(a, x, grad_outputs=eye[:, None, :].expand(-1, len(a), -1),
                                                   is_grads_batched=True)
            except RuntimeError:  # an operation without a batching rule: one backward pass per unit
                gradients = torch.stack([torch.autograd.grad(a[:, u].sum(), x, retain_graph=True)[0]
                                         for u in range(state.units)])
        if not cropped:
            gradients = gradients[:, :, :, top:top + h, left:left + w]
        total += gradients.sum(1).double().cpu()
    return (total / samples * cfg.noise.expected_variance).numpy()


# --- exports: one writer per artefact, shared by `wna export` and File > Export ---

def write_sta(snapshot: STASnapshot, path) -> Path:
    """The STAs as .npz arrays: both forms and their z-maps, unit indices, receptive-field size/offset."""
    path = Path(path)
    sign = np.sign(snapshot.sum_activation)[:, None, None, None]
    # Any: numpy's stub reads a str-keyed dict of arrays as one that may set its allow_pickle flag.
    kernels: dict[str, Any] = {} if snapshot.kernels is None or snapshot.kernel_cosines is None else \
        {"kernels": snapshot.kernels, "kernel_cosines": snapshot.kernel_cosines}  # measured together
    np.savez_compressed(
        path, units=np.arange(snapshot.units), sta=snapshot.sta, sta_z=snapshot.zmap * sign,
        sta_unnormalised=snapshot.unnormalised, sta_unnormalised_z=snapshot.zmap,
        rf_size=np.asarray(snapshot.field_size), rf_offset=np.asarray(snapshot.field_offset),
        crop_offset=np.asarray(snapshot.crop[:2]), crop_size=np.asarray(snapshot.crop[2:]),
        position=np.asarray(snapshot.position), layer=np.asarray(snapshot.layer),
        activation=np.asarray(snapshot.activation), post=np.asarray(snapshot.post_description),
        noise=np.asarray(snapshot.noise_label), samples=snapshot.samples_done,
        sum_activation=snapshot.sum_activation, mean_activation=snapshot.mean_activation,
        active_fraction=snapshot.active_fraction, reliability_samples=snapshot.reliability_samples,
        reliability=snapshot.reliability, **kernels)
    return path


def write_kernels(snapshot: STASnapshot, path) -> Path:
    """Cosine of each unit's STA with its learned kernel (.csv)."""
    path = Path(path)
    cosines = snapshot.kernel_cosines
    if cosines is None:
        raise ValueError("this run has no learned kernels to compare with (the units of a first conv layer have)")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["unit", "cosine_sta_kernel", "mean_activation", "active_fraction"])
        for u in range(snapshot.units):
            cosine = cosines[u]
            writer.writerow([u, f"{cosine:.6f}" if np.isfinite(cosine) else "",
                             f"{snapshot.mean_activation[u]:.6g}", f"{snapshot.active_fraction[u]:.6f}"])
    return path


def write_stc(snapshot: STASnapshot, path) -> Path:
    """The STC as .npz: spectra, null bands, significant eigenvalues and eigenvectors as crops."""
    path = Path(path)
    stc = snapshot.stc
    if stc is None:
        raise ValueError(snapshot.stc_note or "this run has no STC (--stc-samples 0)")
    np.savez_compressed(path, units=np.arange(snapshot.units), eigenvalues=stc.eigenvalues, null_band=stc.band,
                        significant_count=stc.count, significant_values=stc.values,
                        significant_vectors=stc.vectors, round_bands=stc.bands, tested=stc.tested,
                        samples=stc.samples, shuffles=stc.shuffles, crop_offset=np.asarray(snapshot.crop[:2]),
                        crop_size=np.asarray(snapshot.crop[2:]), layer=np.asarray(snapshot.layer))
    return path


def _layer_maps(snapshot: STASnapshot) -> ActivationMaps:
    """The snapshot's activation maps; ValueError where the run kept none."""
    if snapshot.maps is None or not snapshot.maps.layers:
        raise ValueError(snapshot.maps.note if snapshot.maps is not None and snapshot.maps.note else
                         "this run kept no activation maps (--map-samples 0)")
    return snapshot.maps


def write_activation_maps(snapshot: STASnapshot, path) -> Path:
    """Per-class mean activations of every layer: .npz (per layer, noise and real, as displayed: a conv map averaged
    over channels, a vector on a near-square grid)."""
    path = Path(path)
    maps = _layer_maps(snapshot)
    assert maps.noise_counts is not None and maps.noise_distance is not None  # set with the layers' maps
    # Any: numpy's stub reads a str-keyed dict of arrays as one that may set its allow_pickle flag.
    arrays: dict[str, Any] = {"layers": np.asarray(maps.layers), "forms": np.asarray(maps.forms),
                              "class_names": np.asarray(snapshot.class_names), "noise_counts": maps.noise_counts,
                              "noise_distance": maps.noise_distance}
    for name, image in zip(maps.layers, maps.noise):
        arrays[f"noise/{name}"] = image
    if maps.real is not None:
        assert maps.real_counts is not None and maps.real_distance is not None and maps.similarity is not None
        arrays.update(real_counts=maps.real_counts, real_distance=maps.real_distance, similarity=maps.similarity)
        for name, image in zip(maps.layers, maps.real):
            arrays[f"real/{name}"] = image
    np.savez_compressed(path, **arrays)
    return path


def write_layer_distances(snapshot: STASnapshot, path) -> Path:
    """Mean L2 distance between class means per layer, noise and real (.csv)."""
    path = Path(path)
    maps = _layer_maps(snapshot)
    assert maps.noise_distance is not None  # set with the layers' maps
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", "kept_as", "noise_mean_l2_between_classes", "real_mean_l2_between_classes",
                         "noise_real_similarity_r"])
        for i, name in enumerate(maps.layers):
            real = maps.real_distance[i] if maps.real_distance is not None else float("nan")
            similarity = maps.similarity[i] if maps.similarity is not None else float("nan")
            writer.writerow([name, maps.forms[i], *("" if not np.isfinite(v) else f"{v:.6g}"
                                                    for v in (maps.noise_distance[i], real, similarity))])
    return path


def _has_samples(snapshot: STASnapshot) -> bool:
    return snapshot.samples_done > 0


def _has_kernels(snapshot: STASnapshot) -> bool:
    return snapshot.samples_done > 0 and snapshot.kernels is not None


def _has_stc(snapshot: STASnapshot) -> bool:
    return snapshot.stc is not None and bool(snapshot.stc.tested.any())


def _has_stc_vectors(snapshot: STASnapshot) -> bool:
    stc = snapshot.stc
    return stc is not None and bool(stc.tested.any()) and bool((stc.count > 0).any())


def _has_maps(snapshot: STASnapshot) -> bool:
    return snapshot.maps is not None and bool(snapshot.maps.layers) and snapshot.maps.noise_samples > 0


ARTEFACTS = (
    Artefact("sta", "STAs: arrays (.npz: both forms, z-maps, unit indices, receptive field) or filter grid",
             (".npz", ".png", ".pdf"), write_sta, figure="wna_gui.figures.sta:save_sta_grid", available=_has_samples),
    Artefact("sta_zmap", "STA z-maps: filter grid", (".png", ".pdf"),
             figure="wna_gui.figures.sta:save_sta_grid", options=(("view", "zmap"),), available=_has_samples),
    Artefact("kernels", "STA against learned kernels: side-by-side grid, cosines (.csv)", (".png", ".pdf", ".csv"),
             write_kernels, figure="wna_gui.figures.sta:save_kernel_comparison", available=_has_kernels),
    Artefact("stc", "STC: spectra with null bands (.png), all results (.npz)", (".npz", ".png"), write_stc,
             figure="wna_gui.figures.sta:save_stc_figure", available=_has_stc),
    Artefact("stc_vectors", "STC: significant eigenvectors", (".png", ".pdf"),
             figure="wna_gui.figures.sta:save_stc_vectors",              available=_has_stc_vectors),
    Artefact("activation_maps", "Layer activation maps per class, noise and real digits", (".npz", ".png", ".pdf"),
             write_activation_maps, figure="wna_gui.figures.sta:save_activation_figure", available=_has_maps),
    Artefact("layer_distances", "Distances between class means per layer (Fig. 20)", (".csv", ".png"),
             write_layer_distances, figure="wna_gui.figures.sta:save_distance_plot", available=_has_maps),
)


# --- `wna info` and `wna run` text ---

def summary(state: STAState) -> dict:
    snapshot = state.snapshot()
    out = {
        "samples_done": state.samples_done, "samples_total": state.config.samples, "finished": state.finished,
        "compute_seconds": round(state.seconds, 3), "layer": state.config.layer, "units": state.units,
        "position": list(state.position), "receptive_field": list(state.field_size),
        "receptive_field_offset": list(snapshot.field_offset), "activation": state.config.activation,
        "nonlinearity": state.post_description,
        "silent_units": int((snapshot.active_fraction == 0).sum()) if state.config.activation == "post" else 0,
    }
    if snapshot.reliability.size:
        out["split_half_r_mean"] = float(np.nanmean(snapshot.reliability[-1])) \
            if np.isfinite(snapshot.reliability[-1]).any() else None
    if snapshot.kernel_cosines is not None and np.isfinite(snapshot.kernel_cosines).any():
        out["kernel_cosine_mean"] = float(np.nanmean(snapshot.kernel_cosines))
    if snapshot.stc is not None:
        out["stc_samples"] = snapshot.stc.samples
        out["stc_units_tested"] = int(snapshot.stc.tested.sum())
        out["stc_significant_dims"] = [int(c) for c in snapshot.stc.count]
    return out


def describe(entry: dict) -> list[str]:
    status = "" if entry["finished"] else " (unfinished)"
    rf = "×".join(str(v) for v in entry["receptive_field"])
    lines = [f"{entry['samples_done']:,} of {entry['samples_total']:,} samples{status}",
             f"  layer {entry['layer']}: {entry['units']} units at {tuple(entry['position'])}, receptive field {rf} "
             f"from {tuple(entry['receptive_field_offset'])}, activation {entry['activation']} "
             f"({entry['nonlinearity']})"]
    if entry.get("split_half_r_mean") is not None:
        lines.append(f"  split-half r (mean over units): {entry['split_half_r_mean']:.3f}")
    if "kernel_cosine_mean" in entry:
        lines.append(f"  cosine STA vs kernel (mean over units): {entry['kernel_cosine_mean']:.4f}")
    if "stc_samples" in entry:
        dims = entry["stc_significant_dims"]
        lines.append(f"  STC on {entry['stc_samples']:,} samples: {entry['stc_units_tested']} of {entry['units']} "
                     f"units tested, {sum(1 for d in dims if d)} with significant directions")
    return lines


def report(snapshot: STASnapshot) -> list[str]:
    lines = [f"{snapshot.samples_done:,} samples in {snapshot.seconds:.1f} s; {snapshot.location_text()}"]
    if snapshot.reliability.size and np.isfinite(snapshot.reliability[-1]).any():
        lines.append(f"split-half r (mean over units) {np.nanmean(snapshot.reliability[-1]):.3f}")
    if snapshot.kernel_cosines is not None and np.isfinite(snapshot.kernel_cosines).any():
        cosines = snapshot.kernel_cosines
        lines.append(f"cosine STA vs kernel: mean {np.nanmean(cosines):.4f}, min {np.nanmin(cosines):.4f}")
    if snapshot.stc is not None:
        counts = snapshot.stc.count[snapshot.stc.tested]
        lines.append(f"STC ({snapshot.stc.samples:,} samples, {snapshot.stc.shuffles} shuffles): "
                     f"{int((counts > 0).sum())} of {snapshot.units} units with significant directions"
                     + (f" (up to {int(counts.max())})" if counts.size and counts.max() else ""))
    elif snapshot.stc_note:
        lines.append(snapshot.stc_note)
    return lines


def _migrate_v1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 counted the blocks done (always blocks 0 … n − 1); version 2 keeps them as ranges."""
    return meta, {**arrays, "done_blocks": BlockSet.prefix(int(meta["blocks_done"])).to_array()}


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="sta",
    title="Receptive fields",
    help="spike-triggered average and covariance of every unit of a layer, learned kernels, layer activation "
         "maps (paper §3.3, Figs. 8, 20, 22)",
    config=STAConfig,
    state=STAState,
    experiment=STAExperiment,
    unit="samples",
    panel="sta",
    artefacts=ARTEFACTS,
    can_extend=True,
    can_refit=True,
    record_version=RECORD_VERSION,
    migrations={1: _migrate_v1},
    summary=summary,
    describe=describe,
    report=report,
)
STAExperiment.spec = EXPERIMENT

__all__ = [
    "EXPERIMENT", "STAConfig", "STAExperiment", "STASnapshot", "STAState", "gradient_sta", "run_sta",
]
