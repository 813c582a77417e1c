"""Per-class maps from one pass over the noise: the paper's hard label and four estimators that let every
sample inform every class (SCIENCE.md, "Maps for every class").

Hard-label averaging (the classification image, ``accumulators.ClassAccumulator``) only sees the classes
noise lands in: the bundled CNN calls uniform noise "8" or "3" almost always. The others give every class a
map within seconds:

- **logit kernel** (``KernelAccumulator``): the first-order Wiener kernel of each output score,
  w_k = E[(x − x̄)(z_k − z̄_k)] / σ² per pixel (the STA of the logit unit); its z-map is the t statistic of
  the per-pixel correlation. Black-box: only the scores are needed.
- **probability-weighted** (``WeightedAccumulator``): Σ p_k(x_i)(x_i − x̄) / Σ p_k(x_i), p = softmax.
- **gradient** (``GradientAccumulator``): E[∇ₓ z_k] over the noise, from autograd; white-box and costly
  (one backward pass per class), very low variance. For Gaussian noise it equals the logit kernel in
  expectation (Stein's lemma: E[(x − μ) f(x)] = σ² E[∇f(x)]); for uniform noise closely.
- **signal + noise** (``SignalAccumulator``): stimuli γ·s + (1 − γ)·n with s drawn over all classes; for
  each response k, the mean noise over trials answered k minus the mean noise of each trial's signal class
  (Ahumada's classification image for K answers). Every response occurs.

Every accumulator holds float64 statistics whose merge is exact for any split of the data (Chan et al.'s
update of means and co-moments), so the even and odd halves of a run merge into the whole, a resumed run
equals one run and memory stays constant. ``maps(even, odd, classes)`` gives what a user looks at
(:class:`EstimatorMaps`: the raw map, a centred map and a z-map per class); ``reliability(even, odd)``
correlates the halves' class-specific maps (split-half reliability).

Memory: the dense estimators keep (K + 1) · D float64 values per half for K classes of D pixels
(:func:`accumulator_bytes`); a 1000-class ImageNet model (D = 150,528) needs 2.4 GB for the logit kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch

from .accumulators import ClassAccumulator, ClassMaps, batch_class_stats
from .records import require_moments

VIEWS = ("mean", "centered", "zmap")
# Above this many classes a snapshot holds maps of the TOP_CLASSES most frequent classes only (the
# accumulators keep every class): a 1000-class ImageNet model's logit kernels are 1.2 GB per view.
ALL_CLASSES_UP_TO = 100
TOP_CLASSES = 20
# Correlations of many classes' maps are computed this many values at a time.
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class EstimatorInfo:
    """How an estimator is named and shown."""

    name: str  # its word in settings, sessions and on the command line
    label: str  # full name
    short: str  # check-box label
    image_like: bool  # the raw map is an image of noise (shown about the noise mean; the model can classify it)
    view_titles: dict  # view → what the map selector says
    view_labels: dict  # view → colour-bar caption
    description: str  # one paragraph for the panel

    @property
    def title(self) -> str:
        """The label starting with a capital: "Gradient (Stein)"."""
        return self.label[:1].upper() + self.label[1:]


_Z = "z-map"
ESTIMATORS: dict[str, EstimatorInfo] = {info.name: info for info in (
    EstimatorInfo(
        "hard", "hard label", "hard", True,
        {"mean": "mean", "centered": "mean − grand mean", "zmap": _Z},
        {"mean": "mean noise n̄ₖ", "centered": "n̄ₖ − n̄ (grand mean)", "zmap": "z-score"},
        "Hard label (the paper's classification image): the mean of the noise the model assigned to each "
        "class. Only classes that noise lands in get a map."),
    EstimatorInfo(
        "logit", "logit kernel", "logit", False,
        {"mean": "kernel", "centered": "kernel − mean over classes", "zmap": _Z},
        {"mean": "wₖ (score per unit pixel)", "centered": "wₖ − mean over classes", "zmap": "z-score (t)"},
        "Logit kernel: for each class, how each pixel's noise moves the class's score, cov(x, zₖ)/σ² (the "
        "first-order Wiener kernel). Every sample informs every class."),
    EstimatorInfo(
        "prob", "probability-weighted", "prob", True,
        {"mean": "weighted mean", "centered": "weighted mean − grand mean", "zmap": _Z},
        {"mean": "Σpₖx / Σpₖ", "centered": "weighted mean − n̄", "zmap": "z-score"},
        "Probability-weighted: the noise averaged with each sample weighted by the softmax probability of "
        "the class, so every sample informs every class."),
    EstimatorInfo(
        "gradient", "gradient (Stein)", "gradient", False,
        {"mean": "mean gradient", "centered": "mean gradient − mean over classes", "zmap": _Z},
        {"mean": "E[∇ₓzₖ]", "centered": "E[∇ₓzₖ] − mean over classes", "zmap": "z-score (t)"},
        "Gradient (Stein): the mean input gradient of each class's score over the noise, from the network's "
        "own derivatives (white-box; one backward pass per class on every n-th block). For Gaussian noise it "
        "equals the logit kernel (Stein's lemma)."),
    EstimatorInfo(
        "signal", "signal + noise", "signal", True,
        {"mean": "mean noise", "centered": "mean noise − per-signal mean", "zmap": _Z},
        {"mean": "mean noise of answer k", "centered": "minus each trial's signal mean", "zmap": "z-score"},
        "Signal + noise: real images of every class shown through noise, γ·s + (1 − γ)·n; for each answer, "
        "the mean noise of the trials so answered minus the mean noise of each trial's signal class. Every "
        "answer occurs."),
)}
ESTIMATOR_NAMES = tuple(ESTIMATORS)
DEFAULT_ESTIMATORS = ("hard", "logit", "prob")


def canonical_estimators(names) -> tuple[str, ...]:
    """The estimators named, in the standard order; an empty selection means every estimator."""
    names = tuple(names)
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator {unknown[0]!r}; choose from {', '.join(ESTIMATOR_NAMES)}")
    return tuple(name for name in ESTIMATOR_NAMES if name in names) if names else ESTIMATOR_NAMES


# --- what a user looks at ---

@dataclass(frozen=True)
class EstimatorMaps:
    """One estimator's maps of the classes it has maps for, flattened, one row per entry of ``classes``.

    ``mean`` is the estimator's raw map (the mean noise for the hard label, the kernel for the logit kernel,
    …), ``centered`` its class-specific part and ``zmap`` the map in standard errors under a null observer.
    :meth:`of` gives any classes' maps with NaN for classes without one (never a zero map: it would look
    like a real, flat result).
    """

    estimator: str
    classes: np.ndarray  # (R,) ascending
    mean: np.ndarray  # (R, D)
    centered: np.ndarray  # (R, D)
    zmap: np.ndarray  # (R, D)
    support: np.ndarray  # (K,) samples (or weight) behind each class's map; NaN where not recorded
    samples: int  # samples this estimator has seen

    @property
    def n_classes(self) -> int:
        return int(self.support.size)

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[1])

    def of(self, view: str, classes=None) -> np.ndarray:
        """Maps of ``classes`` (all K when None) in ``view``, NaN where a class has no map."""
        if view not in VIEWS:
            raise ValueError(f"unknown map view {view!r}; use one of {', '.join(VIEWS)}")
        wanted = np.arange(self.n_classes) if classes is None else np.asarray(classes, dtype=np.int64)
        present = np.isin(wanted, self.classes)
        out = np.full((wanted.size, self.n_features), np.nan)
        out[present] = getattr(self, view)[np.searchsorted(self.classes, wanted[present])]
        return out

    def restricted(self, classes) -> "EstimatorMaps":
        """Only the rows of ``classes`` (those it has)."""
        keep = np.isin(self.classes, np.asarray(classes, dtype=np.int64))
        return replace(self, classes=self.classes[keep], mean=self.mean[keep], centered=self.centered[keep],
                       zmap=self.zmap[keep])

    def as_float32(self) -> "EstimatorMaps":
        """A compact copy for checkpoints (float32 maps)."""
        return replace(self, classes=self.classes.copy(), mean=self.mean.astype(np.float32),
                       centered=self.centered.astype(np.float32), zmap=self.zmap.astype(np.float32),
                       support=self.support.copy())


def from_class_maps(maps: ClassMaps) -> EstimatorMaps:
    """The hard-label maps as EstimatorMaps (support: samples per class)."""
    return EstimatorMaps("hard", maps.classes, maps.mean, maps.centered, maps.zmap,
                         maps.counts.astype(np.float64), int(maps.counts.sum()))


def map_classes(counts: np.ndarray) -> np.ndarray:
    """The classes whose maps snapshots, results and exports hold: every class up to ALL_CLASSES_UP_TO
    classes, else the TOP_CLASSES most frequent hard labels (ties: lower class index first)."""
    counts = np.asarray(counts)
    if counts.size <= ALL_CLASSES_UP_TO:
        return np.arange(counts.size)
    return np.sort(np.argsort(-counts, kind="stable")[:TOP_CLASSES])


def row_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (both spatially demeaned); NaN if flat."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1), np.nan)


def _chunked_correlations(n_rows: int, n_features: int, rows_of) -> np.ndarray:
    """Row correlations of two (n_rows, D) maps built ``rows_of(slice)`` → (a, b), a bounded chunk at a time."""
    out = np.full(n_rows, np.nan)
    step = max(1, _CHUNK_VALUES // max(n_features, 1))
    for first in range(0, n_rows, step):
        part = slice(first, min(n_rows, first + step))
        a, b = rows_of(part)
        out[part] = row_correlations(a, b)
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


class NoiseBlock:
    """One block of stimuli (flattened, float64) and the model's scores, reduced once for every estimator."""

    def __init__(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        self.x = x.reshape(x.shape[0], -1).to(torch.float64)
        self.logits = logits.to(torch.float64)
        self.size = int(x.shape[0])

    @cached_property
    def mean(self) -> torch.Tensor:
        return self.x.mean(0)

    @cached_property
    def centered(self) -> torch.Tensor:
        return self.x - self.mean

    @cached_property
    def m2(self) -> torch.Tensor:
        centered = self.centered
        return (centered * centered).sum(0)

    @cached_property
    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits, 1)


