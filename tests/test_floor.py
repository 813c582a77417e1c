"""The floor every experiment stands on (issue 23): one Wilson interval, two γ grids, one wording of the image
sources, one images fingerprint, and the state base's budget rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from wna_gui.core import data
from wna_gui.core.distributed import BlockSet
from wna_gui.core.images import TORCHVISION_LABELS, dataset_labels, images_sha256
from wna_gui.core.params import param
from wna_gui.core.registry import EXPERIMENTS
from wna_gui.core.state import BlockState, Progress, RunConfig, RunState, budget_param
from wna_gui.core.stats import gammas_between, noise_to_image_gammas, wilson_interval

from smoke import tiny_run


def test_wilson_interval_matches_scipy_elementwise_and_pins_its_edges():
    k = np.array([0, 1, 50, 99, 100, 7])
    n = np.array([100, 100, 100, 100, 100, 0])
    low, high = wilson_interval(k, n)
    for i in range(5):
        reference = scipy_stats.binomtest(int(k[i]), int(n[i])).proportion_ci(0.95, method="wilson")
        assert (low[i], high[i]) == pytest.approx((reference.low, reference.high), abs=1e-12)
    assert low[0] == 0.0 and high[4] == 1.0  # exactly, not a rounding hair off
    assert np.isnan(low[5]) and np.isnan(high[5])  # no trials: no interval
    assert np.isnan(wilson_interval(0, 0)[0]) and np.isnan(wilson_interval(np.nan, 10)[1])
    scalar = wilson_interval(84, 100)
    assert isinstance(scalar[0], float) and scalar == tuple(bound[0] for bound in wilson_interval([84], [100]))


def test_the_two_gamma_grids():
    assert noise_to_image_gammas(5) == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert gammas_between(0.3, 0.7, 5) == (0.3, 0.4, 0.5, 0.6, 0.7) and gammas_between(0.2, 0.7, 1) == (0.2,)
    with pytest.raises(ValueError, match="at least 2 points"):
        noise_to_image_gammas(1)


def test_every_image_source_is_worded_once():
    assert set(TORCHVISION_LABELS) == set(data.DATASETS)  # every loadable torchvision set has its label
    test, train, both = dataset_labels("test"), dataset_labels("train"), dataset_labels(None, own=False)
    assert test["fashion-mnist"] == "Fashion-MNIST test set (data folder)"
    assert train["cifar10"] == "CIFAR-10 training set (data folder)" and both["mnist"] == "MNIST (data folder)"
    assert set(test) == {"bundled", *data.DATASETS, *data.OWN_DATASETS} and set(both) == {"bundled", *data.DATASETS}


def test_the_images_fingerprint_covers_values_and_labels():
    images = torch.rand(4, 1, 3, 3)
    labels = torch.tensor([0, 1, 1, 2])
    assert images_sha256(images) == images_sha256(images.numpy())
    assert images_sha256(images, labels) == images_sha256(images, labels.numpy().astype(np.int32))
    assert images_sha256(images, labels) != images_sha256(images)
    turned = images.transpose(2, 3)  # not contiguous: hashed in C order like its contiguous copy
    assert images_sha256(turned) == images_sha256(turned.contiguous()) != images_sha256(images)


def test_every_experiment_stands_on_the_state_floor():
    for spec in EXPERIMENTS:
        assert issubclass(spec.state, RunState) and issubclass(spec.config, RunConfig), spec.kind
        if spec.can_extend:  # an extendable run reads its budget from the one parameter whose role is "budget"
            budget = budget_param(spec.config)
            assert budget is not None, spec.kind
            config = spec.config()
            assert spec.state.budget_of(config) > 0
        else:  # no budget setting: asked for one, the run says it cannot be extended
            with pytest.raises(ValueError, match="cannot be extended"):
                spec.state.budget_of(spec.config())


@pytest.mark.parametrize("spec", EXPERIMENTS, ids=[spec.kind for spec in EXPERIMENTS])
def test_every_snapshot_embeds_its_runs_progress(spec):
    state, snapshots = tiny_run(spec.kind)
    first, last = snapshots[0], snapshots[-1]
    assert isinstance(first.progress, Progress) and first.progress.done == 0 and not first.progress.finished
    assert (last.progress.done, last.progress.finished) == (state.progress_done, True)
    assert last.progress.total == state.progress_total and last.progress.per_second > 0
    assert spec.snapshot(state).progress == state.progress()  # done, total, finished and compute seconds


@dataclass(frozen=True)
class _Config(RunConfig):
    samples: int = param(1000, "Samples", "noise images", low=1, role="budget")
    batch_size: int = param(100, "Batch size", "noise images per block", low=1)

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)


@dataclass
class _BlockRun(BlockState):
    config: _Config
    done: BlockSet = field(default_factory=BlockSet)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(3))
    class_names: tuple[str, ...] = ("a", "b")
    seconds: float = 0.0


def test_a_block_run_extends_within_the_rules_and_its_default_record_round_trips():
    run = _BlockRun(_Config())
    run.blocks_done = 4
    assert (run.progress_done, run.progress_total, run.finished) == (400, 1000, False)
    assert run.progress(50.0) == Progress(400, 1000, 50.0, False, 0.0) and run.progress(50.0).eta_seconds == 12.0
    assert _BlockRun.budget_of(_Config(samples=2500)) == 2500
    with pytest.raises(ValueError, match="below the 400 samples already done"):
        run.with_budget(300)
    run.done = BlockSet.of([0, 1, 2, 3, 7])  # a worker's block 7 is in: the budget must keep it
    with pytest.raises(ValueError, match="leaves out blocks already done"):
        run.with_budget(600)
    assert run.with_budget(2000).config.samples == 2000
    run.weights[:] = (1.0, 2.5, -3.0)
    meta, arrays = run.to_record()
    assert set(arrays) == {"done", "weights"} and meta["class_names"] == ["a", "b"]  # JSON and datasets
    back = _BlockRun.from_record(meta, arrays)
    assert back.config == run.config and back.class_names == ("a", "b") and back.done == run.done
    np.testing.assert_array_equal(back.weights, run.weights)


def _tiny_mnist(root, size: int):
    """A torchvision MNIST folder with 20 size×size digits per split: a real image source that, unlike one's own
    images, is not fitted to the model."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(size)
    for split in ("train", "t10k"):
        images, labels = rng.integers(0, 256, (20, size, size)), np.arange(20) % 10
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
            (raw / f"{split}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())
    return root


def test_every_experiment_refuses_images_that_do_not_fit_the_model_in_one_wording(tmp_path, capsys):
    from dataclasses import replace

    from wna_gui.cli import main
    from wna_gui.core.bias_attack import BiasAttackConfig, signal_set
    from wna_gui.core.images import SignalImages, images_for_model
    from wna_gui.core.models import load_default
    from wna_gui.core.psychometric import PsychometricConfig, target_images
    from wna_gui.core.template_classifier import checked_images

    model = load_default()
    assert tuple(model.input_spec.shape) == (1, 28, 28)

    def callers(root):
        images = data.load_dataset("mnist", root, train=False)
        return {"bias attack": lambda: signal_set(BiasAttackConfig(signal_dataset="mnist", signal_data_dir=str(root)),
                                                  model),
                "signal images": lambda: SignalImages(images, model),
                "psychometric": lambda: target_images(model, PsychometricConfig(), images),
                "template classifier": lambda: checked_images(images, model)}

    message = r"^mnist-test images of shape \(1, 8, 8\) do not fit the model's input \(1, 28, 28\)$"
    for call in callers(_tiny_mnist(tmp_path / "small", 8)).values():
        with pytest.raises(ValueError, match=message):
            call()
    for call in callers(_tiny_mnist(tmp_path / "fits", 28)).values():
        call()  # the same source at the model's size passes every caller
    small = data.load_dataset("mnist", tmp_path / "small", train=False)
    own = images_for_model(replace(small, own=True), model)  # one's own images are fitted instead
    assert tuple(own.images.shape[1:]) == (1, 28, 28) and checked_images(own, model).images.shape == own.images.shape

    # what the user reads: `wna run` says it in one line and exits 2 before any work
    out = tmp_path / "psychometric.h5"
    assert main(["run", "psychometric", "--dataset", "mnist", "--data-dir", str(tmp_path / "small"), "--device", "cpu",
                 "--quiet", "--autosave-seconds", "0", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and not out.exists()
    assert "mnist-test images of shape (1, 8, 8) do not fit the model's input (1, 28, 28)" in error
