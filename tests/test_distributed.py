"""Scale-out: done-sets of blocks, the block API any engine uses, and `torchrun ... wna run` (gloo on CPU).

A run split over workers, or cut off and resumed with another number of them, must give the maps of one
process (to 1e-12; merged in block order they are the same float64 operations). The torchrun tests start real
worker processes through torch's own launcher (``python -m torch.distributed.run``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from wna_gui.cli import main
from wna_gui.core.classification import KIND, ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.distributed import BlockSet, block_statistics, merge_statistics, pending_blocks, split_blocks
from wna_gui.core.models import load_default
from wna_gui.core.noise import GaussianNoise, UniformNoise
from wna_gui.core.session import load_session, read_header, save_session

V2 = Path(__file__).parent / "data" / "session-classification-v2.h5"
TOL = 1e-12


@pytest.fixture(scope="module")
def model():
    return load_default()


def run_alone(model, config):
    experiment = ClassificationImageExperiment(model, config, device="cpu")
    experiment.run_to_end()
    return experiment.state


def assert_same_run(state, reference):
    """The same blocks, statistics and maps as ``reference`` (to 1e-12), and the same convergence records."""
    assert state.done == reference.done and state.finished == reference.finished
    assert state.samples_done == reference.samples_done
    mine, theirs = state.statistics(), reference.statistics()
    assert sorted(mine) == sorted(theirs)
    for key, value in theirs.items():
        np.testing.assert_allclose(mine[key], value, rtol=0, atol=TOL, err_msg=key)
    a, b = state.snapshot(), reference.snapshot()
    np.testing.assert_array_equal(a.counts, b.counts)
    for estimator in b.estimators:
        for view in ("mean", "centered", "zmap"):
            np.testing.assert_allclose(getattr(a.maps_of(estimator), view), getattr(b.maps_of(estimator), view),
                                       rtol=TOL, atol=TOL, err_msg=f"{estimator} {view}")


# --- done-sets ---

def test_a_done_set_keeps_ranges_and_refuses_a_block_twice():
    done = BlockSet.prefix(4)
    done.update(BlockSet.of([7, 5, 6]))
    assert done.ranges == ((0, 4), (5, 8)) and len(done) == 7 and 4 not in done and 6 in done
    assert list(done.pending(10)) == [4, 8, 9] and done.count_below(6) == 5 and done.end == 8
    assert BlockSet.from_array(done.to_array()) == done
    with pytest.raises(ValueError, match="block 6 is already done"):
        done.add(6)
    with pytest.raises(ValueError, match="overlap"):
        BlockSet([(0, 3), (2, 5)])
    # Three workers share the pending blocks, each block going to exactly one of them.
    shares = [list(split_blocks(done.pending(20), 3, w)) for w in range(3)]
    assert sorted(sum(shares, [])) == list(done.pending(20)) and shares[0] == [4, 10, 13, 16, 19]


# --- the block API (what a Ray or Dask adapter calls) ---

def test_blocks_run_anywhere_in_any_grouping_merge_into_one_run(model):
    config = ClassificationImageConfig(samples=330, batch_size=50, seed=7, gradient_every=6,
                                       estimators=("hard", "logit", "prob", "gradient", "signal"))
    reference = run_alone(model, config)
    experiment = ClassificationImageExperiment(model, config, device="cpu")
    # Uneven groups, merged out of order: a worker with blocks 6 (the partial last) and 1, one with 0, 3, 4, 5, …
    parts = [block_statistics(experiment, blocks) for blocks in ([6, 1], [0, 3, 4, 5], [2])]
    assert experiment.state.blocks_done == 0  # statistics come back; the run changes only when merged
    for statistics in (parts[1], parts[2], parts[0]):
        merge_statistics(experiment.state, statistics)
    assert experiment.state.finished and list(pending_blocks(experiment.state)) == []
    assert_same_run(experiment.state, reference)
    with pytest.raises(ValueError, match="already done"):
        merge_statistics(experiment.state, parts[2])
    with pytest.raises(ValueError, match="already done"):
        block_statistics(experiment, [3])


def test_a_run_with_gaps_continues_exactly_and_saves_its_done_set(model, tmp_path):
    config = ClassificationImageConfig(samples=700, batch_size=100, seed=2, estimators=("hard", "logit"))
    reference = run_alone(model, config)
    experiment = ClassificationImageExperiment(model, config, device="cpu")
    merge_statistics(experiment.state, block_statistics(experiment, [0, 2, 3, 6]))  # a worker cut off mid-run
    state = experiment.state
    assert state.done == BlockSet.of([0, 2, 3, 6]) and state.samples_done == 400 and not state.finished
    session = load_session(V2)  # any session file with the bundled model will do as a container
    session.runs = {KIND: state}
    loaded = load_session(save_session(session, tmp_path / "gaps.h5")).runs[KIND]
    assert loaded.done == state.done and read_header(tmp_path / "gaps.h5")["runs"][KIND]["meta"]["blocks_done"] == 4
    resumed = ClassificationImageExperiment(model, state=loaded, device="cpu")
    assert list(resumed.pending()) == [1, 4, 5]
    resumed.run_to_end()
    assert_same_run(resumed.state, reference)


def test_an_old_record_counts_its_blocks_as_a_prefix_and_splits_like_a_new_one():
    session = load_session(V2)
    model, state = session.model, session.runs[KIND]  # record version 2: a count of blocks done, no done-set
    assert state.done == BlockSet.prefix(6) and state.samples_done == 3000
    state.with_budget(4500)
    pending = list(pending_blocks(state))
    assert pending == [6, 7, 8]
    experiment = ClassificationImageExperiment(model, state=state, device="cpu")
    for worker in range(2):
        merge_statistics(state, block_statistics(experiment, split_blocks(pending, 2, worker)))
    assert state.finished
    reference = run_alone(model, replace(state.config, samples=4500))
    np.testing.assert_array_equal(state.total().count, reference.total().count)
    np.testing.assert_allclose(state.total().mean, reference.total().mean, rtol=0, atol=TOL)


def test_receptive_field_blocks_merge_into_one_run_and_old_records_count_a_prefix(model, tmp_path):
    import h5py

    from wna_gui.core.session import Session
    from wna_gui.core.sta import KIND as STA, STAConfig, STAExperiment

    config = STAConfig(layer="conv2", samples=650, batch_size=100, seed=3, stc_samples=0, map_samples=250)
    reference = STAExperiment(model, config, device="cpu")
    reference.run_to_end()
    experiment = STAExperiment(model, config, device="cpu")
    for blocks in ([6, 1], [0, 3, 4], [2, 5]):
        merge_statistics(experiment.state, block_statistics(experiment, blocks))
    assert experiment.state.blocks_done == 7 and not experiment.state.finished  # the real-digit maps are left
    experiment.run_to_end()
    a, b = experiment.state.snapshot(), reference.state.snapshot()
    for view in ("sta", "unnormalised", "zmap"):
        np.testing.assert_allclose(getattr(a, view), getattr(b, view), rtol=TOL, atol=TOL, err_msg=view)
    np.testing.assert_allclose(a.maps.noise[0], b.maps.noise[0], rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(a.maps.noise_counts, b.maps.noise_counts)

    # A record of version 1 (a count of blocks) opens with blocks 0 … n − 1 done.
    path = save_session(Session(model, runs={STA: reference.state}), tmp_path / "sta.h5")
    with h5py.File(path, "r+") as f:
        del f[f"runs/{STA}/done_blocks"]
        f[f"runs/{STA}"].attrs["record_version"] = 1
        for digest in ("digest", "arrays_sha256"):  # a version 1 record was written before digests
            del f[f"runs/{STA}"].attrs[digest]
    assert load_session(path).runs[STA].done == BlockSet.prefix(7)


# --- torchrun ---

def wna_under_torchrun(workers: int, *args: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(workers),
               "--standalone", "--no-python", str(Path(sys.executable).parent / "wna"), "run", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


CLI_CONFIG = ["classification-images", "--samples", "2100", "--batch-size", "200", "--seed", "5", "--estimators",
              "hard,logit,prob,signal"]


@pytest.mark.slow
def test_three_workers_give_the_maps_of_one_process(model, tmp_path):
    out = tmp_path / "three.h5"
    code, stdout, stderr = finish(wna_under_torchrun(3, *CLI_CONFIG, "--out", str(out)))
    assert code == 0, stderr[-2000:]
    # Rank 0 alone reports; 11 blocks (the last of 100 samples) over 3 workers: an uneven split.
    assert stdout.count("wrote ") == 1 and "on 3 processes (cpu, torchrun)" in stdout
    config = ClassificationImageConfig(samples=2100, batch_size=200, seed=5,
                                       estimators=("hard", "logit", "prob", "signal"))
    state = load_session(out).runs[KIND]
    reference = run_alone(model, config)
    assert_same_run(state, reference)
    assert state.reliability_samples == reference.reliability_samples  # bookkeeping as one process keeps it
    assert sorted(state.checkpoint_maps) == sorted(reference.checkpoint_maps) == [1000]


def wait_for_first_blocks(process, out: Path, seconds: float = 180) -> None:
    """Until the session at ``out`` records a finished block (or the job ends)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if read_header(out)["runs"][KIND]["meta"]["blocks_done"] > 0:
                return
        except Exception:  # not written yet (or being replaced)
            pass
        time.sleep(0.02)


