"""Cost of the device-independent counter-based noise against torch's generators, on this machine.

Interleaved rounds, best of ``--repeats`` (a busy machine slows all alike). One block of
``--block`` MNIST-sized images (784 values each), float32, as the engine draws it.

    python benchmarks/noise.py
    python benchmarks/noise.py --device cuda
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import torch

from wna_gui.core.noise import GaussianNoise, UniformNoise


def best_ms(draw, repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        draw()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = (1, 28, 28)
    sources = {
        "uniform, torch generator": UniformNoise(generator="torch"),
        "uniform, counter-based": UniformNoise(),
        "gaussian, torch generator": GaussianNoise(generator="torch"),
        "gaussian, counter-based": GaussianNoise(),
    }
    results = {name: float("inf") for name in sources}
    for round_ in range(3):  # interleaved
        for name, source in sources.items():
            results[name] = min(results[name], best_ms(
                lambda source=source, round_=round_: source.block(0, round_, args.block, shape, device), args.repeats, device))
    print(f"date {date.today()}  torch {torch.__version__}  device {device}  threads {torch.get_num_threads()}  "
          f"{platform.machine()}  block {args.block} × 784 values")
    for kind in ("uniform", "gaussian"):
        torch_ms, counter_ms = results[f"{kind}, torch generator"], results[f"{kind}, counter-based"]
        print(f"{kind:9s} torch {torch_ms:7.2f} ms   counter {counter_ms:7.2f} ms   ratio {counter_ms / torch_ms:5.2f}")


if __name__ == "__main__":
    main()
