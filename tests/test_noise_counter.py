"""The device-independent counter-based noise: exact integer arithmetic, good statistics, legacy runs unchanged."""

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtri

from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.control import EngineError
from wna_gui.core.models import load_default
from wna_gui.core.noise import (
    GaussianNoise,
    UniformNoise,
    block_generator,
    counter_normal,
    counter_uniform,
    counter_words,
    noise_from_dict,
)
from wna_gui.core.noise_base import _log
from wna_gui.core.runtime import Runtime


def reference_words(seed: int, block: int, n: int) -> np.ndarray:
    """The same hash in numpy's unsigned 64-bit arithmetic, written independently of the torch code."""
    multiplier, offset = (int(k) for k in np.random.SeedSequence([seed, block, 0]).generate_state(2, np.uint32))
    x = (np.arange(n, dtype=np.uint64) * np.uint64(multiplier | 1) + np.uint64(offset)) % np.uint64(2**32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) % np.uint64(2**32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) % np.uint64(2**32)
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32)


@pytest.mark.parametrize("seed, block", [(0, 0), (3, 7), (2**31 - 1, 123_456)])
def test_words_are_exact_unsigned_32_bit_arithmetic(seed, block):
    # torch has no uint32: wrapping int32 products and masked shifts must give exactly the unsigned result,
    # which is what makes the stream the same on every device.
    words = counter_words(seed, block, 200_000).numpy().view(np.uint32)
    np.testing.assert_array_equal(words, reference_words(seed, block, 200_000))


def test_uniform_values_look_independent_and_uniform():
    n = 1_000_000
    z_means, z_vars = [], []
    for block in range(8):
        u = counter_uniform(11, block, n).double().numpy()
        assert u.min() >= 0.0 and u.max() < 1.0
        z_means.append((u.mean() - 0.5) / math.sqrt(1 / 12 / n))
        z_vars.append((u.var() - 1 / 12) / math.sqrt((1 / 80 - 1 / 144) / n))
    assert max(map(abs, z_means)) < 4.5 and max(map(abs, z_vars)) < 4.5
    assert abs(np.mean(z_means)) < 2.5 and abs(np.mean(z_vars)) < 2.5
    u = counter_uniform(1, 2, 2_000_000).double().numpy()
    for lag in (1, 28, 784):  # neighbours in a row, in a column, the same pixel of the next image
        assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) * math.sqrt(len(u)) < 4.5, lag
    counts, _, _ = np.histogram2d(u[:-1:2], u[1::2], bins=32)
    expected = len(u) / 2 / 1024
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert abs(chi2 - 1023) < 5 * math.sqrt(2 * 1023)
    other_block, other_seed = counter_uniform(1, 3, 200_000).numpy(), counter_uniform(2, 2, 200_000).numpy()
    for other in (other_block, other_seed):
        assert abs(np.corrcoef(u[:200_000], other)[0, 1]) * math.sqrt(200_000) < 4.5


def test_normal_values_are_the_exact_quantiles_of_the_words():
    n = 1_000_000
    z = counter_normal(5, 9, n).double().numpy()
    words = counter_words(5, 9, n).numpy().view(np.uint32).astype(np.float64)
    np.testing.assert_allclose(z, ndtri((words + 0.5) / 2**32), rtol=0, atol=1e-6)
    assert abs(z.mean()) < 4.5 / math.sqrt(n) and abs(z.var() - 1) < 4.5 * math.sqrt(2 / n)


def test_log_from_correctly_rounded_operations_is_accurate():
    x = torch.tensor(np.exp(np.linspace(-40, 5, 10_001)), dtype=torch.float64)
    np.testing.assert_allclose(_log(x).numpy(), np.log(x.numpy()), rtol=1e-15, atol=1e-14)


def test_sources_default_to_the_counter_generator_and_old_records_keep_torchs():
    assert UniformNoise().generator == GaussianNoise().generator == "counter"
    legacy = noise_from_dict({"kind": "uniform", "low": 0.0, "high": 1.0})
    assert legacy.generator == "torch" and not legacy.device_independent
    expected = torch.rand((64, 1, 28, 28), generator=block_generator(4, 2))
    assert torch.equal(legacy.block(4, 2, 64, (1, 28, 28)), expected), "legacy runs regenerate their noise"
    assert noise_from_dict(UniformNoise().to_dict()) == UniformNoise()
    with pytest.raises(ValueError, match="generator"):
        UniformNoise(generator="dice")


def test_a_counter_run_continues_on_any_device_a_torch_run_only_on_its_own():
    model = load_default()
    for noise, allowed in ((UniformNoise(), True), (UniformNoise(generator="torch"), False)):
        experiment = ClassificationImageExperiment(model, ClassificationImageConfig(noise=noise, samples=2000,
                                                                                    batch_size=500), device="cpu")
        for block in (0, 1):
            experiment.run_unit(block)
        experiment.state.noise_device = "cuda"  # as if the first half had run on a GPU
        if allowed:
            Runtime(model, "cpu").check_noise_device(experiment.state)
        else:
            with pytest.raises(EngineError, match="drawn on cuda"):
                Runtime(model, "cpu").check_noise_device(experiment.state)
