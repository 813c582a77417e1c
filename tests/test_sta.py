"""Spike-triggered analysis: simulated neurons with known answers, Stein's lemma, the bundled CNN's kernels,
receptive fields from layers, exact streaming, resume, structured noise, the command line."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import ClassVar

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from torch import nn
from torch.nn import functional as F

from wna_gui.cli import main
from wna_gui.core.control import Cancelled, EngineError, RunControl
from wna_gui.core.models import ZOO, InputSpec, LoadedModel, build_zoo, load_default
from wna_gui.core.noise import GaussianNoise, NoiseSource, UniformNoise, counter_normal
from wna_gui.core.receptive_field import autograd_field, layer_geometry, post_activation, trace
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.spike_triggered import (
    STAAccumulator,
    STCAccumulator,
    _compressed_extreme,
    cosine_rows,
    null_spectra,
    spike_triggered_covariance,
)
from wna_gui.core.sta import STAConfig, STAExperiment, STAState, gradient_sta, run_sta

MNIST = InputSpec((1, 28, 28))


@pytest.fixture(scope="module")
def bundled():
    return load_default()


def gabor(size: int = 8, phase: float = 0.0, theta: float = 0.6, cycles: float = 1.2) -> np.ndarray:
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    u = x * np.cos(theta) + y * np.sin(theta)
    g = np.exp(-(x**2 + y**2) / 0.5) * np.cos(2 * np.pi * cycles * u / 2 + phase)
    return g / np.linalg.norm(g)


def small(**values) -> STAConfig:
    """A fast config: no activation maps unless asked."""
    return STAConfig(**{"map_samples": 0, **values})


# --- simulated neurons (SCIENCE.md, correctness tests 4) ---

def test_lnp_neuron_sta_recovers_its_gabor_filter():
    """Linear filter → exponential → Poisson spikes, white uniform noise: the STA is the filter."""
    k = torch.from_numpy(gabor(12).ravel())
    x = UniformNoise().block(seed=3, block=0, block_size=20_000, shape=(144,)).double() - 0.5
    rate = torch.exp(4.0 * (x @ k))
    spikes = torch.poisson(rate / rate.mean() * 0.3, generator=torch.Generator().manual_seed(1))
    accumulator = STAAccumulator(1, 144)
    for part_a, part_x in zip(spikes[:, None].split(3000), x.split(3000)):
        accumulator.add(part_a, part_x)
    assert spikes.sum() > 1000
    assert cosine_rows(accumulator.normalised(), k[None].numpy())[0] > 0.95
    assert cosine_rows(accumulator.unnormalised(), k[None].numpy())[0] > 0.95


def energy_data(n: int, seed: int, responsive: bool = True):
    f1, f2 = gabor(8, 0.0), gabor(8, np.pi / 2)
    filters = torch.from_numpy(np.stack([f1.ravel(), f2.ravel()]))
    x = GaussianNoise(mean=0.0, std=1.0).block(seed=seed, block=0, block_size=n, shape=(64,)).double()
    generator = torch.Generator().manual_seed(seed)
    if responsive:
        drive = ((x @ filters.T) ** 2).sum(1)
        spikes = torch.poisson(drive / drive.mean() * 2.0, generator=generator)
    else:
        spikes = torch.poisson(torch.full((n,), 2.0, dtype=torch.float64), generator=generator)
    return x, spikes, filters.numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_energy_model_stc_finds_exactly_its_two_quadrature_filters(seed):
    x, spikes, filters = energy_data(20_000, seed)
    (result,) = spike_triggered_covariance(x.float(), spikes, shuffles=100, seed=seed)
    assert result.count == 2
    assert (result.values > result.band[1]).all()  # both excitatory: more variance than the null's extreme
    angles = np.degrees(subspace_angles(result.vectors.T, filters.T))
    assert angles.max() < 25
    assert result.bands.shape == (3, 2)  # the nested rounds: two significant, then none


@pytest.mark.parametrize("seed", [0, 1])
def test_pure_noise_has_no_significant_stc_direction(seed):
    x, spikes, _ = energy_data(20_000, seed, responsive=False)
    (result,) = spike_triggered_covariance(x.float(), spikes, shuffles=100, seed=seed)
    assert result.count == 0
    low, high = result.band
    assert low < result.eigenvalues[0] and result.eigenvalues[-1] < high


def test_restricted_null_extremes_equal_direct_eigenvalues():
    """The nested test's bisection (inertia of a k×k matrix) gives the restricted extremes of every null matrix."""
    rng = np.random.default_rng(0)
    matrices = rng.standard_normal((12, 30, 30))
    matrices = matrices + matrices.transpose(0, 2, 1)
    removed = np.linalg.qr(rng.standard_normal((30, 3)))[0]
    values, vectors = null_spectra(matrices)
    complement = np.linalg.svd(np.eye(30) - removed @ removed.T)[0][:, :27]
    direct = np.linalg.eigvalsh(np.einsum("pi,rpq,qj->rij", complement, matrices, complement))
    scale = np.abs(values).max()
    np.testing.assert_allclose(_compressed_extreme(values, vectors, removed, top=True), direct[:, -1],
                               atol=1e-5 * scale)
    np.testing.assert_allclose(_compressed_extreme(values, vectors, removed, top=False), direct[:, 0],
                               atol=1e-5 * scale)