def _check_shapes(name: str, state: dict, expected: dict) -> None:
    for field, shape in expected.items():
        value = np.asarray(state[field])
        if value.shape != shape:
            raise ValueError(f"{name} accumulator field {field!r} has shape {value.shape}, expected {shape}")


def _state_count(value) -> int:
    count = int(np.asarray(value))
    if count < 0:
        raise ValueError("accumulator count must be non-negative")
    return count


# --- logit kernel ---

class KernelAccumulator:
    """Co-moments of the pixels with each score: the logit kernel.

    Rows 0…K−1 are the K scores, row K their mean over classes (its kernel is what every class's kernel
    shares, subtracted in the centred view).
    """

    FIELDS = ("count", "x_mean", "x_m2", "z_mean", "z_m2", "cross")

    def __init__(self, n_classes: int, n_features: int) -> None:
        self.count = 0
        self.x_mean = np.zeros(n_features)
        self.x_m2 = np.zeros(n_features)
        self.z_mean = np.zeros(n_classes + 1)
        self.z_m2 = np.zeros(n_classes + 1)
        self.cross = np.zeros((n_classes + 1, n_features))  # Σ (z − z̄)(x − x̄)

    @property
    def n_classes(self) -> int:
        return self.z_mean.size - 1

    @property
    def samples(self) -> int:
        return self.count

    def add(self, block: NoiseBlock) -> None:
        scores = torch.cat([block.logits, block.logits.mean(1, keepdim=True)], 1)
        z_mean = scores.mean(0)
        z_centered = scores - z_mean
        self._merge(block.size, _np(block.mean), _np(block.m2), _np(z_mean),
                    _np((z_centered * z_centered).sum(0)), _np(z_centered.T @ block.centered))

    def _merge(self, n_b, x_mean, x_m2, z_mean, z_m2, cross) -> None:
        if n_b == 0:
            return
        n_a = self.count
        n = n_a + n_b
        f, g = n_b / n, n_a * n_b / n
        dx, dz = x_mean - self.x_mean, z_mean - self.z_mean
        self.cross += cross + np.outer(dz * g, dx)
        self.x_m2 += x_m2 + dx * dx * g
        self.z_m2 += z_m2 + dz * dz * g
        self.x_mean += dx * f
        self.z_mean += dz * f
        self.count = n

    def merge(self, other: "KernelAccumulator") -> None:
        self._merge(other.count, other.x_mean, other.x_m2, other.z_mean, other.z_m2, other.cross)

    def rows(self, rows) -> "KernelAccumulator":
        """A copy holding only score rows ``rows`` (row K: the mean over classes)."""
        out = KernelAccumulator.__new__(KernelAccumulator)
        out.count, out.x_mean, out.x_m2 = self.count, self.x_mean.copy(), self.x_m2.copy()
        out.z_mean, out.z_m2, out.cross = self.z_mean[rows], self.z_m2[rows], self.cross[rows]
        return out

    def kernels(self, rows) -> np.ndarray:
        """w = cross / M2ₓ for score rows ``rows`` (NaN before two samples)."""
        return _divide(self.cross[rows], self.x_m2[None, :])

    def state(self) -> dict[str, np.ndarray]:
        return {"count": np.int64(self.count), **{name: getattr(self, name).copy() for name in self.FIELDS[1:]}}

    @classmethod
    def from_state(cls, state: dict) -> "KernelAccumulator":
        cross = np.asarray(state["cross"], dtype=np.float64)
        if cross.ndim != 2 or cross.shape[0] < 2:
            raise ValueError(f"logit accumulator field 'cross' has shape {cross.shape}, expected (K + 1, D)")
        rows, features = cross.shape
        _check_shapes("logit", state, {"x_mean": (features,), "x_m2": (features,), "z_mean": (rows,),
                                       "z_m2": (rows,)})
        require_moments("logit", state, counts=("count",), finite=("x_mean", "z_mean", "cross"),
                        non_negative=("x_m2", "z_m2"))
        out = cls(rows - 1, features)
        out.count = _state_count(state["count"])
        for name in cls.FIELDS[1:]:
            setattr(out, name, np.array(state[name], dtype=np.float64))
        return out

    @staticmethod
    def maps(even: "KernelAccumulator", odd: "KernelAccumulator", classes) -> EstimatorMaps:
        classes = np.asarray(classes, dtype=np.int64)
        k = even.n_classes
        acc = even.rows(np.append(classes, k))
        acc.merge(odd.rows(np.append(classes, k)))
        n = acc.count
        kernels = acc.kernels(slice(None))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = acc.cross / np.sqrt(acc.x_m2[None, :] * acc.z_m2[:, None])
            t = r * np.sqrt((n - 2) / (1 - r * r)) if n > 2 else np.full_like(r, np.nan)
        t = np.where(np.isfinite(t), t, np.nan)
        return EstimatorMaps("logit", classes, kernels[:-1], kernels[:-1] - kernels[-1], t[:-1],
                             np.full(k, float(n)), n)

    @staticmethod
    def reliability(even: "KernelAccumulator", odd: "KernelAccumulator") -> np.ndarray:
        """Split-half r of each class's centred kernel (w_k − mean over classes)."""
        k = even.n_classes

        def rows_of(part):
            rows = np.arange(k)[part]
            return tuple(half.kernels(rows) - half.kernels([k]) for half in (even, odd))

        if even.count < 2 or odd.count < 2:
            return np.full(k, np.nan)
        return _chunked_correlations(k, even.x_mean.size, rows_of)

    @staticmethod
    def nbytes(n_classes: int, n_features: int) -> int:
        """Bytes of one half."""
        return 8 * ((n_classes + 1) * (n_features + 2) + 2 * n_features)


