"""Maps for every class (SCIENCE.md): the response-weighted estimators on observers whose answers we know.

Each estimator is checked where the truth is known: linear observers (the map is the template), Stein's
lemma (gradient = logit kernel for Gaussian noise), null observers (z-maps calibrated), the bundled CNN (all
ten maps structured and digit-like), exact merges for any split, determinism and resume.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wna_gui.core.accumulators import ClassAccumulator, spearman_brown
from wna_gui.core.classification import (
    KIND,
    ClassificationImageConfig,
    ClassificationImageExperiment,
    ClassificationImageState,
    describe,
    report,
    summary,
)
from wna_gui.core.control import Cancelled, EngineError, RunControl
from wna_gui.core.data import bundled_mnist
from wna_gui.core.images import ImageSet
from wna_gui.core.estimators import (
    ESTIMATOR_NAMES,
    GradientAccumulator,
    KernelAccumulator,
    NoiseBlock,
    SignalAccumulator,
    WeightedAccumulator,
    accumulator_bytes,
    map_classes,
    memory_text,
)
from wna_gui.core.models import InputSpec, LoadedModel, load_default
from wna_gui.core.noise import GaussianNoise
from wna_gui.core.session import Session, load_session, save_session

MNIST = InputSpec((1, 28, 28))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def observer(net: nn.Module, n_classes: int, spec: InputSpec = MNIST, names=None) -> LoadedModel:
    return LoadedModel("zoo", "observer", net, spec, tuple(names or (str(k) for k in range(n_classes))))


def run(model, signals=None, **config):
    experiment = ClassificationImageExperiment(model, ClassificationImageConfig(**config), device="cpu",
                                               signals=signals)
    return experiment, experiment.run_to_end()


class LinearSoftmaxObserver(nn.Module):
    """Scores z = W·(x − 0.5) + b: its logit kernels are the rows of W."""

    def __init__(self, templates: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("templates", templates.flatten(1).float())
        self.register_buffer("bias", bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - 0.5) @ self.templates.T + self.bias


class SmoothObserver(nn.Module):
    """A small tanh network: smooth, clearly nonlinear (its gradient varies by ~60% across the noise)."""

    def __init__(self, n_inputs: int = 64, n_classes: int = 5) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(16, n_inputs, generator=generator) * 0.5)
        self.b1 = nn.Parameter(torch.randn(16, generator=generator))
        self.w2 = nn.Parameter(torch.randn(n_classes, 16, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh((x.flatten(1) - 0.5) @ self.w1.T + self.b1) @ self.w2.T


class NullObserver(nn.Module):
    """Answers at random, independently of the stimulus, with answer-dependent confidence.

    The answer is uniform over the classes; its logit margin depends on the answer (class k answers with
    margin 0.4·k plus jitter), so the softmax-confidence weights differ strongly between answers.
    """

    def __init__(self, n_classes: int, seed: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        answers = torch.randint(0, self.n_classes, (x.shape[0],), generator=self.generator)
        margins = 0.4 * answers + torch.rand(x.shape[0], generator=self.generator)
        scores = 0.3 * torch.randn(x.shape[0], self.n_classes, generator=self.generator)
        scores[torch.arange(x.shape[0]), answers] += margins
        return scores


class TinyCNN(nn.Module):
    """A small MNIST-shaped convolutional classifier (random weights): the engine's paths at a fraction of
    the bundled CNN's cost."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 5, stride=2)
        self.fc = nn.Linear(4 * 12 * 12, 10)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x - 0.5)).flatten(1))


