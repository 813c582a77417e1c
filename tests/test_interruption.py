"""The interruption contract, for every registered experiment: a `wna run` process killed with SIGKILL at a
random point leaves a session that opens, and `wna run --resume` completes it to the arrays of an
uninterrupted run, bit for bit, with no temp file left behind. (A torchrun worker killed: test_distributed.py.)

How each kind continues (docs/architecture.md, "Interruption"): from its last autosave, taken here after every
unit of work. Training stages resume at a checkpoint: backdoor after each epoch of each model (weights, Adam
state, batch-order generator), defence after every chunk of 20 steps or 1,000 sleep steps (network, momentum
buffers, position); both are killed inside a training stage here. Two-class images train their binary CNN
before the run's first save, so a kill during it loses only that training, which a new run repeats
deterministically: the reference run here trains its own in this process and the weights must match.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import socket
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from smoke import SMALL, input_session, model, tiny_inputs, tiny_run
from test_contract import cli_flags

from wna_gui.cli import main
from wna_gui.core.defences import TRAIN_CHUNK
from wna_gui.core.models import LoadedModel, build_zoo, load_model, serialize_state_dict
from wna_gui.core.registry import EXPERIMENTS
from wna_gui.core.session import Session, load_session, remove_stale_temp_files, save_session

pytestmark = pytest.mark.slow  # processes killed at random points, every kind

# Beyond test_contract.SMALL: settings whose run has a training stage of several units to be killed in.
KILL = {
    # One model trained for two epochs: a kill after the first resumes the second from its checkpoint.
    "backdoor": dict(clean="session", epochs=2),
    # 30 training steps (chunks of 20 and 10), then the sleep phase: a kill mid-stage resumes at a chunk.
    "defence": dict(batch_size=10),
}
# Units done at the save after which these kinds are killed (other kinds: a seeded random save), so that the
# kill lands inside a training stage: after backdoor's first epoch, defence's first chunk of steps.
TARGET = {"backdoor": 1, "defence": TRAIN_CHUNK}
# The session's model where the bundled CNN would make the test slow (backdoor trains copies of it).
ARCHITECTURE = {"backdoor": "mlp"}
# Meta entries that measure the machine, not the run.
TIMING = {"seconds"}


def settings(kind: str) -> dict:
    return {**SMALL[kind], **KILL.get(kind, {})}


def session_model(kind: str, folder: Path) -> tuple[LoadedModel, list[str]]:
    """The model a run of ``kind`` is made on, and the `wna run` flags that load it."""
    architecture = ARCHITECTURE.get(kind)
    if architecture is None:
        return model(), []
    weights = folder / f"{architecture}.pt"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        weights.write_bytes(serialize_state_dict(build_zoo(architecture).state_dict()))
    return load_model(architecture, weights), ["--model", architecture, "--weights", str(weights)]


def reference_run(spec, on: LoadedModel):
    """(state, [(units done, seconds) after each unit]) of an uninterrupted run of ``spec`` on model ``on``."""
    config = dataclasses.replace(spec.config(), **settings(spec.kind))
    experiment = spec.experiment(on, config, device="cpu", **tiny_inputs(spec.kind))
    start = time.perf_counter()
    boundaries = []
    # An autosave after every unit marks where the unit ended.
    for _ in experiment.run(autosave=lambda: boundaries.append((experiment.state.progress_done,
                                                                time.perf_counter() - start)),
                            autosave_seconds=1e-9):
        pass
    return experiment.state, boundaries


def _without_timing(meta):
    if isinstance(meta, dict):
        return {k: _without_timing(v) for k, v in meta.items() if k not in TIMING}
    if isinstance(meta, list):
        return [_without_timing(v) for v in meta]
    return meta


def assert_same_run(state, reference) -> None:
    """The same record (arrays bit for bit, meta but for timings) and the same weights of every model it made."""
    (meta, arrays), (meta_ref, arrays_ref) = state.to_record(), reference.to_record()
    assert _without_timing(meta) == _without_timing(meta_ref)
    assert sorted(arrays) == sorted(arrays_ref)
    for key, array in arrays_ref.items():
        np.testing.assert_array_equal(arrays[key], array, err_msg=key)
    made, made_ref = getattr(state, "made_models", dict)(), getattr(reference, "made_models", dict)()
    assert sorted(made) == sorted(made_ref)
    for name, model_ref in made_ref.items():
        weights = made[name].net.state_dict()
        for key, tensor in model_ref.net.state_dict().items():
            assert torch.equal(weights[key].cpu(), tensor.cpu()), f"model {name!r}: {key}"


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


@pytest.fixture(scope="module")
def processes():
    """Starts `wna run` processes: each a fresh process forked from a server that has imported wna_gui (and
    torch) once, so a run starts in a fraction of a second instead of the seconds an import takes."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["wna_gui.cli", "torch._dynamo"])  # torch's optimisers import _dynamo
    return context


