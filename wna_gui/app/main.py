"""Entry point of the `wna-gui` desktop app."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import cast

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QSplashScreen

from .. import __version__
from ..core.logs import log as _package_log
from ..core.logs import setup_logging
from ..core.resources import resource_path
from .settings_store import APPLICATION, ORGANIZATION

log = _package_log.getChild("app")


def show_splash(icon: QIcon) -> QSplashScreen:
    splash = QSplashScreen(icon.pixmap(256, 256))
    splash.showMessage(f"wna-gui {__version__}\nloading torch…",
                       Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter)
    splash.show()
    QApplication.processEvents()  # paint it now: the imports that follow block the event loop
    return splash


def log_uncaught(kind, value, traceback) -> None:
    """An exception escaping a slot: into the log (Qt goes on running), then the usual printout."""
    log.error("uncaught exception", exc_info=(kind, value, traceback))
    sys.__excepthook__(kind, value, traceback)


def missing_display() -> str | None:
    """Why no window can open here, or None. Qt itself aborts (SIGABRT) with a plugin message when the X11 or
    Wayland platform finds no display; say it in one line first."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs…: the user chose a platform that needs no desktop display
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY and WAYLAND_DISPLAY are unset): start wna-gui from a desktop session, or "
            "run experiments headless with `wna run …`")


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(prog="wna-gui", description="White-noise analysis of neural networks.")
    parser.add_argument("session", nargs="?", help="a session file (.h5) to open")
    parser.add_argument("--version", action="version", version=f"wna-gui {__version__}")
    parser.add_argument("--install-desktop-entry", action="store_true",
                        help="add wna-gui to this user's application menu (freedesktop) and exit")
    args, qt_args = parser.parse_known_args(argv[1:])
    if args.install_desktop_entry:
        from .desktop_entry import install_desktop_entry

        for path in install_desktop_entry():
            print(f"wrote {path}")
        return 0
    problem = missing_display()
    if problem is not None:
        print(f"wna-gui: error: {problem}", file=sys.stderr)
        return 2
    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    QApplication.setApplicationVersion(__version__)
    log_file = setup_logging()
    sys.excepthook = log_uncaught
    # A widget app: any instance already running is a QApplication.
    app = cast(QApplication, QApplication.instance()) or QApplication([argv[0], *qt_args])
    icon = QIcon(str(resource_path("wna-gui.svg")))
    app.setWindowIcon(icon)
    splash = show_splash(icon)
    log.info("wna-gui %s started, splash shown %.1f s after main(); log %s", __version__,
             time.perf_counter() - started, log_file)
    # Only now, under the splash: the window imports torch and every experiment (seconds, more on a busy machine).
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    splash.finish(window)
    log.info("window shown %.1f s after main()", time.perf_counter() - started)
    # After the event loop starts, so the question appears over a visible window.
    if args.session:
        QTimer.singleShot(0, lambda: window.open_session(args.session))
    else:
        QTimer.singleShot(0, window.offer_recovery)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