# --- probability-weighted ---

class WeightedAccumulator:
    """Softmax-weighted means of the pixels per class, Σ p_k x / Σ p_k, with the plain pixel moments."""

    FIELDS = ("count", "x_mean", "x_m2", "weight", "weight_sq", "mean")

    def __init__(self, n_classes: int, n_features: int) -> None:
        self.count = 0
        self.x_mean = np.zeros(n_features)
        self.x_m2 = np.zeros(n_features)
        self.weight = np.zeros(n_classes)  # Σ p_k
        self.weight_sq = np.zeros(n_classes)  # Σ p_k²
        self.mean = np.zeros((n_classes, n_features))  # Σ p_k x / Σ p_k

    @property
    def n_classes(self) -> int:
        return self.weight.size

    @property
    def samples(self) -> int:
        return self.count

    def add(self, block: NoiseBlock) -> None:
        p = block.probabilities
        weight = p.sum(0)
        safe = torch.where(weight > 0, weight, torch.ones_like(weight))
        mean = block.mean[None, :] + (p.T @ block.centered) / safe[:, None]
        self._merge(block.size, _np(block.mean), _np(block.m2), _np(weight), _np((p * p).sum(0)), _np(mean))

    def _merge(self, n_b, x_mean, x_m2, weight, weight_sq, mean) -> None:
        if n_b == 0:
            return
        n_a = self.count
        n = n_a + n_b
        dx = x_mean - self.x_mean
        self.x_m2 += x_m2 + dx * dx * (n_a * n_b / n)
        self.x_mean += dx * (n_b / n)
        self.count = n
        total = self.weight + weight
        share = np.where(total > 0, weight / np.where(total > 0, total, 1.0), 0.0)
        self.mean += (mean - self.mean) * share[:, None]
        self.weight = total
        self.weight_sq += weight_sq

    def merge(self, other: "WeightedAccumulator") -> None:
        self._merge(other.count, other.x_mean, other.x_m2, other.weight, other.weight_sq, other.mean)

    def rows(self, rows) -> "WeightedAccumulator":
        out = WeightedAccumulator.__new__(WeightedAccumulator)
        out.count, out.x_mean, out.x_m2 = self.count, self.x_mean.copy(), self.x_m2.copy()
        out.weight, out.weight_sq, out.mean = self.weight[rows], self.weight_sq[rows], self.mean[rows]
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"count": np.int64(self.count), **{name: getattr(self, name).copy() for name in self.FIELDS[1:]}}

    @classmethod
    def from_state(cls, state: dict) -> "WeightedAccumulator":
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.ndim != 2:
            raise ValueError(f"prob accumulator field 'mean' has shape {mean.shape}, expected (K, D)")
        classes, features = mean.shape
        _check_shapes("prob", state, {"x_mean": (features,), "x_m2": (features,), "weight": (classes,),
                                      "weight_sq": (classes,)})
        require_moments("prob", state, counts=("count",), finite=("x_mean", "mean"),
                        non_negative=("x_m2", "weight", "weight_sq"))
        out = cls(classes, features)
        out.count = _state_count(state["count"])
        for name in cls.FIELDS[1:]:
            setattr(out, name, np.array(state[name], dtype=np.float64))
        return out

    @staticmethod
    def maps(even: "WeightedAccumulator", odd: "WeightedAccumulator", classes) -> EstimatorMaps:
        """Weighted means, minus the grand mean, and z with the effective-sample-size variance.

        c_k = Σ_i (p_ik/W_k − 1/N)(x_i) with Σ_i p_ik/W_k = 1; for noise independent of the weights
        var(c_k) = σ²·Σ_i (p_ik/W_k − 1/N)² = σ²·(S_k/W_k² − 1/N), S_k = Σ p_ik².
        """
        classes = np.asarray(classes, dtype=np.int64)
        acc = even.rows(classes)
        acc.merge(odd.rows(classes))
        n = acc.count
        has = acc.weight > 0
        mean = np.where(has[:, None], acc.mean, np.nan)
        centered = mean - acc.x_mean[None, :]
        sigma2 = acc.x_m2 / (n - 1) if n > 1 else np.full_like(acc.x_m2, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(has, acc.weight_sq / np.where(has, acc.weight, 1.0) ** 2, np.nan) - 1.0 / max(n, 1)
            se = np.sqrt(np.clip(inv, 0, None)[:, None] * sigma2[None, :])
            zmap = np.where(se > 0, centered / np.where(se > 0, se, 1), np.nan)
        support = even.weight + odd.weight  # Σ p_k of every class, not only of the rows asked for
        return EstimatorMaps("prob", classes, mean, centered, zmap, support, n)

    @staticmethod
    def reliability(even: "WeightedAccumulator", odd: "WeightedAccumulator") -> np.ndarray:
        """Split-half r of each class's weighted mean minus its half's grand mean."""
        out = np.full(even.n_classes, np.nan)
        both = np.flatnonzero((even.weight > 0) & (odd.weight > 0))
        if both.size == 0 or even.count < 2 or odd.count < 2:
            return out

        def rows_of(part):
            rows = both[part]
            return tuple(half.mean[rows] - half.x_mean[None, :] for half in (even, odd))

        out[both] = _chunked_correlations(both.size, even.x_mean.size, rows_of)
        return out

    @staticmethod
    def nbytes(n_classes: int, n_features: int) -> int:
        return 8 * (n_classes * (n_features + 2) + 2 * n_features)


# --- gradient (Stein) ---

class GradientAccumulator:
    """Mean and M2 of the input gradient of each score; row K: of the scores' mean over classes.

    Each row keeps its own count, so gradients can be merged a few classes and samples at a time.
    """

    FIELDS = ("count", "mean", "m2")

    def __init__(self, n_classes: int, n_features: int) -> None:
        self.count = np.zeros(n_classes + 1, dtype=np.int64)
        self.mean = np.zeros((n_classes + 1, n_features))
        self.m2 = np.zeros((n_classes + 1, n_features))

    @property
    def n_classes(self) -> int:
        return self.count.size - 1

    @property
    def samples(self) -> int:
        return int(self.count[-1])

    def add(self, gradients: torch.Tensor, rows) -> None:
        """Merge gradients (b, len(rows), D) of score rows ``rows`` (row K: the mean over classes)."""
        rows = np.asarray(rows, dtype=np.int64)
        g = gradients.to(torch.float64)
        b = int(g.shape[0])
        if b == 0:
            return
        mean_b = g.mean(0)
        centered = g - mean_b
        self._merge_rows(rows, b, _np(mean_b), _np((centered * centered).sum(0)))

    def _merge_rows(self, rows, n_b, mean_b, m2_b) -> None:
        n_a = self.count[rows].astype(np.float64)
        n = n_a + n_b
        delta = mean_b - self.mean[rows]
        self.mean[rows] += delta * (n_b / n)[:, None]
        self.m2[rows] += m2_b + delta * delta * (n_a * n_b / n)[:, None]
        self.count[rows] += n_b

    def merge(self, other: "GradientAccumulator") -> None:
        rows = np.flatnonzero(other.count > 0)
        n_a = self.count[rows].astype(np.float64)
        n_b = other.count[rows].astype(np.float64)
        n = n_a + n_b
        delta = other.mean[rows] - self.mean[rows]
        self.mean[rows] += delta * (n_b / n)[:, None]
        self.m2[rows] += other.m2[rows] + delta * delta * (n_a * n_b / n)[:, None]
        self.count[rows] += other.count[rows]

    def rows(self, rows) -> "GradientAccumulator":
        out = GradientAccumulator.__new__(GradientAccumulator)
        out.count, out.mean, out.m2 = self.count[rows], self.mean[rows], self.m2[rows]
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in self.FIELDS}

    @classmethod
    def from_state(cls, state: dict) -> "GradientAccumulator":
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.ndim != 2 or mean.shape[0] < 2:
            raise ValueError(f"gradient accumulator field 'mean' has shape {mean.shape}, expected (K + 1, D)")
        rows, features = mean.shape
        _check_shapes("gradient", state, {"count": (rows,), "m2": (rows, features)})
        require_moments("gradient", state, counts=("count",), finite=("mean",), non_negative=("m2",))
        out = cls(rows - 1, features)
        out.count = np.array(state["count"], dtype=np.int64)
        out.mean = np.array(mean)
        out.m2 = np.array(state["m2"], dtype=np.float64)
        return out

    @staticmethod
    def maps(even: "GradientAccumulator", odd: "GradientAccumulator", classes) -> EstimatorMaps:
        """Mean gradients, minus their mean over classes, and z = mean / its standard error."""
        classes = np.asarray(classes, dtype=np.int64)
        k = even.n_classes
        rows = np.append(classes, k)
        acc = even.rows(rows)
        acc.merge(odd.rows(rows))
        n = acc.count.astype(np.float64)
        mean = np.where((n > 0)[:, None], acc.mean, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(acc.m2 / ((n - 1) * n)[:, None])
            zmap = np.where((n > 1)[:, None] & (se > 0), mean / np.where(se > 0, se, 1), np.nan)
        support = (even.count + odd.count)[:k].astype(np.float64)
        return EstimatorMaps("gradient", classes, mean[:-1], mean[:-1] - mean[-1], zmap[:-1], support,
                             int(acc.count[-1]))

    @staticmethod
    def reliability(even: "GradientAccumulator", odd: "GradientAccumulator") -> np.ndarray:
        """Split-half r of each class's centred mean gradient (minus the mean over classes)."""
        k = even.n_classes
        if even.count[k] < 1 or odd.count[k] < 1:
            return np.full(k, np.nan)

        def rows_of(part):
            rows = np.arange(k)[part]
            return tuple(half.mean[rows] - half.mean[k][None, :] for half in (even, odd))

        return _chunked_correlations(k, even.mean.shape[1], rows_of)

    @staticmethod
    def nbytes(n_classes: int, n_features: int) -> int:
        return 8 * (n_classes + 1) * (2 * n_features + 1)


# --- signal + noise ---

class SignalAccumulator:
    """Signal-plus-noise trials: the noise by answer, the noise by signal class, and the trial counts."""

    PARTS = ("responses", "signals")

    def __init__(self, n_classes: int, n_features: int) -> None:
        self.responses = ClassAccumulator(n_classes, n_features)  # the trials' noise, by answer
        self.signals = ClassAccumulator(n_classes, n_features)  # the trials' noise, by signal class
        self.trials = np.zeros((n_classes, n_classes), dtype=np.int64)  # [signal class, answer]

    @property
    def n_classes(self) -> int:
        return self.trials.shape[0]

    @property
    def samples(self) -> int:
        return int(self.trials.sum())

    def add(self, noise: torch.Tensor, signal_labels: torch.Tensor, answers: torch.Tensor) -> None:
        """One block of trials: the noise (b, D), each trial's signal class and the model's answer."""
        k = self.n_classes
        noise = noise.reshape(noise.shape[0], -1)
        self.responses.merge_stats(batch_class_stats(noise, answers, k))
        self.signals.merge_stats(batch_class_stats(noise, signal_labels, k))
        cells = signal_labels.to(answers.device, torch.long) * k + answers.to(torch.long)
        self.trials += torch.bincount(cells, minlength=k * k).cpu().numpy().reshape(k, k)

    def merge(self, other: "SignalAccumulator") -> None:
        self.responses.merge_stats(other.responses)
        self.signals.merge_stats(other.signals)
        self.trials += other.trials

    def merged(self, other: "SignalAccumulator") -> "SignalAccumulator":
        out = SignalAccumulator.__new__(SignalAccumulator)
        out.responses = self.responses.merged(other.responses)
        out.signals = self.signals.merged(other.signals)
        out.trials = self.trials + other.trials
        return out

    @property
    def correct(self) -> float:
        """The fraction of trials answered as their signal class."""
        total = self.trials.sum()
        return float(np.trace(self.trials) / total) if total else float("nan")

    def state(self) -> dict[str, np.ndarray]:
        out = {"trials": self.trials.copy()}
        for part in self.PARTS:
            out.update({f"{part}/{name}": value for name, value in getattr(self, part).state().items()})
        return out

    @classmethod
    def from_state(cls, state: dict) -> "SignalAccumulator":
        out = cls.__new__(cls)
        for part in cls.PARTS:
            setattr(out, part, ClassAccumulator.from_state({name: state[f"{part}/{name}"]
                                                            for name in ClassAccumulator.FIELDS}))
        k = out.responses.n_classes
        _check_shapes("signal", state, {"trials": (k, k)})
        if out.signals.n_classes != k or out.signals.n_features != out.responses.n_features:
            raise ValueError("signal accumulator parts disagree in classes or features")
        require_moments("signal", state, counts=("trials",))
        out.trials = np.array(state["trials"], dtype=np.int64)
        return out

    def _centered(self, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(answers with trials among ``classes``, their mean noise, minus each trial's signal-class mean)."""
        answers = classes[np.isin(classes, self.responses.classes) & (self.responses.count[classes] > 0)]
        mean = self.responses.mean[np.searchsorted(self.responses.classes, answers)]
        signal_rows = self.signals.classes
        per_signal = self.trials[signal_rows][:, answers].astype(np.float64)  # (S, R): n_sk
        n_answer = per_signal.sum(0)
        expected = (per_signal.T @ self.signals.mean) / n_answer[:, None]  # Σ_s n_sk n̄_s / n_k
        return answers, mean, mean - expected

    @staticmethod
    def maps(even: "SignalAccumulator", odd: "SignalAccumulator", classes) -> EstimatorMaps:
        """Per answer k: n̄_k, c_k = n̄_k − Σ_s n_sk n̄_s / n_k and z = c_k / sd.

        For noise independent of the answers given the signal (the null),
        var(c_k) = σ²/n_k² · Σ_s n_sk (n_s − n_sk)/n_s, with σ² the noise variance pooled within signal
        classes; with one signal class this is the hard label's σ²(1/n_k − 1/N).
        """
        acc = even.merged(odd)
        answers, mean, centered = acc._centered(np.asarray(classes, dtype=np.int64))
        signal_rows = acc.signals.classes
        per_signal = acc.trials[signal_rows][:, answers].astype(np.float64)
        n_signal = acc.trials[signal_rows].sum(1).astype(np.float64)[:, None]
        n_answer = per_signal.sum(0)
        dof = acc.samples - signal_rows.size
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma2 = acc.signals.m2.sum(0) / dof if dof > 0 else np.full(acc.responses.n_features, np.nan)
            spread = (per_signal * (n_signal - per_signal) / n_signal).sum(0) / n_answer**2
            se = np.sqrt(spread[:, None] * sigma2[None, :])
            zmap = np.where(se > 0, centered / np.where(se > 0, se, 1), np.nan)
        support = acc.trials.sum(0).astype(np.float64)
        return EstimatorMaps("signal", answers, mean, centered, zmap, support, acc.samples)

    @staticmethod
    def reliability(even: "SignalAccumulator", odd: "SignalAccumulator") -> np.ndarray:
        """Split-half r of each answer's map minus the per-signal means, within each half."""
        k = even.n_classes
        out = np.full(k, np.nan)
        both = np.flatnonzero((even.trials.sum(0) >= 2) & (odd.trials.sum(0) >= 2))
        if both.size == 0:
            return out
        answers_even, _, a = even._centered(both)
        answers_odd, _, b = odd._centered(both)
        common = np.intersect1d(answers_even, answers_odd)
        a = a[np.isin(answers_even, common)]
        b = b[np.isin(answers_odd, common)]
        out[common] = row_correlations(a, b)
        return out

    @staticmethod
    def nbytes(n_classes: int, n_features: int) -> int:
        """Bytes of one half at most (answer rows exist only for answers given)."""
        return 8 * (2 * (2 * n_classes * n_features + 3 * n_classes) + n_classes * n_classes)


# Classes that keep the Accumulator protocol (core.accumulators), each with its own static nbytes().
ACCUMULATORS: dict[str, Any] = {"logit": KernelAccumulator, "prob": WeightedAccumulator,
                                "gradient": GradientAccumulator, "signal": SignalAccumulator}


def hard_label_nbytes(n_classes: int, n_features: int) -> int:
    """Bytes of one half of the hard-label accumulator at most (rows exist only for classes seen)."""
    return 8 * (2 * n_classes * n_features + 4 * n_classes)


def accumulator_bytes(estimators, n_classes: int, n_features: int) -> dict[str, int]:
    """Bytes each estimator's accumulators take (both halves); hard label and signal at most."""
    out = {}
    for name in canonical_estimators(estimators):
        per_half = hard_label_nbytes(n_classes, n_features) if name == "hard" else \
            ACCUMULATORS[name].nbytes(n_classes, n_features)
        out[name] = 2 * per_half
    return out


def format_bytes(n: float) -> str:
    for size, unit in ((2**30, "GB"), (2**20, "MB"), (2**10, "kB")):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def memory_text(estimators, n_classes: int, n_features: int) -> str:
    """One line: what the accumulators of these estimators take for this model."""
    sizes = accumulator_bytes(estimators, n_classes, n_features)
    parts = ", ".join(f"{ESTIMATORS[name].short} {'≤ ' if name in ('hard', 'signal') else ''}"
                      f"{format_bytes(size)}" for name, size in sizes.items())
    return f"Accumulators for {n_classes:,} classes × {n_features:,} pixels: {format_bytes(sum(sizes.values()))} ({parts})."


def stein_cosines(gradient: EstimatorMaps, kernel: EstimatorMaps) -> np.ndarray:
    """Per class, the cosine between the mean gradient and the logit kernel (NaN where either is missing)."""
    out = np.full(gradient.n_classes, np.nan)
    classes = np.intersect1d(gradient.classes, kernel.classes)
    if classes.size == 0:
        return out
    a, b = gradient.of("mean", classes), kernel.of("mean", classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    out[classes] = np.where(np.isfinite(cos), cos, np.nan)
    return out
