"""Regenerate main-window.png: the window after a 200,000-sample run of the default experiment.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots/take_screenshot.py
"""

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QPointF, QSettings
from PySide6.QtWidgets import QApplication

from wna_gui.app.main_window import MainWindow

SAMPLES = 200_000
OUT = Path(__file__).with_name("main-window.png")

app = QApplication(sys.argv[:1])
with tempfile.TemporaryDirectory() as workdir:
    window = MainWindow(settings=QSettings(f"{workdir}/settings.ini", QSettings.Format.IniFormat), data_dir=workdir)
    window.resize(1400, 900)
    window.show()
    panel = window.panels[0]
    panel.forms["classification_images"].set_values({"samples": SAMPLES, "batch_size": 1000, "seed": 0})
    panel.apply_view_settings({"map_view": "zmap"})
    loop = QEventLoop()
    window.engine.run_finished.connect(loop.quit)
    window.start_run()
    loop.exec()
    for _ in range(50):
        app.processEvents()
    # Hover over a pixel of the most frequent class so the read-out shows, as for a user.
    tile = panel.map_grid._tiles[int(panel.snapshot.counts.argmax())]
    panel.map_grid._mouse_moved(tile.view.mapViewToScene(QPointF(9.5, 12.5)))
    app.processEvents()
    window.grab().save(str(OUT))
    window.dirty = False
    window.close()
print(f"wrote {OUT}")