def test_null_unit_z_maps_are_calibrated():
    """Activations independent of the noise: z ≈ N(0, 1), about 5% of pixels beyond ±1.96."""
    x = UniformNoise().block(seed=8, block=0, block_size=20_000, shape=(400,)).double() - 0.5
    a = torch.poisson(torch.full((20_000, 3), 1.5, dtype=torch.float64), generator=torch.Generator().manual_seed(2))
    accumulator = STAAccumulator(3, 400)
    accumulator.add(a, x)
    z = accumulator.zmap()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert 0.04 < np.mean(np.abs(z) > 1.96) < 0.06


# --- exact streaming ---

def test_streaming_accumulators_equal_numpy_on_the_whole():
    generator = torch.Generator().manual_seed(4)
    a = torch.rand((5000, 3), generator=generator, dtype=torch.float64) ** 3
    x = torch.rand((5000, 7), generator=generator, dtype=torch.float64) - 0.5
    sta, stc = STAAccumulator(3, 7), STCAccumulator(3, 7)
    for start, stop in ((0, 1), (1, 999), (999, 1000), (1000, 4321), (4321, 5000)):
        sta.add(a[start:stop], x[start:stop])
        stc.add(a[start:stop], x[start:stop])
    A, X = a.numpy(), x.numpy()
    expected = (A * 1).T @ (X - X.mean(0)) / A.sum(0)[:, None]
    np.testing.assert_allclose(sta.normalised(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sta.unnormalised(), (A - A.mean(0)).T @ (X - X.mean(0)) / len(A), atol=1e-12)
    np.testing.assert_allclose(stc.stimulus_covariance(), np.cov(X.T), atol=1e-12)
    for u in range(3):
        w = A[:, u]
        m = w @ X / w.sum()
        spike = ((X - m) * w[:, None]).T @ (X - m) / (w.sum() - 1)
        np.testing.assert_allclose(stc.spike_covariance(u), spike, atol=1e-10)
    merged = STAAccumulator(3, 7)
    merged.add(a[:2500], x[:2500])
    other = STAAccumulator(3, 7)
    other.add(a[2500:], x[2500:])
    np.testing.assert_allclose(merged.merged(other).c_ax, sta.c_ax, atol=1e-10)


# --- receptive fields from layers ---

class StridedNet(nn.Module):
    """Stride, padding, dilation, a functional conv and a residual sum: fields computed by hand below."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5, stride=2, padding=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1, dilation=2)
        self.weight3 = nn.Parameter(torch.randn(8, 8, 3, 3) * 0.1)
        self.conv4 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6 * 5 * 5, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        y = torch.relu(self.conv2(x))
        y = y + F.conv2d(y, self.weight3, padding=1)  # a residual branch: the union of both fields
        return self.fc(torch.tanh(self.conv4(y)).flatten(1))


@pytest.mark.parametrize("arch, layer, size, jump, start", [
    ("mnist_cnn", "conv1", 5, 1, 0), ("mnist_cnn", "conv2", 14, 2, 0),
    ("mnist_cnn_tanh", "conv2", 14, 2, 0),
    # CIFAR CNN (3x3 convs with padding 1, 2x2 pools): the paper's 3, 5, 14 and 32.
    ("cifar_cnn", "conv1.0", 3, 1, -1), ("cifar_cnn", "conv1.3", 5, 1, -2), ("cifar_cnn", "conv2.0", 10, 2, -4),
    ("cifar_cnn", "conv2.3", 14, 2, -6), ("cifar_cnn", "conv3.0", 24, 4, -10), ("cifar_cnn", "conv3.3", 32, 4, -14),
])
def test_zoo_receptive_fields_match_hand_computed_values(arch, layer, size, jump, start):
    geometry = layer_geometry(build_zoo(arch).eval(), ZOO[arch].input_spec.shape, layer)
    assert geometry.size == (size, size) and geometry.field.jump == (jump, jump)
    assert geometry.field.start == (start, start)


@pytest.mark.parametrize("arch, layer", [("mnist_cnn", "fc1"), ("mnist_cnn", "fc2"), ("mlp", "fc1"),
                                         ("logreg", "fc"), ("rnn", "fc"), ("cifar_cnn", "fc_layer1.1")])
def test_linear_layers_see_the_whole_image(arch, layer):
    spec = ZOO[arch].input_spec
    geometry = layer_geometry(build_zoo(arch).eval(), spec.shape, layer)
    assert geometry.layer_type == "linear" and geometry.size == spec.shape[1:]


def test_strided_padded_network_fields_match_hand_computed_values_and_autograd():
    net = StridedNet().eval()
    # conv1 k5 s2 p2: size 5, jump 2, start -2. pool k3 s2 p1: 5 + 2·2 = 9, jump 4, start -2 - 2 = -4.
    # conv2 k3 dilation 2 (k_eff 5) p1: 9 + 4·4 = 25, start -4 - 4 = -8. Residual F.conv2d k3 p1: 25 + 2·4 = 33,
    # start -12; the union with the identity branch is that. conv4 1x1 keeps it.
    expected = {"conv1": (5, 2, -2), "conv2": (25, 4, -8), "conv4": (33, 4, -12)}
    traced = trace(net, (1, 28, 28))
    for layer, (size, jump, start) in expected.items():
        geometry = layer_geometry(net, (1, 28, 28), layer, traced)
        assert (geometry.size, geometry.field.jump, geometry.field.start) == ((size,) * 2, (jump,) * 2, (start,) * 2)
        assert geometry.field.padded
        # Autograd agrees where the field lies inside the image.
        for position in {geometry.centre(), (3, 4)}:
            if geometry.inside(position):
                assert autograd_field(net, (1, 28, 28), layer, position) == geometry.field_at(position)
    assert post_activation(traced, "conv1").description == "relu"  # through the pool
    assert post_activation(traced, "conv4").description == "tanh"
    assert post_activation(traced, "conv2").description == "relu"
    assert layer_geometry(net, (1, 28, 28), "fc").layer_type == "linear"


def test_bundled_cnn_fields_agree_with_autograd(bundled):
    for layer in ("conv1", "conv2"):
        geometry = layer_geometry(bundled.net, (1, 28, 28), layer)
        for position in (geometry.centre(), (0, 0), (geometry.output_size[0] - 1, 2)):
            assert autograd_field(bundled.net, (1, 28, 28), layer, position) == geometry.field_at(position)


def test_centre_position_and_positions_outside_the_map(bundled):
    assert STAExperiment(bundled, small(samples=10, stc_samples=0), device="cpu").state.position == (12, 12)
    assert STAExperiment(bundled, small(layer="conv2", samples=10, stc_samples=0), device="cpu").state.crop == \
        (8, 8, 14, 14)
    with pytest.raises(EngineError, match="outside conv2's 8×8 output map"):
        STAExperiment(bundled, small(layer="conv2", position="8,0", samples=10), device="cpu")
    with pytest.raises(ValueError, match="position must be centre or row,col"):
        STAConfig(position="middle-ish")


# --- the bundled CNN ---

def test_first_layer_stas_match_the_learned_kernels(bundled):
    """SCIENCE.md: conv1 STAs equal the kernels up to scale (mean cosine > 0.95 at 5e5 uniform samples)."""
    snapshot = run_sta(bundled, small(samples=500_000, batch_size=5000, stc_samples=0, seed=7), device="cpu")
    assert snapshot.kernels is not None and snapshot.kernels.shape == (20, 1, 5, 5)
    assert np.nanmean(snapshot.kernel_cosines) > 0.95
    assert np.isfinite(snapshot.kernel_cosines).all() and snapshot.kernel_cosines.min() > 0.9
    assert snapshot.reliability_mean[-1] > 0.95


@pytest.mark.slow
def test_steins_lemma_unnormalised_sta_equals_sigma_squared_mean_gradient(bundled):
    """Gaussian noise: Σa(x − x̄)/N = σ²·E[∇a] (conv1 every unit; conv2 every unit active on ≥ 5% of samples:
    a rarely active unit's STA needs many more samples)."""
    for layer, samples, gradient_samples in (("conv1", 50_000, 2000), ("conv2", 100_000, 4000)):
        config = small(layer=layer, samples=samples, noise=GaussianNoise(mean=0.5, std=0.25), stc_samples=0, seed=1)
        snapshot = run_sta(bundled, config, device="cpu")
        expected = gradient_sta(bundled, config, gradient_samples)
        cosines = cosine_rows(snapshot.unnormalised.reshape(snapshot.units, -1), expected.reshape(snapshot.units, -1))
        driven = snapshot.active_fraction >= 0.05
        assert driven.sum() >= (20 if layer == "conv1" else 35)
        assert cosines[driven].min() > 0.99, (layer, np.sort(cosines[driven])[:3])


def test_crop_path_gives_the_full_forward_passs_activations(bundled):
    experiment = STAExperiment(bundled, small(layer="conv2", samples=10), device="cpu")
    assert experiment.crop_path
    x = UniformNoise().block(0, 0, 300, (1, 28, 28))
    with torch.inference_mode():
        cropped = experiment._pre_activations(x, crop=True)
        full = experiment._pre_activations(x, crop=False)
        direct = bundled.net.conv2(torch.relu(F.max_pool2d(bundled.net.conv1(x), 2)))[:, :, 4, 4]
    torch.testing.assert_close(cropped, full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(full, direct, rtol=1e-4, atol=1e-5)


def test_linear_layer_and_pre_activation(bundled):
    snapshot = run_sta(bundled, small(layer="fc2", samples=3000, stc_samples=0), device="cpu")
    assert snapshot.sta.shape == (10, 1, 28, 28) and snapshot.post_description == "none"
    pre = run_sta(bundled, small(layer="conv1", activation="pre", samples=20_000, stc_samples=0), device="cpu")
    # A linear (pre-activation) unit's unnormalised STA is its kernel exactly up to noise.
    assert np.nanmean(cosine_rows(pre.unnormalised.reshape(20, -1), pre.kernels.reshape(20, -1))) > 0.99


def test_tanh_variant_has_no_silent_filters():
    torch.manual_seed(0)
    model = LoadedModel("zoo", "mnist_cnn_tanh", build_zoo("mnist_cnn_tanh"), MNIST, ZOO["mnist_cnn"].class_names)
    snapshot = run_sta(model, small(samples=30_000, stc_samples=0, noise=GaussianNoise()), device="cpu")
    assert snapshot.post_description == "tanh"
    # A tanh unit responds (in both directions) to everything: every filter has an STA.
    assert np.isfinite(snapshot.unnormalised).all() and snapshot.kernel_cosines.min() > 0.95


# --- STC of a network unit: an energy model built from layers ---

class EnergyNet(nn.Module):
    """Two quadrature Gabor filters, squared and summed by a 1x1 conv ("energy"): a complex cell."""

    def __init__(self) -> None:
        super().__init__()
        self.simple = nn.Conv2d(1, 2, 8, bias=False)
        self.energy = nn.Conv2d(2, 1, 1, bias=False)
        with torch.no_grad():
            self.simple.weight.copy_(torch.from_numpy(np.stack([gabor(8, 0.0), gabor(8, np.pi / 2)]))[:, None] * 4)
            self.energy.weight.fill_(1.0)
        self.fc = nn.Linear(21 * 21, 2)

    def forward(self, x):
        return self.fc(self.energy(self.simple(x) ** 2).flatten(1))


def test_stc_of_an_energy_unit_in_a_network_finds_its_two_filters():
    model = LoadedModel("zoo", "energy", EnergyNet().eval(), MNIST, ("a", "b"))
    config = small(layer="energy", samples=20_000, stc_samples=20_000, noise=GaussianNoise(mean=0.5, std=0.25),
                   shuffles=100, seed=2)
    snapshot = run_sta(model, config, device="cpu")
    stc = snapshot.stc
    assert stc.tested.all() and stc.samples == 20_000 and int(stc.count[0]) == 2
    vectors = stc.vectors[0, :2].reshape(2, -1)
    filters = np.stack([gabor(8, 0.0).ravel(), gabor(8, np.pi / 2).ravel()])
    assert np.degrees(subspace_angles(vectors.T, filters.T)).max() < 25
    assert snapshot.crop == (10, 10, 8, 8)


# --- determinism and resume ---

def records_equal(a: STAState, b: STAState) -> None:
    (meta_a, arrays_a), (meta_b, arrays_b) = a.to_record(), b.to_record()
    meta_a.pop("seconds"), meta_b.pop("seconds")
    assert meta_a == meta_b
    assert sorted(arrays_a) == sorted(arrays_b)
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)


def resumable_config(**values) -> STAConfig:
    return STAConfig(**{"layer": "conv1", "samples": 6000, "batch_size": 1000, "stc_samples": 3500,
                        "map_samples": 1500, "seed": 11, **values})


def test_resume_after_cancel_and_extension_equal_one_run(bundled, tmp_path):
    single = STAExperiment(bundled, resumable_config(), device="cpu")
    single.run_to_end()

    control = RunControl()
    first = STAExperiment(bundled, resumable_config(samples=3000, snapshot_seconds=0.0), device="cpu",
                          control=control)
    seen = 0
    with pytest.raises(Cancelled):
        for _ in first.run():
            seen += 1
            if first.state.blocks_done >= 2:
                control.cancel()
    path = save_session(Session(bundled, {"sta": first.state}), tmp_path / "part.h5")
    state = load_session(path).runs["sta"]
    assert not state.finished and state.blocks_done >= 2
    STAExperiment(bundled, state=state, device="cpu").run_to_end()  # finish the 3000 (STC test included)
    assert state.finished and state.stc_tested.all() and state.null_count == 3000
    state.with_budget(6000)  # extend: 3000 more samples, the STC's last 500 among them, so its test runs again
    resumed = STAExperiment(bundled, state=state, device="cpu")
    resumed.run_to_end()
    records_equal(resumed.state, single.state)


def test_a_run_stopped_during_the_shuffle_test_resumes_to_the_same_result(bundled, monkeypatch, tmp_path):
    import wna_gui.core.sta as sta_module

    monkeypatch.setattr(sta_module, "NULL_COLUMNS", 1)  # one unit per unit of work: the test can stop between units
    monkeypatch.setattr(sta_module, "NULL_WORK_FLOPS", 1)
    config = resumable_config(samples=2000, stc_samples=2000, map_samples=0)
    single = STAExperiment(bundled, config, device="cpu")
    single.run_to_end()
    control = RunControl()
    first = STAExperiment(bundled, dataclasses.replace(config, snapshot_seconds=0.0), device="cpu", control=control)
    with pytest.raises(Cancelled):
        for _ in first.run():
            if 0 < first.state.stc_tested.sum() < 20 and first.state.stc_tested.sum() >= 5:
                control.cancel()
    state = load_session(save_session(Session(bundled, {"sta": first.state}), tmp_path / "s.h5")).runs["sta"]
    assert 5 <= state.stc_tested.sum() < 20
    STAExperiment(bundled, state=state, device="cpu").run_to_end()
    records_equal(state, single.state)


def test_same_seed_same_stas_other_seed_other_stas(bundled):
    a = run_sta(bundled, small(samples=3000, stc_samples=0, seed=5), device="cpu")
    b = run_sta(bundled, small(samples=3000, stc_samples=0, seed=5), device="cpu")
    c = run_sta(bundled, small(samples=3000, stc_samples=0, seed=6), device="cpu")
    np.testing.assert_array_equal(a.sta, b.sta)
    assert not np.array_equal(a.sta, c.sta)


def test_refit_with_other_shuffles_reruns_only_the_test(bundled):
    from wna_gui.core.experiment import plan_run, prepare_state
    from wna_gui.core.sta import EXPERIMENT

    experiment = STAExperiment(bundled, small(samples=2000, stc_samples=1000, shuffles=100), device="cpu")
    experiment.run_to_end()
    state = experiment.state
    c_ax = state.even.c_ax.copy()
    config = dataclasses.replace(state.config, shuffles=120)
    assert plan_run(EXPERIMENT, state, config).action == "refit"
    refitted = prepare_state(EXPERIMENT, state, config, bundled)
    assert not refitted.finished and not refitted.stc_tested.any()
    STAExperiment(bundled, state=refitted, device="cpu").run_to_end()
    assert refitted.finished and refitted.null_shuffles == 120 and refitted.blocks_done == 2
    np.testing.assert_array_equal(refitted.even.c_ax, c_ax)


# --- activation maps ---

def test_activation_maps_of_noise_and_real_digits(bundled):
    snapshot = run_sta(bundled, STAConfig(samples=2000, stc_samples=0, map_samples=2000), device="cpu")
    maps = snapshot.maps
    assert maps.layers == ("conv1", "conv2", "fc1", "fc2")
    assert maps.noise_counts.sum() == 2000 and maps.real_counts.sum() == 1000
    assert [m.shape for m in maps.noise] == [(10, 24, 24), (10, 8, 8), (10, 22, 23), (10, 3, 4)]
    assert np.isfinite(maps.real_distance).all() and np.isfinite(maps.noise_distance).all()
    # The logit layer of real digits: each class's mean logit vector peaks at its own class.
    fc2 = maps.real[3].reshape(10, -1)[:, :10]
    assert (fc2.argmax(1) == np.arange(10)).mean() >= 0.9


# --- structured (correlated) noise: analysed on its scores, mapped back ---

@dataclasses.dataclass(frozen=True)
class SmoothNoise(NoiseSource):
    """Test source: images = 0.5 + scores·B, white Gaussian scores, B = smooth orthonormal patterns of unequal
    scales (like PCA components): strongly correlated pixels."""

    kind: ClassVar[str] = "smooth_test"
    label: ClassVar[str] = "smooth (test)"
    components: int = 60
    generator: str = "counter"

    def score_basis(self, shape) -> np.ndarray:
        return _smooth_basis(self.components, tuple(shape))

    def block_with_scores(self, seed, block, block_size, shape, device="cpu"):
        scores = counter_normal(seed, block, block_size * self.components, device).reshape(block_size, -1)
        basis = torch.as_tensor(self.score_basis(shape), dtype=torch.float32, device=device)
        return (0.5 + scores @ basis).reshape(block_size, *shape), scores

    def block(self, seed, block, block_size, shape, device="cpu", dtype=torch.float32):
        return self.block_with_scores(seed, block, block_size, shape, device)[0].to(dtype)

    @property
    def expected_mean(self) -> float:
        return 0.5

    @property
    def expected_variance(self) -> float:
        return float((self.score_basis((1, 28, 28)) ** 2).sum(0).mean())


@functools.cache
def _smooth_basis(components: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    d = int(np.prod(shape))
    raw = torch.from_numpy(rng.standard_normal((components, 1, *shape[1:])))
    kernel = torch.from_numpy(np.outer(*(2 * [np.exp(-np.linspace(-2, 2, 9) ** 2)])))[None, None]
    smooth = F.conv2d(raw, kernel, padding=4).reshape(components, d).numpy()
    orthonormal = np.linalg.qr(smooth.T)[0].T
    return orthonormal * (0.6 / (1 + np.arange(components) / 6))[:, None]


class LinearUnit(nn.Module):
    def __init__(self, filter_: np.ndarray) -> None:
        super().__init__()
        self.unit = nn.Linear(784, 1)
        weight = torch.from_numpy(filter_.reshape(1, -1) / np.linalg.norm(filter_)) * 8
        with torch.no_grad():
            self.unit.weight.copy_(weight)
            self.unit.bias.fill_(float(-0.5 * weight.sum()))  # centred on the noise's mean image
        self.out = nn.Linear(1, 2)

    def forward(self, x):
        return self.out(torch.sigmoid(self.unit(x.flatten(1))))


def test_structured_noise_sta_is_computed_on_scores_and_mapped_back():
    noise = SmoothNoise()
    y, x = np.mgrid[-1:1:28j, -1:1:28j]
    filter_ = np.exp(-(x**2 + y**2) / 0.3) * np.cos(2.5 * x + 1.0 * y)
    model = LoadedModel("zoo", "unit", LinearUnit(filter_).eval(), MNIST, ("a", "b"))
    snapshot = run_sta(model, small(layer="unit", samples=20_000, noise=noise, stc_samples=0), device="cpu")
    assert snapshot.structured and snapshot.post_description == "sigmoid"
    basis = noise.score_basis((1, 28, 28))
    orthonormal = basis / np.linalg.norm(basis, axis=1, keepdims=True)
    projection = orthonormal.T @ (orthonormal @ filter_.ravel())  # the part of the filter the noise can reveal
    mapped = snapshot.sta.reshape(-1)
    assert cosine_rows(mapped[None], projection[None])[0] > 0.95
    # The pixel STA of the same noise (what a white-noise analysis would report) is smeared by the correlations.
    images, _ = noise.block_with_scores(0, 0, 20_000, (1, 28, 28))
    with torch.inference_mode():
        a = torch.sigmoid(model.net.unit(images.flatten(1)))[:, 0].double()
    flat = images.flatten(1).double()
    pixel_sta = (a - a.mean()) @ (flat - flat.mean(0))
    assert cosine_rows(pixel_sta.numpy()[None], projection[None])[0] < 0.9
    assert np.isfinite(snapshot.zmap).all()


# --- errors ---

@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:FutureWarning")
def test_a_torchscript_model_is_a_clear_error(tmp_path):
    net = torch.jit.script(build_zoo("mnist_cnn").eval())
    model = LoadedModel("torchscript", "torchscript", net, MNIST, ZOO["mnist_cnn"].class_names)
    with pytest.raises(EngineError, match="TorchScript"):
        STAExperiment(model, small(samples=10), device="cpu")


def test_stc_of_a_layer_too_large_is_skipped_with_a_note(bundled):
    snapshot = run_sta(bundled, small(layer="fc1", samples=1000), device="cpu")
    assert snapshot.stc is None and "STC skipped" in snapshot.stc_note


# --- the command line ---

def test_wna_run_sta_and_export_write_the_stas_as_arrays(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["run", "sta", "--model", "default", "--layer", "conv2", "--samples", "3000", "--seed", "4",
                 "--stc-samples", "0", "--map-samples", "1000", "--quiet",
                 "--autosave-seconds", "0", "--out", str(out)]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["experiments"]["sta"]
    assert info["layer"] == "conv2" and info["receptive_field"] == [14, 14] and info["samples_done"] == 3000
    export = tmp_path / "export"
    assert main(["export", str(out), "--out", str(export)]) == 0
    with np.load(export / "sta.npz") as arrays:
        assert arrays["sta"].shape == arrays["sta_unnormalised"].shape == arrays["sta_z"].shape == (50, 1, 14, 14)
        assert arrays["sta_unnormalised_z"].shape == (50, 1, 14, 14)
        np.testing.assert_array_equal(arrays["units"], np.arange(50))
        assert tuple(arrays["rf_size"]) == (14, 14) and tuple(arrays["rf_offset"]) == (8, 8)
        assert int(arrays["samples"]) == 3000 and str(arrays["layer"]) == "conv2"
    names = {p.name for p in export.iterdir()}
    assert {"sta.png", "sta.pdf", "sta_zmap.png", "activation_maps.png", "layer_distances.csv"} <= names
    assert "kernels.png" not in names and "stc.npz" not in names  # conv2 is not a first layer; STC was off


@pytest.mark.slow
def test_wna_train_tanh_variant_then_its_filters(tmp_path, capsys):
    """`wna train mnist_cnn_tanh` (tanh after the conv layers) and the STA of the trained model's conv1."""
    weights = tmp_path / "tanh.pt"
    assert main(["train", "mnist_cnn_tanh", "--epochs", "1", "--out", str(weights)]) == 0
    out = tmp_path / "s.h5"
    assert main(["run", "sta", "--model", "mnist_cnn_tanh", "--weights", str(weights), "--samples", "20000",
                 "--stc-samples", "0", "--map-samples", "0", "--noise", "gaussian", "--quiet",
                 "--autosave-seconds", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["experiments"]["sta"]
    assert info["nonlinearity"] == "tanh" and info["kernel_cosine_mean"] > 0.95


def test_a_torchscript_model_maps_its_outputs(tmp_path, capsys):
    """A TorchScript model can be neither traced nor hooked, so `wna run sta` maps its outputs: for a linear
    observer with known templates each output's unnormalised STA is its template (white noise), and the run
    resumes from the session once the stored archive is trusted."""
    import hashlib
    import io
    import warnings

    templates = torch.as_tensor(np.random.default_rng(5).normal(size=(10, 784)), dtype=torch.float32)
    observer = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, bias=False))
    with torch.no_grad():
        observer[1].weight.copy_(templates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(observer, torch.rand(2, 1, 28, 28)), buffer)
    script = tmp_path / "observer.pt"
    script.write_bytes(buffer.getvalue())
    out = tmp_path / "s.h5"
    assert main(["run", "sta", "--model", "torchscript", "--weights", str(script), "--samples", "2000",
                 "--stc-samples", "0", "--out", str(out), "--quiet"]) == 2
    assert "--layer output" in capsys.readouterr().err  # the conv1 default is named and the way out given
    assert main(["run", "sta", "--model", "torchscript", "--weights", str(script), "--layer", "output",
                 "--samples", "4000", "--stc-samples", "0", "--out", str(out), "--quiet"]) == 0
    snapshot = load_session(out).runs["sta"].snapshot()
    assert snapshot.sta.shape == (10, 1, 28, 28)
    assert np.mean(cosine_rows(snapshot.unnormalised.reshape(10, -1), templates.double().numpy())) > 0.9
    sha = hashlib.sha256(script.read_bytes()).hexdigest()
    assert main(["run", "sta", "--resume", str(out), "--samples", "6000", "--trust-model", sha, "--quiet"]) == 0
    assert load_session(out).runs["sta"].samples_done == 6000


@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:FutureWarning")
def test_a_run_with_activation_maps_continued_with_a_torchscript_model_is_a_clear_error(bundled):
    """A run of the outputs that keeps per-class layer maps needs the layers' hooks: continuing it with the same
    network as TorchScript (which maps only its outputs) is a one-line EngineError, not an AttributeError."""
    state = STAExperiment.new_state(bundled, small(layer="output", samples=100, stc_samples=0, map_samples=100))
    assert state.map_layers
    script = LoadedModel("torchscript", "torchscript", torch.jit.script(bundled.net.eval()), bundled.input_spec,
                         bundled.class_names)
    with pytest.raises(EngineError, match="TorchScript"):
        STAExperiment(script, state=state, device="cpu")
