"""Start-up time of the `wna` command beside a bare interpreter: best of 5 wall-clock runs of each, as subprocesses.

    python benchmarks/startup.py [--repeat 5]

`wna --version` and `wna --help` should answer without importing torch or the experiments (issue 24: ≤ 0.5 s on
an idle machine); `wna run <experiment> --help` builds that experiment's flags from the registry, so it pays for
the imports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time


def best_wall_seconds(command: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; the best is reported")
    args = parser.parse_args()

    # the installed `wna` script beside this interpreter, else the same entry point through -c
    script = shutil.which("wna", path=os.path.dirname(sys.executable))
    wna = [script] if script else [sys.executable, "-c", "import sys; from wna_gui.cli import main; sys.exit(main())"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "wna --version": [*wna, "--version"],
        "wna --help": [*wna, "--help"],
        "wna run classification-images --help": [*wna, "run", "classification-images", "--help"],
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPU cores, load average {load:.2f} at the start; best of {args.repeat} wall-clock runs")
    print(f"{'command':<40} {'seconds':>8}")
    for name, command in commands.items():
        print(f"{name:<40} {best_wall_seconds(command, args.repeat):>8.3f}", flush=True)


if __name__ == "__main__":
    main()
