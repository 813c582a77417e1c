"""Never lose a run: no silent replacement, one writer per session file, a file changed on disk is not
overwritten, and a full disk is a one-line error with the old file intact (issue 20, parts 2 and 3).

Real processes, real locks and (where the test may mount one) a real full file system.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from wna_gui.cli import main
from wna_gui.core import session as session_module
from wna_gui.core.classification import KIND
from wna_gui.core.locking import SessionLock, SessionLocked, lock_path
from wna_gui.core.session import SessionConflict, SessionWriteError, load_session, save_session

RUN = ["run", "classification-images", "--batch-size", "500", "--quiet", "--autosave-seconds", "0"]
WNA = [sys.executable, "-m", "wna_gui.cli"]
BUTTONS = QMessageBox.StandardButton


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wna: error:") and "Traceback" not in text, text
    return lines[0]


@pytest.fixture
def saved(tmp_path):
    """A session file holding one small classification-image run (seed 3)."""
    path = tmp_path / "s.h5"
    assert main([*RUN, "--samples", "1000", "--seed", "3", "--out", str(path)]) == 0
    return path


# --- no silent replacement ---

def test_a_second_run_of_the_same_name_is_refused_before_any_work_and_replace_replaces(saved, capsys):
    before = digest(saved)
    capsys.readouterr()
    assert main([*RUN, "--samples", "1000", "--seed", "4", "--out", str(saved)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'classification_images'" in line and "--name" in line and "--replace" in line
    assert digest(saved) == before, "the refused run must not touch the file"

    assert main([*RUN, "--samples", "1000", "--seed", "4", "--name", "second", "--out", str(saved)]) == 0
    runs = load_session(saved).runs
    assert runs[KIND].config.seed == 3 and runs["second"].config.seed == 4

    assert main([*RUN, "--samples", "1000", "--seed", "5", "--replace", "--out", str(saved)]) == 0
    runs = load_session(saved).runs
    assert runs[KIND].config.seed == 5 and runs["second"].config.seed == 4


# --- one writer per file ---

def _start(out: Path, name: str, samples: int) -> subprocess.Popen:
    return subprocess.Popen([*WNA, *RUN, "--samples", str(samples), "--seed", "1", "--name", name, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_writers_at_once_never_both_claim_the_file(tmp_path):
    out = tmp_path / "same.h5"
    writers = {name: _start(out, name, 1500) for name in ("first", "second")}
    results = {name: (p.wait(timeout=180), p.communicate()[1]) for name, p in writers.items()}
    runs = load_session(out).runs
    for name, (rc, err) in results.items():
        assert rc != 0 or name in runs, f"{name} exited 0 but its run is not in the file"
        if rc != 0:
            assert rc == 2 and "is being written by process" in one_error_line(err)
    assert any(rc == 0 for rc, _ in results.values())


@pytest.mark.slow
def test_a_second_writer_is_refused_at_once_naming_the_first(tmp_path):
    out = tmp_path / "same.h5"
    first = _start(out, "first", 10_000_000)
    try:
        deadline = time.monotonic() + 120
        while not out.exists():  # its first save: it holds the lock and has written its run
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1]
            time.sleep(0.2)
        second = subprocess.run([*WNA, *RUN, "--samples", "1000", "--name", "second", "--out", str(out)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert f"session same.h5 is being written by process {first.pid} on host" in line
        assert "(wna run classification-images); use another --out" in line
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C: saves and stops
        first.communicate(timeout=120)
    assert first.returncode == 130
    assert set(load_session(out).runs) == {"first"}


def test_the_lock_names_its_holder_and_is_free_again_after_release(tmp_path):
    path = tmp_path / "s.h5"
    with SessionLock(path, "wna run sta"):
        holder = json.loads(lock_path(path).read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "wna run sta"
        with pytest.raises(SessionLocked, match=f"s.h5 is being written by process {os.getpid()} .*wna run sta"):
            SessionLock(path, "wna run classification-images").acquire()
    SessionLock(path, "again").acquire().release()


# --- a file changed on disk is not overwritten ---

def test_a_file_changed_behind_the_sessions_back_is_left_alone_and_the_session_goes_to_a_side_file(saved):
    mine, theirs = load_session(saved), load_session(saved)
    theirs.runs["theirs"] = theirs.runs[KIND]
    save_session(theirs, saved)
    on_disk = digest(saved)
    mine.runs["mine"] = mine.runs[KIND]
    with pytest.raises(SessionConflict) as raised:
        save_session(mine, saved)
    message = str(raised.value)
    side = raised.value.saved_to
    assert "\n" not in message and "changed on disk" in message and side.name in message
    assert side.name.startswith("s.conflict-") and side.suffix == ".h5"
    assert digest(saved) == on_disk, "the other writer's file must be left as it is"
    assert set(load_session(side).runs) == {KIND, "mine"}
    assert set(load_session(saved).runs) == {KIND, "theirs"}


# --- full disk and write failures ---

def test_a_write_that_fails_midway_removes_its_temp_file_and_keeps_the_old_file(saved, monkeypatch):
    before = digest(saved)
    session = load_session(saved)
    session.runs["more"] = session.runs[KIND]
    real_write_all = session_module._write_all

    def full_after_some_bytes(fd, data):
        real_write_all(fd, data[:4096])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(session_module, "_write_all", full_after_some_bytes)
    with pytest.raises(SessionWriteError) as raised:
        save_session(session, saved)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("cannot save s.h5: no space left on device (needs ~")
    assert message.endswith("the previous file is unchanged")
    assert temp_files(saved.parent) == [] and digest(saved) == before


@pytest.fixture
def tiny_disk(tmp_path):
    """A 6 MiB tmpfs (needs the right to mount; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_run_on_a_full_disk_exits_2_in_one_line_and_leaves_the_old_file_intact(saved, tiny_disk):
    out = tiny_disk / "s.h5"
    out.write_bytes(saved.read_bytes())
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    (tiny_disk / "filler").write_bytes(bytes(free - 256 * 1024))  # what is left cannot hold the session
    before = digest(out)
    done = subprocess.run([*WNA, *RUN, "--samples", "1000", "--name", "more", "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, (done.returncode, done.stderr)  # not 139: no segfault
    line = one_error_line(done.stderr)
    assert "cannot save s.h5: no space left on device" in line and "previous file is unchanged" in line
    assert temp_files(tiny_disk) == [] and digest(out) == before


# --- the app ---

@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from wna_gui.app.main_window import MainWindow

    replies, asked = {}, []

    def question(parent, title, text, *args, **kwargs):
        asked.append((title, text))
        return replies.get(title, BUTTONS.Discard)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    window.replies, window.asked = replies, asked
    qtbot.addWidget(window)
    window.show()
    yield window
    window._hold_lock(None)


def _run(qtbot, window, **values):
    window.panels[0].forms[KIND].set_values({"samples": 1000, "batch_size": 500, **values})
    with qtbot.waitSignal(window.engine.run_finished, timeout=90_000):
        window.start_run()


def _save(qtbot, window):
    window.save()
    qtbot.waitUntil(lambda: not window.dirty, timeout=20_000)


def test_a_new_run_in_the_app_never_replaces_the_saved_one(window, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "app.h5"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(path), "")))
    _run(qtbot, window, seed=7)
    _save(qtbot, window)
    _run(qtbot, window, seed=8)  # another seed: Start begins a new run
    assert not any(title == "Start a new run" for title, _ in window.asked), "nothing unsaved was at stake"
    _save(qtbot, window)
    runs = load_session(path).runs
    assert runs[KIND].config.seed == 7, "the saved run must stay as it was saved"
    assert runs[f"{KIND}-2"].config.seed == 8


def test_the_app_opens_a_session_another_process_writes_read_only_and_saves_elsewhere(
        window, qtbot, saved, tmp_path, monkeypatch):
    before = digest(saved)
    with SessionLock(saved, "wna run classification-images"):
        window.open_session(saved)  # Cancel: not opened
        qtbot.waitUntil(lambda: any(title == "Session in use" for title, _ in window.asked), timeout=20_000)
        assert window.session_path is None
        title, text = window.asked[-1]
        assert f"being written by process {os.getpid()}" in text and "read-only" in text

        window.replies["Session in use"] = BUTTONS.Open
        window.open_session(saved)
        qtbot.waitUntil(lambda: window.session_path == saved, timeout=20_000)
        assert window.read_only and "read-only" in window.windowTitle()
        elsewhere = tmp_path / "elsewhere.h5"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(elsewhere), "")))
        window.dirty = True
        _save(qtbot, window)  # Save on a read-only session is Save As
        assert window.session_path == elsewhere and not window.read_only
    assert digest(saved) == before
    assert set(load_session(elsewhere).runs) == {KIND}
