"""Self-contained HDF5 session files, written atomically (layout: docs/session-format.md).

A session holds the model (description, weights, sha256) and one group per
experiment kind. Each experiment's state class provides ``to_record()`` →
(JSON-able meta, {path: array}) and ``from_record(meta, arrays)``; this module
is the only one that touches h5py.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from .. import __version__
from .models import LoadedModel, model_from_record, model_record

FORMAT_NAME = "wna-gui session"
# Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
_UMASK = os.umask(0)
os.umask(_UMASK)
FORMAT_VERSION = 1


class SessionError(ValueError):
    """A file cannot be read as a session; the message is one line naming the problem."""


class ExperimentState(Protocol):
    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]: ...

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "ExperimentState": ...


# kind → state class; experiment modules register themselves (see register_experiment).
EXPERIMENT_KINDS: dict[str, type] = {}


def register_experiment(kind: str, state_cls: type) -> None:
    EXPERIMENT_KINDS[kind] = state_cls


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Session:
    model: LoadedModel
    experiments: dict[str, Any] = field(default_factory=dict)  # kind → state object
    created: str = field(default_factory=_now)
    modified: str = ""
    app_version: str = __version__
    path: Path | None = None
    notes: str = ""


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


def _write(f: h5py.File, session: Session) -> None:
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["app_version"] = session.app_version
    f.attrs["created"] = session.created
    f.attrs["modified"] = session.modified
    f.attrs["notes"] = session.notes
    description, blob = model_record(session.model)
    model_group = f.create_group("model")
    model_group.attrs["description"] = json.dumps(description)
    model_group.attrs["sha256"] = description["weights_sha256"]
    if blob is not None:
        model_group.create_dataset("weights", data=np.frombuffer(blob, dtype=np.uint8), fletcher32=True)
    experiments = f.create_group("experiments")
    for kind, state in session.experiments.items():
        meta, arrays = state.to_record()
        group = experiments.create_group(kind)
        group.attrs["kind"] = kind
        group.attrs["meta"] = json.dumps(meta)
        for name, value in arrays.items():
            value = np.asarray(value)
            compression = "gzip" if value.size >= 4096 else None
            # Checksums make a flipped byte on disk a clear "damaged" error instead of wrong maps.
            group.create_dataset(name, data=value, compression=compression, fletcher32=value.ndim > 0)


def _read_arrays(group: h5py.Group) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]

    group.visititems(visit)
    return arrays


def read_header(path: str | Path) -> dict:
    """Format attributes and the model description, without loading arrays or weights."""
    with _open(path) as f:
        header = {k: _attr(f.attrs[k]) for k in f.attrs}
        header["model"] = json.loads(_attr(f["model"].attrs["description"]))
        header["experiments"] = {kind: json.loads(_attr(group.attrs["meta"]))
                                 for kind, group in f["experiments"].items()}
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
            if "model" not in self.file or "experiments" not in self.file:
                raise SessionError(f"{path.name} is incomplete: the model or experiments group is missing")
        except BaseException:
            self.file.close()
            raise
        return self.file

    def __exit__(self, *exc) -> None:
        self.file.close()


def load_session(path: str | Path) -> Session:
    """Read a session file. Any problem raises SessionError with a one-line message."""
    path = Path(path)
    try:
        with _open(path) as f:
            description = json.loads(_attr(f["model"].attrs["description"]))
            blob = f["model"]["weights"][()].tobytes() if "weights" in f["model"] else None
            records = {}
            for kind, group in f["experiments"].items():
                records[kind] = (json.loads(_attr(group.attrs["meta"])), _read_arrays(group))
            attrs = {k: _attr(f.attrs[k]) for k in f.attrs}
    except SessionError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise SessionError(f"{path.name} is damaged: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    try:
        model = model_from_record(description, blob)
    except Exception as exc:
        raise SessionError(f"{path.name}: its model cannot be rebuilt: {str(exc).splitlines()[0]}") from None
    if model.weights_sha256() != description.get("weights_sha256"):
        raise SessionError(f"{path.name}: model weights do not match their recorded sha256 (file damaged?)")
    experiments = {}
    for kind, (meta, arrays) in records.items():
        state_cls = EXPERIMENT_KINDS.get(kind)
        if state_cls is None:
            raise SessionError(f"{path.name} holds a {kind!r} experiment this version cannot read; update wna-gui")
        try:
            experiments[kind] = state_cls.from_record(meta, arrays)
        except (KeyError, ValueError, TypeError) as exc:
            raise SessionError(f"{path.name}: the {kind} experiment is damaged ({exc.__class__.__name__}: {exc})") from None
    return Session(model=model, experiments=experiments, created=attrs.get("created", ""),
                   modified=attrs.get("modified", ""), app_version=attrs.get("app_version", ""),
                   path=path, notes=attrs.get("notes", ""))


def autosave_path(directory: str | Path) -> Path:
    return Path(directory) / "autosave.wna.h5"


def _register_builtin() -> None:
    from . import classification, psychometric

    register_experiment(classification.KIND, classification.ClassificationImageState)
    register_experiment(psychometric.KIND, psychometric.PsychometricState)
    register_experiment(psychometric.GRID_KIND, psychometric.PsychometricGridState)


_register_builtin()
