"""Exact streaming per-class statistics of noise (count, weight, mean, M2).

Batches are reduced on the device and merged into float64 accumulators with
Chan et al.'s parallel update, so any split of the data into batches, blocks
or workers gives the same result as one pass over everything.

Every accumulator of a run (this module's, core.estimators' and core.spike_triggered's
STAAccumulator) follows :class:`Accumulator`; tests/test_accumulator_protocol.py checks each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .records import require_moments


@runtime_checkable
class Accumulator(Protocol):
    """A running statistic of a run, kept in two halves (even and odd blocks) for split-half reliability.

    - ``add(*batch)``: fold in one batch (its arguments depend on the estimator: noise and labels, a
      NoiseBlock, gradients, signal trials, activations and features);
    - ``merge(other)``: fold in another accumulator; exact, so adding batches A then merging an
      accumulator of batches B equals adding A and B (to rounding);
    - ``state()`` / ``from_state(state)``: the arrays a session stores, and back, bit for bit;
    - ``maps(even, odd, classes)``: the run's maps from its two halves, for the classes (units) asked;
    - ``reliability(even, odd)``: the split-half r per class (unit), NaN where a half has too little;
    - ``samples``: how many samples it holds.
    """

    @property
    def samples(self) -> int: ...

    def add(self, *batch: Any) -> None: ...

    def merge(self, other: Any) -> None: ...

    def state(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Any: ...

    @staticmethod
    def maps(even: Any, odd: Any, classes: Any) -> Any: ...

    @staticmethod
    def reliability(even: Any, odd: Any) -> np.ndarray: ...


@dataclass
class BatchStats:
    """Per-class statistics of one batch (float64, on the host); rows only for classes present."""

    count: np.ndarray  # (K,) int64
    weight: np.ndarray  # (K,) sum of weights
    weight_sq: np.ndarray  # (K,) sum of squared weights
    classes: np.ndarray  # (R,) int64, ascending: the classes present, one row each below
    mean: np.ndarray  # (R, D)
    m2: np.ndarray  # (R, D) weighted sum of squared deviations from mean


def batch_class_stats(
    x: torch.Tensor, labels: torch.Tensor, n_classes: int, weights: torch.Tensor | None = None
) -> BatchStats:
    """Reduce one batch to per-class statistics on x's device (float64)."""
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    labels = labels.to(device=x.device, dtype=torch.long)
    if weights is None:
        w = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    else:
        w = weights.to(device=x.device, dtype=torch.float64)
    # Only the classes present get rows: a 1000-class model sees a handful per batch.
    present, row_of_sample = torch.unique(labels, sorted=True, return_inverse=True)
    # Per-class sums as one-hot GEMMs (index_add_ over rows is ~30x slower on CPU).
    # Sums are taken about the batch's first sample (shifted-data algorithm) so
    # that M2 = Σw(x−s)² − W·(μ−s)² does not cancel catastrophically.
    one_hot = torch.zeros(present.numel(), x.shape[0], dtype=torch.float64, device=x.device)
    one_hot[row_of_sample, torch.arange(x.shape[0], device=x.device)] = w
    shift = x[:1]
    shifted = x - shift
    row_weight = one_hot.sum(1)
    safe_weight = torch.where(row_weight > 0, row_weight, torch.ones_like(row_weight))[:, None]
    shifted_mean = (one_hot @ shifted) / safe_weight
    m2 = one_hot @ shifted.square_() - row_weight[:, None] * shifted_mean.square()
    m2.clamp_(min=0)
    classes = present.cpu().numpy().astype(np.int64)
    weight = np.zeros(n_classes)
    weight[classes] = row_weight.cpu().numpy()
    weight_sq = np.zeros(n_classes)
    weight_sq[classes] = (one_hot * one_hot).sum(1).cpu().numpy()
    return BatchStats(
        count=torch.bincount(labels, minlength=n_classes).cpu().numpy().astype(np.int64),
        weight=weight,
        weight_sq=weight_sq,
        classes=classes,
        mean=(shifted_mean + shift).cpu().numpy(),
        m2=m2.cpu().numpy(),
    )


