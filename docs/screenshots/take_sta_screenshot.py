"""Regenerate receptive-fields.png: the Receptive fields tab after a 100,000-sample conv2 run of the bundled CNN.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots/take_sta_screenshot.py
    (or QT_QPA_PLATFORM=offscreen python docs/screenshots/take_sta_screenshot.py)
"""

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings
from PySide6.QtWidgets import QApplication

from wna_gui.app.main_window import MainWindow

OUT = Path(__file__).with_name("receptive-fields.png")

app = QApplication(sys.argv[:1])
with tempfile.TemporaryDirectory() as workdir:
    window = MainWindow(settings=QSettings(f"{workdir}/settings.ini", QSettings.Format.IniFormat), data_dir=workdir)
    window.resize(1400, 900)
    window.show()
    panel = next(panel for panel in window.panels if panel.name == "sta")
    window.tabs.setCurrentWidget(panel)
    panel.forms["sta"].set_values({"layer": "conv2", "samples": 100_000, "stc_samples": 0, "seed": 0})
    panel.unit.setValue(7)
    loop = QEventLoop()
    window.engine.run_finished.connect(loop.quit)
    window.start_run()
    loop.exec()
    for _ in range(50):
        app.processEvents()
    window.grab().save(str(OUT))
    window.dirty = False
    window.close()
print(f"wrote {OUT}")
