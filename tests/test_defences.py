"""Defended models (core/defences.py): what each method does to a network, measured on the bundled digits.

The networks train on the bundled 4,000 digits; a control gets CONTROL_EPOCHS
epochs there (about as many SGD steps as the paper's 2 epochs on 50,000
digits would be, halved for time) so that it is a working classifier.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wna_gui.cli import main
from wna_gui.core.data import bundled_mnist
from wna_gui.core.defences import DefenceConfig, DefenceError, DefenceExperiment, DefenceState
from wna_gui.core.distortions import gaussian_blur, gaussian_noise
from wna_gui.core.models import load_default
from wna_gui.core.session import Session, load_session, save_session

pytestmark = pytest.mark.slow  # every test trains networks (control, sleep, distillation, fine-tuning)

CONTROL_EPOCHS = 12


def train(method: str, base=None, **settings):
    experiment = DefenceExperiment(load_default(), DefenceConfig(method=method, **settings), device="cpu",
                                   base=base)
    experiment.run_to_end()
    return experiment.state


@pytest.fixture(scope="module")
def heldout():
    return bundled_mnist("heldout")


@pytest.fixture(scope="module")
def control():
    return train("control", epochs=CONTROL_EPOCHS)


@pytest.fixture(scope="module")
def slept(control):
    return train("sleep", base=control.made)


def accuracy(model, images, labels) -> float:
    with torch.no_grad():
        return float((model.pixel_model(images).argmax(1) == labels).float().mean())


def test_the_control_is_the_sleep_papers_network_and_learns(control, heldout):
    model = control.made
    assert model.architecture == "tadros_fc" and model.extra["loss"] == "squared_error"
    layers = model.net.weight_layers()
    assert [tuple(layer.weight.shape) for layer in layers] == [(1200, 784), (1200, 1200), (10, 1200)]
    assert all(layer.bias is None for layer in layers)
    assert accuracy(model, heldout.images, heldout.labels) > 0.85
    # ReLU outputs: never negative; dropout at test is the non-inverted × 0.8.
    with torch.no_grad():
        assert float(model.net(heldout.images[:200]).min()) >= 0


def test_sleep_keeps_the_clean_accuracy_and_mostly_moves_negative_weights(control, slept, heldout):
    before = accuracy(control.made, heldout.images, heldout.labels)
    after = accuracy(slept.made, heldout.images, heldout.labels)
    assert abs(after - before) <= 0.05, (before, after)
    assert slept.accuracy["control"] == pytest.approx(before)
    changed = [not torch.equal(a.weight, b.weight) for a, b in
               zip(control.made.net.weight_layers(), slept.made.net.weight_layers())]
    assert changed[0], "sleep changed nothing"
    stats = slept.snapshot().layer_stats()
    fraction_changed, negative_share, _ = stats[0]
    assert fraction_changed > 0.01
    assert negative_share > 0.8, "σ₂ lets sleep move mostly the negative weights"
    # Spikes reached the hidden layers, and the raster shows them.
    spikes = np.asarray(slept.spike_log)
    assert spikes[:, 1].sum() > 0 and spikes[:, 2].sum() > 0
    assert [r.shape[1] for r in slept.raster] == [100, 100, 100, 10]


def test_defensive_distillation_sharpens_the_softmax_and_the_authors_run_does_not(control, heldout):
    distilled = train("distill", epochs=5)
    authors = train("distill-authors", base=control.made)
    assert distilled.made.architecture == "tadros_fc_logits" and distilled.made.extra["loss"] == "cross_entropy"

    def confidence(model) -> float:
        with torch.no_grad():
            return float(torch.softmax(model.pixel_model(heldout.images), 1).max(1).values.mean())

    teacher, student, as_run = confidence(control.made), confidence(distilled.made), confidence(authors.made)
    # The control's ReLU outputs are ~one-hot: a softmax at T = 1 of them stays soft (max ≈ e/(e + 9) ≈ 0.23).
    assert teacher < 0.4
    assert student > 0.9, "trained at T = 50, deployed at T = 1: logits ~50× larger, a near one-hot softmax"
    # No temperature ever applied: the student keeps the teacher's soft outputs.
    assert abs(as_run - teacher) < 0.1
    # At T = 50 the softened outputs move z/T: the teacher and student learn ~T times slower in probability than
    # a plain network, so 5 + 5 epochs on 4,000 digits give a working but weaker classifier (~65%).
    assert accuracy(distilled.made, heldout.images, heldout.labels) > 0.5
    assert accuracy(authors.made, heldout.images, heldout.labels) > 0.85


def test_fine_tuning_on_a_distortion_beats_the_control_at_its_strongest_level(control, heldout):
    noise_tuned = train("finetune-noise", base=control.made)
    blur_tuned = train("finetune-blur", base=control.made)
    assert noise_tuned.base == blur_tuned.base == "base model"
    noisy = gaussian_noise(heldout.images, 0.9, seed=11)
    blurred = gaussian_blur(heldout.images, 4.0)
    control_noisy = accuracy(control.made, noisy, heldout.labels)
    control_blurred = accuracy(control.made, blurred, heldout.labels)
    assert accuracy(noise_tuned.made, noisy, heldout.labels) > control_noisy + 0.05
    assert accuracy(blur_tuned.made, blurred, heldout.labels) > control_blurred + 0.05


def test_a_run_without_a_control_trains_one_first_and_keeps_it():
    state = train("finetune-blur", epochs=1, train_images=200)
    assert [s["name"] for s in state.stages] == ["control", "finetune"]
    assert state.base == "trained in this run"
    assert sorted(state.made_models()) == ["finetune-blur", "finetune-blur-control"]


def test_a_run_starts_from_a_control_only(control):
    with pytest.raises(DefenceError, match="starts from a control network"):
        DefenceExperiment(load_default(), DefenceConfig(method="sleep"), device="cpu", base=load_default())
    with pytest.raises(DefenceError, match="MNIST-sized"):
        DefenceExperiment(load_default(), DefenceConfig(method="control", dataset="cifar10"), device="cpu")


def _resumed_after_one_unit(config: DefenceConfig, **inputs) -> DefenceState:
    first = DefenceExperiment(load_default(), config, device="cpu", **inputs)
    first.prepare()
    first.run_unit(next(iter(first.pending())))
    meta, arrays = first.state.to_record()
    restored = DefenceState.from_record(json.loads(json.dumps(meta)), arrays)
    second = DefenceExperiment(load_default(), state=restored, device="cpu")
    second.run_to_end()
    return second.state


def test_a_control_run_stopped_and_resumed_gives_the_same_network():
    """Training over two epochs (the registry-wide resume contract in test_contract.py covers the sleep
    method's small run)."""
    config = DefenceConfig(method="control", epochs=2, batch_size=10, train_images=300)
    straight = DefenceExperiment(load_default(), config, device="cpu")
    straight.run_to_end()
    resumed = _resumed_after_one_unit(config)
    assert resumed.progress_done == straight.state.progress_done
    for a, b in zip(straight.state.made.net.parameters(), resumed.made.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noisy_ensemble_with_pgd_training_is_stored_as_a_stochastic_ensemble():
    state = train("noisy-ensemble", depth="resnet8", epochs=1, train_images=60, batch_size=30, eval_images=50,
                  adversarial_training=True)
    model = state.made
    assert model.architecture == "noisy_en5resnet8" and len(model.net.members) == 5
    x = bundled_mnist("heldout").images[:4]
    with torch.no_grad():
        assert not torch.equal(model.pixel_model(x), model.pixel_model(x))


def test_made_models_round_trip_through_a_session_and_info_lists_them(control, slept, tmp_path, capsys):
    path = save_session(Session(load_default(), {"control": control, "sleep": slept}), tmp_path / "s.wna.h5")
    loaded = load_session(path)
    assert set(loaded.models) == {"control", "sleep"}
    for name, state in (("control", control), ("sleep", slept)):
        assert loaded.models[name].weights_sha256() == state.made.weights_sha256()
        assert loaded.models[name].extra["loss"] == "squared_error"
        assert loaded.runs[name].made.weights_sha256() == state.made.weights_sha256()
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["models"]) >= {"control", "sleep"}
    assert info["models"]["sleep"]["architecture"] == "tadros_fc"
    assert info["experiments"]["sleep"]["models_made"] == ["sleep"]


def test_the_cli_trains_from_a_model_in_the_session(control, tmp_path):
    path = save_session(Session(load_default(), {"control": control}), tmp_path / "s.wna.h5")
    assert main(["run", "defence", "--method", "finetune-noise", "--epochs", "1", "--train-images", "200",
                 "--model-name", "noisy-tuned", "--name", "tuned", "--session", str(path), "--base", "control",
                 "--device", "cpu", "--quiet", "--autosave-seconds", "0"]) == 0
    loaded = load_session(path)
    assert {"control", "noisy-tuned"} <= set(loaded.models)
    assert loaded.inputs["tuned"] == {"base": "control"}
    assert loaded.runs["tuned"].base == "base model"