class ClassAccumulator:
    """Running per-class weighted mean and M2 of flattened stimuli.

    Means and M2 are kept only for classes seen so far (``classes``, one row
    each), so memory is O(classes seen · D) whatever the number of samples,
    and a 1000-class model costs what the few classes noise reaches cost.
    """

    FIELDS = ("count", "weight", "weight_sq", "classes", "mean", "m2")

    def __init__(self, n_classes: int, n_features: int) -> None:
        if n_classes < 1 or n_features < 1:
            raise ValueError(f"accumulator needs at least one class and one feature, got {n_classes}x{n_features}")
        self.count = np.zeros(n_classes, dtype=np.int64)
        self.weight = np.zeros(n_classes, dtype=np.float64)
        self.weight_sq = np.zeros(n_classes, dtype=np.float64)
        self.classes = np.zeros(0, dtype=np.int64)
        self.mean = np.zeros((0, n_features), dtype=np.float64)
        self.m2 = np.zeros((0, n_features), dtype=np.float64)

    @property
    def n_classes(self) -> int:
        return self.count.shape[0]

    @property
    def n_features(self) -> int:
        return self.mean.shape[1]

    @property
    def samples(self) -> int:
        return int(self.count.sum())

    def dense(self, name: str) -> np.ndarray:
        """``mean`` or ``m2`` as a (K, D) array, zero for classes never seen (small K only)."""
        out = np.zeros((self.n_classes, self.n_features))
        out[self.classes] = getattr(self, name)
        return out

    def add(self, x, labels, weights=None) -> None:
        """Add a batch: x (B, ...) stimuli, labels (B,) class indices, optional weights (B,)."""
        x = torch.as_tensor(x)
        labels = torch.as_tensor(labels)
        if weights is not None:
            weights = torch.as_tensor(weights)
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"batch has {x.shape[0]} stimuli but {labels.shape[0]} labels")
        if x[0].numel() != self.n_features:
            raise ValueError(f"stimulus has {x[0].numel()} values, accumulator expects {self.n_features}")
        self.merge_stats(batch_class_stats(x, labels, self.n_classes, weights))

    def add_counts(self, labels) -> None:
        """Count a batch's labels only (no maps): how the model labels noise when hard-label maps are off."""
        labels = torch.as_tensor(labels, dtype=torch.long)
        self.count = self.count + torch.bincount(labels, minlength=self.n_classes).cpu().numpy().astype(np.int64)

    def _add_rows(self, classes: np.ndarray) -> None:
        """Give rows (zero statistics) to classes not seen before, keeping ``classes`` ascending."""
        new = np.setdiff1d(classes, self.classes)
        if new.size == 0:
            return
        merged = np.union1d(self.classes, new)
        keep = np.searchsorted(merged, self.classes)
        for name in ("mean", "m2"):
            grown = np.zeros((merged.size, self.n_features))
            grown[keep] = getattr(self, name)
            setattr(self, name, grown)
        self.classes = merged

    def merge_stats(self, other: BatchStats | "ClassAccumulator") -> None:
        """Chan's parallel update, per class: exact for any split of the data."""
        self._add_rows(other.classes)
        rows = np.searchsorted(self.classes, other.classes)
        w_a, w_b = self.weight[other.classes], other.weight[other.classes]
        total = w_a + w_b
        # A class with zero total weight keeps zero statistics; dividing by 1 avoids 0/0.
        safe_total = np.where(total > 0, total, 1.0)
        delta = other.mean - self.mean[rows]
        self.mean[rows] += delta * (w_b / safe_total)[:, None]
        self.m2[rows] += other.m2 + delta * delta * (w_a * w_b / safe_total)[:, None]
        self.weight = self.weight + other.weight
        self.weight_sq = self.weight_sq + other.weight_sq
        self.count = self.count + other.count

    def merge(self, other: "ClassAccumulator") -> None:
        self.merge_stats(other)

    def merged(self, other: "ClassAccumulator") -> "ClassAccumulator":
        out = self.copy()
        out.merge_stats(other)
        return out

    @staticmethod
    def maps(even: "ClassAccumulator", odd: "ClassAccumulator", classes=None) -> "ClassMaps":
        """The bias maps of both halves together (ClassMaps.of picks the classes)."""
        return class_maps(even.merged(odd))

    @staticmethod
    def reliability(even: "ClassAccumulator", odd: "ClassAccumulator") -> np.ndarray:
        return split_half_reliability(even, odd)

    def copy(self) -> "ClassAccumulator":
        out = ClassAccumulator(self.n_classes, self.n_features)
        for name in self.FIELDS:
            setattr(out, name, getattr(self, name).copy())
        return out

    def pooled(self) -> tuple[float, float, np.ndarray, np.ndarray]:
        """All classes merged: (weight, weight_sq, mean, m2) of the whole stimulus set."""
        weight = 0.0
        mean = np.zeros(self.n_features)
        m2 = np.zeros(self.n_features)
        for row, k in enumerate(self.classes):
            w_k = self.weight[k]
            if w_k <= 0:
                continue
            total = weight + w_k
            delta = self.mean[row] - mean
            mean = mean + delta * (w_k / total)
            m2 = m2 + self.m2[row] + delta * delta * (weight * w_k / total)
            weight = total
        return weight, float(self.weight_sq.sum()), mean, m2

    def state(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in self.FIELDS}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "ClassAccumulator":
        require_moments("class", state, counts=("count", "classes"), finite=("mean",),
                        non_negative=("weight", "weight_sq", "m2"))
        count = np.asarray(state["count"], dtype=np.int64)
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.ndim != 2:
            raise ValueError(f"accumulator field 'mean' has shape {mean.shape}, expected (classes seen, features)")
        out = cls(count.shape[0], mean.shape[1])
        rows = np.asarray(state["classes"]).shape[0]
        expected = {"count": out.count.shape, "weight": out.weight.shape, "weight_sq": out.weight_sq.shape,
                    "classes": (rows,), "mean": (rows, out.n_features), "m2": (rows, out.n_features)}
        for name in cls.FIELDS:
            value = np.asarray(state[name])
            if value.shape != expected[name]:
                raise ValueError(f"accumulator field {name!r} has shape {value.shape}, expected {expected[name]}")
            setattr(out, name, value.astype(getattr(out, name).dtype, copy=True))
        if np.any(np.diff(out.classes) <= 0) or (rows and not 0 <= out.classes[0] <= out.classes[-1] < out.n_classes):
            raise ValueError("accumulator field 'classes' must hold ascending class indices")
        return out


