"""Your own models: every configuration the app's model dialog can produce is a `wna` command line that loads the
same model (Run > Copy as `wna` command), torch.export programs load and are kept sealed in sessions, and bad
normalisation or class names are one-line errors."""

import shlex
import warnings

import pytest
import torch

from wna_gui.app.dialogs import ModelDialog
from wna_gui.cli import _load_model_from_args, build_parser, command_for, main
from wna_gui.core.models import (ModelError, UntrustedModelError, load_default, load_model, model_from_record,
                                 model_record, serialize_state_dict, unseal)
from wna_gui.core.registry import spec_of
from wna_gui.core.trust import revoke_trust

MNIST = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A zoo state_dict, a TorchScript file and a torch.export program, all of the bundled CNN."""
    folder = tmp_path_factory.mktemp("own-models")
    net = load_default().net
    (folder / "cnn.pt").write_bytes(serialize_state_dict(net.state_dict()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; users still bring such files
        torch.jit.script(net).save(str(folder / "cnn.ts"))
    program = torch.export.export(net, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(folder / "cnn.pt2"))
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 28, 28),)), str(folder / "fixed-batch.pt2"))
    return folder


def dialog_configurations(files):
    """(source, entries) the dialog can be filled with: every page, with and without the common fields."""
    digits = "zero,one,two,three,four,five,six,seven,eight,nine"
    return [
        ("zoo", {"zoo_architecture": "mnist_cnn", "zoo_weights": str(files / "cnn.pt")}),
        ("zoo", {"zoo_architecture": "mnist_cnn", "zoo_weights": str(files / "cnn.pt"), "script_classes": digits,
                 "script_mean": "0.1307", "script_std": "0.3081"}),
        ("exported", {"export_file": str(files / "cnn.pt2")}),
        ("exported", {"export_file": str(files / "cnn.pt2"), "export_shape": "1, 28, 28", "script_classes": digits,
                      "script_mean": "0.5", "script_std": "0.25"}),
        ("torchscript", {"script_file": str(files / "cnn.ts"), "script_shape": "1, 28, 28"}),
        ("torchscript", {"script_file": str(files / "cnn.ts"), "script_shape": "1,28,28", "script_classes": digits,
                         "script_mean": "0.2", "script_std": "0.5"}),
    ]


def test_every_dialog_configuration_survives_copy_as_wna_command(qtbot, model_files):
    spec = spec_of("classification_images")
    for source, entries in dialog_configurations(model_files):
        dialog = ModelDialog(source)
        qtbot.addWidget(dialog)
        dialog.set_entries(entries, source)
        name, weights, options = dialog.request()
        model = load_model(name, weights, **options)
        words = shlex.split(command_for(spec, spec.config(), model))
        again = _load_model_from_args(build_parser().parse_args(words[1:]))
        assert (again.kind, again.architecture) == (model.kind, model.architecture), words
        assert again.input_spec == model.input_spec, (entries, words)
        assert again.class_names == model.class_names, (entries, words)
        assert torch.equal(again.pixel_model(MNIST), model.pixel_model(MNIST)), words
        if "script_mean" in entries:  # the dialog's normalisation is what the model applies
            assert model.input_spec.mean == (float(entries["script_mean"]),)
            assert model.class_names[3] == "three"


def test_torchvision_dialog_configuration_survives_copy_as_wna_command(qtbot, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.get_model("mobilenet_v3_small", weights=None).state_dict(), weights)
    dialog = ModelDialog("torchvision")
    qtbot.addWidget(dialog)
    dialog.set_entries({"vision_name": "mobilenet_v3_small", "vision_weights": str(weights), "vision_size": "64",
                        "script_mean": "0.5,0.4,0.3", "script_std": "0.2"},
                       "torchvision")
    name, path, options = dialog.request()
    model = load_model(name, path, **options)
    assert model.input_spec.shape == (3, 64, 64) and model.input_spec.mean == (0.5, 0.4, 0.3)
    spec = spec_of("classification_images")
    words = shlex.split(command_for(spec, spec.config(), model))
    again = _load_model_from_args(build_parser().parse_args(words[1:]))
    assert (again.input_spec, again.class_names) == (model.input_spec, model.class_names), words


def test_dialog_refuses_bad_normalisation(qtbot, model_files):
    dialog = ModelDialog("zoo")
    qtbot.addWidget(dialog)
    dialog.set_entries({"zoo_weights": str(model_files / "cnn.pt"), "script_std": "0"}, "zoo")
    with pytest.raises(ValueError, match="std must be greater than 0"):
        dialog.request()


def test_exported_program_is_sealed_in_sessions_and_rebuilt_when_trusted(model_files):
    model = load_model("exported", model_files / "cnn.pt2", mean=(0.5,), std=(0.25,))
    assert model.input_spec.shape == (1, 28, 28), "the shape it was exported with"
    reference = load_default()
    expected = reference.net((MNIST - 0.5) / 0.25)
    assert torch.allclose(model.pixel_model(MNIST), expected, atol=1e-5)
    description, blob = model_record(model)
    assert blob == (model_files / "cnn.pt2").read_bytes(), "the session keeps the program byte for byte"
    sealed = model_from_record(description, blob, "model", "s.h5")
    assert sealed.sealed and sealed.class_names == model.class_names
    revoke_trust(sealed.archive_sha256())  # choosing the file trusted it; another user of the session has not
    with pytest.raises(UntrustedModelError, match="torch.export program"):
        unseal(sealed)
    loaded = unseal(sealed, trusted={sealed.archive_sha256()})
    assert loaded.input_spec == model.input_spec
    assert torch.equal(loaded.pixel_model(MNIST), model.pixel_model(MNIST))


def test_fixed_batch_program_is_refused_with_the_fix(model_files):
    with pytest.raises(ModelError, match="fixed batch of 1.*Dim"):
        load_model("exported", model_files / "fixed-batch.pt2")


@pytest.mark.parametrize("flags, problem", [
    (["--input-std", "0"], "the input std must be greater than 0"),
    (["--input-mean", "nan"], "the input mean must be finite"),
    (["--input-mean", "0.5,abc"], "the input mean must be numbers"),
    (["--input-mean", "0.1,0.2,0.3"], "the input mean has 3 values but the model takes 1 channel"),
    (["--class-names", "a,b,c"], "3 class names given but the model has 10 outputs"),
    (["--class-names-file", "absent.txt"], "class-names file not found: absent.txt"),
])
def test_bad_model_flags_are_one_line(flags, problem, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "classification-images", "--model", "default", *flags, "--samples", "100",
                 "--out", str(tmp_path / "s.h5")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and problem in lines[0], lines
    assert not (tmp_path / "s.h5").exists()


def test_class_names_file_names_the_classes(model_files, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"digit {d}" for d in range(10)) + "\n\n")
    args = build_parser().parse_args(["run", "classification-images", "--model", "exported", "--weights",
                                      str(model_files / "cnn.pt2"), "--class-names-file", str(names)])
    model = _load_model_from_args(args)
    assert model.class_names[7] == "digit 7" and model.kind == "exported"
