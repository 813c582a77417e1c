"""Counter-based noise: reproducible per block, with the distribution the user asked for."""

import numpy as np
import pytest
import torch

from wna_gui.core.noise import (
    GaussianNoise,
    UniformNoise,
    log_spaced_checkpoints,
    noise_from_dict,
    noise_source,
)

SHAPE = (1, 28, 28)


def test_block_depends_only_on_seed_and_block_index():
    spec = UniformNoise()
    sequence = [spec.block(42, b, 256, SHAPE) for b in range(8)]
    # Disturb the global RNG: a block must not depend on it, nor on what was drawn before.
    torch.manual_seed(12345)
    torch.rand(1000)
    global_state = torch.get_rng_state()
    alone = spec.block(42, 5, 256, SHAPE)
    assert torch.equal(alone, sequence[5])
    assert torch.equal(torch.get_rng_state(), global_state), "a noise block must not consume the global RNG"
    assert not torch.equal(sequence[4], sequence[5])


def test_neighbouring_seeds_and_blocks_give_unrelated_streams():
    # With seed + block as the generator seed, (seed 0, block 1) would repeat (seed 1, block 0).
    spec = UniformNoise()
    a = spec.block(0, 1, 4096, (1,)).flatten().numpy()
    b = spec.block(1, 0, 4096, (1,)).flatten().numpy()
    c = spec.block(0, 0, 4096, (1,)).flatten().numpy()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.1


def test_uniform_noise_range_mean_and_variance():
    x = UniformNoise().block(0, 0, 2000, SHAPE).double()
    assert x.shape == (2000, *SHAPE) and x.dtype == torch.float64
    assert x.min() >= 0 and x.max() <= 1
    assert abs(x.mean().item() - 0.5) < 0.002
    assert abs(x.var().item() - 1 / 12) < 0.001

    spec = UniformNoise(low=-1.0, high=3.0)
    y = spec.block(0, 0, 2000, SHAPE).double()
    assert y.min() >= -1 and y.max() <= 3
    assert abs(y.mean().item() - spec.expected_mean) < 0.01
    assert abs(y.var().item() - spec.expected_variance) / spec.expected_variance < 0.01


def test_gaussian_noise_mean_std_and_clipping():
    spec = GaussianNoise(mean=0.5, std=0.2)
    x = spec.block(3, 0, 2000, SHAPE).double()
    assert abs(x.mean().item() - 0.5) < 0.002
    assert abs(x.std().item() - 0.2) < 0.002
    assert x.min() < 0 and x.max() > 1, "unclipped Gaussian noise should leave [0, 1]"

    clipped = GaussianNoise(mean=0.5, std=0.2, clip=True).block(3, 0, 2000, SHAPE)
    assert clipped.min() >= 0 and clipped.max() <= 1
    # Clipping changes only the samples outside the window.
    inside = (x >= 0) & (x <= 1)
    assert torch.equal(clipped.double()[inside], x[inside])


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "pink"}, "unknown noise kind"),
    ({"low": 1.0, "high": 1.0}, "range is empty"),
    ({"kind": "gaussian", "low": 1.0, "high": 0.5}, "range is empty"),
    ({"kind": "gaussian", "std": 0.0}, "std"),
])
def test_invalid_noise_specs_are_rejected_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        noise_source(**kwargs)
    with pytest.raises(ValueError, match=message):
        noise_from_dict(kwargs)


def test_spec_dict_round_trip_and_checkpoints():
    spec = GaussianNoise(mean=0.4, std=0.1, clip=True)
    assert noise_source("gaussian", mean=0.4, std=0.1, clip=True) == spec
    assert noise_from_dict(spec.to_dict()) == spec
    assert GaussianNoise.from_dict(spec.to_dict()) == spec
    assert noise_from_dict(UniformNoise(low=-1.0, high=2.0).to_dict()) == UniformNoise(low=-1.0, high=2.0)
    # A source records only its own parameters; another source's keys in a dict are ignored.
    assert spec.to_dict() == {"kind": "gaussian", "mean": 0.4, "std": 0.1, "clip": True, "low": 0.0, "high": 1.0,
                              "generator": "counter"}
    assert UniformNoise().to_dict() == {"kind": "uniform", "low": 0.0, "high": 1.0, "generator": "counter"}
    # Another source's keys are ignored; a record without a generator is from before the counter-based one.
    assert noise_from_dict({"kind": "uniform", "low": 0.0, "high": 1.0, "mean": 0.3, "std": 0.1}) == \
        UniformNoise(generator="torch")
    assert log_spaced_checkpoints(1000, 20_000) == [1000, 10_000]
    with pytest.raises(ValueError):
        UniformNoise().block(-1, 0, 10, SHAPE)
