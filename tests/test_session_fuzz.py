"""Damaged session files, every kind: a mutant is refused with one line naming the file, never a traceback,
never a hang, never an unbounded allocation, and an export that succeeds holds no NaN or negative count that the
intact file did not have.

One tiny valid session per experiment kind (the runs of tests/test_contract.py) is mutated ≥ 300 times on a
fixed seed: byte flips anywhere and inside attribute text, truncation, and h5py edits (delete, retype, reshape,
NaN/inf, negative counts, huge declared shapes, links and cycles, future and fractional versions, strings for
numbers, broken JSON, huge values in meta). Half the h5py edits also strip the digests, as in a file written
before them, so the value checks of each kind's ``from_record`` are exercised, not only the checksums. Each
mutant goes through `wna info` (read_header, then load_session of every run and model) in worker processes whose
address space is capped; a seeded subset is also exported. benchmarks/fuzz_sessions.py runs the same with a larger count.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import random
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # fuzzing: thousands of damaged files (minutes)

MUTATIONS = ("byte-flip", "attr-text-flip", "truncate", "delete", "retype", "reshape", "nan", "negative",
             "huge-shape", "link", "version", "string-number", "broken-json", "meta-value")
VALUE_MUTATIONS = ("attr-text-flip", "retype", "reshape", "nan", "negative", "string-number", "meta-value")
SECONDS_LIMIT = 10.0
MEMORY_HEADROOM = 3 << 30  # address space a worker may add to what it holds after importing torch and Qt


# --- the mutator ---

def _datasets(f) -> list[str]:
    import h5py

    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _text_attributes(f) -> list[tuple[str, str, str]]:
    """(object path, attribute name, text) of every text attribute."""
    found = []

    def visit(name, obj):
        for key, value in obj.attrs.items():
            if isinstance(value, (str, bytes)):
                found.append((name, key, value.decode() if isinstance(value, bytes) else value))

    visit("/", f)
    f.visititems(visit)
    return found


def _strip_digests(f) -> None:
    def strip(obj):
        for key in ("digest", "arrays_sha256", "sha256"):
            if key in obj.attrs and not (key == "sha256" and "description" in obj.attrs):
                del obj.attrs[key]

    strip(f)
    f.visititems(lambda name, obj: strip(obj))


def _replace_dataset(f, name, data=None, **kwargs) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kwargs)


def _edit_json_number(text: str, rng: random.Random, new) -> str:
    """``text`` (JSON) with one random number replaced by ``new(old)``."""
    value = json.loads(text)
    holders = []

    def walk(obj):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for key, item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                holders.append((obj, key))
            else:
                walk(item)

    walk(value)
    if holders:
        obj, key = rng.choice(holders)
        obj[key] = new(obj[key])
    return json.dumps(value)


def mutate(source: Path, target: Path, kind: str, rng: random.Random) -> None:
    """Write a damaged copy of ``source`` to ``target``."""
    import h5py

    data = bytearray(source.read_bytes())
    if kind == "byte-flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "attr-text-flip":
        with h5py.File(source, "r") as f:
            texts = [text for _, _, text in _text_attributes(f) if len(text) > 2]
        text = rng.choice(texts).encode()
        at = bytes(data).find(text)
        if at >= 0:
            digits = [i for i, c in enumerate(text) if chr(c).isdigit()]
            i = rng.choice(digits) if digits and rng.random() < 0.7 else rng.randrange(len(text))
            data[at + i] = ord(str((int(chr(text[i])) + rng.randint(1, 9)) % 10)) if i in digits else data[at + i] ^ 1
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    target.write_bytes(bytes(data))
    if kind in ("byte-flip", "attr-text-flip", "truncate"):
        return
    with h5py.File(target, "r+") as f:
        names = _datasets(f)
        name = rng.choice(names)
        dataset = f[name]
        if kind == "delete":
            what = rng.random()
            if what < 0.5:
                del f[name]
            elif what < 0.8:
                del f[rng.choice([n for n in [name.rsplit("/", 1)[0], "model", "runs", "models"] if n in f])]
            else:
                path, key, _ = rng.choice(_text_attributes(f))
                del f[path].attrs[key]
        elif kind == "retype":
            values = dataset[()]
            choice = rng.random()
            if choice < 0.3:
                _replace_dataset(f, name, np.asarray(values).astype(np.float32) + 0.5)
            elif choice < 0.6:
                with np.errstate(invalid="ignore"):  # NaN cast to an integer: damage is the point
                    _replace_dataset(f, name, np.asarray(values).astype(np.int8))
            elif choice < 0.8:
                _replace_dataset(f, name, np.array([b"text"] * max(1, np.size(values))))
            else:
                _replace_dataset(f, name, data=[np.arange(3), np.arange(2)], dtype=h5py.vlen_dtype(np.int64))
        elif kind == "reshape":
            values = np.asarray(dataset[()])
            flat = values.reshape(-1)
            shapes = [flat[:-1] if flat.size else np.zeros(3), flat[:, None], np.concatenate([flat, flat]),
                      values[None], np.zeros(())]
            _replace_dataset(f, name, rng.choice(shapes))
        elif kind in ("nan", "negative"):
            floats = [n for n in names if f[n].dtype.kind == "f" and f[n].size]
            ints = [n for n in names if f[n].dtype.kind in "iu" and f[n].size and "weights" not in n]
            pool = floats if kind == "nan" else ints
            if pool:
                name = rng.choice(pool)
                values = np.array(f[name][()])
                flat = values.reshape(-1)
                for _ in range(rng.randint(1, 3)):
                    i = rng.randrange(flat.size)
                    if kind == "nan":
                        flat[i] = rng.choice([np.nan, np.inf, -np.inf])
                    else:
                        flat[i] = -rng.randint(1, 1000) if values.dtype.kind == "i" else 0
                _replace_dataset(f, name, values)
        elif kind == "huge-shape":
            shape = rng.choice([(10**9, 10**6), (2**40,), (10**6, 10**6, 4)])
            _replace_dataset(f, name, shape=shape, dtype=np.float64, chunks=(1,) * len(shape))
        elif kind == "link":
            group = f[name.rsplit("/", 1)[0]] if "/" in name else f
            choice = rng.random()
            if choice < 0.3:
                del f[name]
                f[name] = h5py.SoftLink("/" + rng.choice(names))
            elif choice < 0.6:
                del f[name]
                f[name] = h5py.ExternalLink("/etc/hostname" if rng.random() < 0.5 else "other.h5", "/x")
            else:
                group["loop"] = f[rng.choice(["/", "/runs", group.name])]
        elif kind == "version":
            target_obj = f if rng.random() < 0.4 else f["runs"][rng.choice(list(f["runs"]))]
            key = "format_version" if target_obj is f else "record_version"
            target_obj.attrs[key] = rng.choice([99, 2.5, 1.5, "2", -1, 0, 2**62, np.float64(2.0)])
        else:  # the JSON attributes: meta, inputs, descriptions
            path, key, text = rng.choice([a for a in _text_attributes(f) if a[2][:1] in "{["])
            if kind == "string-number":
                text = _edit_json_number(text, rng, lambda v: rng.choice([str(v), [v], None, {"x": v}]))
            elif kind == "broken-json":
                cut = rng.randrange(len(text))
                text = text[:cut] + rng.choice(["", ",", "}", "\"", "NaN"]) + text[cut + rng.randint(0, 3):]
            else:  # meta-value
                text = _edit_json_number(text, rng, lambda v: rng.choice(
                    [10**18, 1e18, -v - 1, float("nan"), float("inf"), v + 1, 0, 2.5, -1]))
            f[path].attrs[key] = text
        if rng.random() < 0.5:
            _strip_digests(f)


# --- the checks, run in a worker ---

def _cap_memory() -> None:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="wna-fuzz-state-")  # crash logs stay out of ~/.local
    import torch  # noqa: F401  (imported before the cap: its libraries reserve address space once)

    import wna_gui.cli  # noqa: F401

    with open("/proc/self/status") as fh:
        held = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (held + MEMORY_HEADROOM, resource.RLIM_INFINITY))


def _wna(argv: list[str]) -> tuple[int, str, str]:
    from wna_gui.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def export_problems(folder: Path, reference: dict | None) -> list[str]:
    """NaN the intact file's export did not have at that place, or negative counts, in the .npz and .csv files."""
    problems = []
    for npz in folder.rglob("*.npz"):
        with np.load(npz) as data:
            for key in data.files:
                array = data[key]
                if array.dtype.kind == "f":
                    before = (reference or {}).get(f"{npz.relative_to(folder)}:{key}")
                    nan = np.isnan(array)
                    if nan.any() and (before is None or before.shape != array.shape or (nan & ~before).any()):
                        problems.append(f"NaN in {npz.name}:{key}")
                if "count" in key.lower() and array.dtype.kind in "if" and (array < 0).any():
                    problems.append(f"negative count in {npz.name}:{key}")
    for csv in folder.rglob("*.csv"):
        text = csv.read_text().lower()
        if "nan" in text.replace("nanmean", "").split(",") or ",nan" in text or "inf," in text:
            problems.append(f"NaN in {csv.name}")
    return problems


