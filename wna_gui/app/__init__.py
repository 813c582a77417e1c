"""The desktop app (PySide6 + pyqtgraph): main window, engine thread, experiment panels."""
