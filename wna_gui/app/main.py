"""Entry point of the `wna-gui` desktop app."""

from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from .. import __version__
from .main_window import APPLICATION, ORGANIZATION, MainWindow


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(prog="wna-gui", description="White-noise analysis of neural networks.")
    parser.add_argument("session", nargs="?", help="a session file (.h5) to open")
    parser.add_argument("--version", action="version", version=f"wna-gui {__version__}")
    args, qt_args = parser.parse_known_args(argv[1:])
    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    QApplication.setApplicationVersion(__version__)
    app = QApplication.instance() or QApplication([argv[0], *qt_args])
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
