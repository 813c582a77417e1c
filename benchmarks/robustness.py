"""Time to evaluate one model over the three distortion grids of the sleep paper, through the real engine.

One RobustnessExperiment per distortion on the bundled held-out digits (1,000 MNIST images) with the default
grids: Gaussian noise (6 variances × 3 repetitions), Gaussian blur (9 σ, measured once: the CNN is
deterministic), FGSM (81 η, one gradient per chunk serves every η). The fits (200 bootstrap resamples) are
timed with the run. IFGSM (17 ε × 20 steps) is timed too, apart: it is the costly one. Prints a JSON line of the
figures.

    python benchmarks/robustness.py                 # bundled CNN, CPU
    python benchmarks/robustness.py --device cuda --ifgsm
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from datetime import date

import torch

from wna_gui.core.control import pick_device
from wna_gui.core.models import load_default
from wna_gui.core.robustness import RobustnessConfig, RobustnessExperiment

GRIDS = ("noise", "blur", "fgsm")


def run(model, config: RobustnessConfig, device: torch.device) -> tuple[float, RobustnessExperiment]:
    start = time.perf_counter()
    experiment = RobustnessExperiment(model, config, device=str(device))
    experiment.run_to_end()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--ifgsm", action="store_true", help="also time the IFGSM grid (20 steps per ε)")
    parser.add_argument("--boot", type=int, default=200)
    args = parser.parse_args()
    device = pick_device(args.device)
    model = load_default()
    base = RobustnessConfig(n_boot=args.boot)
    run(model, replace(base, distortions=("blur",), blur_levels=(0.0, 1.0)), device)  # warm-up
    figures = {"date": date.today().isoformat(), "device": str(device), "threads": torch.get_num_threads(),
               "cpus": os.cpu_count(), "load": os.getloadavg()[0], "images": 1000, "seconds": {}, "thresholds": {}}
    grids = GRIDS + (("ifgsm",) if args.ifgsm else ())
    total = 0.0
    for name in grids:
        seconds, experiment = run(model, replace(base, distortions=(name,)), device)
        fit = experiment.state.fits[name][0]
        evaluations = experiment.state.progress_total
        figures["seconds"][name] = round(seconds, 2)
        figures["thresholds"][name] = round(fit.threshold, 4) if fit is not None and fit.fit is not None else None
        figures[f"{name}_images_per_second"] = round(evaluations / seconds)
        total += seconds if name in GRIDS else 0.0
        print(f"{name:6s} {seconds:7.2f} s  {evaluations:,} image evaluations  ({evaluations / seconds:,.0f}/s)  "
              f"threshold {figures['thresholds'][name]}", flush=True)
    figures["seconds"]["three_grids"] = round(total, 2)
    print(f"noise + blur + FGSM grids, one model: {total:.1f} s on {device}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
