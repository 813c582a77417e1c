"""Regenerate the human-observer screenshots: the run screen's instructions and a 2IFC trial, and the panel after
a simulated observer's yes/no staircase session (person beside network on the same trials).

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/screenshots/take_human_observer_screenshots.py
"""

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from wna_gui.app.human_screen import HumanRunScreen
from wna_gui.app.main_window import MainWindow
from wna_gui.core.human_observer import HumanObserverConfig, Stimuli, new_state
from wna_gui.core.models import load_default

HERE = Path(__file__).parent

app = QApplication(sys.argv[:1])
model = load_default()
config = HumanObserverConfig(task="2ifc", gamma=0.5, fixation_ms=0, practice=0, viewing_distance_cm=57,
                             screen_width_cm=53)
screen = HumanRunScreen(new_state(model, config), Stimuli(config, model))
screen.show_on_screen()
for _ in range(20):
    app.processEvents()
screen.grab().save(str(HERE / "human-observer-instructions.png"))
QTest.keyClick(screen, Qt.Key.Key_Space)
for _ in range(20):
    app.processEvents()
screen.grab().save(str(HERE / "human-observer-trial.png"))
screen.close()

with tempfile.TemporaryDirectory() as workdir:
    window = MainWindow(settings=QSettings(f"{workdir}/settings.ini", QSettings.Format.IniFormat), data_dir=workdir)
    window.resize(1400, 900)
    window.show()
    panel = next(panel for panel in window.panels if panel.name == "human_observer")
    window.tabs.setCurrentWidget(panel)
    panel.forms["human_observer"].set_values({"observer": "simulated", "task": "yes-no", "procedure": "staircase",
                                              "gamma": 0.5, "trials": 1500, "double_pass": 200,
                                              "smoothing": 1.5})
    loop = QEventLoop()
    window.engine.run_finished.connect(loop.quit)
    window.start_run()
    loop.exec()
    for _ in range(50):
        app.processEvents()
    window.grab().save(str(HERE / "human-observer-comparison.png"))
    window.dirty = False
    window.close()
print("wrote", *sorted(p.name for p in HERE.glob("human-observer-*.png")))