def templates(n_classes: int = 10, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Smooth random templates: blurred Gaussian noise, one per class."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(n_classes, 1, size + 6, size + 6, generator=generator)
    blurred = torch.nn.functional.avg_pool2d(raw, 7, stride=1)
    return blurred / blurred.flatten(1).norm(dim=1)[:, None, None, None]


@pytest.fixture(scope="module")
def bundled():
    return load_default()


@pytest.fixture(scope="module")
def tiny():
    return observer(TinyCNN(), 10)


# --- linear observers: the maps are the templates ---

def test_logit_kernel_recovers_every_template_and_absent_hard_maps_are_absent():
    weights = templates()
    bias = torch.zeros(10)
    bias[9] = -30.0  # class 9 never wins (13 standard deviations below the others)
    model = observer(LinearSoftmaxObserver(weights * 8, bias), 10)
    _, snapshot = run(model, samples=20_000, seed=1, estimators=("hard", "logit", "prob"))
    kernel = snapshot.maps_of("logit")
    assert list(kernel.classes) == list(range(10))
    for k in range(10):
        assert cosine(kernel.of("mean", [k])[0], weights[k].flatten().double().numpy()) > 0.95, k
    # A class that never wins has no hard-label map: absent (NaN, "no samples"), never a zero map.
    hard = snapshot.maps_of("hard")
    assert snapshot.counts[9] == 0 and 9 not in hard.classes
    assert np.isnan(hard.of("mean", [9])).all() and np.isnan(snapshot.maps.of("zmap", [9])).all()
    assert all(np.isfinite(hard.of("mean", [k])).all() for k in np.flatnonzero(snapshot.counts))
    # Every class has a logit-kernel and a probability-weighted map, class 9 included.
    assert np.isfinite(kernel.of("zmap")).all()
    assert snapshot.maps_of("prob").support[9] > 0


def test_stein_gradient_equals_logit_kernel_for_gaussian_noise():
    model = observer(SmoothObserver(), 5, InputSpec((1, 8, 8)), "abcde")
    _, snapshot = run(model, samples=10_000, batch_size=2000, seed=2, estimators=("logit", "gradient"),
                      gradient_every=1, noise=GaussianNoise(mean=0.5, std=0.25))
    assert snapshot.maps_of("gradient").samples == 10_000
    assert np.all(snapshot.stein_cosine > 0.99), snapshot.stein_cosine
    # Computed directly: the engine's mean gradient is autograd's.
    x = torch.cat([GaussianNoise(mean=0.5, std=0.25).block(2, b, 2000, (1, 8, 8)) for b in range(5)])
    x.requires_grad_(True)
    net = model.pixel_model
    for k in (0, 4):
        (gradient,) = torch.autograd.grad(net(x)[:, k].sum(), x)
        np.testing.assert_allclose(snapshot.maps_of("gradient").of("mean", [k])[0],
                                   gradient.flatten(1).double().mean(0).numpy(), rtol=1e-5, atol=1e-7)


def test_signal_plus_noise_map_recovers_a_linear_template():
    template = templates(1, seed=3)[0]
    t = template.flatten()
    weights = torch.stack([-t, t]).reshape(2, 1, 28, 28)
    model = observer(LinearSoftmaxObserver(weights, torch.zeros(2)), 2)
    images = torch.stack([0.5 - 0.35 * template, 0.5 + 0.35 * template])  # class 0 and class 1 signals
    signals = ImageSet("two-templates", images, torch.tensor([0, 1]), ("0", "1"))
    _, snapshot = run(model, signals=signals, samples=20_000, seed=4, estimators=("signal",), signal_gamma=0.45)
    signal = snapshot.maps_of("signal")
    assert signal.support.min() > 5000, "both answers are common at this γ"
    assert 0.6 < snapshot.signal_correct < 0.9
    truth = t.double().numpy()
    assert cosine(signal.of("centered", [1])[0], truth) > 0.95
    assert cosine(signal.of("centered", [0])[0], -truth) > 0.95


# --- the bundled CNN: maps for every class ---

@pytest.fixture(scope="module")
def bundled_run(bundled):
    """20,000 uniform-noise samples of the bundled CNN with the default estimators."""
    return run(bundled, samples=20_000, seed=0)


def test_every_logit_kernel_of_the_bundled_cnn_is_structured_and_digit_like(bundled_run):
    _, snapshot = bundled_run
    assert snapshot.estimators == ("hard", "logit", "prob")
    assert np.count_nonzero(snapshot.counts) < 10, "hard labels leave classes without a map"
    kernel = snapshot.maps_of("logit")
    z = kernel.of("zmap")
    assert np.isfinite(z).all()
    significant = np.mean(np.abs(z) > 1.96, axis=1)
    assert np.all(significant > 0.2), significant  # chance: 5%
    train = bundled_mnist("train")
    digits = np.stack([train.of_class(k).flatten(1).double().mean(0).numpy() for k in range(10)])
    digits -= digits.mean(0)
    for k in range(10):
        assert cosine(kernel.of("centered", [k])[0], digits[k]) > 0.15, k
    # The logit kernel is far more reliable than the hard label at the same samples (its race lead).
    assert snapshot.convergence["logit"].mean()[-1] > 0.8 > snapshot.convergence["hard"].mean()[-1]


def test_the_hard_label_summary_counts_only_classes_with_a_map(bundled_run):
    """The bundled CNN calls noise only a few digits: the summary is their maps' reliability, beside how many
    classes have no map, not a mean dragged toward 0 by the classes noise never reached."""
    experiment, snapshot = bundled_run
    hard = snapshot.convergence["hard"]
    missing = int(hard.without_map()[-1])
    assert missing >= 5  # at 20,000 samples noise reaches only a few digits
    reached = np.isfinite(hard.values()[-1])
    assert hard.mapped_mean()[-1] == pytest.approx(np.clip(hard.values()[-1][reached], 0, None).mean())
    assert hard.mapped_mean()[-1] > hard.mean()[-1]
    entry = summary(experiment.state)["estimators"]["hard"]
    assert entry["classes_without_map"] == missing and entry["reliability"] == round(hard.mapped_mean()[-1], 4)
    info = "\n".join(describe(summary(experiment.state)))
    assert f"{missing} classes have no map" in info
    assert f"{missing} classes have no map" in "\n".join(report(snapshot))


def test_signal_plus_noise_trials_give_every_answer(bundled):
    _, snapshot = run(bundled, samples=3000, seed=0, estimators=("signal",))
    signal = snapshot.maps_of("signal")
    assert np.all(signal.support > 0), signal.support
    assert list(signal.classes) == list(range(10)) and np.isfinite(signal.of("zmap")).all()
    assert signal.support.sum() == 3000 and 0.5 < snapshot.signal_correct < 0.8
    assert snapshot.counts.sum() == 3000, "noise-only labels are counted even without hard-label maps"
    assert snapshot.maps.classes.size == 0


# --- null observers: z-maps are calibrated ---

def test_confidence_weighted_z_maps_of_a_null_observer_with_answer_dependent_weights_are_calibrated():
    _, snapshot = run(observer(NullObserver(10, seed=2), 10), samples=20_000, seed=3, weighting="confidence",
                      estimators=("hard",))
    z = snapshot.maps.zmap
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1) < 0.05, z.std()
    assert np.all(np.abs(z.std(1) - 1) < 0.1), z.std(1)


