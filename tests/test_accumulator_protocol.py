"""Every estimator's accumulator keeps the one protocol (core.accumulators.Accumulator): merging equals adding
everything, its state round-trips bit for bit, and a run's two halves never share a block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wna_gui.core.accumulators import Accumulator, ClassAccumulator
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.estimators import (
    GradientAccumulator,
    KernelAccumulator,
    NoiseBlock,
    SignalAccumulator,
    WeightedAccumulator,
)
from wna_gui.core.models import load_default
from wna_gui.core.spike_triggered import STAAccumulator
from wna_gui.core.sta import STAConfig, STAExperiment

K, D, BATCH = 4, 12, 64  # classes (or units), features, batch size


def _hard(rng):
    x = torch.from_numpy(rng.random((BATCH, D)))
    return (x, torch.from_numpy(rng.integers(0, K, BATCH)), torch.from_numpy(rng.random(BATCH) + 0.5))


def _block(rng):
    x = torch.from_numpy(rng.random((BATCH, D)))
    logits = x @ torch.from_numpy(rng.normal(size=(D, K))) + torch.from_numpy(rng.normal(size=(BATCH, K)))
    return (NoiseBlock(x, logits),)


def _gradient(rng):
    return (torch.from_numpy(rng.normal(size=(BATCH, K + 1, D))), np.arange(K + 1))


def _signal(rng):
    noise = torch.from_numpy(rng.random((BATCH, D)))
    return noise, torch.from_numpy(rng.integers(0, K, BATCH)), torch.from_numpy(rng.integers(0, K, BATCH))


def _sta(rng):
    x = torch.from_numpy(rng.normal(size=(BATCH, D)))
    a = torch.relu(x @ torch.from_numpy(rng.normal(size=(D, K))) + 0.1)
    return a, x


# name → (accumulator class, a batch of its inputs drawn from a generator)
KINDS = {"hard": (ClassAccumulator, _hard), "logit": (KernelAccumulator, _block),
         "prob": (WeightedAccumulator, _block), "gradient": (GradientAccumulator, _gradient),
         "signal": (SignalAccumulator, _signal), "sta": (STAAccumulator, _sta)}


def filled(name: str, batches) -> Accumulator:
    cls, _ = KINDS[name]
    acc = cls(K, D)
    for batch in batches:
        acc.add(*batch)
    return acc


def batches(name: str, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [KINDS[name][1](rng) for _ in range(n)]


def assert_same_state(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", KINDS)
def test_merging_equals_adding_everything(name):
    data = batches(name, 5)
    everything = filled(name, data)
    first, second = filled(name, data[:2]), filled(name, data[2:])
    first.merge(second)
    assert isinstance(first, Accumulator)
    assert first.samples == everything.samples > 0
    assert_same_state(first.state(), everything.state(), exact=False)


@pytest.mark.parametrize("name", KINDS)
def test_state_round_trips(name):
    cls, _ = KINDS[name]
    even, odd = filled(name, batches(name, 3, seed=1)), filled(name, batches(name, 2, seed=2))
    even_back, odd_back = cls.from_state(even.state()), cls.from_state(odd.state())
    assert_same_state(even_back.state(), even.state(), exact=True)
    # What the run shows from the halves comes back too: reliability, and the maps.
    np.testing.assert_array_equal(cls.reliability(even_back, odd_back), cls.reliability(even, odd))
    maps, maps_back = cls.maps(even, odd, np.arange(K)), cls.maps(even_back, odd_back, np.arange(K))
    for view in ("mean", "centered", "zmap") if not isinstance(maps, np.ndarray) else (None,):
        a = maps if view is None else getattr(maps, view)
        b = maps_back if view is None else getattr(maps_back, view)
        np.testing.assert_array_equal(a, b)
    r = cls.reliability(even, odd)
    assert r.shape == (K,) and np.isfinite(r).any()


@pytest.fixture(scope="module")
def model():
    return load_default()


def halves_of(state, name: str) -> tuple:
    if name in ("hard", "sta"):
        return state.even, state.odd
    return tuple(state.halves[name])


def _experiment(model, name: str):
    if name == "sta":
        return STAExperiment(model, STAConfig(samples=100, batch_size=50, stc_samples=50, map_samples=50),
                             device="cpu"), lambda block: ("block", block)
    config = ClassificationImageConfig(samples=100, batch_size=50, estimators=(name,), gradient_every=1)
    return ClassificationImageExperiment(model, config, device="cpu"), lambda block: block


@pytest.mark.parametrize("name", KINDS)
def test_a_runs_halves_are_disjoint(model, name):
    """Block 0 goes into the even half only, block 1 into the odd half only, leaving the even half as it was."""
    experiment, unit = _experiment(model, name)
    experiment.run_unit(unit(0))
    even, odd = halves_of(experiment.state, name)
    assert even.samples > 0 and odd.samples == 0
    before = even.state()
    experiment.run_unit(unit(1))
    even, odd = halves_of(experiment.state, name)
    assert_same_state(even.state(), before, exact=True)
    assert odd.samples == even.samples
