"""Entry point of the `wna-gui` desktop app."""

from __future__ import annotations

import argparse
import os
import sys

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..core.resources import resource_path
from .main_window import APPLICATION, ORGANIZATION, MainWindow


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
    app = QApplication.instance() or QApplication([argv[0], *qt_args])
    app.setWindowIcon(QIcon(str(resource_path("wna-gui.svg"))))
    window = MainWindow()
    window.show()
    # After the event loop starts, so the question appears over a visible window.
    if args.session:
        QTimer.singleShot(0, lambda: window.open_session(args.session))
    else:
        QTimer.singleShot(0, window.offer_recovery)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