@dataclass(frozen=True)
class ClassMaps:
    """What a user looks at: maps of the classes seen so far, flattened, float64.

    ``mean``, ``centered`` and ``zmap`` have one row per entry of ``classes``;
    :meth:`of` gives any classes' maps with NaN for classes never seen (a zero
    map would look like a real, flat result).
    """

    counts: np.ndarray  # (K,) int64
    classes: np.ndarray  # (R,) classes seen, ascending
    mean: np.ndarray  # (R, D) classification image n̄_k
    grand_mean: np.ndarray  # (D,) n̄ over all samples
    centered: np.ndarray  # (R, D) n̄_k − n̄
    zmap: np.ndarray  # (R, D) centered / its standard error under the null

    def of(self, view: str, classes=None) -> np.ndarray:
        """Maps of ``classes`` (all K when None) in view mean / centered / zmap, NaN where unseen."""
        wanted = np.arange(self.counts.size) if classes is None else np.asarray(classes, dtype=np.int64)
        seen = np.isin(wanted, self.classes)
        out = np.full((wanted.size, self.grand_mean.size), np.nan)
        out[seen] = getattr(self, view)[np.searchsorted(self.classes, wanted[seen])]
        return out


def class_maps(acc: ClassAccumulator) -> ClassMaps:
    """Bias maps with a pixelwise z-map (SCIENCE.md: var(c_k) = σ²(1/n_k − 1/N)).

    With weights w_i (confidence weighting), c_k = Σ_{i∈k} w_i x_i / W_k − Σ_i w_i x_i / W and, for noise
    independent of the answers and weights (the null),
    var(c_k) = σ²·(S_k/W_k² − 2·S_k/(W_k·W) + S/W²), with W_k, S_k the sum of the weights and of their
    squares in class k and W, S over all samples. The first two terms are 1/n_eff,k − 1/N_eff (effective
    sample sizes (Σw)²/Σw²); the last is the weights' term, 2·(S/W² − S_k/(W_k·W)), which is exactly 0
    without weights (so unweighted z-maps are the paper's, bit for bit) and matters when the weights depend
    on the answer. σ² is the weighted pixel variance with its unbiased weighted denominator W − S/W.
    """
    total_w, total_w_sq, grand_mean, grand_m2 = acc.pooled()
    weight, weight_sq = acc.weight[acc.classes], acc.weight_sq[acc.classes]
    mean = np.where((weight > 0)[:, None], acc.mean, np.nan)
    centered = mean - grand_mean[None, :]
    zmap = np.full_like(mean, np.nan)
    if total_w > 0 and total_w_sq > 0:
        n_total = total_w * total_w / total_w_sq
        # Unbiased pixel variance with effective sample size (= N − 1 unweighted).
        dof = max(total_w - total_w_sq / total_w, np.finfo(float).tiny)
        sigma2 = grand_m2 / dof
        with np.errstate(divide="ignore", invalid="ignore"):
            n_class = np.where(weight_sq > 0, weight**2 / np.where(weight_sq > 0, weight_sq, 1), 0)
            inv = np.where(n_class > 0, 1.0 / np.where(n_class > 0, n_class, 1), np.nan) - 1.0 / n_total
            # The weights' term: 2·(S/W² − S_k/(W_k·W)); exactly 0.0 when every weight is 1 (both are 1/N).
            safe_weight = np.where(weight > 0, weight, 1.0)
            inv = inv + 2.0 * (total_w_sq / (total_w * total_w) - weight_sq / (safe_weight * total_w))
            se = np.sqrt(np.clip(inv, 0, None)[:, None] * sigma2[None, :])
            zmap = np.where(se > 0, centered / np.where(se > 0, se, 1), np.nan)
    return ClassMaps(counts=acc.count.copy(), classes=acc.classes.copy(), mean=mean, grand_mean=grand_mean,
                     centered=centered, zmap=zmap)


