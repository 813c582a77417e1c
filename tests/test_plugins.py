"""Third-party experiments: a package declaring an ExperimentSpec under the `wna_gui.experiments` entry-point group
is a `wna run` subcommand, a kind sessions save and load, and a tab in the app, like the built-ins. The example
plugin (tests/data/plugin_example) is registered the way pip registers it, through a dist-info folder on the
path, without installing anything."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wna_gui.core.registry import BUILT_IN, PLUGIN_GROUP, _plugin_experiments

PLUGIN = Path(__file__).parent / "data" / "plugin_example"


def register(site: Path, extra: dict[str, str] | None = None) -> Path:
    """The plugin's dist-info (what `pip install` writes) in ``site``, with its pyproject's entry points."""
    text = (PLUGIN / "pyproject.toml").read_text()  # read without tomllib, which Python 3.10 lacks
    name, version = (re.search(rf'^{key} = "(.+)"$', text, re.MULTILINE).group(1) for key in ("name", "version"))
    section = text.split(f'[project.entry-points."{PLUGIN_GROUP}"]\n', 1)[1].split("\n\n", 1)[0]
    points = {**dict(re.findall(r'^(\S+) = "(.+)"$', section, re.MULTILINE)), **(extra or {})}
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    return site


SCRIPT = r"""
import contextlib, io, json, sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from wna_gui.cli import main
from wna_gui.core.session import load_session, save_session

folder = Path(sys.argv[1])
out = {}
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
    main(["run", "--help"])
out["run_help"] = help_text.getvalue()
with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
    main(["run", "noise-votes", "--help"])
out["own_help"] = help_text.getvalue()
session = str(folder / "s.h5")
fast = ["--device", "cpu", "--quiet", "--autosave-seconds", "0"]
out["run"] = main(["run", "noise-votes", "--samples", "3000", "--batch-size", "1000", "--out", session, *fast])
out["resume"] = main(["run", "noise-votes", "--resume", session, "--samples", "5000", *fast])
loaded = load_session(session)
state = loaded.runs["noise_votes"]
save_session(loaded, folder / "copy.h5")
again = load_session(folder / "copy.h5").runs["noise_votes"]
out["votes"], out["votes_again"] = state.votes.tolist(), again.votes.tolist()
out["done"], out["finished"] = state.progress_done, state.finished
info = io.StringIO()
with contextlib.redirect_stdout(info):
    out["info"] = main(["info", session, "--json"])
out["summary"] = json.loads(info.getvalue())["experiments"]["noise_votes"]
with contextlib.redirect_stdout(io.StringIO()):
    out["export"] = main(["export", session, "--out", str(folder / "export")])
out["csv"] = (folder / "export" / "noise_votes.csv").read_text()
app = QApplication([])
from wna_gui.app.panels import build_panels
panels = build_panels()
out["tabs"] = [panel.title for panel in panels]
tab = next(panel for panel in panels if "noise_votes" in panel.specs)
tab.draw("noise_votes", state.snapshot())
out["drawn"] = tab.votes_label.text()
print(json.dumps(out))
"""


@pytest.mark.slow  # a fresh interpreter imports the whole app, runs, resumes and exports: seconds
def test_an_installed_plugin_runs_saves_and_shows_like_a_built_in(tmp_path):
    site = register(tmp_path / "site")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "noise-votes" in out["run_help"] and "example plugin" in out["run_help"]
    assert "--samples" in out["own_help"] and "--model" in out["own_help"]  # flags from its declared config
    assert (out["run"], out["resume"], out["info"], out["export"]) == (0, 0, 0, 0)
    assert out["done"] == 5000 and out["finished"] and sum(out["votes"]) == 5000  # extended from 3,000
    assert out["votes_again"] == out["votes"]
    assert out["summary"]["kind"] == "noise_votes" and out["summary"]["samples_done"] == 5000
    assert out["csv"].splitlines()[0] == "class,votes,share" and len(out["csv"].splitlines()) == 11
    assert out["tabs"][-1] == "Noise votes" and out["tabs"][:-1]  # after the built-ins' tabs
    assert out["drawn"].count("\n") == 9


def test_broken_or_clashing_plugins_are_skipped_with_one_line_each(tmp_path, monkeypatch, caplog):
    site = register(tmp_path / "site", {"broken": "wna_noise_votes.missing:EXPERIMENT",
                                        "not-a-spec": "wna_noise_votes:KIND",
                                        "same-kind": "wna_gui.core.classification:EXPERIMENT",
                                        "twice": "wna_noise_votes:EXPERIMENT"})
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.syspath_prepend(str(site))
    with caplog.at_level(logging.WARNING, logger="wna_gui.core.registry"):
        found = _plugin_experiments(BUILT_IN)
    assert [spec.command for spec in found] == ["noise-votes"]
    lines = {record.getMessage().split("'")[1]: record.getMessage() for record in caplog.records}
    assert set(lines) == {"broken", "not-a-spec", "same-kind", "twice"}
    assert all("\n" not in line for line in lines.values())
    assert "ModuleNotFoundError" in lines["broken"]
    assert "is a str, not an ExperimentSpec" in lines["not-a-spec"]
    assert "kind 'classification_images' is already registered by wna-gui" in lines["same-kind"]
    assert "already registered by experiment plugin 'noise-votes'" in lines["twice"]
