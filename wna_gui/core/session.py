"""Self-contained HDF5 session files, written atomically (layout: docs/session-format.md).

A session holds the model (description, weights, sha256), any extra named
models (a backdoored copy, a distilled student…) and any number of runs, each
under its own name with its kind, its record version and the inputs it read
(another run, an extra model). Each run's state provides ``to_record()`` →
(JSON-able meta, {path: array}) and ``from_record(meta, arrays)``; kinds come
from ``core.registry``, and older records are brought up to date by the
kind's migrations. This module is the only one that touches h5py.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from .models import LoadedModel, model_from_record, model_record

FORMAT_NAME = "wna-gui session"
# Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
_UMASK = os.umask(0)
os.umask(_UMASK)
# 1: one run per kind under /experiments/<kind>, no record versions, no extra models.
# 2: runs under /runs/<name> with kind, record_version and inputs; extra models under /models/<name>.
FORMAT_VERSION = 2


class SessionError(ValueError):
    """A file cannot be read as a session; the message is one line naming the problem."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Session:
    model: LoadedModel
    runs: dict[str, Any] = field(default_factory=dict)  # run name → state (its kind: core.registry)
    models: dict[str, LoadedModel] = field(default_factory=dict)  # extra named models
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # run name → {role: run or model name}
    created: str = field(default_factory=_now)
    modified: str = ""
    app_version: str = __version__
    path: Path | None = None
    notes: str = ""
    origin: str = ""  # an autosave: the file the session was continuing ("" if never saved)

    def runs_of(self, kind: str) -> dict[str, Any]:
        """This kind's runs by name, in the order they were added."""
        from .registry import spec_for_state

        return {name: state for name, state in self.runs.items() if spec_for_state(state).kind == kind}

    def run_of(self, kind: str):
        """The run named after its kind, else the kind's last run, else None."""
        runs = self.runs_of(kind)
        return runs.get(kind, list(runs.values())[-1] if runs else None)

    def new_run_name(self, kind: str) -> str:
        """``kind`` for the first run of a kind, then ``kind-2``, ``kind-3``…"""
        name, n = kind, 1
        while name in self.runs:
            n += 1
            name = f"{kind}-{n}"
        return name


def save_session(session: Session, path: str | Path) -> Path:
    """Write the whole session to a temp file beside ``path`` and rename it into place.

    A crash at any point leaves either the old file or the new one, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    session.modified = _now()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); a session is an ordinary document: honour the umask.
    os.chmod(tmp_name, 0o666 & ~_UMASK)
    try:
        with h5py.File(tmp_name, "w") as f:
            _write(f, session)
            f.flush()
        with open(tmp_name, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    session.path = path
    return path


def made_models(runs: dict[str, Any]) -> dict[str, LoadedModel]:
    """Models the runs trained (a poisoned copy, a distilled student…): a state's ``made_models()``."""
    made: dict[str, LoadedModel] = {}
    for state in runs.values():
        made.update(getattr(state, "made_models", dict)())
    return made


def _write_model(group: h5py.Group, model: LoadedModel) -> None:
    description, blob = model_record(model)
    group.attrs["description"] = json.dumps(description)
    group.attrs["sha256"] = description["weights_sha256"]
    if blob is not None:
        group.create_dataset("weights", data=np.frombuffer(blob, dtype=np.uint8), fletcher32=True)


def _write(f: h5py.File, session: Session) -> None:
    from .registry import spec_for_state

    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["app_version"] = session.app_version
    f.attrs["created"] = session.created
    f.attrs["modified"] = session.modified
    f.attrs["notes"] = session.notes
    f.attrs["origin"] = session.origin
    _write_model(f.create_group("model"), session.model)
    models = f.create_group("models")
    for name, model in {**session.models, **made_models(session.runs)}.items():
        _write_model(models.create_group(name), model)
    runs = f.create_group("runs")
    for name, state in session.runs.items():
        spec = spec_for_state(state)
        meta, arrays = state.to_record()
        group = runs.create_group(name)
        group.attrs["kind"] = spec.kind
        group.attrs["record_version"] = spec.record_version
        group.attrs["inputs"] = json.dumps(session.inputs.get(name, {}))
        group.attrs["meta"] = json.dumps(meta)
        for path, value in arrays.items():
            value = np.asarray(value)
            compression = "gzip" if value.size >= 4096 else None
            # Checksums make a flipped byte on disk a clear "damaged" error instead of wrong maps.
            group.create_dataset(path, data=value, compression=compression, fletcher32=value.ndim > 0)


def _read_arrays(group: h5py.Group) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]

    group.visititems(visit)
    return arrays


def _run_groups(f: h5py.File) -> dict[str, tuple[str, int, dict, h5py.Group]]:
    """name → (kind, record version, inputs, group), for either format."""
    if "runs" in f:
        return {name: (_attr(group.attrs["kind"]), int(_attr(group.attrs.get("record_version", 1))),
                       json.loads(_attr(group.attrs.get("inputs", "{}"))), group) for name, group in f["runs"].items()}
    return {kind: (kind, 1, {}, group) for kind, group in f["experiments"].items()}  # format 1


