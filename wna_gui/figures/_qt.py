"""The Qt application every figure needs: the running one, or an offscreen one for headless use."""

from __future__ import annotations

import os
import sys


def ensure_gui_application():
    """The running Q(Gui)Application, or a new offscreen one for headless use (CLI, tests).

    A QApplication (not a bare QGuiApplication): the psychometric figures are
    pyqtgraph graphics items (QGraphicsWidgets), which need one even off screen.
    """
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QGuiApplication.instance()
    if app is None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(sys.argv[:1])
    return app
