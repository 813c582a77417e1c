"""Spike-triggered estimators on arrays: streaming STA moments, STC sums and the nested shuffle test.

No model here, only activations ``a`` (B, U) of U units and stimulus features
``x`` (B, P) (a receptive-field crop, or a structured source's scores), so
the same code serves the experiment (core.sta) and simulated neurons in the
tests.

- :class:`STAAccumulator`: count, means, sums of squared deviations and the
  cross co-moment Σ(a − ā)(x − x̄) in float64, merged exactly (Chan et al.).
  STA = Σ aᵢ(xᵢ − x̄) / Σ aᵢ, the unnormalised STA = Σ aᵢ(xᵢ − x̄) / N (for
  Gaussian noise σ²·E[∇a] by Stein's lemma), and the z-map r·√N.
- :class:`STCAccumulator`: raw float64 sums Σx, Σxxᵀ, Σa, Σax, Σaxxᵀ (the
  last packed as upper triangles) of mean-subtracted features.
  STC = Σ aᵢ(xᵢ − m)(xᵢ − m)ᵀ / (Σ aᵢ − 1), m the spike-triggered mean.
- :func:`shuffle_null` and :func:`nested_test`: the eigenvalues of
  ΔC = STC − C_stim against a shuffle null (activations permuted across
  trials); the most extreme eigenvalue outside the null's extremes is
  significant, its direction is projected out, and the test repeats on the
  remaining space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .records import require_moments, require_shapes

def triu_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(p)


def unpack_symmetric(packed: np.ndarray, p: int) -> np.ndarray:
    """(…, P(P+1)/2) upper triangles → (…, P, P) symmetric matrices."""
    rows, cols = triu_indices(p)
    out = np.zeros(packed.shape[:-1] + (p, p), dtype=packed.dtype)
    out[..., rows, cols] = packed
    out[..., cols, rows] = packed
    return out


def _outer_products(x_t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """(P, B) → (P(P+1)/2, B): the upper triangles of the columns' outer products (np.triu_indices order).

    One small product per row of the triangle and block of columns, each kept
    under torch's parallel grain (about 32k elements), where one thread is fastest.
    """
    p, n = x_t.shape
    width = _chunk_rows(p)
    for first in range(0, n, width):
        last = min(first + width, n)
        offset = 0
        for i in range(p):
            torch.mul(x_t[i:, first:last], x_t[i:i + 1, first:last], out=out[offset:offset + p - i, first:last])
            offset += p - i
    return out[:, :n]


def _chunk_rows(features: int) -> int:
    return max(16, 32768 // max(features, 1))


# Columns (samples) per product with the weights: long enough for an efficient matrix product.
PRODUCT_COLUMNS = 1024


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching rows of two (U, P) arrays (NaN where a row is constant)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(1) / denominator, np.nan)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between matching rows of two (U, P) arrays (NaN where a row is zero or not finite)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denominator > 0, (a * b).sum(1) / denominator, np.nan)
    return np.where(np.isfinite(out), out, np.nan)


class STAAccumulator:
    """First and second moments of activations (U) and features (P) and their co-moment, in float64.

    ``add`` folds in a block; ``merge`` adds another accumulator; both
    use Chan et al.'s parallel update, so any split of the same samples into
    blocks gives the same result to rounding, and the same split gives it
    bit for bit.
    """

    FIELDS = ("count", "active", "mean_a", "m2_a", "mean_x", "m2_x", "c_ax")

    def __init__(self, units: int, features: int) -> None:
        self.count = 0
        self.active = np.zeros(units, dtype=np.int64)  # samples with a > 0, per unit
        self.mean_a = np.zeros(units)
        self.m2_a = np.zeros(units)
        self.mean_x = np.zeros(features)
        self.m2_x = np.zeros(features)
        self.c_ax = np.zeros((units, features))

    @property
    def units(self) -> int:
        return self.mean_a.shape[0]

    @property
    def features(self) -> int:
        return self.mean_x.shape[0]

    @property
    def samples(self) -> int:
        return int(self.count)

    def add(self, a: torch.Tensor, x: torch.Tensor) -> None:
        """Fold in a block: activations (B, U) and features (B, P), any device and float type."""
        n = int(a.shape[0])
        if n == 0:
            return
        a, x = a.to(torch.float64), x.to(torch.float64)
        mean_a, mean_x = a.mean(0), x.mean(0)
        da, dx = a - mean_a, x - mean_x
        stats = ((a > 0).sum(0), mean_a, (da * da).sum(0), mean_x, (dx * dx).sum(0), da.T @ dx)
        self._merge(n, *(t.cpu().numpy() for t in stats))

    def merge(self, other: "STAAccumulator") -> None:
        self._merge(other.count, other.active, other.mean_a, other.m2_a, other.mean_x, other.m2_x, other.c_ax)

    def merged(self, other: "STAAccumulator") -> "STAAccumulator":
        out = STAAccumulator.from_state(self.state())
        out.merge(other)
        return out

    def _merge(self, n, active, mean_a, m2_a, mean_x, m2_x, c_ax) -> None:
        if n == 0:
            return
        if self.count == 0:
            self.count = int(n)
            self.active = np.array(active, dtype=np.int64)
            self.mean_a, self.m2_a = np.array(mean_a, np.float64), np.array(m2_a, np.float64)
            self.mean_x, self.m2_x = np.array(mean_x, np.float64), np.array(m2_x, np.float64)
            self.c_ax = np.array(c_ax, np.float64)
            return
        total = self.count + n
        delta_a, delta_x = mean_a - self.mean_a, mean_x - self.mean_x
        weight = self.count * n / total
        self.c_ax += c_ax + weight * np.outer(delta_a, delta_x)
        self.m2_a += m2_a + weight * delta_a**2
        self.m2_x += m2_x + weight * delta_x**2
        self.mean_a += delta_a * (n / total)
        self.mean_x += delta_x * (n / total)
        self.active += np.asarray(active, dtype=np.int64)
        self.count = int(total)

    # --- results ---

    @staticmethod
    def maps(even: "STAAccumulator", odd: "STAAccumulator", units=None) -> np.ndarray:
        """(U, P) spike-triggered averages of both halves together (the units asked, or all)."""
        maps = even.merged(odd).normalised()
        return maps if units is None else maps[np.asarray(units, dtype=np.int64)]

    @staticmethod
    def reliability(even: "STAAccumulator", odd: "STAAccumulator") -> np.ndarray:
        """(U,) split-half r of each unit's activation–stimulus covariance."""
        return pearson_rows(even.c_ax, odd.c_ax)

    @property
    def sum_a(self) -> np.ndarray:
        return self.count * self.mean_a

    def unnormalised(self) -> np.ndarray:
        """Σ aᵢ(xᵢ − x̄) / N, (U, P): the activation–stimulus covariance (σ²·E[∇a] for Gaussian noise)."""
        if self.count == 0:
            return np.full_like(self.c_ax, np.nan)
        return self.c_ax / self.count

    def normalised(self) -> np.ndarray:
        """Σ aᵢ(xᵢ − x̄) / Σ aᵢ, (U, P): the spike-triggered average; NaN for units that never respond."""
        sum_a = self.sum_a
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.c_ax / sum_a[:, None]
        out[(sum_a == 0) | (self.m2_a <= 0)] = np.nan
        return out

    def zmap(self) -> np.ndarray:
        """(U, P) z = r·√N, r the correlation of activation and feature: ≈ N(0, 1) where they are independent."""
        scale = np.sqrt(np.outer(self.m2_a, self.m2_x) / max(self.count, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = self.c_ax / scale
        z[~(scale > 0)] = np.nan
        return z

    # --- records ---

    def state(self) -> dict[str, np.ndarray]:
        return {"count": np.asarray(self.count, dtype=np.int64), "active": self.active.copy(),
                "mean_a": self.mean_a.copy(), "m2_a": self.m2_a.copy(), "mean_x": self.mean_x.copy(),
                "m2_x": self.m2_x.copy(), "c_ax": self.c_ax.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "STAAccumulator":
        require_moments("STA", state, counts=("count", "active"), finite=("mean_a", "mean_x", "c_ax"),
                        non_negative=("m2_a", "m2_x"))
        units, features = np.asarray(state["mean_a"]).shape[:1], np.asarray(state["mean_x"]).shape[:1]
        require_shapes("STA", state, {"count": (), "active": units, "mean_a": units, "m2_a": units,
                                      "mean_x": features, "m2_x": features, "c_ax": units + features})
        out = cls(len(state["mean_a"]), len(state["mean_x"]))
        out.count = int(np.asarray(state["count"]))
        out.active = np.array(state["active"], dtype=np.int64)
        for name in ("mean_a", "m2_a", "mean_x", "m2_x", "c_ax"):
            setattr(out, name, np.array(state[name], dtype=np.float64))
        return out


def stc_denominator(sum_a):
    """Σa − 1 (SCIENCE.md), or Σa where the activations sum to less than 2 (tiny activations)."""
    sum_a = np.asarray(sum_a, dtype=np.float64)
    return np.where(sum_a >= 2, sum_a - 1, sum_a)


class STCAccumulator:
    """Raw float64 sums of mean-subtracted features for the spike-triggered covariance of U units over P features.

    Memory: U·P(P+1)/2 float64 (the Σaxxᵀ triangles); 7.7 MB for the MNIST CNN's conv2 (50 units, 14×14).
    """

    FIELDS = ("count", "sum_x", "sum_xx", "sum_a", "sum_ax", "sum_axx")

    def __init__(self, units: int, features: int) -> None:
        packed = features * (features + 1) // 2
        self.count = 0
        self.sum_x = np.zeros(features)
        self.sum_xx = np.zeros(packed)
        self.sum_a = np.zeros(units)
        self.sum_ax = np.zeros((units, features))
        self.sum_axx = np.zeros((units, packed))

    @property
    def units(self) -> int:
        return self.sum_a.shape[0]

    @property
    def features(self) -> int:
        return self.sum_x.shape[0]

    @staticmethod
    def nbytes(units: int, features: int) -> int:
        return 8 * (units + 1) * (features * (features + 1) // 2 + features)

    def add(self, a: torch.Tensor, x: torch.Tensor) -> None:
        """Fold in activations (B, U) and mean-subtracted features (B, P)."""
        n = int(a.shape[0])
        if n == 0:
            return
        a, x = a.to(torch.float64), x.to(torch.float64)
        packed = self.features * (self.features + 1) // 2
        # A column of ones beside the activations: Σxxᵀ comes out of the same product as Σaxxᵀ.
        weights = torch.cat([a, torch.ones((n, 1), dtype=torch.float64, device=a.device)], 1)
        sums = torch.zeros((packed, self.units + 1), dtype=torch.float64, device=x.device)
        step = PRODUCT_COLUMNS
        x_t = x.T.contiguous()
        buffer = torch.empty((packed, min(step, n)), dtype=torch.float64, device=x.device)
        for start in range(0, n, step):
            sums += _outer_products(x_t[:, start:start + step], buffer) @ weights[start:start + step]
        sum_xx, sum_axx = sums[:, -1], sums[:, :-1]
        self.count += n
        self.sum_x += x.sum(0).cpu().numpy()
        self.sum_xx += sum_xx.cpu().numpy()
        self.sum_a += a.sum(0).cpu().numpy()
        self.sum_ax += (a.T @ x).cpu().numpy()
        self.sum_axx += sum_axx.T.cpu().numpy()

    def stimulus_covariance(self) -> np.ndarray:
        """(P, P) covariance of the features over all trials."""
        n = self.count
        outer = unpack_symmetric(self.sum_xx, self.features)
        return (outer - np.outer(self.sum_x, self.sum_x) / n) / max(n - 1, 1)

    def spike_mean(self) -> np.ndarray:
        """(U, P) the activation-weighted mean of the features (the STA before mean subtraction)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_ax / self.sum_a[:, None]

    def spike_covariance(self, unit: int) -> np.ndarray:
        """(P, P) Σ aᵢ(xᵢ − m)(xᵢ − m)ᵀ / (Σ aᵢ − 1) for one unit."""
        m = self.sum_ax[unit] / self.sum_a[unit]
        second = unpack_symmetric(self.sum_axx[unit], self.features)
        return (second - self.sum_a[unit] * np.outer(m, m)) / stc_denominator(self.sum_a[unit])

    def state(self) -> dict[str, np.ndarray]:
        return {"count": np.asarray(self.count, dtype=np.int64), "sum_x": self.sum_x.copy(),
                "sum_xx": self.sum_xx.copy(), "sum_a": self.sum_a.copy(), "sum_ax": self.sum_ax.copy(),
                "sum_axx": self.sum_axx.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "STCAccumulator":
        require_moments("STC", state, counts=("count",), finite=("sum_x", "sum_xx", "sum_a", "sum_ax", "sum_axx"))
        sum_ax = np.asarray(state["sum_ax"])
        if sum_ax.ndim != 2:
            raise ValueError(f"STC accumulator field 'sum_ax' has shape {sum_ax.shape}, expected (units, features)")
        units, features = sum_ax.shape
        packed = features * (features + 1) // 2
        require_shapes("STC", state, {"count": (), "sum_x": (features,), "sum_xx": (packed,), "sum_a": (units,),
                                      "sum_axx": (units, packed)})
        out = cls(units, features)
        out.count = int(np.asarray(state["count"]))
        for name in ("sum_x", "sum_xx", "sum_a", "sum_ax", "sum_axx"):
            setattr(out, name, np.array(state[name], dtype=np.float64))
        return out


def permutations(count: int, shuffles: int, seed: int) -> torch.Tensor:
    """(shuffles, count) int64 permutations of the trials, a function of (seed, count, shuffles) alone."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5354_4321, int(count)]))
    return torch.from_numpy(np.stack([rng.permutation(count) for _ in range(shuffles)]).astype(np.int64))


def shuffle_null(x: torch.Tensor, a: torch.Tensor, orders: torch.Tensor, stimulus_covariance: np.ndarray,
                 ) -> np.ndarray:
    """ΔC under the null, per unit and shuffle: (U, R, P, P) float64.

    ``x`` (N, P) mean-subtracted features, ``a`` (N, U) activations, ``orders``
    (R, N) permutations. Shuffle r pairs trial i's features with trial
    orders[r, i]'s activations, which keeps every unit's activation
    distribution and breaks its dependence on the stimulus. One product of the
    packed x⊗x triangles with every (unit, shuffle)'s weights: float32 for speed
    (the null needs no more), the corrections in float64.
    """
    n, p = x.shape
    units, shuffles = a.shape[1], orders.shape[0]
    x = x.to(torch.float32)
    a = a.to(torch.float32)
    packed = p * (p + 1) // 2
    second = torch.zeros((packed, units * shuffles), dtype=torch.float32, device=x.device)
    first = torch.zeros((p, units * shuffles), dtype=torch.float32, device=x.device)
    step = PRODUCT_COLUMNS
    x_t = x.T.contiguous()
    buffer = torch.empty((packed, min(step, n)), dtype=torch.float32, device=x.device)
    orders = orders.to(x.device)
    for start in range(0, n, step):
        chunk = x_t[:, start:start + step]
        # weights[i, u·R + r] = a[orders[r, start + i], u]
        weights = a[orders[:, start:start + step]].permute(1, 2, 0).reshape(chunk.shape[1], units * shuffles)
        second.addmm_(_outer_products(chunk, buffer), weights)
        first.addmm_(chunk, weights)
    second, first = second.T.double(), first.T.double()
    sum_a = a.double().sum(0).repeat_interleave(shuffles).cpu().numpy()  # the same for every shuffle
    second_moments = unpack_symmetric(second.cpu().numpy(), p)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = first.cpu().numpy() / sum_a[:, None]
        covariance = (second_moments - sum_a[:, None, None] * mean[:, :, None] * mean[:, None, :]) \
            / stc_denominator(sum_a)[:, None, None]
    return (covariance - stimulus_covariance).reshape(units, shuffles, p, p)


@dataclass(frozen=True)
class STCResult:
    """One unit's nested shuffle test.

    ``eigenvalues``: ΔC's eigenvalues, ascending; ``band``: the first round's null (lowest, highest eigenvalue over
    the shuffles); ``values``/``vectors``: the significant eigenvalues and unit vectors (P,), in the order found;
    ``bands``: the null band of each round (one more than significant directions, unless stopped at the cap).
    """

    eigenvalues: np.ndarray
    band: tuple[float, float]
    values: np.ndarray
    vectors: np.ndarray  # (k, P)
    bands: np.ndarray  # (rounds, 2)

    @property
    def count(self) -> int:
        return int(self.values.shape[0])


def null_spectra(null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (R, P) ascending and eigenvectors (R, P, P) of the null matrices, for :func:`nested_test`."""
    # float32: its rounding (~1e-7 of the matrices' scale) is far below the null's spread, and it is ~2x faster.
    values, vectors = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(null, dtype=np.float32)))
    return values.double().numpy(), vectors.double().numpy()


def _compressed_extreme(values: np.ndarray, vectors: np.ndarray, removed: np.ndarray, top: bool,
                        iterations: int = 60) -> np.ndarray:
    """The largest (``top``) or smallest eigenvalue of each null matrix restricted to the complement of ``removed``.

    M = U Λ Uᵀ restricted to the orthogonal complement of V (P, k): by the
    Haynsworth inertia formula, the number of its eigenvalues above λ is
    #{λᵢ > λ} − #{positive eigenvalues of G(λ) = Σᵢ wᵢwᵢᵀ / (λᵢ − λ)}, wᵢ = Vᵀuᵢ;
    by interlacing the extreme lies between the (k+1)-th and first extreme of
    M, so bisection finds it from the full decomposition alone (no
    eigen-decomposition per round). Vectorised over the R matrices.
    """
    shuffles, p = values.shape
    k = removed.shape[1]
    w = np.einsum("rpi,pk->rik", vectors, removed)  # (R, P, k): w[r, i] = Vᵀ u_{r,i}
    outer = w[:, :, :, None] * w[:, :, None, :]  # (R, P, k, k)
    if top:
        low, high = values[:, p - 1 - k].copy(), values[:, p - 1].copy()
    else:
        low, high = values[:, 0].copy(), values[:, k].copy()

    def above(lam: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.einsum("rikl,ri->rkl", outer, 1.0 / (values - lam[:, None]))
        g = np.nan_to_num((g + np.swapaxes(g, 1, 2)) / 2, nan=0.0, posinf=1e300, neginf=-1e300)
        return (values > lam[:, None]).sum(1) - (np.linalg.eigvalsh(g) > 0).sum(1)

    for _ in range(iterations):
        middle = (low + high) / 2
        count = above(middle)
        if top:  # the extreme is above middle when at least one eigenvalue of the restriction is
            found = count >= 1
            low, high = np.where(found, middle, low), np.where(found, high, middle)
        else:  # the smallest is below middle when fewer than P − k eigenvalues are above it
            found = count < p - k
            low, high = np.where(found, low, middle), np.where(found, middle, high)
    return (low + high) / 2


def nested_test(delta: np.ndarray, null: np.ndarray | tuple[np.ndarray, np.ndarray], max_dims: int = 8
                ) -> STCResult:
    """Significant eigen-directions of ``delta`` (P, P) against the null matrices (R, P, P), nested.

    Each round: the eigenvalues of ΔC restricted to the directions not yet
    accepted, and the null band: the lowest and highest eigenvalue over the
    shuffles of the null matrices restricted alike. The eigenvalue furthest
    outside the band is significant; its direction is projected out and the
    next round tests the rest. Stops when none is outside, or after
    ``max_dims``. ``null`` may be given as its :func:`null_spectra`.
    """
    null_values, null_vectors = null_spectra(null) if isinstance(null, np.ndarray) else null
    p = delta.shape[0]
    delta = (delta + delta.T) / 2
    basis = np.eye(p)
    values: list[float] = []
    vectors: list[np.ndarray] = []
    bands: list[tuple[float, float]] = []
    eigenvalues = np.linalg.eigvalsh(delta)
    for _ in range(min(max_dims, p) + 1):
        vals, vecs = np.linalg.eigh(basis.T @ delta @ basis)
        if vectors:
            removed = np.stack(vectors, 1)
            low = float(_compressed_extreme(null_values, null_vectors, removed, top=False).min())
            high = float(_compressed_extreme(null_values, null_vectors, removed, top=True).max())
        else:
            low, high = float(null_values[:, 0].min()), float(null_values[:, -1].max())
        bands.append((low, high))
        above, below = vals[-1] - high, low - vals[0]
        if len(values) >= max_dims or max(above, below) <= 0 or basis.shape[1] <= 1:
            break
        index = len(vals) - 1 if above >= below else 0
        values.append(float(vals[index]))
        vectors.append(basis @ vecs[:, index])
        basis = basis @ np.delete(vecs, index, axis=1)
    return STCResult(eigenvalues, bands[0], np.asarray(values, dtype=np.float64),
                     np.asarray(vectors, dtype=np.float64).reshape(len(vectors), p), np.asarray(bands))


def spike_triggered_covariance(x: torch.Tensor, a: torch.Tensor, shuffles: int = 100, seed: int = 0,
                               max_dims: int = 8) -> list[STCResult]:
    """The whole STC analysis of arrays: features ``x`` (N, P) (mean-subtracted) and activations ``a`` (N, U).

    For notebooks and tests; the experiment streams the same steps (STCAccumulator, shuffle_null, nested_test).
    """
    if a.ndim == 1:
        a = a[:, None]
    accumulator = STCAccumulator(a.shape[1], x.shape[1])
    accumulator.add(a, x)
    stimulus = accumulator.stimulus_covariance()
    null = shuffle_null(x, a, permutations(len(x), shuffles, seed), stimulus)
    return [nested_test(accumulator.spike_covariance(u) - stimulus, null[u], max_dims) for u in range(a.shape[1])]
