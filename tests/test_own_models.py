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


def test_run_copy_as_wna_command_in_the_window_gives_back_each_dialog_model(qtbot, model_files, tmp_path):
    """Run > Copy as `wna` command itself (the clipboard), for every dialog configuration and the settings shown."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from wna_gui.app.main_window import MainWindow
    from wna_gui.cli import config_from_args

    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                        data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    for source, entries in dialog_configurations(model_files):
        dialog = ModelDialog(source)
        qtbot.addWidget(dialog)
        dialog.set_entries(entries, source)
        name, weights, options = dialog.request()
        window.set_model(load_model(name, weights, **options))
        window.copy_command()
        words = shlex.split(QApplication.clipboard().text())
        assert words[:2] == ["wna", "run"], words
        args = build_parser().parse_args(words[1:])
        again = _load_model_from_args(args)
        model = window.model
        assert (again.kind, again.architecture, again.input_spec, again.class_names) == \
            (model.kind, model.architecture, model.input_spec, model.class_names), (entries, words)
        assert torch.equal(again.pixel_model(MNIST), model.pixel_model(MNIST)), words
        panel = window.current_panel()
        kind = panel.active_kind()
        assert config_from_args(panel.specs[kind], args, panel.specs[kind].config(), again) == \
            panel.current_config()


def test_torchvision_download_configuration_survives_copy_as_wna_command(qtbot, tmp_path):
    """The dialog's "download the pretrained weights" (no file): the command asks for --download again, with the
    dialog's size, normalisation and class names (parsed only: nothing is downloaded here)."""
    import dataclasses

    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.get_model("mobilenet_v3_small", weights=None).state_dict(), weights)
    names = ",".join(f"c{i}" for i in range(1000))
    dialog = ModelDialog("torchvision")
    qtbot.addWidget(dialog)
    dialog.set_entries({"vision_name": "mobilenet_v3_small", "vision_download": True, "vision_size": "96",
                        "script_mean": "0.5", "script_std": "0.25,0.5,0.75", "script_classes": names},
                       "torchvision")
    spec_text, file, options = dialog.request()
    assert file is None and options["download"]
    # What the download would give: the same network without a weights file (here from a local state_dict).
    downloaded = dataclasses.replace(load_model(spec_text, str(weights), **{**options, "download": False}),
                                     weights_path=None)
    spec = spec_of("classification_images")
    args = build_parser().parse_args(shlex.split(command_for(spec, spec.config(), downloaded))[1:])
    assert (args.model, args.weights, args.download, args.input_size) == (spec_text, None, True, 96)
    assert (args.input_mean, args.input_std, args.class_names) == \
        (options["mean"], options["std"], options["class_names"])
