"""Locate bundled resources (sample digits, default model) in a checkout or an install."""

from __future__ import annotations

from importlib import resources as importlib_resources
from pathlib import Path


def resource_path(name: str) -> Path:
    """Path of a bundled resource file; a clear error if the install lacks it."""
    path = Path(str(importlib_resources.files("wna_gui.resources").joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"bundled resource {name} is missing from {path.parent}; reinstall wna-gui")
    return path
