"""Own images: a folder of class sub-folders or an .npz, wherever real images are taken."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from wna_gui.cli import main
from wna_gui.core.data import DatasetError, bundled_mnist, load_dataset
from wna_gui.core.images import ImageSet, fit_to_model
from wna_gui.core.models import MNIST_CLASSES

PER_CLASS = 12
FAST_ROBUSTNESS = ["--distortions", "noise", "--noise-levels", "0,0.5", "--repetitions", "1", "--boot", "0",
                   "--device", "cpu", "--quiet", "--autosave-seconds", "0"]


def digits(per_class: int = PER_CLASS):
    """(uint8 images (N, 28, 28), labels) of the first ``per_class`` bundled digits of each class."""
    sample = bundled_mnist("heldout")
    keep = torch.cat([torch.nonzero(sample.labels == c).ravel()[:per_class] for c in range(10)])
    pixels = (sample.images[keep, 0] * 255).round().to(torch.uint8).numpy()
    return pixels, sample.labels[keep].numpy()


def write_folder(root, pixels, labels):
    for i, (image, label) in enumerate(zip(pixels, labels)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i:03d}.png")
    return root


def robustness(data: list[str], out, images: int = 100) -> int:
    return main(["run", "robustness", *data, "--images", str(images), "--out", str(out), *FAST_ROBUSTNESS])


def images_of_run(out, capsys) -> dict:
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["experiments"]["robustness"]


def test_a_folder_of_pngs_reads_back_the_digits_it_was_written_from(tmp_path):
    pixels, labels = digits()
    images = load_dataset("folder", write_folder(tmp_path / "d", pixels, labels))
    assert images.class_names == MNIST_CLASSES and len(images) == 10 * PER_CLASS
    order = np.argsort(labels, kind="stable")  # folders are read class by class
    np.testing.assert_array_equal((images.images[:, 0].numpy() * 255).round(), pixels[order])
    train, heldout = load_dataset("folder", tmp_path / "d", train=True), load_dataset("folder", tmp_path / "d",
                                                                                      train=False)
    assert len(train) + len(heldout) == len(images) and len(heldout) == len(images) // 5
    assert sorted(np.bincount(heldout.labels.numpy()).tolist()) == [2] * 6 + [3] * 4  # stratified 24 of 120
    assert not set(map(bytes, train.images.numpy())) & set(map(bytes, heldout.images.numpy()))


def test_fitting_to_a_colour_model_copies_grey_and_resizes_bilinearly():
    pixels, labels = digits(1)
    bundled = fit_to_model(bundled_mnist("heldout").subset(slice(0, 5)), (3, 32, 32))  # not own: unchanged
    assert bundled.images.shape[1:] == (1, 28, 28)
    grey = ImageSet("own", torch.from_numpy(pixels[:, None] / 255.0).float(), torch.from_numpy(labels), (), own=True)
    colour = fit_to_model(grey, (3, 32, 32), MNIST_CLASSES)
    assert colour.images.shape == (10, 3, 32, 32) and colour.class_names == MNIST_CLASSES
    assert torch.equal(colour.images[:, 0], colour.images[:, 2]) and colour.images.min() >= 0
    assert colour.images.max() <= 1
    back = fit_to_model(ImageSet("own", colour.images, colour.labels, (), own=True), (1, 32, 32), MNIST_CLASSES)
    torch.testing.assert_close(back.images[:, 0], colour.images[:, 0])  # luma of equal R, G, B is that grey


def test_robustness_runs_on_a_folder_of_pngs_and_on_an_npz(tmp_path, capsys):
    pixels, labels = digits()
    folder = write_folder(tmp_path / "d", pixels, labels)
    assert robustness(["--dataset", "folder", "--data-dir", str(folder)], tmp_path / "f.h5") == 0
    entry = images_of_run(tmp_path / "f.h5", capsys)
    facts = entry["thresholds"]["noise"]["model"]
    assert facts["clean_accuracy"] > 0.8
    file = tmp_path / "digits.npz"
    np.savez(file, x=pixels, y=labels)
    assert robustness(["--dataset", "npz", "--data-dir", str(file)], tmp_path / "n.h5") == 0
    assert images_of_run(tmp_path / "n.h5", capsys)["thresholds"]["noise"]["model"]["clean_accuracy"] == \
        facts["clean_accuracy"]  # the same 100 digits, read from either


def one_line_error(capsys, data, tmp_path) -> str:
    capsys.readouterr()
    assert robustness(data, tmp_path / "bad.h5", images=10) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def test_bad_folders_are_one_line_errors(tmp_path, capsys):
    pixels, labels = digits(2)
    args = ["--dataset", "folder", "--data-dir"]
    assert "does not exist" in one_line_error(capsys, [*args, str(tmp_path / "none")], tmp_path)
    mixed = write_folder(tmp_path / "mixed", pixels, labels)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(mixed / "3" / "big.png")
    assert "must share one size" in one_line_error(capsys, [*args, str(mixed)], tmp_path)
    empty = write_folder(tmp_path / "empty", pixels, labels)
    (empty / "zz").mkdir()
    assert f"{empty / 'zz'} holds no images" in one_line_error(capsys, [*args, str(empty)], tmp_path)
    junk = write_folder(tmp_path / "junk", pixels, labels)
    (junk / "4" / ".DS_Store").write_bytes(b"x")  # hidden: skipped
    (junk / "4" / "notes.txt").write_text("x")
    assert "notes.txt is not an image" in one_line_error(capsys, [*args, str(junk)], tmp_path)
    extra = write_folder(tmp_path / "extra", pixels, labels)
    write_folder(extra, pixels[:1], ["cat"])
    assert "11 classes" in one_line_error(capsys, [*args, str(extra)], tmp_path)


def test_bad_npz_files_are_one_line_errors(tmp_path, capsys):
    pixels, labels = digits(2)
    args = ["--dataset", "npz", "--data-dir"]
    cases = {"label 10 is outside the model's 10 classes": dict(x=pixels, y=np.where(labels == 9, 10, labels)),
             "NaN": dict(x=np.where(pixels > 0, np.nan, 0.0), y=labels),
             "must lie in [0, 1]": dict(x=pixels.astype(np.float32), y=labels),
             "no array 'y'": dict(x=pixels)}
    for i, (message, arrays) in enumerate(cases.items()):
        np.savez(tmp_path / f"{i}.npz", **arrays)
        assert message in one_line_error(capsys, [*args, str(tmp_path / f"{i}.npz")], tmp_path)
    assert "does not exist" in one_line_error(capsys, [*args, str(tmp_path / "none.npz")], tmp_path)


def test_download_offline_says_what_to_fetch_where(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error network unreachable>")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetError, match=r"could not download mnist into .*offline, fetch the four MNIST .*/raw"):
        load_dataset("mnist", tmp_path, download=True)


def run(command: str, data: list[str], out, *settings: str) -> int:
    return main(["run", command, *data, "--device", "cpu", "--quiet", "--autosave-seconds", "0", "--out", str(out),
                 *settings])


def test_backdoor_trains_on_colour_pngs_fitted_to_the_grey_model(tmp_path, capsys):
    pixels, labels = digits(10)
    folder = tmp_path / "rgb"
    for i, (image, label) in enumerate(zip(pixels, labels)):  # 32×32 RGB: the stated rule makes them 28×28 grey
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((32, 32), Image.BILINEAR).convert("RGB").save(folder / str(label) / f"{i}.png")
    assert run("backdoor", ["--dataset", "folder", "--data-dir", str(folder)], tmp_path / "b.h5",
               "--epochs", "1", "--map-samples", "1000") == 0
    from wna_gui.core.session import load_session

    state = load_session(tmp_path / "b.h5").runs["backdoor"]
    assert state.finished and tuple(state.image_shape) == (1, 28, 28)
    # evaluated on the held-out fifth of the 100 images: 2 of each class
    confusion = np.asarray(state.results["confusion_clean_clean"])
    assert confusion.sum() == 20 and (confusion.sum(1) == 2).all()


def test_defence_trains_on_an_npz_with_its_own_class_names(tmp_path, capsys):
    pixels, labels = digits(10)
    keep = labels < 3
    file = tmp_path / "three.npz"
    np.savez(file, x=pixels[keep], y=labels[keep], class_names=np.array(["zero", "one", "two"]))
    assert run("defence", ["--dataset", "npz", "--data-dir", str(file)], tmp_path / "d.h5",
               "--method", "control", "--steps", "20", "--eval-images", "6") == 0
    from wna_gui.core.session import load_session

    trained = load_session(tmp_path / "d.h5").models["control"]
    assert trained.class_names == ("zero", "one", "two") and tuple(trained.input_spec.shape) == (1, 28, 28)


def test_structured_noise_is_fitted_to_ones_own_images(tmp_path):
    pixels, labels = digits(10)
    folder = write_folder(tmp_path / "d", pixels, labels)
    assert run("classification-images", [], tmp_path / "c.h5", "--samples", "1000", "--noise", "gabor-pca",
               "--noise-components", "20", "--noise-fit-data", "folder", "--noise-fit-dir", str(folder)) == 0
    from wna_gui.core.session import load_session

    used = load_session(tmp_path / "c.h5").runs["classification_images"].config.noise
    assert used.fit_data == "folder" and int(used.fitted["fit_count"]) == 80  # the training 4/5 of 100 digits


def test_own_data_errors_are_one_line_in_training_experiments_too(tmp_path, capsys):
    pixels, labels = digits(2)
    junk = write_folder(tmp_path / "junk", pixels, labels)
    (junk / "4" / "notes.txt").write_text("x")
    for command, settings in (("backdoor", ["--epochs", "1"]), ("defence", ["--steps", "1"])):
        capsys.readouterr()
        assert run(command, ["--dataset", "folder", "--data-dir", str(junk)], tmp_path / f"{command}.h5",
                   *settings) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and "notes.txt is not an image" in error, error
        assert not (tmp_path / f"{command}.h5").exists()  # refused before anything was saved
    np.savez(tmp_path / "eleven.npz", x=pixels, y=np.where(labels == 9, 10, labels))
    capsys.readouterr()
    assert run("backdoor", ["--dataset", "npz", "--data-dir", str(tmp_path / "eleven.npz")], tmp_path / "b.h5") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "label 10 is outside the model's 10 classes" in error, error
    capsys.readouterr()
    assert run("classification-images", [], tmp_path / "c.h5", "--samples", "1000", "--noise", "gabor-pca",
               "--noise-fit-data", "folder", "--noise-fit-dir", str(junk)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "notes.txt is not an image" in error, error


def test_run_download_offline_says_what_to_fetch_where(tmp_path, capsys, monkeypatch):
    # The network refused for real (a proxy on a closed local port): no mock of torchvision, no internet touched.
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    data = ["--dataset", "mnist", "--data-dir", str(tmp_path / "mnist")]
    capsys.readouterr()
    assert robustness(data, tmp_path / "r.h5") == 2  # without --download: where it looked, and to pass it
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "mnist not found in folder" in error and "--download" in error
    assert robustness([*data, "--download"], tmp_path / "r.h5") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert f"could not download mnist into {tmp_path / 'mnist'}" in error and "MNIST/raw" in error
    # the structured noise's fit data is fetched too, before any work
    assert run("classification-images", [], tmp_path / "c.h5", "--noise", "gabor-pca", "--noise-fit-data",
               "fashion-mnist", "--noise-fit-dir", str(tmp_path / "fashion"), "--download") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "could not download fashion-mnist" in error and "FashionMNIST/raw" in error
    assert not (tmp_path / "c.h5").exists()


def test_the_apps_data_folder_fields_browse_for_a_file_only_for_npz(qtbot, tmp_path):
    from wna_gui.app.forms import SettingsForm
    from wna_gui.core.backdoor import BackdoorConfig
    from wna_gui.core.classification import ClassificationImageConfig

    form = SettingsForm(BackdoorConfig)
    qtbot.addWidget(form)
    folder = form.editor("data_dir")
    for dataset, wants_file in (("folder", False), ("npz", True), ("mnist", False)):
        form.set_values({"dataset": dataset, "data_dir": str(tmp_path / "d")})
        assert folder.wants_file() == wants_file
        assert form.config() == BackdoorConfig(dataset=dataset, data_dir=str(tmp_path / "d"))
    noise_form = SettingsForm(ClassificationImageConfig)
    qtbot.addWidget(noise_form)
    values = noise_form.values()
    noise_form.set_values({**values, "noise": {**values["noise"], "kind": "gabor-pca", "fit_data": "npz",
                                               "fit_data_dir": str(tmp_path / "x.npz")}})
    assert noise_form.editor("noise_param:fit_data_dir").wants_file()
    noise = noise_form.config().noise
    assert (noise.kind, noise.fit_data, noise.fit_data_dir) == ("gabor-pca", "npz", str(tmp_path / "x.npz"))