def read_header(path: str | Path) -> dict:
    """Format attributes, model descriptions and each run's kind and meta, without loading arrays or weights."""
    with _open(path) as f:
        header = {k: _attr(f.attrs[k]) for k in f.attrs}
        header["model"] = json.loads(_attr(f["model"].attrs["description"]))
        header["models"] = {name: json.loads(_attr(group.attrs["description"]))
                            for name, group in f.get("models", {}).items()}
        header["runs"] = {name: {"kind": kind, "record_version": version, "inputs": inputs,
                                 "meta": json.loads(_attr(group.attrs["meta"]))}
                          for name, (kind, version, inputs, group) in _run_groups(f).items()}
        return header


def _attr(value):
    return value.decode() if isinstance(value, bytes) else value.item() if isinstance(value, np.generic) else value


class _open:
    """Open and validate a session file, translating every failure into SessionError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> h5py.File:
        path = self.path
        if not path.exists():
            raise SessionError(f"session file not found: {path}")
        if path.is_dir():
            raise SessionError(f"{path} is a folder, not a session file")
        with open(path, "rb") as fh:
            signature = fh.read(8)
        if signature != b"\x89HDF\r\n\x1a\n":
            raise SessionError(f"{path.name} is not a wna-gui session (not an HDF5 file)")
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise SessionError(f"{path.name} is damaged or truncated and cannot be opened ({exc.__class__.__name__})") from None
        try:
            fmt = _attr(self.file.attrs.get("format", ""))
            if fmt != FORMAT_NAME:
                raise SessionError(f"{path.name} is an HDF5 file but not a wna-gui session")
            version = int(_attr(self.file.attrs.get("format_version", 0)))
            if version > FORMAT_VERSION:
                raise SessionError(f"{path.name} uses session format {version}, newer than this app supports "
                                   f"({FORMAT_VERSION}); update wna-gui")
            if version < 1:
                raise SessionError(f"{path.name} has no valid format version")
            if "model" not in self.file or ("runs" if version >= 2 else "experiments") not in self.file:
                raise SessionError(f"{path.name} is incomplete: the model or runs group is missing")
        except BaseException:
            self.file.close()
            raise
        return self.file

    def __exit__(self, *exc) -> None:
        self.file.close()


def _read_model(group: h5py.Group) -> tuple[dict, bytes | None]:
    description = json.loads(_attr(group.attrs["description"]))
    return description, group["weights"][()].tobytes() if "weights" in group else None


def _rebuild_model(path: Path, description: dict, blob: bytes | None, label: str) -> LoadedModel:
    try:
        model = model_from_record(description, blob)
    except Exception as exc:
        raise SessionError(f"{path.name}: {label} cannot be rebuilt: {str(exc).splitlines()[0]}") from None
    if model.weights_sha256() != description.get("weights_sha256"):
        raise SessionError(f"{path.name}: {label}'s weights do not match their recorded sha256 (file damaged?)")
    return model


def load_session(path: str | Path) -> Session:
    """Read a session file (any format version up to this one). Any problem raises SessionError, one line."""
    from .registry import BY_KIND

    path = Path(path)
    try:
        with _open(path) as f:
            primary = _read_model(f["model"])
            extra = {name: _read_model(group) for name, group in f.get("models", {}).items()}
            records = {name: (kind, version, inputs, json.loads(_attr(group.attrs["meta"])), _read_arrays(group))
                       for name, (kind, version, inputs, group) in _run_groups(f).items()}
            attrs = {k: _attr(f.attrs[k]) for k in f.attrs}
    except SessionError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise SessionError(f"{path.name} is damaged: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    model = _rebuild_model(path, *primary, "its model")
    models = {name: _rebuild_model(path, *record, f"model {name!r}") for name, record in extra.items()}
    runs, inputs = {}, {}
    for name, (kind, version, run_inputs, meta, arrays) in records.items():
        spec = BY_KIND.get(kind)
        if spec is None:
            raise SessionError(f"{path.name} holds a {kind!r} run this version cannot read; update wna-gui")
        if version > spec.record_version:
            raise SessionError(f"{path.name}: its {kind} run {name!r} was written by a newer wna-gui "
                               f"(record version {version} > {spec.record_version}); update wna-gui")
        try:
            for step in range(version, spec.record_version):
                meta, arrays = spec.migrations[step](meta, arrays)
            runs[name] = spec.state.from_record(meta, arrays)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise SessionError(f"{path.name}: the {kind} run {name!r} is damaged "
                               f"({exc.__class__.__name__}: {exc})") from None
        if run_inputs:
            inputs[name] = run_inputs
    for state in runs.values():
        # A run that trained models gets them back from /models (where save_session put them).
        attach = getattr(state, "attach_models", None)
        if attach is not None:
            attach(models)
    return Session(model=model, runs=runs, models=models, inputs=inputs, created=attrs.get("created", ""),
                   modified=attrs.get("modified", ""), app_version=attrs.get("app_version", ""),
                   path=path, notes=attrs.get("notes", ""), origin=attrs.get("origin", ""))


def autosave_path(directory: str | Path) -> Path:
    return Path(directory) / "autosave.wna.h5"
