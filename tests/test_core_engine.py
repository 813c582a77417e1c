"""The classification-image experiment end to end: known observers, determinism, resume, errors."""

import numpy as np
import pytest
import torch
from torch import nn

from wna_gui.core.classification import (
    ClassificationImageConfig,
    ClassificationImageExperiment,
    ClassificationImageState,
)
from wna_gui.core.control import Cancelled, EngineError, RunControl
from wna_gui.core.models import InputSpec, LoadedModel, load_default
from wna_gui.core.session import Session, load_session, save_session

MNIST_SPEC = InputSpec((1, 28, 28))


class LinearTemplateObserver(nn.Module):
    """Answers 1 when <t, n − 0.5> > 0, else 0: its classification image is t itself."""

    def __init__(self, template: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("template", template.flatten().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = (x.flatten(1) - 0.5) @ self.template
        return torch.stack([-evidence, evidence], 1)


class NullObserver(nn.Module):
    """Responds at random, independently of the stimulus."""

    def __init__(self, n_classes: int, seed: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape[0], self.n_classes, generator=self.generator)


class ConstantOutput(nn.Module):
    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.expand(x.shape[0], *self.output.shape[1:])


def gabor_template(size: int = 28) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return torch.exp(-(x**2 + y**2) / 0.3) * torch.cos(6 * (0.8 * x + 0.6 * y))


def observer_model(net: nn.Module, n_classes: int) -> LoadedModel:
    return LoadedModel("zoo", "observer", net, MNIST_SPEC, tuple(str(k) for k in range(n_classes)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def run(model, **config):
    experiment = ClassificationImageExperiment(model, ClassificationImageConfig(**config), device="cpu")
    return experiment, experiment.run_to_end()


@pytest.fixture(scope="module")
def bundled():
    return load_default()


def test_linear_template_observer_map_recovers_the_template():
    template = gabor_template()
    _, snapshot = run(observer_model(LinearTemplateObserver(template), 2), samples=16_000, seed=1)
    t = template.flatten().double().numpy()
    assert snapshot.counts.sum() == 16_000 and snapshot.counts.min() > 7000
    mean, centered = snapshot.maps.of("mean"), snapshot.maps.of("centered")
    assert cosine(mean[1] - mean[0], t) > 0.95
    assert cosine(centered[1], t) > 0.95
    assert cosine(centered[0], -t) > 0.95


def test_null_observer_gives_calibrated_z_maps():
    _, snapshot = run(observer_model(NullObserver(10, seed=2), 10), samples=20_000, seed=3)
    z = snapshot.maps.zmap
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1) < 0.05
    assert 0.04 < np.mean(np.abs(z) > 1.96) < 0.06


def test_same_seed_same_maps_and_another_seed_other_maps(bundled):
    _, first = run(bundled, samples=3000, seed=5)
    _, again = run(bundled, samples=3000, seed=5)
    _, other = run(bundled, samples=3000, seed=6)
    np.testing.assert_array_equal(first.counts, again.counts)
    np.testing.assert_array_equal(first.maps.of("mean"), again.maps.of("mean"))
    assert not np.array_equal(np.nan_to_num(first.maps.of("mean")), np.nan_to_num(other.maps.of("mean")))


def test_maps_can_be_recomputed_from_the_seed_alone(bundled):
    # SCIENCE.md "store seeds, not noise": regenerating blocks (seed, b) and classifying them in
    # one plain forward pass must reproduce the engine's counts and maps, last partial block included.
    config = ClassificationImageConfig(samples=2300, batch_size=1000, seed=21)
    snapshot = ClassificationImageExperiment(bundled, config, device="cpu").run_to_end()
    blocks = [config.noise.block(config.seed, b, config.batch_size, (1, 28, 28)) for b in range(3)]
    x = torch.cat(blocks)[: config.samples]
    with torch.inference_mode():
        labels = bundled.pixel_model(x).argmax(1).numpy()
    flat = x.reshape(len(x), -1).double().numpy()
    np.testing.assert_array_equal(snapshot.counts, np.bincount(labels, minlength=10))
    for k in np.flatnonzero(snapshot.counts):
        np.testing.assert_allclose(snapshot.image("mean", k).ravel(), flat[labels == k].mean(0), rtol=0, atol=1e-12)


def assert_same_run(resumed: ClassificationImageState, single: ClassificationImageState):
    np.testing.assert_array_equal(resumed.total().count, single.total().count)
    for half in ("even", "odd"):
        a, b = getattr(resumed, half), getattr(single, half)
        np.testing.assert_array_equal(a.count, b.count)
        np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.m2, b.m2, rtol=1e-12, atol=1e-12)
    assert resumed.samples_done == single.samples_done and resumed.finished


def test_cancelled_run_saved_and_resumed_equals_one_run(bundled, tmp_path):
    config = ClassificationImageConfig(samples=4500, batch_size=500, seed=9, snapshot_seconds=0)
    single = ClassificationImageExperiment(bundled, config, device="cpu")
    single.run_to_end()

    control = RunControl()
    first = ClassificationImageExperiment(bundled, config, device="cpu", control=control)
    with pytest.raises(Cancelled):
        for snapshot in first.run():  # snapshot_seconds=0: one snapshot per block
            if snapshot.blocks_done == 4:
                control.cancel()
    assert first.state.blocks_done == 4 and not first.state.finished

    path = save_session(Session(bundled, {first.kind: first.state}), tmp_path / "half.wna.h5")
    loaded = load_session(path)
    second = ClassificationImageExperiment(loaded.model, state=loaded.runs[first.kind], device="cpu")
    final = second.run_to_end()
    assert final.finished and final.samples_done == 4500
    assert_same_run(second.state, single.state)
    np.testing.assert_array_equal(np.vstack(second.state.reliability_per_class),
                                  np.vstack(single.state.reliability_per_class))


def test_extended_budget_equals_one_run(bundled):
    single, _ = run(bundled, samples=4000, batch_size=500, seed=4)
    short, _ = run(bundled, samples=2000, batch_size=500, seed=4)
    extended = ClassificationImageExperiment(bundled, state=short.state.with_budget(4000), device="cpu")
    extended.run_to_end()
    assert_same_run(extended.state, single.state)
    with pytest.raises(ValueError, match="below"):
        extended.state.with_budget(100)


def test_convergence_record_of_the_bundled_model(bundled):
    experiment, snapshot = run(bundled, samples=20_000, seed=0)
    state = experiment.state
    assert sorted(state.checkpoint_maps) == [1000, 10_000]
    for by_estimator in state.checkpoint_maps.values():
        assert set(by_estimator) == {"hard", "logit", "prob"}
        hard = by_estimator["hard"]
        assert hard.mean.shape == (len(hard.classes), 784) and set(hard.classes) <= set(np.flatnonzero(snapshot.counts))
    # The 1e4 checkpoint is the mean map at that point, not the final one.
    hard = state.checkpoint_maps[10_000]["hard"]
    assert hard.support.sum() == 10_000
    assert not np.allclose(hard.mean, snapshot.maps.of("mean", hard.classes))

    samples = snapshot.reliability_samples
    assert samples[-1] == 20_000 and np.all(np.diff(samples) > 0)
    dominant = int(np.argmax(snapshot.counts))
    assert snapshot.counts[dominant] > 0.5 * 20_000, "white noise should land mostly in one class"
    r = snapshot.reliability_per_class[:, dominant]
    finite = np.isfinite(r)
    assert finite.sum() >= 5
    r, n = r[finite], samples[finite]
    assert r[-1] > r[0] + 0.1
    assert np.corrcoef(np.argsort(np.argsort(n)), np.argsort(np.argsort(r)))[0, 1] > 0.8


def test_the_other_estimators_leave_the_hard_label_maps_unchanged(bundled):
    # The paper's maps of a run with every default estimator are bit for bit those of a hard-label-only run.
    _, alone = run(bundled, samples=3000, batch_size=1000, seed=8, estimators=("hard",))
    _, together = run(bundled, samples=3000, batch_size=1000, seed=8)
    assert together.estimators == ("hard", "logit", "prob") and alone.estimators == ("hard",)
    np.testing.assert_array_equal(together.counts, alone.counts)
    for view in ("mean", "centered", "zmap"):
        np.testing.assert_array_equal(together.maps.of(view), alone.maps.of(view))
    np.testing.assert_array_equal(together.reliability_per_class, alone.reliability_per_class)
    np.testing.assert_array_equal(together.map_predictions, alone.map_predictions)


def test_confidence_weighting_weights_each_sample_by_its_top_probability(bundled):
    experiment, snapshot = run(bundled, samples=2000, seed=0, weighting="confidence")
    total = experiment.state.total()
    assert total.count.sum() == 2000
    assert np.all(total.weight <= total.count) and np.all(total.weight[total.count > 0] > 0)
    assert total.weight.sum() < 2000
    assert np.isfinite(snapshot.maps.of("zmap", np.flatnonzero(total.count > 1))).all()


def test_model_producing_nan_is_reported():
    output = torch.zeros(1, 2)
    output[0, 1] = float("nan")
    with pytest.raises(EngineError, match="NaN"):
        run(observer_model(ConstantOutput(output), 2), samples=100)


def test_model_with_wrong_output_shape_is_reported():
    with pytest.raises(EngineError, match=r"expected \(batch, 2\)"):
        run(observer_model(ConstantOutput(torch.zeros(1, 3)), 2), samples=100)
    with pytest.raises(EngineError, match="shape"):
        run(observer_model(ConstantOutput(torch.zeros(1, 2, 1)), 2), samples=100)


def test_session_from_another_model_shape_is_refused(bundled):
    experiment, _ = run(bundled, samples=100)
    with pytest.raises(EngineError, match="classes"):
        ClassificationImageExperiment(observer_model(NullObserver(2, 0), 2), state=experiment.state, device="cpu")


def test_a_run_leaves_the_loaded_model_untouched():
    model = load_default()
    before = {name: p.detach().clone() for name, p in model.net.named_parameters()}
    run(model, samples=2000, batch_size=500)
    for name, param in model.net.named_parameters():
        # Same values and the same (NCHW) layout: other panels share this model.
        assert torch.equal(param, before[name]), name
        assert param.is_contiguous(), f"{name} was left in another memory format"
