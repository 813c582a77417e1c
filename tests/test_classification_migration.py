"""Classification-image records of version 2 (written before the estimators existed) open, show the same maps,
continue exactly, and are saved as version 3."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from wna_gui.core.classification import (
    KIND,
    RECORD_VERSION,
    ClassificationImageConfig,
    ClassificationImageExperiment,
)
from wna_gui.core.session import load_session, read_header, save_session

V2 = Path(__file__).parent / "data" / "session-classification-v2.h5"


@pytest.fixture(scope="module")
def session():
    return load_session(V2)


def stored(name: str, path: str) -> np.ndarray:
    with h5py.File(V2) as f:
        return f[f"runs/{name}/{path}"][()]


def test_the_file_holds_version_2_records():
    header = read_header(V2)
    assert {run["record_version"] for run in header["runs"].values()} == {2} and RECORD_VERSION >= 3
    assert "estimators" not in header["runs"][KIND]["meta"]["config"]


def test_a_version_2_run_opens_as_a_hard_label_run_with_its_maps(session):
    state = session.runs[KIND]
    assert state.config.estimators == ("hard",) and state.halves == {}
    assert state.config == ClassificationImageConfig(noise=state.config.noise, samples=3000, batch_size=500,
                                                     seed=4, estimators=("hard",))
    snapshot = state.snapshot()
    np.testing.assert_array_equal(snapshot.counts, stored(KIND, "results/counts"))
    for view in ("mean", "centered", "zmap"):  # unweighted maps are computed as before, bit for bit
        np.testing.assert_array_equal(getattr(snapshot.maps, view).reshape(-1, 1, 28, 28),
                                      stored(KIND, f"results/{view}"))
    np.testing.assert_array_equal(snapshot.reliability_per_class, stored(KIND, "convergence/reliability"))
    # Version 2 kept only the mean maps at checkpoints: the other views read as not recorded (NaN).
    (checkpoint,) = snapshot.checkpoints.values()
    hard = checkpoint["hard"]
    np.testing.assert_array_equal(hard.mean.reshape(-1, 1, 28, 28), stored(KIND, "checkpoints/1000/mean"))
    assert np.isnan(hard.zmap).all() and np.isnan(hard.centered).all() and np.isnan(hard.support).all()


def test_a_confidence_weighted_version_2_run_gets_the_corrected_z_maps(session):
    state = session.runs["confidence"]
    assert state.config.weighting == "confidence"
    snapshot = state.snapshot()
    np.testing.assert_array_equal(snapshot.maps.mean.reshape(-1, 1, 28, 28), stored("confidence", "results/mean"))
    total = state.total()
    w, s = total.weight[total.classes], total.weight_sq[total.classes]
    big_w, big_s, _, m2 = total.pooled()
    sigma2 = m2 / (big_w - big_s / big_w)
    variance = s / w**2 - 2 * s / (w * big_w) + big_s / big_w**2  # the weights' term included
    expected = snapshot.maps.centered / np.sqrt(variance[:, None] * sigma2[None, :])
    np.testing.assert_allclose(snapshot.maps.zmap, expected, rtol=1e-9)
    assert not np.allclose(snapshot.maps.zmap.reshape(-1, 1, 28, 28), stored("confidence", "results/zmap"))


def test_a_migrated_run_continues_exactly_and_saves_as_version_3(tmp_path):
    session = load_session(V2)
    state = session.runs[KIND].with_budget(4000)
    ClassificationImageExperiment(session.model, state=state, device="cpu").run_to_end()
    fresh = ClassificationImageExperiment(session.model, replace(state.config, samples=4000), device="cpu")
    fresh.run_to_end()
    np.testing.assert_array_equal(state.total().count, fresh.state.total().count)
    np.testing.assert_allclose(state.total().mean, fresh.state.total().mean, rtol=0, atol=1e-12)
    assert sorted(state.checkpoint_maps) == [1000]  # the old checkpoint stays, not recorded again

    path = save_session(session, tmp_path / "v3.h5")
    assert {run["record_version"] for run in read_header(path)["runs"].values()} == {RECORD_VERSION}
    again = load_session(path).runs[KIND]
    (meta_a, arrays_a), (meta_b, arrays_b) = state.to_record(), again.to_record()
    assert meta_a == meta_b and sorted(arrays_a) == sorted(arrays_b)
    for key, value in arrays_a.items():
        np.testing.assert_array_equal(arrays_b[key], value, err_msg=key)
