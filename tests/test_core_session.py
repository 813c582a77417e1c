"""Session files: exact round trip, one-line errors for every kind of bad file, atomic writes."""

import copy
import json
import os

import h5py
import numpy as np
import pytest
import torch

from wna_gui.core.classification import KIND, ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.models import build_zoo, load_default, load_zoo, serialize_state_dict
from wna_gui.core.noise import GaussianNoise
from wna_gui.core.session import FORMAT_VERSION, Session, SessionError, load_session, read_header, save_session


@pytest.fixture(scope="module")
def run_state():
    """A finished short run of the bundled model (Gaussian noise, confidence weights: non-default config)."""
    config = ClassificationImageConfig(noise=GaussianNoise(mean=0.5, std=0.3, clip=True),
                                       samples=2500, batch_size=500, seed=17, weighting="confidence")
    experiment = ClassificationImageExperiment(load_default(), config, device="cpu")
    experiment.run_to_end()
    return experiment.state


@pytest.fixture()
def session_file(tmp_path, run_state):
    return save_session(Session(load_default(), {KIND: run_state}, notes="first try"), tmp_path / "run.wna.h5")


def assert_session_error(path, *words):
    with pytest.raises(SessionError) as exc_info:
        load_session(path)
    message = str(exc_info.value)
    assert "\n" not in message, f"error message spans lines: {message!r}"
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"
    return message


def test_round_trip_keeps_every_array_the_config_and_the_weights(session_file, run_state):
    loaded = load_session(session_file)
    state = loaded.runs[KIND]
    assert state.config == run_state.config
    assert state.blocks_done == run_state.blocks_done and state.finished
    assert state.class_names == run_state.class_names and state.noise_device == "cpu"

    meta_a, arrays_a = run_state.to_record()
    meta_b, arrays_b = state.to_record()
    assert meta_a == meta_b
    assert sorted(arrays_a) == sorted(arrays_b)
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_b[key], arrays_a[key], err_msg=key)
        assert arrays_b[key].dtype == arrays_a[key].dtype, key
    assert {k for k in arrays_a if k.startswith("checkpoints/")} == {"checkpoints/1000/classes",
                                                                     "checkpoints/1000/mean"}

    assert loaded.model.weights_sha256() == load_default().weights_sha256()
    assert loaded.model.kind == "default" and loaded.notes == "first try"
    header = read_header(session_file)
    assert header["format_version"] == FORMAT_VERSION
    assert header["model"]["weights_sha256"] == loaded.model.weights_sha256()
    assert header["runs"][KIND]["kind"] == KIND
    assert header["runs"][KIND]["meta"]["samples_done"] == 2500