def nan_places(folder: Path) -> dict:
    places = {}
    for npz in folder.rglob("*.npz"):
        with np.load(npz) as data:
            for key in data.files:
                if data[key].dtype.kind == "f":
                    places[f"{npz.relative_to(folder)}:{key}"] = np.isnan(data[key])
    return places


def check_mutant(job: tuple) -> dict:
    """Mutate, then `wna info` (which reads the header and loads every run and model, as File > Open does), and
    export when asked; returns what happened."""
    kind, mutation, seed, source, export, reference = job
    rng = random.Random(seed)
    result = {"kind": kind, "mutation": mutation, "seed": seed, "failures": [], "outcome": "refused"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.h5"
        try:
            mutate(Path(source), path, mutation, rng)
        except Exception as exc:  # h5py refused to write this edit: nothing to test
            result["outcome"] = f"not made ({type(exc).__name__})"
            return result
        calls = [["info", str(path)]]
        if export:
            calls.append(["export", str(path), "--out", str(Path(tmp) / "out"), "--dpi", "72"])
        for argv in calls:
            start = time.perf_counter()
            rc, _, err = _wna(argv)
            seconds = time.perf_counter() - start
            if rc not in (0, 2) or len(err.strip().splitlines()) > 1 or "Traceback" in err:
                result["failures"].append(f"wna {argv[0]}: rc {rc}: {err.strip()[:300]}")
            elif rc == 2 and path.name not in err:
                result["failures"].append(f"wna {argv[0]}: the error does not name the file: {err.strip()[:300]}")
            if seconds > SECONDS_LIMIT:
                result["failures"].append(f"wna {argv[0]} took {seconds:.1f} s")
            if rc != 0:
                break  # refused: nothing more to read
            result["outcome"] = "loaded"
            if argv[0] == "export":
                result["outcome"] = "exported"
                result["failures"] += export_problems(Path(tmp) / "out", reference)
    return result


def run_fuzz(sources: dict[str, Path], count: int, seed: int, exports: int, workers: int = 2,
             references: dict | None = None) -> list[dict]:
    """``count`` mutants of each kind's session (mutation types in turn); ``exports`` of each kind's mutants that
    change values (where a silent NaN or negative count could slip through) are also exported when they load."""
    rng = random.Random(seed)
    jobs = []
    for kind, source in sources.items():
        changing_values = [i for i in range(count) if MUTATIONS[i % len(MUTATIONS)] in VALUE_MUTATIONS]
        chosen = set(rng.sample(changing_values, min(exports, len(changing_values))))
        for i in range(count):
            jobs.append((kind, MUTATIONS[i % len(MUTATIONS)], rng.randrange(2**32), str(source), i in chosen,
                         (references or {}).get(kind)))
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_cap_memory) as pool:
        return list(pool.imap_unordered(check_mutant, jobs, chunksize=8))


