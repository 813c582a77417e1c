"""`wna --version` and `wna --help` answer without importing the engine (torch, h5py, the experiments), so the
command starts in a fraction of a second; commands that do work still get it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wna_gui.cli import installed_version

HEAVY = ("torch", "h5py", "numpy", "PySide6", "wna_gui.core.registry")


def _modules_after(words: list[str]) -> tuple[str, set[str]]:
    """What ``wna WORDS`` prints to stdout, and which of HEAVY it imported, in a fresh interpreter."""
    script = ("import sys\n"
              "from wna_gui.cli import main\n"
              f"try:\n    main({words!r})\nexcept SystemExit:\n    pass\n"
              f"print('IMPORTED', *[m for m in {HEAVY!r} if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    printed, _, imported = done.stdout.rpartition("IMPORTED")
    return printed, set(imported.split())


@pytest.mark.parametrize("words", [["--version"], ["--help"], ["-h"]])
def test_version_and_help_do_not_import_the_engine(words):
    printed, imported = _modules_after(words)
    assert imported == set(), f"`wna {' '.join(words)}` imported {sorted(imported)}"
    if words == ["--version"]:
        assert printed.strip() == f"wna-gui {installed_version()}"
    else:
        for command in ("run", "info", "export", "train"):
            assert f"    {command} " in printed, f"`wna {words[0]}` does not list {command}"


def test_a_subcommand_still_loads_the_experiments():
    printed, imported = _modules_after(["run", "classification-images", "--help"])
    assert {"torch", "wna_gui.core.registry"} <= imported
    assert "--samples" in printed