def kill_after(process, out: Path, name: str, target: int, delay: float) -> None:
    """SIGKILL ``process`` ``delay`` seconds after it first saved run ``name`` with ``target`` units done.

    Each time ``out`` is replaced the writer is stopped (SIGSTOP) while the file is read, so a fast unit cannot
    slip past unseen.
    """
    seen = _inode(out)  # a session given with --session is there before the run
    deadline = time.monotonic() + 120
    while process.is_alive() and time.monotonic() < deadline:
        inode = _inode(out)
        if inode is None or inode == seen:
            time.sleep(0.002)
            continue
        seen = inode
        os.kill(process.pid, signal.SIGSTOP)
        run = load_session(out).runs.get(name)
        os.kill(process.pid, signal.SIGCONT)
        if run is not None and not run.finished and run.progress_done >= target:
            time.sleep(delay)
            process.kill()
            return
    raise AssertionError(f"the run ended or stalled before {target} units were saved (rc {process.exitcode})")


def _temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


@pytest.mark.parametrize("spec", EXPERIMENTS, ids=[spec.kind for spec in EXPERIMENTS])
def test_a_run_killed_at_a_random_point_resumes_to_the_arrays_of_an_uninterrupted_run(spec, processes, tmp_path):
    on, model_flags = session_model(spec.kind, tmp_path)
    state_ref, boundaries = reference_run(spec, on)
    total = state_ref.progress_total
    targets = sorted({done for done, _ in boundaries[:-1] if 0 < done < total})
    assert targets, f"a {spec.kind} test run of one unit cannot be cut: give it several units in KILL"
    rng = np.random.default_rng(zlib.crc32(spec.kind.encode()))
    target = TARGET.get(spec.kind) or int(rng.choice(targets))
    assert target in targets
    # Killed in the unit after the save that reached the target, at a random point of its first half.
    after = next(i for i, (done, _) in enumerate(boundaries) if done >= target)
    delay = rng.uniform(0, 0.5) * (boundaries[after + 1][1] - boundaries[after][1])

    out = tmp_path / "s.h5"
    where = ["--out", str(out)]
    if spec.requires:  # the runs it reads are in the session it writes into
        save_session(input_session(spec.kind), out)
        where = ["--session", str(out)]
    process = processes.Process(target=main, args=(["run", spec.command, *model_flags,
                                                      *cli_flags(spec, settings(spec.kind)), "--device", "cpu",
                                                      "--quiet", "--autosave-seconds", "0.001", *where],))
    process.start()
    try:
        kill_after(process, out, spec.kind, target, delay)
    finally:
        process.kill()
        process.join(60)
    assert process.exitcode == -signal.SIGKILL

    cut = load_session(out).runs[spec.kind]  # the file opens after the kill
    assert target <= cut.progress_done < total and not cut.finished
    assert main(["run", spec.command, "--resume", str(out), "--device", "cpu", "--quiet",
                 "--autosave-seconds", "0"]) == 0
    assert _temp_files(tmp_path) == []  # one the kill left mid-save is removed by the next save
    resumed = load_session(out).runs[spec.kind]
    assert resumed.finished
    assert_same_run(resumed, state_ref)


def save_forever(path: Path) -> None:
    session = load_session(path)
    while True:
        save_session(session, path)


def test_a_writer_killed_mid_save_leaves_the_old_file_and_its_temp_file_goes_at_the_next_save(processes, tmp_path):
    out = tmp_path / "s.h5"
    save_session(Session(model(), {"classification_images": tiny_run("classification_images")[0]}), out)
    # A writer saving over and over, stopped and killed the moment its temp file is seen.
    writer = processes.Process(target=save_forever, args=(out,))
    writer.start()
    deadline = time.monotonic() + 60
    try:
        while writer.is_alive() and time.monotonic() < deadline:
            if _temp_files(tmp_path):
                os.kill(writer.pid, signal.SIGSTOP)
                if _temp_files(tmp_path):  # still there with the writer frozen: it dies mid-write
                    break
                os.kill(writer.pid, signal.SIGCONT)
    finally:
        writer.kill()
        writer.join(30)
    left = _temp_files(tmp_path)
    assert len(left) == 1 and f".{writer.pid}@" in left[0].name, "the writer was not caught mid-save"
    session = load_session(out)  # a whole file: the last save before the interrupted one
    assert session.runs["classification_images"].finished

    # A live writer's temp file (this process's) is never taken for a dead one's.
    live = tmp_path / f".s.h5.{os.getpid()}@{socket.gethostname()}.abcdefgh.tmp"
    live.write_bytes(b"")
    save_session(session, out)
    assert _temp_files(tmp_path) == [live]
    live.unlink()
    assert remove_stale_temp_files(out) == []