@pytest.mark.parametrize("estimator", ["logit", "prob"])
def test_z_maps_of_a_null_observer_are_calibrated(estimator):
    _, snapshot = run(observer(NullObserver(10, seed=5), 10), samples=20_000, seed=6, estimators=(estimator,))
    z = snapshot.maps_of(estimator).of("zmap")
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05, (z.mean(), z.std())
    assert 0.04 < np.mean(np.abs(z) > 1.96) < 0.06


def test_signal_z_maps_of_a_null_observer_are_calibrated():
    generator = torch.Generator().manual_seed(7)
    images = torch.rand(40, 1, 28, 28, generator=generator)
    signals = ImageSet("random", images, torch.arange(40) % 10, tuple(str(k) for k in range(10)))
    _, snapshot = run(observer(NullObserver(10, seed=8), 10), signals=signals, samples=20_000, seed=9,
                      estimators=("signal",))
    z = snapshot.maps_of("signal").of("zmap")
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05, (z.mean(), z.std())


# --- exact streaming statistics ---

def _splits(rng, n):
    cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(1, 12), replace=False))
    return np.split(np.arange(n), cuts)


@pytest.mark.parametrize("seed", range(3))
def test_kernel_and_weighted_accumulators_equal_numpy_on_the_whole(seed):
    rng = np.random.default_rng(seed)
    n, d, k = 300, 6, 4
    x = 5 + rng.normal(size=(n, d))
    z = 3 * rng.normal(size=(n, k)) + x[:, :k]
    kernel, weighted = KernelAccumulator(k, d), WeightedAccumulator(k, d)
    for rows in _splits(rng, n):
        block = NoiseBlock(torch.as_tensor(x[rows]), torch.as_tensor(z[rows]))
        kernel.add(block)
        weighted.add(block)
    scores = np.hstack([z, z.mean(1, keepdims=True)])
    xc, zc = x - x.mean(0), scores - scores.mean(0)
    assert kernel.count == weighted.count == n
    np.testing.assert_allclose(kernel.cross, zc.T @ xc, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(kernel.x_m2, (xc**2).sum(0), rtol=1e-10)
    np.testing.assert_allclose(kernel.z_m2, (zc**2).sum(0), rtol=1e-10)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(weighted.weight, p.sum(0), rtol=1e-10)
    np.testing.assert_allclose(weighted.weight_sq, (p**2).sum(0), rtol=1e-10)
    np.testing.assert_allclose(weighted.mean, (p.T @ x) / p.sum(0)[:, None], rtol=1e-10)
    for acc in (kernel, weighted):
        restored = type(acc).from_state(acc.state())
        for name, value in acc.state().items():
            np.testing.assert_array_equal(restored.state()[name], value)


def test_gradient_accumulator_merges_any_tiling_of_samples_and_classes_exactly():
    rng = np.random.default_rng(1)
    n, k, d = 200, 5, 7
    g = rng.normal(size=(n, k + 1, d)) + 3
    acc = GradientAccumulator(k, d)
    for rows in _splits(rng, n):
        for group in np.array_split(np.arange(k + 1), rng.integers(1, k + 2)):
            acc.add(torch.as_tensor(g[rows][:, group]), group)
    np.testing.assert_array_equal(acc.count, np.full(k + 1, n))
    np.testing.assert_allclose(acc.mean, g.mean(0), rtol=1e-12)
    np.testing.assert_allclose(acc.m2, ((g - g.mean(0)) ** 2).sum(0), rtol=1e-10)
    halves = GradientAccumulator(k, d), GradientAccumulator(k, d)
    halves[0].add(torch.as_tensor(g[:70]), np.arange(k + 1))
    halves[1].add(torch.as_tensor(g[70:]), np.arange(k + 1))
    halves[0].merge(halves[1])
    np.testing.assert_allclose(halves[0].mean, acc.mean, rtol=1e-12)
    np.testing.assert_allclose(halves[0].m2, acc.m2, rtol=1e-10)


def test_signal_map_equals_the_direct_formula():
    rng = np.random.default_rng(2)
    n, k, d = 600, 4, 5
    noise = rng.normal(size=(n, d))
    signal = rng.integers(0, k, n)
    answers = np.where(rng.random(n) < 0.6, signal, rng.integers(0, k, n))
    answers[answers == 3] = 2  # answer 3 never given
    halves = SignalAccumulator(k, d), SignalAccumulator(k, d)
    for i, rows in enumerate(_splits(rng, n)):
        halves[i % 2].add(torch.as_tensor(noise[rows]), torch.as_tensor(signal[rows]), torch.as_tensor(answers[rows]))
    maps = SignalAccumulator.maps(*halves, np.arange(k))
    per_signal = np.stack([noise[signal == s].mean(0) for s in range(k)])
    residual = noise - per_signal[signal]
    assert list(maps.classes) == [0, 1, 2] and maps.support[3] == 0
    for answer in range(3):
        chosen = answers == answer
        np.testing.assert_allclose(maps.of("mean", [answer])[0], noise[chosen].mean(0), rtol=1e-10)
        np.testing.assert_allclose(maps.of("centered", [answer])[0], residual[chosen].mean(0), rtol=1e-9, atol=1e-12)
    assert np.isnan(maps.of("zmap", [3])).all()
    restored = SignalAccumulator.from_state(halves[0].state())
    np.testing.assert_array_equal(restored.trials, halves[0].trials)


# --- runs: determinism, resume, sessions ---

ALL = dict(estimators=ESTIMATOR_NAMES, gradient_every=3, samples=2500, batch_size=500)


def assert_same_states(a: ClassificationImageState, b: ClassificationImageState) -> None:
    (meta_a, arrays_a), (meta_b, arrays_b) = a.to_record(), b.to_record()
    meta_a.pop("seconds"), meta_b.pop("seconds")
    assert meta_a == meta_b
    assert sorted(arrays_a) == sorted(arrays_b)
    for key, value in arrays_a.items():
        np.testing.assert_array_equal(arrays_b[key], value, err_msg=key)


def test_same_seed_same_maps_for_every_estimator(tiny):
    first, _ = run(tiny, seed=5, **ALL)
    again, _ = run(tiny, seed=5, **ALL)
    assert_same_states(first.state, again.state)
    other, _ = run(tiny, seed=6, **dict(ALL, estimators=("logit",)))
    assert not np.array_equal(first.state.halves["logit"][0].cross, other.state.halves["logit"][0].cross)


def test_a_cancelled_run_resumed_from_its_session_equals_one_run_for_every_estimator(tiny, tmp_path):
    single, _ = run(tiny, seed=9, **ALL)
    control = RunControl()
    config = ClassificationImageConfig(seed=9, snapshot_seconds=0, **ALL)
    first = ClassificationImageExperiment(tiny, config, device="cpu", control=control)
    with pytest.raises(Cancelled):
        for snapshot in first.run():
            if snapshot.blocks_done == 2:
                control.cancel()
    # The session's model record is the bundled one (the tiny observer is no zoo model); the run is the tiny's.
    path = save_session(Session(load_default(), {KIND: first.state}), tmp_path / "half.h5")
    loaded = load_session(path).runs[KIND]
    assert loaded.blocks_done == 2 and set(loaded.halves) == {"logit", "prob", "gradient", "signal"}
    resumed = ClassificationImageExperiment(tiny, state=loaded, device="cpu")
    resumed.run_to_end()
    assert_same_states(resumed.state, single.state)


def test_extending_the_budget_equals_one_run(tiny):
    settings = dict(ALL, samples=2000, estimators=("logit", "prob", "gradient"))
    single, _ = run(tiny, seed=4, **settings)
    short, _ = run(tiny, seed=4, **dict(settings, samples=1000))
    extended = ClassificationImageExperiment(tiny, state=short.state.with_budget(2000), device="cpu")
    extended.run_to_end()
    for name in ("logit", "prob", "gradient"):
        for a, b in zip(extended.state.halves[name], single.state.halves[name]):
            for key, value in a.state().items():
                np.testing.assert_array_equal(b.state()[key], value, err_msg=f"{name} {key}")


def test_other_signal_images_cannot_continue_a_run(tiny):
    experiment, _ = run(tiny, seed=1, samples=1000, batch_size=500, estimators=("signal",))
    assert experiment.state.signal_images["name"] == "bundled-mnist-heldout"
    state = experiment.state.with_budget(2000)
    with pytest.raises(EngineError, match="signal images differ"):
        ClassificationImageExperiment(tiny, state=state, device="cpu", signals=bundled_mnist("train"))
    ClassificationImageExperiment(tiny, state=state, device="cpu").run_to_end()  # the same images: fine
    assert state.halves["signal"][0].samples + state.halves["signal"][1].samples == 2000


def test_checkpoints_hold_every_estimators_maps(tiny):
    experiment, snapshot = run(tiny, seed=0, samples=12_000, batch_size=1000,
                               estimators=("hard", "logit", "gradient"), gradient_every=4)
    assert sorted(snapshot.checkpoints) == [1000, 10_000]
    early = snapshot.maps_of("logit", 1000)
    assert early.samples == 1000 and early.mean.dtype == np.float32 and list(early.classes) == list(range(10))
    assert not np.allclose(early.of("mean"), snapshot.maps_of("logit").of("mean"))
    assert snapshot.maps_of("gradient", 1000).samples == 1000  # block 0 is a gradient block
    assert snapshot.maps_of("gradient", 10_000).samples == 3000  # blocks 0, 4, 8
    assert snapshot.maps_of("hard", 1000).support.sum() == 1000


# --- any number of classes ---

def test_a_1000_class_model_runs_every_estimator_in_bounded_memory():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 1000))
    model = observer(net, 1000, InputSpec((3, 2, 2)))
    names = tuple(str(k) for k in range(1000))
    images = torch.rand(3000, 3, 2, 2)
    signals = ImageSet("random", images, torch.arange(3000) % 1000, names)
    experiment, snapshot = run(model, signals=signals, samples=1000, batch_size=250, estimators=ESTIMATOR_NAMES,
                               gradient_every=4)
    shown = map_classes(snapshot.counts)
    assert shown.size == 20
    for name in ESTIMATOR_NAMES:
        estimated = snapshot.maps_of(name)
        assert set(estimated.classes) <= set(shown) and estimated.mean.shape[1] == 12
    assert snapshot.maps_of("logit").classes.size == 20
    # The accumulators are what the estimators need: (K + 1) × D per half for the logit kernel.
    assert experiment.state.halves["logit"][0].cross.shape == (1001, 12)
    sizes = accumulator_bytes(ESTIMATOR_NAMES, 1000, 12)
    assert sizes["logit"] == 2 * 8 * (1001 * 14 + 24)
    # A 1000-class ImageNet model: say how much before running.
    imagenet = accumulator_bytes(("logit", "prob"), 1000, 3 * 224 * 224)
    assert 2.3e9 < imagenet["logit"] < 2.5e9 and 2.3e9 < imagenet["prob"] < 2.5e9
    assert "4.5 GB" in memory_text(("logit", "prob"), 1000, 3 * 224 * 224)


def test_spearman_brown():
    np.testing.assert_allclose(spearman_brown([0.0, 0.5, 1.0, -0.5]), [0.0, 2 / 3, 1.0, -2.0])
    assert np.isnan(spearman_brown(-1.0)) and np.isnan(spearman_brown(np.nan))


def test_estimator_settings_are_validated_and_normalised():
    config = ClassificationImageConfig(estimators=("prob", "hard", "prob"))
    assert config.estimators == ("hard", "prob")
    assert ClassificationImageConfig(estimators=()).estimators == ESTIMATOR_NAMES
    assert set(config.inactive_params()) == {"gradient_every", "signal_gamma", "signal_dataset", "signal_data_dir"}
    with pytest.raises(ValueError, match="unknown estimator 'wiener'"):
        ClassificationImageConfig(estimators=("wiener",))
    with pytest.raises(ValueError, match="signal γ"):
        ClassificationImageConfig(signal_gamma=1.0)
    with pytest.raises(ValueError, match="gradient every"):
        ClassificationImageConfig(gradient_every=0)
    assert ClassAccumulator  # the hard label's accumulator is unchanged (tests/test_core_accumulators.py)
