"""The sleep phase (core/sleep.py) against the authors' algorithm written out literally, on small networks."""

from __future__ import annotations

import math

import pytest
import torch

from wna_gui.core.sleep import ControlMLP, Sleeper, SleepParams, input_scales, input_spikes, sigma2


def literal_sleep(weights, alphas, params, spikes_in):
    """SCIENCE.md's loop as written: every layer, every step, dense matrices."""
    weights = [w.clone() for w in weights]
    v = [torch.zeros(w.shape[0], dtype=w.dtype) for w in weights]
    for t in range(len(spikes_in)):
        s = spikes_in[t].to(weights[0].dtype)
        for layer, w in enumerate(weights):
            v[layer] = params.decay * v[layer] + alphas[layer] * (w @ s)
            spiked = v[layer] >= params.thresholds[layer]
            sig = 2 * (1 - 1 / (1 + torch.exp(-w / 0.001)))
            post = spiked[:, None]
            pre = s.bool()[None, :]
            w += torch.where(post & pre, params.inc * sig, torch.zeros_like(w))
            w -= torch.where(post & ~pre, params.dec * sig, torch.zeros_like(w))
            v[layer][spiked] = 0.0
            s = spiked.to(w.dtype)
    return weights, v


def test_sigma2_is_the_authors_weight_dependence():
    w = torch.tensor([-0.05, -0.001, 0.0, 0.001, 0.005, 0.05], dtype=torch.float64)
    expected = [2 * (1 - 1 / (1 + math.exp(-x / 0.001))) for x in w.tolist()]
    torch.testing.assert_close(sigma2(w), torch.tensor(expected, dtype=torch.float64))
    assert float(sigma2(torch.tensor(-0.01))) == pytest.approx(2.0, abs=1e-3)  # negative weights move
    assert float(sigma2(torch.tensor(0.01))) < 1e-4  # positive ones barely


def test_the_chunked_sparse_sleeper_equals_the_literal_loop():
    torch.manual_seed(0)
    # Small layers and low thresholds, so that every layer spikes often.
    params = SleepParams(thresholds=(0.6, 0.5, 0.4), inc=0.05, dec=0.04)
    weights = [torch.randn(30, 50, dtype=torch.float64) * 0.1, torch.randn(20, 30, dtype=torch.float64) * 0.2,
               torch.randn(5, 20, dtype=torch.float64) * 0.3]
    alphas = [1.5, 2.0, 2.5]
    spikes = torch.rand(300, 50) < 0.1
    expected_w, expected_v = literal_sleep(weights, alphas, params, spikes)
    sleeper = Sleeper(weights, alphas, params)
    counts = [0, 0, 0, 0]
    for start in range(0, 300, 70):  # chunks carry the potentials over
        chunk_counts, _ = sleeper.run(spikes[start:start + 70])
        counts = [a + b for a, b in zip(counts, chunk_counts)]
    assert min(counts) > 0, counts
    for got, want in zip(sleeper.weights(), expected_w):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for got, want in zip(sleeper.potentials, expected_v):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_raster_records_the_chosen_units_spikes():
    torch.manual_seed(1)
    params = SleepParams(thresholds=(0.3, 0.3, 0.3))
    weights = [torch.rand(8, 12) * 0.3, torch.rand(6, 8) * 0.3, torch.rand(3, 6) * 0.3]
    spikes = torch.rand(40, 12) < 0.3
    units = [torch.arange(12), torch.tensor([0, 3, 7]), torch.arange(6), torch.arange(3)]
    counts, rasters = Sleeper(weights, [1.0, 1.0, 1.0], params).run(spikes, units, record_steps=40)
    assert [r.shape for r in rasters] == [(40, 12), (40, 3), (40, 6), (40, 3)]
    assert torch.equal(rasters[0], spikes)
    assert int(rasters[2].sum()) == counts[2] and int(rasters[3].sum()) == counts[3]


def test_input_spikes_fire_at_the_pixel_value_over_twice_the_rescale():
    params = SleepParams()
    images = torch.full((4, 1, 28, 28), 0.5)
    images[1] = 0.0
    spikes = input_spikes(images, 0, 4000, seed=3, params=params)
    rate = 0.5 / (1 / (params.dt * params.max_rate) / 2)  # p / 12.8
    shown = spikes.reshape(1000, 4, 784)
    assert float(shown[:, 0].float().mean()) == pytest.approx(rate, rel=0.03)
    assert not shown[:, 1].any()  # black pixels never spike
    # Chunks draw the same spikes; another order shows other images at each step.
    torch.testing.assert_close(torch.cat([input_spikes(images, 0, 1500, 3, params),
                                          input_spikes(images, 1500, 4000, 3, params)]), spikes)
    order = torch.tensor([1, 0, 2, 3])
    reordered = input_spikes(images, 0, 8, 3, params, order=order)
    assert not reordered[0].any() and reordered[1].any()


def test_input_scales_follow_the_data_based_normalisation():
    torch.manual_seed(2)
    net = ControlMLP(hidden=16).eval()
    images = torch.rand(50, 1, 28, 28)
    alphas, applied = input_scales(net, images, alpha_scale=2.0)
    with torch.no_grad():
        acts = net.hidden_activations(images)
    previous = 1.0
    for layer, act, alpha, factor in zip(net.weight_layers(), acts, alphas, applied):
        scale = max(float(layer.weight.detach().max().clamp(min=0)), float(act.max()))
        assert factor == pytest.approx(scale / previous)
        assert alpha == pytest.approx(2.0 / factor)
        previous = factor


def test_dropout_is_non_inverted():
    torch.manual_seed(3)
    net = ControlMLP(hidden=32)
    x = torch.rand(3, 1, 28, 28)
    h = torch.relu(net.fc1(x.flatten(1)))
    net.eval()
    torch.testing.assert_close(net.hidden_activations(x)[0], 0.8 * h)
    net.train()
    dropped = net.hidden_activations(x)[0]
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], h[kept])  # kept units are not scaled up
