"""Which code-bearing models this user trusts, by the sha256 of their stored bytes.

A TorchScript archive is a program: loading it runs code the archive carries
(``__setstate__``, scripted methods). A session is a document people mail to
each other, so a model of that kind read from a session stays *sealed*
(described, never loaded) until the user trusts that exact archive: with
``--trust-model SHA256`` for one command, or once for good (the app's trust
dialog, or loading the file yourself, which is trusting it by that act).

Remembered trust lives in one small JSON file shared by the command line and
the app (``trusted-models.json`` in the config folder: ``$WNA_GUI_CONFIG_DIR``,
else ``$XDG_CONFIG_HOME/wna-gui``, else ``~/.config/wna-gui``); the app's
Settings > Trusted models lists it and revokes entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

TRUST_FILE_NAME = "trusted-models.json"


def sha256_of(data: bytes | str | Path) -> str:
    """sha256 of bytes, or of a file's bytes (read in chunks: archives can be large)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_dir() -> Path:
    explicit = os.environ.get("WNA_GUI_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wna-gui"


def trust_file() -> Path:
    return config_dir() / TRUST_FILE_NAME


def trusted_models() -> dict[str, dict]:
    """sha256 → {"name", "origin", "trusted"}: every remembered trust. An unreadable file trusts nothing."""
    try:
        data = json.loads(trust_file().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {sha: entry if isinstance(entry, dict) else {} for sha, entry in data.items()
            if isinstance(sha, str) and is_sha256(sha)}


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def normalise_sha256(text: str) -> str:
    """A sha256 as the user typed it (any case, ``sha256:`` prefix allowed); ValueError if it is not one."""
    sha = str(text).strip().lower().removeprefix("sha256:")
    if not is_sha256(sha):
        raise ValueError(f"not a sha256 (64 hex digits): {text!r}")
    return sha


def is_trusted(sha256: str, also: tuple[str, ...] | set[str] = ()) -> bool:
    return sha256 in also or sha256 in trusted_models()


def remember_trust(sha256: str, name: str, origin: str) -> None:
    """Trust this archive from now on (written atomically; an unwritable config folder only loses the memory)."""
    entries = trusted_models()
    entries[sha256] = {"name": name, "origin": origin,
                       "trusted": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write(entries)


def revoke_trust(sha256: str) -> None:
    entries = trusted_models()
    if entries.pop(sha256, None) is not None:
        _write(entries)


def _write(entries: dict) -> None:
    path = trust_file()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(entries, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        # Trust given for this process still holds; only remembering it failed.
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
