"""GUI responsiveness while a run streams: engine throughput with and without the window, and timer latency.

Runs the default classification-images experiment headless (the engine alone)
and then with the main window open and repainting, alternating for --rounds
rounds, and records how late a 10 ms QTimer fires on the GUI thread meanwhile.
Targets (issue #1): p95 lateness < 50 ms and windowed samples/s >= 90% of headless.

    QT_QPA_PLATFORM=offscreen python benchmarks/responsiveness.py --samples 100000
    xvfb-run -a python benchmarks/responsiveness.py          # a real X server
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication

from wna_gui.app.main_window import MainWindow
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.models import load_default

TICK_MS = 10


def headless_rate(config: ClassificationImageConfig) -> float:
    """The engine alone, iterated in a background thread like the app's engine thread.

    (A thread, not the main thread, so the comparison isolates the window's cost: on a
    loaded machine torch's OpenMP pool can run several times slower from the main thread.)
    """
    elapsed: list[float] = []

    def run() -> None:
        started = time.perf_counter()
        ClassificationImageExperiment(load_default(), config, device="cpu").run_to_end()
        elapsed.append(time.perf_counter() - started)

    thread = threading.Thread(target=run, name="headless-engine")
    thread.start()
    thread.join()
    return config.samples / elapsed[0]


def windowed_run(app: QApplication, config: ClassificationImageConfig, workdir: Path) -> dict:
    settings = QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=workdir)
    window.device_combo.setCurrentIndex(window.device_combo.findData("cpu"))
    window.resize(1400, 900)
    window.show()
    panel = window.panels[0]
    panel.forms["classification_images"].set_values(
        {"samples": config.samples, "batch_size": config.batch_size, "seed": config.seed})

    repaint_ms: list[float] = []
    draw = panel.show_snapshot

    def timed_draw(snapshot):
        began = time.perf_counter()
        draw(snapshot)
        repaint_ms.append((time.perf_counter() - began) * 1000)

    panel.show_snapshot = timed_draw
    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    finished: list[float] = []
    loop = QEventLoop()
    window.engine.run_finished.connect(lambda _: (finished.append(time.perf_counter()), loop.quit()))
    for _ in range(20):  # let the window lay out and paint before timing
        app.processEvents()

    started, gui_cpu_started = time.perf_counter(), time.thread_time()
    timer.start()
    window.start_run()
    loop.exec()  # the GUI thread idles in Qt's event loop, as in the app
    timer.stop()
    gui_cpu = time.thread_time() - gui_cpu_started
    rate = config.samples / (finished[0] - started)
    lateness = np.diff(ticks) * 1000 - TICK_MS
    window.dirty = False  # nothing to save: close without asking
    window.close()
    return {
        "samples_per_second": rate,
        "gui_thread_cpu_share": gui_cpu / (finished[0] - started),
        "tick_late_ms_p50": float(np.percentile(lateness, 50)),
        "tick_late_ms_p95": float(np.percentile(lateness, 95)),
        "tick_late_ms_max": float(lateness.max()),
        "ticks": int(lateness.size),
        "repaints": len(repaint_ms),
        "repaint_ms_mean": float(np.mean(repaint_ms)) if repaint_ms else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=ClassificationImageConfig().batch_size)
    parser.add_argument("--rounds", type=int, default=2, help="alternating headless / windowed rounds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication(sys.argv[:1])
    config = ClassificationImageConfig(samples=args.samples, batch_size=args.batch_size, seed=0)
    headless, windowed = [], []
    headless_rate(ClassificationImageConfig(samples=5 * args.batch_size, batch_size=args.batch_size))  # warm-up
    with tempfile.TemporaryDirectory() as workdir:
        for round_index in range(args.rounds):
            headless.append(headless_rate(config))
            windowed.append(windowed_run(app, config, Path(workdir)))
            print(f"round {round_index + 1}: headless {headless[-1]:,.0f} samples/s, "
                  f"window {windowed[-1]['samples_per_second']:,.0f} samples/s, "
                  f"tick lateness p95 {windowed[-1]['tick_late_ms_p95']:.1f} ms, "
                  f"GUI thread busy {windowed[-1]['gui_thread_cpu_share']:.0%}", flush=True)

    best = max(windowed, key=lambda r: r["samples_per_second"])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
                   f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}",
        "qt_platform": app.platformName(),
        "samples": args.samples,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "headless_samples_per_second": statistics.median(headless),
        "window_samples_per_second": statistics.median(r["samples_per_second"] for r in windowed),
        "tick_late_ms_p50": statistics.median(r["tick_late_ms_p50"] for r in windowed),
        "tick_late_ms_p95": max(r["tick_late_ms_p95"] for r in windowed),
        "tick_late_ms_max": max(r["tick_late_ms_max"] for r in windowed),
        "repaint_ms_mean": best["repaint_ms_mean"],
        "gui_thread_cpu_share": statistics.median(r["gui_thread_cpu_share"] for r in windowed),
        "repaints_per_run": best["repaints"],
    }
    # Paired per round (the machine's load drifts between rounds), then the median.
    result["window_over_headless"] = statistics.median(
        w["samples_per_second"] / h for w, h in zip(windowed, headless))
    print(json.dumps(result, indent=2))
    verdict = result["tick_late_ms_p95"] < 50 and result["window_over_headless"] >= 0.9
    print("targets met" if verdict else "targets NOT met: p95 tick lateness < 50 ms and window >= 90% of headless")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
