"""Model zoo, loading errors, TorchScript, the bundled CNN's accuracy, and training."""

import numpy as np
import pytest
import torch
from torch import nn

from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.data import bundled_mnist
from wna_gui.core.models import (
    ZOO,
    ModelError,
    build_zoo,
    default_model_record,
    load_default,
    load_model,
)
from wna_gui.core.train import TrainConfig, evaluate, train_zoo_model


def assert_one_line(exc_info, *words):
    message = str(exc_info.value)
    assert "\n" not in message, f"error message spans lines: {message!r}"
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("n_classes", [None, 2])
def test_each_zoo_architecture_maps_its_input_to_class_logits(name, n_classes):
    arch = ZOO[name]
    net = build_zoo(name, n_classes).eval()
    expected = n_classes or len(arch.class_names)
    with torch.inference_mode():
        out = net(torch.rand(3, *arch.input_spec.shape))
    assert out.shape == (3, expected)
    assert torch.isfinite(out).all()


def test_unknown_model_name_is_named_in_the_error():
    with pytest.raises(ModelError) as exc_info:
        load_model("resnet9000", "weights.pt")
    assert_one_line(exc_info, "resnet9000", "mnist_cnn")


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(build_zoo("mlp").state_dict(), path)
    with pytest.raises(ModelError) as exc_info:
        load_model("mnist_cnn", path)
    assert_one_line(exc_info, "mlp.pt", "does not fit")


def test_missing_and_non_checkpoint_weight_files_are_reported(tmp_path):
    with pytest.raises(ModelError) as exc_info:
        load_model("mnist_cnn", tmp_path / "absent.pt")
    assert_one_line(exc_info, "not found", "absent.pt")

    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    with pytest.raises(ModelError) as exc_info:
        load_model("mlp", text)
    assert_one_line(exc_info, "notes.pt", "not a PyTorch")

    with pytest.raises(ModelError) as exc_info:
        load_model("mlp")
    assert_one_line(exc_info, "weights")


def test_zoo_weights_load_back_exactly(tmp_path):
    net = build_zoo("mlp")
    path = tmp_path / "mlp.pt"
    torch.save(net.state_dict(), path)
    model = load_model("mlp", path)
    x = torch.rand(4, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(model.pixel_model(x), net.eval()(x))


class TinyConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


# TorchScript is deprecated in recent torch but is still what users export; keep supporting it quietly.
TORCHSCRIPT_DEPRECATION = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:FutureWarning")


@TORCHSCRIPT_DEPRECATION
@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_torchscript_round_trip_runs_in_the_engine(tmp_path, compile_with):
    torch.manual_seed(0)
    net = TinyConvNet().eval()
    example = torch.rand(2, 1, 28, 28)
    compiled = torch.jit.script(net) if compile_with == "script" else torch.jit.trace(net, example)
    path = tmp_path / "tiny.pt"
    compiled.save(str(path))

    model = load_model("torchscript", path, input_shape=(1, 28, 28))
    assert model.n_classes == 3  # learned by probing the model
    with torch.inference_mode():
        torch.testing.assert_close(model.pixel_model(example), net(example), rtol=0, atol=0)
    snapshot = ClassificationImageExperiment(
        model, ClassificationImageConfig(samples=500, batch_size=250), device="cpu").run_to_end()
    assert snapshot.counts.sum() == 500


@TORCHSCRIPT_DEPRECATION
def test_torchscript_errors(tmp_path):
    with pytest.raises(ModelError) as exc_info:
        load_model("torchscript", tmp_path / "gone.pt")
    assert_one_line(exc_info, "not found")

    path = tmp_path / "tiny.pt"
    torch.jit.script(TinyConvNet()).save(str(path))
    with pytest.raises(ModelError) as exc_info:
        load_model("torchscript", path, input_shape=(3, 32, 32))
    assert_one_line(exc_info, "does not accept input", "(3, 32, 32)")


def test_bundled_model_reproduces_its_recorded_heldout_accuracy():
    record = default_model_record()
    heldout = bundled_mnist("heldout")
    assert len(heldout) == record["heldout_digits"]
    accuracy = evaluate(load_default().pixel_model, heldout.images, heldout.labels)
    # One digit of slack for CPU-kernel rounding differences between machines.
    assert abs(accuracy - record["heldout_accuracy"]) <= 1 / len(heldout) + 1e-12
    assert accuracy >= 0.97


def test_one_epoch_of_training_beats_chance_and_is_reproducible():
    train = bundled_mnist("train")
    heldout = bundled_mnist("heldout")
    config = TrainConfig("logreg", epochs=1, batch_size=32, lr=1e-2)
    losses = []
    model = train_zoo_model(config, train, progress=lambda epoch, loss: losses.append((epoch, loss)))
    accuracy = evaluate(model.pixel_model, heldout.images, heldout.labels)
    assert accuracy > 0.6, f"one epoch reached only {accuracy:.3f} (chance is 0.1)"
    assert len(losses) == 1 and losses[0][0] == 1 and np.isfinite(losses[0][1])
    assert model.kind == "zoo" and model.architecture == "logreg" and not model.net.training

    again = train_zoo_model(config, train)
    assert again.weights_sha256() == model.weights_sha256()
