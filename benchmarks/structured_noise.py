"""Cost of the structured noise sources (Gabor-PCA, autoencoder / VAE samples) against white noise.

Per source: the one-off fit (ridge + PCA, or 2 training epochs) on the bundled 4,000 training digits, and
drawing one block of ``--block`` 28×28 images, beside the bundled CNN's forward pass over the same block (what
a classification block costs anyway). Process CPU time on one thread (median of ``--repeats`` blocks,
interleaved across sources): robust on a machine that other jobs share, unlike wall time.

    python benchmarks/structured_noise.py
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import torch

from wna_gui.core.models import load_default
from wna_gui.core.noise import GaussianNoise, UniformNoise
from wna_gui.core.runtime import Runtime
from wna_gui.core.structured_noise import AutoencoderNoise, GaborPCANoise, VAENoise

SHAPE = (1, 28, 28)


def cpu_ms(work) -> float:
    start = time.process_time()
    work()
    return (time.process_time() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sources = {"uniform": UniformNoise(), "gaussian": GaussianNoise(), "gabor-pca": GaborPCANoise(),
               "autoencoder": AutoencoderNoise(), "vae": VAENoise()}
    fits = {name: cpu_ms(lambda source=source: source.fit(SHAPE)) if hasattr(source, "fit") else 0.0
            for name, source in sources.items()}
    runtime = Runtime(load_default(), "cpu")  # the engine's forward pass (private copy, channels_last)
    x = UniformNoise().block(0, 0, args.block, SHAPE)
    times: dict[str, list[float]] = {name: [] for name in [*sources, "forward pass"]}
    for b in range(args.repeats):  # interleaved: a busy moment slows every source alike
        for name, source in sources.items():
            times[name].append(cpu_ms(lambda source=source, b=b: source.block(0, b, args.block, SHAPE)))
        with torch.inference_mode():
            times["forward pass"].append(cpu_ms(lambda: runtime.logits(x)))
    white = statistics.median(times["uniform"])
    forward = statistics.median(times["forward pass"])
    print(f"date {date.today()}  torch {torch.__version__}  {platform.machine()}  1 thread  "
          f"block {args.block} × 28×28  median of {args.repeats} (process CPU time)")
    print(f"{'source':14s} {'fit':>9s} {'block':>9s} {'× uniform':>10s} {'÷ forward':>10s}")
    for name in [*sources, "forward pass"]:
        ms = statistics.median(times[name])
        fit = f"{fits[name] / 1e3:7.2f} s" if fits.get(name) else "        –"
        print(f"{name:14s} {fit} {ms:6.2f} ms {ms / white:9.1f}× {ms / forward:9.1%}")


if __name__ == "__main__":
    main()