@pytest.mark.slow
def test_a_run_cut_off_under_two_workers_resumes_under_three_as_one_run(model, tmp_path):
    out = tmp_path / "cut.h5"
    args = ["classification-images", "--samples", "4000", "--batch-size", "40", "--seed", "9", "--estimators",
            "hard,prob", "--autosave-seconds", "0.01"]
    process = wna_under_torchrun(2, *args, "--out", str(out), start_new_session=True)
    wait_for_first_blocks(process, out)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C at the terminal: torchrun and both workers
    code, _, stderr = finish(process)
    assert "interrupted after" in stderr and "--resume" in stderr
    cut = load_session(out).runs[KIND]
    assert 0 < cut.samples_done < 4000, "the run was cut off before its end"

    code, _, stderr = finish(wna_under_torchrun(3, "classification-images", "--resume", str(out), "--quiet"))
    assert code == 0, stderr[-2000:]
    config = ClassificationImageConfig(samples=4000, batch_size=40, seed=9, estimators=("hard", "prob"))
    assert_same_run(load_session(out).runs[KIND], run_alone(model, config))


def _workers(launcher: int) -> dict[int, int]:
    """rank → pid of the workers torchrun (process ``launcher``) started (Linux /proc)."""
    workers = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = next((line[5:] for line in environ if line.startswith(b"RANK=")), None)
            if rank is not None:
                workers[int(rank)] = int(pid)
    return workers