def test_round_trip_embeds_trained_zoo_weights(tmp_path):
    torch.manual_seed(3)
    model = load_zoo("mlp", serialize_state_dict(build_zoo("mlp").state_dict()))
    path = save_session(Session(model), tmp_path / "mlp.wna.h5")
    loaded = load_session(path)
    assert loaded.model.architecture == "mlp"
    assert loaded.model.weights_sha256() == model.weights_sha256()
    x = torch.rand(5, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(loaded.model.pixel_model(x), model.pixel_model(x))


def test_missing_file(tmp_path):
    assert_session_error(tmp_path / "nowhere.wna.h5", "not found", "nowhere.wna.h5")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.wna.h5"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    assert_session_error(path, "noise.wna.h5", "not an HDF5")


def test_random_bytes_behind_an_hdf5_signature(tmp_path):
    path = tmp_path / "fake.wna.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(50_000))
    assert_session_error(path, "fake.wna.h5", "damaged")


def test_truncated_session(session_file):
    data = session_file.read_bytes()
    session_file.write_bytes(data[: len(data) // 2])
    assert_session_error(session_file, session_file.name, "damaged")


def test_text_file(tmp_path):
    path = tmp_path / "readme.txt"
    path.write_text("hello\n")
    assert_session_error(path, "readme.txt", "not a wna-gui session")


def test_hdf5_file_that_is_not_a_session(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(10)
    assert_session_error(path, "data.h5", "not a wna-gui session")


def test_newer_format_version(session_file):
    with h5py.File(session_file, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    assert_session_error(session_file, f"format {FORMAT_VERSION + 1}", "update wna-gui")


def test_unknown_experiment_kind(session_file):
    with h5py.File(session_file, "r+") as f:
        f["runs"][KIND].attrs["kind"] = "time_travel"
    assert_session_error(session_file, "time_travel", "update wna-gui")


def test_damaged_experiment_record(session_file):
    with h5py.File(session_file, "r+") as f:
        del f["runs"][KIND]["accumulators/odd/m2"]
    assert_session_error(session_file, KIND, "damaged")


def test_altered_weights_are_detected(session_file):
    with h5py.File(session_file, "r+") as f:
        description = json.loads(f["model"].attrs["description"])
        description["weights_sha256"] = "0" * 64
        f["model"].attrs["description"] = json.dumps(description)
        del f["model"].attrs["digest"]  # as in a file written before digests: the weights' own check remains
    assert_session_error(session_file, "sha256")


def exploding_state(state):
    """A copy of an experiment state whose serialisation fails halfway through a save."""
    exploding = copy.copy(state)

    def to_record():
        raise RuntimeError("disk on fire")

    exploding.to_record = to_record
    return exploding


def test_a_failed_save_leaves_the_old_file_intact_and_no_temp_file(session_file, run_state):
    before = session_file.read_bytes()
    broken = Session(load_default(), {KIND: run_state, "exploding": exploding_state(run_state)})
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_session(broken, session_file)
    assert session_file.read_bytes() == before
    assert sorted(p.name for p in session_file.parent.iterdir()) == [session_file.name]
    assert load_session(session_file).runs[KIND].blocks_done == run_state.blocks_done


@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")
def test_torchscript_session_does_not_depend_on_its_source_file(tmp_path):
    # The weights are serialised from the loaded network: moving or replacing the original
    # .pt file must neither break a later save nor put other weights in the session.
    from wna_gui.core.models import load_model

    script = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(load_default().net), str(script))
    model = load_model("torchscript", script, input_shape=(1, 28, 28))
    script.unlink()
    path = save_session(Session(model, {}), tmp_path / "ts.h5")
    loaded = load_session(path)
    assert loaded.model.weights_sha256() == model.weights_sha256()


def test_session_files_follow_the_umask_like_any_document(session_file):
    umask = os.umask(0)
    os.umask(umask)
    assert session_file.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_flipped_byte_inside_the_data_is_detected(session_file):
    with h5py.File(session_file) as f:
        dataset = f[f"runs/{KIND}/accumulators/even/mean"]
        offset = dataset.id.get_chunk_info(0).byte_offset
    with open(session_file, "r+b") as fh:
        fh.seek(offset + 100)
        byte = fh.read(1)
        fh.seek(offset + 100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(SessionError, match="damaged"):
        load_session(session_file)


def test_several_runs_of_one_kind_keep_their_names_and_order(tmp_path, run_state):
    session = Session(load_default())
    assert session.new_run_name(KIND) == KIND
    session.runs[KIND] = run_state
    name = session.new_run_name(KIND)
    assert name == f"{KIND}-2"
    session.runs[name] = copy.deepcopy(run_state)
    session.runs[name].blocks_done = 2
    loaded = load_session(save_session(session, tmp_path / "two.wna.h5"))
    assert list(loaded.runs) == [KIND, f"{KIND}-2"]
    assert list(loaded.runs_of(KIND)) == [KIND, f"{KIND}-2"] and loaded.runs_of("psychometric") == {}
    assert loaded.run_of(KIND).blocks_done == run_state.blocks_done  # the run named after its kind
    assert loaded.runs[f"{KIND}-2"].blocks_done == 2 and loaded.run_of("psychometric") is None
    del loaded.runs[KIND]
    assert loaded.run_of(KIND).blocks_done == 2  # else the kind's last run
