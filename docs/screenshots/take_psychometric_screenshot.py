"""Regenerate psychometric.png (fc1 microstimulation of digit 3) and psychometric-grid.png (Fig. 23 style).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots/take_psychometric_screenshot.py
"""

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings
from PySide6.QtWidgets import QApplication

from wna_gui.app.main_window import MainWindow
from wna_gui.core.psychometric import KIND
from wna_gui.core.psychometric_grid import KIND as GRID_KIND

HERE = Path(__file__).parent
SWEEP = {"target": 3, "layer": "fc1", "k_values": "0:10", "sign": 1, "gammas": 11, "n_boot": 200,
         "gof_samples": 200, "seed": 0}
GRID = {"targets": [], "k_values": "0, 5, 10", "layers": ["conv1", "conv2", "fc1"], "signs": [1], "gammas": 11}

app = QApplication(sys.argv[:1])


def run_to_end(window) -> None:
    loop = QEventLoop()
    window.engine.run_finished.connect(loop.quit)
    window.start_run()
    loop.exec()
    window.engine.run_finished.disconnect(loop.quit)
    for _ in range(50):
        app.processEvents()


with tempfile.TemporaryDirectory() as workdir:
    window = MainWindow(settings=QSettings(f"{workdir}/settings.ini", QSettings.Format.IniFormat), data_dir=workdir)
    window.resize(1400, 900)
    window.show()
    panel = next(p for p in window.panels if KIND in p.specs)
    window.tabs.setCurrentWidget(panel)
    panel.forms[KIND].set_values(SWEEP)
    run_to_end(window)
    window.grab().save(str(HERE / "psychometric.png"))
    panel.show_view(GRID_KIND)
    panel.forms[GRID_KIND].set_values(GRID)
    run_to_end(window)
    window.grab().save(str(HERE / "psychometric-grid.png"))
    window.dirty = False
    window.close()
print(f"wrote {HERE / 'psychometric.png'} and {HERE / 'psychometric-grid.png'}")
