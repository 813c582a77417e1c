"""A session written before the floor refactor (tests/data/session-runs.h5, by commit 701ffee) exports the same
numbers today: every CSV byte for byte and every array of every .npz exactly.

tests/data/session-runs-export.json holds the digests of what 701ffee's ``wna export`` wrote for that file
(made with ``digests()`` below on its output folder, PYTHONPATH pointing at a ``git archive 701ffee`` checkout).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from wna_gui.cli import main

DATA = Path(__file__).parent / "data"


def digests(folder: Path) -> dict[str, str]:
    """Relative path (and array name inside an .npz) → sha256 of the bytes, dtype and shape; CSVs whole."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.suffix == ".csv":
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.suffix == ".npz":
            with np.load(path) as arrays:
                for key in arrays.files:
                    array = np.ascontiguousarray(arrays[key])
                    tag = f"{array.dtype.str}{array.shape}".encode()
                    found[f"{name}:{key}"] = hashlib.sha256(tag + array.tobytes()).hexdigest()
    return found


def test_a_session_from_before_the_refactor_exports_the_same_numbers(tmp_path, capsys):
    expected = json.loads((DATA / "session-runs-export.json").read_text())
    assert main(["export", str(DATA / "session-runs.h5"), "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    now = digests(tmp_path)
    missing = sorted(set(expected) - set(now))
    assert not missing, f"no longer exported: {missing}"
    changed = sorted(name for name in expected if now[name] != expected[name])
    assert not changed, f"numbers changed since 701ffee: {changed}"
