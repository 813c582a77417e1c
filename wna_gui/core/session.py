"""Self-contained HDF5 session files, written atomically (layout: docs/session-format.md).

A session holds the model (description, weights, sha256), any extra named
models (a backdoored copy, a distilled student…) and any number of runs, each
under its own name with its kind, its record version and the inputs it read
(another run, an extra model). Each run's state provides ``to_record()`` →
(JSON-able meta, {path: array}) and ``from_record(meta, arrays)``; kinds come
from the registry (read through ``core.runs``), and older records are brought up to date by the
kind's migrations. This module is the only one that touches h5py.
"""

from __future__ import annotations

import hashlib
import errno
import json
import os
import shutil
import socket
import tempfile
import uuid
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


class SessionWriteError(SessionError):
    """A session could not be written (full disk, I/O error, no permission, read-only media); one line."""


class SessionConflict(SessionError):
    """The file changed on disk since it was read; the session went to the side file ``saved_to`` instead."""

    def __init__(self, message: str, saved_to: Path) -> None:
        super().__init__(message)
        self.saved_to = saved_to


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Session:
    model: LoadedModel
    runs: dict[str, Any] = field(default_factory=dict)  # run name → state (its kind: core.registry)
    models: dict[str, LoadedModel] = field(default_factory=dict)  # extra named models
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # run name → {role: run or model name}
    created: str = field(default_factory=utc_now)
    modified: str = ""
    app_version: str = __version__
    path: Path | None = None
    notes: str = ""
    origin: str = ""  # an autosave: the file the session was continuing ("" if never saved)
    # file_fingerprint(path) when the session was read from or last written to ``path`` (None: no file there);
    # save_session refuses to replace a file that no longer matches it.
    fingerprint: tuple[int, int, int] | None = None
    # run name → {"created", "modified": ISO times, "mark": what the run held then}; save_session stamps them
    run_dates: dict[str, dict[str, str]] = field(default_factory=dict)

    def runs_of(self, kind: str) -> dict[str, Any]:
        """This kind's runs by name, in the order they were added."""
        from .runs import spec_for_state

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

    A crash at any point leaves either the old file or the new one, never a mix. Every failure is one line:
    SessionWriteError (full disk, I/O error, no permission: the temp file is removed, the old file unchanged),
    or SessionConflict when the file changed on disk since ``session`` read or wrote it: then ``path`` is left
    alone and the session goes to a side file the message names, so neither side is lost.
    """
    path = Path(path)
    session.modified = utc_now()
    _stamp_run_dates(session)
    image = _file_image(session)
    on_disk = file_fingerprint(path)
    if session.path is not None and _same_file(session.path, path) and on_disk not in (None, session.fingerprint):
        side = _conflict_path(path)
        session.fingerprint = _write_atomically(image, side)
        session.path = side
        raise SessionConflict(f"{path.name} changed on disk since this session was read (another program wrote "
                              f"it); {path.name} is left as it is and this session was saved to {side}", side)
    session.fingerprint = _write_atomically(image, path)
    session.path = path
    return path


def _run_mark(state) -> str:
    """A cheap stamp of what a run holds (its progress and settings): a run whose mark changed was modified."""
    return _digest([int(state.progress_done), repr(state.config)])


def _stamp_run_dates(session: Session) -> None:
    """Each run's creation time (kept; its first save when unknown) and last modification (this save when its
    progress or settings changed since the last stamp); runs no longer held lose theirs."""
    dates = {}
    for name, state in session.runs.items():
        entry, mark = dict(session.run_dates.get(name, {})), _run_mark(state)
        entry.setdefault("created", session.modified)
        if "mark" not in entry and "modified" in entry:
            entry["mark"] = mark  # dates carried over from a file written before runs had their own
        elif entry.get("mark") != mark or "modified" not in entry:
            entry["modified"], entry["mark"] = session.modified, mark
        dates[name] = entry
    session.run_dates = dates


def file_fingerprint(path: str | Path) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of the file at ``path``, None when there is none: a cheap "has it changed" stamp.

    Every save renames a new file into place, so even a same-size rewrite within a clock tick changes the inode.
    """
    try:
        st = os.stat(path)
    except OSError:  # none there, or not readable (then writing fails with its own clear message)
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _same_file(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _conflict_path(path: Path) -> Path:
    """``s.conflict-20261206-1402.h5`` beside ``s.h5`` (``-2``, ``-3``… when that exists)."""
    stem = f"{path.name[:-len(path.suffix)] if path.suffix else path.name}.conflict-{datetime.now():%Y%m%d-%H%M}"
    candidate, n = path.with_name(stem + path.suffix), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{stem}-{n}{path.suffix}")
    return candidate


def _file_image(session: Session) -> bytes:
    """The session as the bytes of an HDF5 file, built in memory.

    h5py never touches the disk: a write failing under h5py left it half-closed, and its cleanup crashed the
    process (a segfault on a full disk). The bytes are written with plain os.write, which fails cleanly.
    """
    # A unique name: HDF5 treats two open in-memory files of one name as the same file.
    with h5py.File(f"wna-session-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False) as f:
        _write(f, session)
        f.flush()
        return f.id.get_file_image()


# Room a save leaves beyond the file itself (file-system blocks, metadata); a nearly full disk is refused early.
_FREE_SPACE_MARGIN = 64 << 10


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _temp_prefix(path: Path) -> str:
    """``.s.h5.<pid>@<host>.``: a save's temp file names its writer, so a later save can tell a dead one's."""
    return f".{path.name}.{os.getpid()}@{socket.gethostname()}."


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete the temp files beside ``path`` of writers on this host that died mid-save (SIGKILL, power cut).

    A temp file whose writer still runs, or ran on another host (a shared folder), is kept. Best effort: what
    cannot be deleted stays. Returns what was deleted.
    """
    path = Path(path)
    prefix, host = f".{path.name}.", socket.gethostname()
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid, _, writer_host = name[len(prefix):-len(".tmp")].rsplit(".", 1)[0].partition("@")
        if writer_host != host or not pid.isdigit() or _process_alive(int(pid)):
            continue
        try:
            (path.parent / name).unlink()
        except OSError:
            continue
        removed.append(path.parent / name)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process; no pid at all: keep its file anyway
        return True
    return True


def _write_atomically(image: bytes, path: Path) -> tuple[int, int, int]:
    """Write ``image`` to ``path`` through a temp file and a rename; the new file's fingerprint.

    Any OSError becomes a one-line SessionWriteError with the temp file removed and the old file unchanged.
    """
    tmp_name = None
    free = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < len(image) + _FREE_SPACE_MARGIN:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        remove_stale_temp_files(path)
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        try:
            # mkstemp makes the file private (0600); a session is an ordinary document: honour the umask.
            os.fchmod(fd, 0o666 & ~_UMASK)
            _write_all(fd, image)
            os.fsync(fd)
            st = os.fstat(fd)  # a rename keeps size, mtime and inode: this is the saved file's fingerprint
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc, len(image) + _FREE_SPACE_MARGIN, free) from None
        raise
    _sync_directory(path.parent)
    return st.st_size, st.st_mtime_ns, st.st_ino


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: some file systems cannot open a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_WRITE_ERRORS: dict[int | None, str] = {  # read with OSError.errno, which may be None
    errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "the file is too large for this file system or its limits",
    errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
    errno.EPERM: "permission denied", errno.EIO: "input/output error (failing disk or lost share?)"}


def _write_error(path: Path, exc: OSError, needed: int, free: int | None) -> SessionWriteError:
    from .estimators import format_bytes

    reason = _WRITE_ERRORS.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += f" (needs ~{format_bytes(needed)}" + (f", {format_bytes(free)} free)" if free is not None else ")")
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    return SessionWriteError(f"cannot save {path.name}: {reason}; {kept}")


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
    group.attrs["digest"] = _digest(json.loads(group.attrs["description"]))
    if blob is not None:
        group.create_dataset("weights", data=np.frombuffer(blob, dtype=np.uint8), fletcher32=True)


def _write(f: h5py.File, session: Session) -> None:
    from .runs import spec_for_state

    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["app_version"] = session.app_version
    f.attrs["created"] = session.created
    f.attrs["modified"] = session.modified
    f.attrs["notes"] = session.notes
    f.attrs["origin"] = session.origin
    f.attrs["run_dates"] = json.dumps({name: session.run_dates[name] for name in session.runs
                                       if name in session.run_dates})
    f.attrs["digest"] = _digest(_root_attrs(f))
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
        group.attrs["digest"] = _digest(_run_attrs(group, name))
        array_digests = {}
        for path, value in arrays.items():
            value = np.asarray(value)
            compression = "gzip" if value.size >= 4096 else None
            # Checksums make a flipped byte on disk a clear "damaged" error instead of wrong maps.
            dataset = group.create_dataset(path, data=value, compression=compression, fletcher32=value.ndim > 0)
            # fletcher32 catches damage on disk; the digests also catch an array rewritten with h5py.
            dataset.attrs["sha256"] = array_digests[path] = _array_digest(value)
        group.attrs["arrays_sha256"] = _digest(array_digests)


# Reads are bounded before anything is allocated. Deflate compresses at most ~1032:1, so a dataset that declares
# far more bytes than it stores is crafted or damaged (a decompression bomb, or shapes rewritten to 10^12 rows).
MAX_COMPRESSION = 1100
READ_FLOOR = 1 << 30  # any dataset may declare this much; beyond it, at most 64 × the file's size


class _Damaged(Exception):
    """Raised while a file is open: the message names the object inside the file and the damage;
    ``_open`` turns it into a SessionError that also names the file."""


def _digest(obj) -> str:
    """sha256 of the canonical JSON of ``obj``: how every attribute digest in a session is made."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _array_digest(array) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode() + array.tobytes()).hexdigest()


def _check_digest(obj, content, where: str) -> None:
    stored = obj.attrs.get("digest")
    if stored is None:
        return  # written before digests: it gets one on the next save
    if _attr(stored) != _digest(content):
        raise _Damaged(f"{where} attributes changed after saving")


def _text_attr(obj, name: str, where: str, default: str | None = None) -> str:
    value = obj.attrs.get(name, default)
    if value is None:
        raise _Damaged(f"{where} has no {name} attribute")
    value = _attr(value)
    if not isinstance(value, str):
        raise _Damaged(f"{where}'s {name} attribute must be text, not {type(value).__name__}")
    return value


def _json_attr(obj, name: str, where: str, default: str | None = None, kind: type = dict):
    try:
        value = json.loads(_text_attr(obj, name, where, default))
    except ValueError as exc:
        raise _Damaged(f"{where}'s {name} attribute is not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise _Damaged(f"{where}'s {name} attribute must be a JSON {'object' if kind is dict else kind.__name__}")
    return value


def _int_attr(obj, name: str, where: str, default: int | None = None) -> int:
    value = obj.attrs.get(name, default)
    if value is None:
        raise _Damaged(f"{where} has no {name} attribute")
    value = _attr(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Damaged(f"{where}'s {name} must be an integer, not {value!r:.40}")
    return value


def _root_attrs(f: h5py.File) -> dict:
    attrs = {}
    for key in f.attrs:
        if key != "digest":
            value = _attr(f.attrs[key])
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise _Damaged(f"the file's {key} attribute must be text or an integer, not {type(value).__name__}")
            attrs[key] = value
    return attrs


def _groups(parent, where: str):
    """(name, group) of each member of ``parent`` (None: none), which must all be groups."""
    if parent is None:
        return
    if not isinstance(parent, h5py.Group):
        raise _Damaged(f"{where} is not a group")
    for name, obj in parent.items():
        if not isinstance(obj, h5py.Group):
            raise _Damaged(f"{where}/{name} is not a group")
        yield name, obj


def _check_links(f: h5py.File) -> None:
    """Refuse soft and external links and any object reached twice (a link cycle): a session holds none, and
    following them would read other files or loop."""
    seen: dict[int, str] = {}

    def visit(name: str, link):
        if isinstance(link, h5py.SoftLink):
            return f"{name} is a soft link (to {link.path}); a session holds no links"
        if isinstance(link, h5py.ExternalLink):
            return f"{name} is an external link (to {link.filename}); a session holds no links"
        if not isinstance(link, h5py.HardLink):
            return f"{name} is a link of an unknown type"
        key = hash(f[name].id)
        if key in seen:
            return f"{name} links back to {seen[key] or 'the root'} (a link cycle or shared object)"
        seen[key] = name
        return None

    seen[hash(f.id)] = ""
    problem = f.visititems_links(visit)
    if problem:
        raise _Damaged(problem)


def _read_dataset(dataset: h5py.Dataset, where: str) -> np.ndarray:
    """The dataset's values, after checking its declared type and size (before anything is allocated)."""
    if dataset.dtype.kind not in "biuf":
        raise _Damaged(f"{where} holds {dataset.dtype} values, not numbers")
    if dataset.external or dataset.is_virtual:
        raise _Damaged(f"{where} keeps its data outside the file; a session holds its own data")
    declared = dataset.size * dataset.dtype.itemsize
    if declared:
        stored = dataset.id.get_storage_size()
        limit = max(READ_FLOOR, 64 * os.path.getsize(dataset.file.filename))
        if declared > min(limit, MAX_COMPRESSION * stored):
            raise _Damaged(f"{where} declares shape {dataset.shape} ({declared:,} bytes) but stores {stored:,} bytes")
    try:
        return dataset[()]
    except (OSError, ValueError, TypeError) as exc:
        raise _Damaged(f"{where} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _read_arrays(group: h5py.Group, where: str) -> dict[str, np.ndarray]:
    """Every dataset under ``group`` by relative path, checked against its digest when the file has them."""
    datasets: dict[str, h5py.Dataset] = {}
    group.visititems(lambda name, obj: datasets.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    expected = group.attrs.get("arrays_sha256")
    arrays, digests = {}, {}
    for name, dataset in datasets.items():
        arrays[name] = _read_dataset(dataset, f"{where}/{name}")
        if expected is not None:
            digests[name] = _attr(dataset.attrs.get("sha256", ""))
            if digests[name] != _array_digest(arrays[name]):
                raise _Damaged(f"{where}/{name} changed after saving")
    if expected is not None and _attr(expected) != _digest(digests):
        raise _Damaged(f"{where}'s arrays changed after saving (one was added or removed)")
    return arrays


def _run_attrs(group: h5py.Group, where: str) -> dict:
    """A run group's attributes (what its digest covers), each checked for type."""
    inputs = _json_attr(group, "inputs", where, "{}")
    if not all(isinstance(v, str) for v in inputs.values()):
        raise _Damaged(f"{where}'s inputs attribute must map roles to run or model names")
    return {"kind": _text_attr(group, "kind", where), "record_version": _int_attr(group, "record_version", where, 1),
            "inputs": inputs, "meta": _json_attr(group, "meta", where)}


def _run_groups(f: h5py.File) -> dict[str, tuple[str, int, dict, dict, h5py.Group]]:
    """name → (kind, record version, inputs, meta, group), for either format; attributes checked."""
    from .runs import BY_KIND

    if "runs" not in f:  # format 1
        return {kind: (kind, 1, {}, _json_attr(group, "meta", f"experiments/{kind}"), group)
                for kind, group in _groups(f["experiments"], "experiments")}
    runs = {}
    for name, group in _groups(f["runs"], "runs"):
        attrs = _run_attrs(group, f"runs/{name}")
        spec = BY_KIND.get(attrs["kind"])
        if spec is not None and attrs["record_version"] <= spec.record_version:
            # A kind or record version this app does not know is refused by name on load, digest or not.
            _check_digest(group, attrs, f"runs/{name}")
        if attrs["record_version"] < 1:
            raise _Damaged(f"runs/{name}'s record_version must be at least 1, not {attrs['record_version']}")
        runs[name] = (attrs["kind"], attrs["record_version"], attrs["inputs"], attrs["meta"], group)
    return runs


def read_header(path: str | Path) -> dict:
    """Format attributes, model descriptions and each run's kind and meta, without loading arrays or weights."""
    with _open(path) as f:
        header = _root_attrs(f)
        header["model"] = _read_description(f["model"])
        header["models"] = {name: _read_description(group) for name, group in _groups(f.get("models"), "models")}
        header["runs"] = {name: {"kind": kind, "record_version": version, "inputs": inputs, "meta": meta}
                          for name, (kind, version, inputs, meta, group) in _run_groups(f).items()}
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
            version = _attr(self.file.attrs.get("format_version", 0))
            if isinstance(version, bool) or not isinstance(version, int):  # 2.5 is damage, not version 2
                raise SessionError(f"{path.name} is damaged: its format_version must be an integer, not {version!r:.40}")
            if version > FORMAT_VERSION:
                raise SessionError(f"{path.name} uses session format {version}, newer than this app supports "
                                   f"({FORMAT_VERSION}); update wna-gui")
            if version < 1:
                raise SessionError(f"{path.name} has no valid format version")
            if "model" not in self.file or ("runs" if version >= 2 else "experiments") not in self.file:
                raise SessionError(f"{path.name} is incomplete: the model or runs group is missing")
            _check_links(self.file)
            _check_digest(self.file, _root_attrs(self.file), "its top-level")
        except BaseException as exc:
            self.file.close()
            self._translate(exc)
            raise
        return self.file

    def __exit__(self, kind, exc, traceback) -> None:
        self.file.close()
        self._translate(exc)

    def _translate(self, exc) -> None:
        """Damage found while reading becomes one line naming the file, the object inside it and the damage."""
        if isinstance(exc, _Damaged):
            raise SessionError(f"{self.path.name} is damaged: {exc}") from None
        # SystemError: h5py's lock wrapper re-raises some HDF5 failures on damaged metadata as one.
        if isinstance(exc, (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError,
                            OverflowError, SystemError)) and not isinstance(exc, SessionError):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise SessionError(f"{self.path.name} is damaged: {type(exc).__name__}: {first}") from None


def _read_description(group: h5py.Group) -> dict:
    where = group.name.lstrip("/")
    description = _json_attr(group, "description", where)
    _check_digest(group, description, f"{where}'s description")
    return description


def _read_model(group: h5py.Group) -> tuple[dict, bytes | None]:
    description = _read_description(group)
    weights = group.get("weights")
    return description, None if weights is None else _read_dataset(weights, group.name.lstrip("/") + "/weights").tobytes()


def _rebuild_model(path: Path, description: dict, blob: bytes | None, label: str) -> LoadedModel:
    try:
        # Never runs code from the file: a code-bearing model comes back sealed (models.unseal loads it on trust).
        model = model_from_record(description, blob, label, path.name)
    except Exception as exc:
        raise SessionError(f"{path.name}: {label} cannot be rebuilt: {str(exc).splitlines()[0]}") from None
    if not model.sealed and model.weights_sha256() != description.get("weights_sha256"):
        raise SessionError(f"{path.name}: {label}'s weights do not match their recorded sha256 (file damaged?)")
    return model


def load_session(path: str | Path) -> Session:
    """Read a session file (any format version up to this one). Any problem raises SessionError, one line."""
    from .runs import BY_KIND

    path = Path(path)
    fingerprint = file_fingerprint(path)  # taken before reading: a change made during the read still counts
    with _open(path) as f:
        primary = _read_model(f["model"])
        extra = {name: _read_model(group) for name, group in _groups(f.get("models"), "models")}
        records = {name: (kind, version, inputs, meta, _read_arrays(group, f"runs/{name}"))
                   for name, (kind, version, inputs, meta, group) in _run_groups(f).items()}
        attrs = _root_attrs(f)
        run_dates = _json_attr(f, "run_dates", "the file", "{}")  # absent before run dates were kept
    model = _rebuild_model(path, *primary, "the session's model")
    models = {name: _rebuild_model(path, *record, f"model {name!r}") for name, record in extra.items()}
    runs, inputs = {}, {}
    for name, (kind, version, run_inputs, meta, arrays) in records.items():
        spec = BY_KIND.get(kind)
        if spec is None:
            raise SessionError(f"{path.name} holds a {kind!r} run this version cannot read; update wna-gui, or "
                               "install the plugin that adds it")
        if version > spec.record_version:
            raise SessionError(f"{path.name}: its {kind} run {name!r} was written by a newer wna-gui "
                               f"(record version {version} > {spec.record_version}); update wna-gui")
        try:
            for step in range(version, spec.record_version):
                meta, arrays = spec.migrations[step](meta, arrays)
            runs[name] = spec.state.from_record(meta, arrays)
        except Exception as exc:  # any failure to rebuild a state from the file's values is damage to that run
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            label = f"missing {detail}" if isinstance(exc, KeyError) else detail or type(exc).__name__
            raise SessionError(f"{path.name} is damaged: runs/{name} ({kind}): {label}") from None
        if run_inputs:
            inputs[name] = run_inputs
    for state in runs.values():
        # A run that trained models gets them back from /models (where save_session put them).
        attach = getattr(state, "attach_models", None)
        if attach is not None:
            attach(models)
    return Session(model=model, runs=runs, models=models, inputs=inputs, created=attrs.get("created", ""),
                   modified=attrs.get("modified", ""), app_version=attrs.get("app_version", ""),
                   path=path, notes=attrs.get("notes", ""), origin=attrs.get("origin", ""), fingerprint=fingerprint,
                   run_dates={name: _dates_of(run_dates.get(name), attrs) for name in runs})


def _dates_of(dates, attrs: dict) -> dict[str, str]:
    """A run's recorded dates; a file from before runs had their own gives them the session's."""
    if isinstance(dates, dict) and dates:
        return {key: str(value) for key, value in dates.items()}
    return {"created": str(attrs.get("created", "")), "modified": str(attrs.get("modified", ""))}


def autosave_path(directory: str | Path) -> Path:
    return Path(directory) / "autosave.wna.h5"
