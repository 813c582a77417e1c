"""The log file (`-v`, `--log-file`, internal errors naming it) and the settings reset (CLI and app)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

from wna_gui import cli
from wna_gui.app.settings_store import app_settings
from wna_gui.core.trust import remember_trust, trusted_models

SHA = "ab" * 32


def log_text() -> str:
    return (Path(os.environ["WNA_GUI_LOG_DIR"]) / "wna-gui.log").read_text()


def test_a_command_and_its_error_go_to_the_log_file_and_the_error_stays_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere.h5"
    assert cli.main(["info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wna: error:") and "nowhere.h5" in err
    text = log_text()
    assert f"info {missing}" in text  # the command line
    assert "error: session file not found" in text and "nowhere.h5" in text


def test_verbose_prints_the_log_on_stderr_and_log_file_moves_it(tmp_path, capsys):
    own = tmp_path / "logs" / "mine.log"
    assert cli.main(["-v", "--log-file", str(own), "settings"]) == 0
    err = capsys.readouterr().err
    assert "INFO wna_gui.cli: wna " in err and "finished in" in err
    assert "settings" in own.read_text() and "finished in" in own.read_text()
    assert not (Path(os.environ["WNA_GUI_LOG_DIR"]) / "wna-gui.log").exists()  # not also in the default place

    assert cli.main(["settings"]) == 0
    assert capsys.readouterr().err == ""  # without -v the terminal gets no log lines


def test_an_unwritable_log_file_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["--log-file", str(blocker / "x.log"), "settings"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the log file" in err


def test_an_internal_error_is_one_line_naming_the_log_that_holds_its_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("boom in the engine")

    monkeypatch.setattr(cli, "cmd_settings", broken)  # stands in for a bug anywhere behind a command
    assert cli.main(["settings"]) == 1
    err = capsys.readouterr().err
    log_file = Path(os.environ["WNA_GUI_LOG_DIR"]) / "wna-gui.log"
    assert err.count("\n") == 1
    assert "internal error: RuntimeError: boom in the engine" in err and f"details in {log_file}" in err
    text = log_text()
    assert "Traceback (most recent call last)" in text and "boom in the engine" in text


def test_settings_reset_clears_what_the_app_stored_and_keeps_trust_unless_asked(capsys):
    store = app_settings()  # the store MainWindow uses by default
    assert ".qttest" in store.fileName()  # conftest's test mode: never the user's real settings
    store.setValue("recent_files", ["/data/s.h5"])
    store.setValue("panels/classification/settings", json.dumps({"forms": {}}))
    store.sync()
    remember_trust(SHA, "net.ts", "a test")

    assert cli.main(["settings", "--reset"]) == 0
    out = capsys.readouterr().out
    assert "reset 2 app setting(s)" in out and "recent_files" in out and "panels" in out
    assert "kept the trusted models" in out
    fresh = app_settings()
    assert fresh.value("recent_files") is None and fresh.allKeys() == []
    assert SHA in trusted_models()

    assert cli.main(["settings", "--reset", "--trust-too"]) == 0
    assert "forgot every trusted model" in capsys.readouterr().out
    assert trusted_models() == {}


def test_trust_too_without_reset_is_refused(capsys):
    assert cli.main(["settings", "--trust-too"]) == 2
    assert "--trust-too goes with --reset" in capsys.readouterr().err


def test_restore_defaults_in_the_app_empties_the_store_and_shows_the_defaults(qtbot, tmp_path):
    from wna_gui.app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    panel = window.panels[0]
    defaults = panel.settings()
    form = next(iter(panel.forms.values()))
    key, value = next((k, v) for k, v in form.values().items() if isinstance(v, int) and not isinstance(v, bool))
    form.set_values({key: value + 1})
    window.tabs.setCurrentIndex(1)
    window._store_settings()
    assert settings.allKeys()
    assert panel.settings() != defaults

    window.restore_defaults()
    assert settings.allKeys() == []
    assert panel.settings() == defaults and window.tabs.currentIndex() == 0
    names = [action.objectName() for menu in window.menuBar().findChildren(QMenu) for action in menu.actions()]
    assert "action_restore_defaults" in names and "action_open_log_folder" in names


def test_the_apps_error_dialog_names_the_log_that_holds_the_traceback(qtbot, tmp_path):
    from wna_gui.app.main_window import MainWindow
    from wna_gui.core.logs import setup_logging

    log_file = setup_logging()  # as wna-gui's main() does
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show_error("Run failed", "Unexpected error: ZeroDivisionError: division by zero",
                      "Traceback (most recent call last):\n  File \"x.py\", line 1\nZeroDivisionError: division by zero")
    assert str(log_file) in window.error_dialog.informativeText()
    text = log_file.read_text()
    assert "Run failed: Unexpected error: ZeroDivisionError" in text and "Traceback (most recent call last)" in text
    window.error_dialog.close()


def test_the_apps_entry_module_leaves_torch_for_after_the_splash():
    """The splash can only show at once if nothing before it imports torch or the experiments (seconds)."""
    import subprocess
    import sys

    script = ("import sys, wna_gui.app.main\n"
              "print(*[m for m in ('torch', 'h5py', 'wna_gui.core.registry', 'wna_gui.app.main_window') "
              "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("device", ["mps", "mps:0"])
def test_the_apple_gpu_is_refused_in_one_line_saying_why(device):
    from wna_gui.core.control import EngineError, pick_device

    with pytest.raises(EngineError, match="float64"):
        pick_device(device)