@pytest.mark.slow
@pytest.mark.parametrize("killed", [0, 1], ids=["writer-killed", "other-killed"])
def test_a_worker_killed_stops_the_job_within_a_minute_and_one_process_resumes_the_run(model, tmp_path, killed):
    out = tmp_path / "killed.h5"
    args = ["classification-images", "--samples", "4000", "--batch-size", "40", "--seed", "4", "--estimators",
            "hard,prob", "--autosave-seconds", "0.01"]
    process = wna_under_torchrun(2, *args, "--out", str(out))
    wait_for_first_blocks(process, out)
    workers = _workers(process.pid)
    assert sorted(workers) == [0, 1], "both workers run"
    os.kill(workers[killed], signal.SIGKILL)
    killed_at = time.monotonic()
    code, _, stderr = finish(process, timeout=60)
    assert code != 0 and time.monotonic() - killed_at < 60
    assert not Path(f"/proc/{workers[1 - killed]}").exists(), "the other worker is gone"
    if killed == 1:  # the writer says why it stopped, in one line
        assert "wna: error: lost another torchrun worker mid-run" in stderr and "internal error" not in stderr

    cut = load_session(out).runs[KIND]  # the file opens whenever the kill came
    assert 0 < cut.samples_done < 4000
    assert main(["run", "classification-images", "--resume", str(out), "--device", "cpu", "--quiet",
                 "--autosave-seconds", "0"]) == 0
    assert not list(tmp_path.glob(".*.tmp"))  # one left by a writer killed mid-save goes at the next save
    config = ClassificationImageConfig(samples=4000, batch_size=40, seed=4, estimators=("hard", "prob"))
    assert_same_run(load_session(out).runs[KIND], run_alone(model, config))


# --- CUDA (skipped without a GPU) ---

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("noise", [UniformNoise(), GaussianNoise(mean=0.5, std=0.2)], ids=["uniform", "gaussian"])
def test_noise_drawn_on_the_gpu_equals_noise_drawn_on_the_cpu_bit_for_bit(noise):
    for block in (0, 1, 12345):
        on_cpu = noise.block(3, block, 1000, (3, 32, 32), torch.device("cpu"))
        on_gpu = noise.block(3, block, 1000, (3, 32, 32), torch.device("cuda")).cpu()
        assert torch.equal(on_cpu, on_gpu)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_under_nccl_give_the_maps_of_one_gpu(model, tmp_path):
    out = tmp_path / "gpus.h5"
    code, _, stderr = finish(wna_under_torchrun(2, *CLI_CONFIG, "--device", "auto", "--out", str(out)))
    assert code == 0, stderr[-2000:]
    config = ClassificationImageConfig(samples=2100, batch_size=200, seed=5,
                                       estimators=("hard", "logit", "prob", "signal"))
    experiment = ClassificationImageExperiment(model, config, device="cuda:0")
    experiment.run_to_end()
    assert_same_run(load_session(out).runs[KIND], experiment.state)
