"""Regenerate runs-dock.png and compare-runs.png: two classification-image runs of the bundled CNN (seeds 0 and 1,
30,000 samples each) kept in one session, listed in the Runs dock, and their z-maps compared side by side.

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/screenshots/take_runs_screenshots.py
"""

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings
from PySide6.QtWidgets import QApplication

from wna_gui.app.main_window import MainWindow

SAMPLES = 30_000
KIND = "classification_images"
HERE = Path(__file__).parent

app = QApplication(sys.argv[:1])


def settle() -> None:
    for _ in range(50):
        app.processEvents()


with tempfile.TemporaryDirectory() as workdir:
    window = MainWindow(settings=QSettings(f"{workdir}/settings.ini", QSettings.Format.IniFormat), data_dir=workdir)
    window.resize(1400, 900)
    window.show()
    panel = window.panels[0]
    panel.apply_view_settings({"map_view": "zmap"})
    for seed in (0, 1):
        panel.forms[KIND].set_values({"samples": SAMPLES, "batch_size": 1000, "seed": seed})
        loop = QEventLoop()
        window.engine.run_finished.connect(loop.quit)
        window.start_run()
        loop.exec()
        window.engine.run_finished.disconnect(loop.quit)
    window.rename_run(KIND, "seed-0")
    window.rename_run(f"{KIND}-2", "seed-1")
    window.runs_dock.select("seed-0")  # shown in its panel (drawn in the engine thread)
    while panel.snapshot is None or panel.snapshot.samples_done != SAMPLES or panel.states[KIND].config.seed != 0:
        app.processEvents()
    window.runs_dock.select("seed-0", "seed-1")
    settle()
    window.grab().save(str(HERE / "runs-dock.png"))

    compare = window.compare_runs("seed-0", "seed-1")
    compare.choose("A", "seed-0", "estimator hard")
    compare.choose("B", "seed-1", "estimator hard")
    compare.choose_quantity("maps: z-score")
    compare.resize(1400, 600)
    settle()
    compare.grab().save(str(HERE / "compare-runs.png"))
    window.dirty = False
    compare.close()
    window.close()
print(f"wrote {HERE / 'runs-dock.png'} and {HERE / 'compare-runs.png'}")
