"""Per-class streaming statistics: any batch split must equal one numpy pass over everything."""

import numpy as np
import pytest

from wna_gui.core.accumulators import ClassAccumulator, class_maps, split_half_reliability

N_CLASSES = 5
N_FEATURES = 7


def reference_stats(x, labels, weights, n_classes):
    """Weighted per-class count, weight, Σw², mean and M2 by direct numpy on the whole data."""
    count = np.bincount(labels, minlength=n_classes)
    weight = np.zeros(n_classes)
    weight_sq = np.zeros(n_classes)
    mean = np.zeros((n_classes, x.shape[1]))
    m2 = np.zeros((n_classes, x.shape[1]))
    for k in range(n_classes):
        rows = labels == k
        if not rows.any():
            continue
        w = weights[rows]
        weight[k], weight_sq[k] = w.sum(), (w * w).sum()
        mean[k] = (w[:, None] * x[rows]).sum(0) / w.sum()
        m2[k] = (w[:, None] * (x[rows] - mean[k]) ** 2).sum(0)
    return count, weight, weight_sq, mean, m2


def skewed_data(rng, n, offset=0.0):
    """Labels skewed so that the rarest classes are missing from many batches; class 4 never occurs."""
    x = offset + rng.normal(size=(n, N_FEATURES))
    labels = rng.choice(N_CLASSES - 1, size=n, p=[0.85, 0.1, 0.04, 0.01])
    weights = rng.uniform(0.05, 1.0, size=n)
    return x, labels, weights


def accumulate(x, labels, weights, cuts):
    acc = ClassAccumulator(N_CLASSES, N_FEATURES)
    for rows in np.split(np.arange(len(labels)), cuts):
        if rows.size:
            acc.add(x[rows], labels[rows], None if weights is None else weights[rows])
    return acc


def assert_matches_reference(acc, x, labels, weights, rtol=1e-10):
    count, weight, weight_sq, mean, m2 = reference_stats(x, labels, weights, N_CLASSES)
    np.testing.assert_array_equal(acc.count, count)
    np.testing.assert_allclose(acc.weight, weight, rtol=rtol, atol=0)
    np.testing.assert_allclose(acc.weight_sq, weight_sq, rtol=rtol, atol=0)
    np.testing.assert_allclose(acc.dense("mean"), mean, rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(acc.dense("m2"), m2, rtol=rtol, atol=1e-10)
    np.testing.assert_array_equal(acc.classes, np.flatnonzero(count))


@pytest.mark.parametrize("split_seed", range(6))
@pytest.mark.parametrize("weighted", [False, True])
def test_any_batch_split_equals_numpy_on_the_whole(split_seed, weighted):
    rng = np.random.default_rng(100 + split_seed)
    x, labels, weights = skewed_data(rng, 400)
    if not weighted:
        weights = np.ones(len(labels))
    # Random cut points, including single-sample batches and batches where rare classes are absent.
    cuts = np.sort(rng.choice(np.arange(1, len(labels)), size=rng.integers(1, 40), replace=False))
    acc = accumulate(x, labels, weights if weighted else None, cuts)
    assert_matches_reference(acc, x, labels, weights)
    assert acc.samples == len(labels)
    # A class never seen costs no memory: it has no row.
    assert acc.count[N_CLASSES - 1] == 0 and N_CLASSES - 1 not in acc.classes


def test_merged_and_pooled_equal_numpy_on_the_concatenation():
    rng = np.random.default_rng(7)
    x, labels, weights = skewed_data(rng, 600)
    half_a = accumulate(x[:250], labels[:250], weights[:250], [17, 90, 91])
    half_b = accumulate(x[250:], labels[250:], weights[250:], [3, 200])
    before = half_a.state()

    merged = half_a.merged(half_b)
    assert_matches_reference(merged, x, labels, weights)
    for name, value in before.items():  # merged() must not modify its operands
        np.testing.assert_array_equal(getattr(half_a, name), value)

    total_w, total_w_sq, grand_mean, grand_m2 = merged.pooled()
    grand_mean_ref = (weights[:, None] * x).sum(0) / weights.sum()
    np.testing.assert_allclose(total_w, weights.sum(), rtol=1e-12)
    np.testing.assert_allclose(total_w_sq, (weights**2).sum(), rtol=1e-12)
    np.testing.assert_allclose(grand_mean, grand_mean_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grand_m2, (weights[:, None] * (x - grand_mean_ref) ** 2).sum(0), rtol=1e-10)


def test_large_offset_keeps_variance_exact():
    # Naive Σx² − n·x̄² in float64 loses ~12 of 16 digits at an offset of 1e6; the shifted,
    # Chan-merged accumulator must not.
    rng = np.random.default_rng(3)
    x, labels, weights = skewed_data(rng, 500, offset=1e6)
    acc = accumulate(x, labels, weights, [5, 60, 61, 300])
    assert_matches_reference(acc, x, labels, weights, rtol=1e-9)
    variance = acc.dense("m2")[0] / (acc.weight[0] - acc.weight_sq[0] / acc.weight[0])
    assert np.all(np.abs(variance - 1) < 0.2), "per-class variance of unit noise should be ~1"


def test_state_round_trip_and_shape_checks():
    rng = np.random.default_rng(1)
    x, labels, weights = skewed_data(rng, 50)
    acc = accumulate(x, labels, weights, [10])
    restored = ClassAccumulator.from_state(acc.state())
    for name in ClassAccumulator.FIELDS:
        np.testing.assert_array_equal(getattr(restored, name), getattr(acc, name))
    bad = acc.state()
    bad["m2"] = bad["m2"][:, :3]
    with pytest.raises(ValueError, match="m2"):
        ClassAccumulator.from_state(bad)
    with pytest.raises(ValueError, match="labels"):
        acc.add(x[:5], labels[:4])
    with pytest.raises(ValueError, match="values"):
        acc.add(x[:5, :3], labels[:5])


def test_class_maps_match_the_z_formula_and_mark_empty_classes():
    # SCIENCE.md: z = (n̄_k − n̄) / sqrt(σ²(1/n_k − 1/N)), σ² the pixel variance over all samples.
    rng = np.random.default_rng(11)
    x, labels, _ = skewed_data(rng, 3000)
    maps = class_maps(accumulate(x, labels, None, [1000, 2000]))
    sigma2 = x.var(0, ddof=1)
    grand = x.mean(0)
    for k in range(N_CLASSES - 1):
        rows = labels == k
        centered = x[rows].mean(0) - grand
        z = centered / np.sqrt(sigma2 * (1 / rows.sum() - 1 / len(labels)))
        np.testing.assert_allclose(maps.of("centered", [k])[0], centered, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(maps.of("zmap", [k])[0], z, rtol=1e-9)
    assert maps.counts[N_CLASSES - 1] == 0
    assert np.all(np.isnan(maps.of("mean")[N_CLASSES - 1])) and np.all(np.isnan(maps.of("zmap")[N_CLASSES - 1]))


def test_split_half_reliability_is_high_for_a_shared_signal_and_nan_for_empty_classes():
    rng = np.random.default_rng(5)
    signal = rng.normal(size=N_FEATURES)
    halves = []
    for _ in range(2):
        labels = rng.integers(0, 2, size=400)
        x = rng.normal(size=(400, N_FEATURES)) * 0.1 + np.where(labels[:, None] == 0, signal, -signal)
        acc = ClassAccumulator(N_CLASSES, N_FEATURES)
        acc.add(x, labels)
        halves.append(acc)
    r = split_half_reliability(*halves)
    assert np.all(r[:2] > 0.99)
    assert np.all(np.isnan(r[2:]))