def split_half_reliability(even: ClassAccumulator, odd: ClassAccumulator, min_count: int = 2) -> np.ndarray:
    """Per-class Pearson r between the mean maps of two independent halves (spatially demeaned).

    NaN for classes with fewer than ``min_count`` samples in either half.
    """
    out = np.full(even.n_classes, np.nan)
    both = np.flatnonzero((even.count >= min_count) & (odd.count >= min_count))
    both = both[np.isin(both, even.classes) & np.isin(both, odd.classes)]  # counted but mapped (not count-only)
    if both.size == 0:
        return out
    a = even.mean[np.searchsorted(even.classes, both)]
    b = odd.mean[np.searchsorted(odd.classes, both)]
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out[both] = np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1), np.nan)
    return out


def spearman_brown(r):
    """The reliability of the whole from the correlation r of its two halves: 2r / (1 + r) (NaN where r ≤ −1).

    Split-half r is the agreement of two maps of half the samples each; Spearman–Brown
    predicts the reliability of the map of all samples.
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > -1, 2 * r / (1 + r), np.nan)


# Split-half reliability is recorded at these many log-spaced points per decade of samples.
RELIABILITY_POINTS_PER_DECADE = 8


def reliability_grid(up_to: int) -> np.ndarray:
    """Log-spaced sample counts from 1e2 at which split-half reliability is recorded."""
    decades = max(np.log10(max(up_to, 100)) - 2, 0)
    points = np.logspace(2, 2 + decades, int(np.ceil(decades * RELIABILITY_POINTS_PER_DECADE)) + 1)
    return np.unique(np.round(points).astype(np.int64))