def outcome_table(results: list[dict]) -> str:
    counts = Counter((r["kind"], r["mutation"], "FAILED" if r["failures"] else r["outcome"]) for r in results)
    outcomes = sorted({o for _, _, o in counts})
    rows = sorted({(k, m) for k, m, _ in counts})
    lines = [f"{'kind':<24} {'mutation':<16} " + " ".join(f"{o:>12}" for o in outcomes)]
    for kind, mutation in rows:
        lines.append(f"{kind:<24} {mutation:<16} " + " ".join(f"{counts[kind, mutation, o]:>12}" for o in outcomes))
    return "\n".join(lines)


def pristine_sessions(folder: Path, kinds: tuple[str, ...] | None = None) -> dict[str, Path]:
    """One small valid session per kind (with the runs it reads), from tests/test_contract.py's tiny runs; a session
    already in ``folder`` is reused."""
    from smoke import input_session, tiny_run

    from wna_gui.core.registry import EXPERIMENTS
    from wna_gui.core.session import save_session

    paths = {}
    for spec in EXPERIMENTS:
        if kinds is not None and spec.kind not in kinds:
            continue
        if (folder / f"{spec.kind}.h5").is_file():
            paths[spec.kind] = folder / f"{spec.kind}.h5"
            continue
        session = input_session(spec.kind)
        session.runs[spec.kind] = tiny_run(spec.kind)[0]
        paths[spec.kind] = save_session(session, folder / f"{spec.kind}.h5")
    return paths


def reference_nans(paths: dict[str, Path], folder: Path) -> dict:
    """Where each intact session's export has NaN (legitimately: a z-map where undefined, say)."""
    references = {}
    for kind, path in paths.items():
        out = folder / f"{kind}-export"
        rc, _, err = _wna(["export", str(path), "--out", str(out), "--dpi", "72"])
        assert rc == 0, err
        assert not [p for p in export_problems(out, nan_places(out)) if "negative" in p]
        references[kind] = nan_places(out)
        shutil.rmtree(out)
    return references


# --- the test ---

MUTANTS_PER_KIND = 300
EXPORTS_PER_KIND = 16


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pristine")
    paths = pristine_sessions(folder)
    return paths, reference_nans(paths, folder)


def test_the_intact_sessions_load(pristine):
    from wna_gui.core.session import load_session

    paths, _ = pristine
    for kind, path in paths.items():
        assert kind in load_session(path).runs


def test_damaged_sessions_are_refused_in_one_line(pristine):
    paths, references = pristine
    results = run_fuzz(paths, MUTANTS_PER_KIND, seed=20, exports=EXPORTS_PER_KIND, references=references)
    failures = [f"{r['kind']} {r['mutation']} seed {r['seed']}: {failure}" for r in results for failure in r["failures"]]
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40]) + "\n" + outcome_table(results)
    assert len(results) == MUTANTS_PER_KIND * len(paths)
    refused = sum(r["outcome"] == "refused" for r in results)
    assert refused > len(results) // 2, outcome_table(results)
