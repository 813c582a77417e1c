"""Shared test setup: headless Qt, isolated Qt paths, and no QThread left running after a test."""

import os
import tempfile

# Before anything imports Qt: tests never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # A parallel worker (pytest -n): its own home, since Qt's test-mode settings live in ~/.qttest and two workers
    # would read each other's; and one compute thread each, so workers share the cores instead of fighting.
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.path.expanduser("~"), ".config", "matplotlib"))
    os.environ["HOME"] = tempfile.mkdtemp(prefix=f"wna-tests-{os.environ['PYTEST_XDIST_WORKER']}-")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

try:
    import shiboken6
    from PySide6.QtCore import QStandardPaths, QThread
except ImportError:  # the engine's tests run without PySide6
    QThread = None
else:
    # Standard locations (app data, config) point into ~/.qttest, never the user's real ones.
    QStandardPaths.setTestModeEnabled(True)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true",
                     help="also run the tests marked slow (training at the papers' budgets, fuzzing, killed "
                          "processes, torchrun, every kind through the app): the full suite, what .ci/run runs")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow are skipped unless --run-slow is given (or -m names the marker), so a plain `pytest`
    stays a few minutes' check while CI runs everything."""
    if config.getoption("--run-slow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (.ci/run does)")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_trust_store(tmp_path_factory, monkeypatch):
    """Remembered model trust (core/trust.py) lives in a fresh folder per test, never the user's."""
    monkeypatch.setenv("WNA_GUI_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("WNA_GUI_LOG_DIR", str(tmp_path_factory.mktemp("logs")))  # core/logs.py: not the user's log


if QThread is not None:

    @pytest.fixture(autouse=True)
    def widgets_of_earlier_tests_deleted():
        """Delete the widgets earlier tests closed: pytest-qt's deleteLater waits for an event loop, and a test
        that runs none leaves them all to the next test that does (once 40 s of hundreds of panels' plots)."""
        from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

        if QCoreApplication.instance() is not None:
            loop = QEventLoop()
            QTimer.singleShot(0, loop.quit)
            loop.exec()  # entering a loop deletes what was deleteLater'd outside one, as the app's own loop does
        yield

    @pytest.fixture(autouse=True)
    def no_running_qthreads(monkeypatch):
        """Fail a test that leaves a QThread running (then stop it, so later tests are unaffected)."""
        started = []
        original_start = QThread.start

        def recording_start(thread, *args):
            started.append(thread)
            return original_start(thread, *args)

        monkeypatch.setattr(QThread, "start", recording_start)
        yield
        leaked = [t for t in started if shiboken6.isValid(t) and t.isRunning()]
        for thread in leaked:
            thread.quit()
            thread.wait(10_000)
        assert not leaked, f"test left QThread(s) running: {[t.objectName() or repr(t) for t in leaked]}"
