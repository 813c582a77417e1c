"""STA samples per second for the bundled MNIST CNN's conv1 and conv2 (all units at once), through the real engine.

Compares, in one process and interleaved (a busy machine slows all of them alike), best of ``--repeats`` rounds:
  * the engine: STAExperiment with default settings except STC and activation maps off (they have their own
    budgets), so the figure is the STA's own rate; the network runs on the receptive-field crop;
  * the engine forced onto full forward passes (stopped at the layer), to show what the crop path buys;
  * the authors' per-sample loop: one noise image at a time through their model (paper appendix: it returns
    the softmax and every layer's activations), the layer's activations at one position (theirs: (5, 5)),
    Σ a·crop accumulated per sample in Python (units vectorised, which favours it);
  * a plain forward pass: noise blocks of 1,000 classified by the same engine Runtime (what a classification
    image run costs per sample).

    python benchmarks/sta.py                        # 50,000 samples per engine run, 3 rounds
    python benchmarks/sta.py --samples 200000 --baseline-samples 5000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date

import torch
import torch.nn.functional as F

from wna_gui.core.control import pick_device
from wna_gui.core.models import load_default
from wna_gui.core.noise import UniformNoise
from wna_gui.core.runtime import Runtime
from wna_gui.core.sta import STAConfig, STAExperiment

LAYERS = ("conv1", "conv2")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_rate(model, layer: str, samples: int, device: torch.device, crop: bool = True) -> float:
    config = STAConfig(layer=layer, samples=samples, stc_samples=0, map_samples=0)
    start = time.perf_counter()
    experiment = STAExperiment(model, config, device=str(device))
    experiment.crop_path = experiment.crop_path and crop
    experiment.run_to_end()
    synchronize(device)
    return samples / (time.perf_counter() - start)


def forward_rate(model, samples: int, device: torch.device, batch_size: int = 1000) -> float:
    runtime, noise = Runtime(model, str(device)), UniformNoise()
    start = time.perf_counter()
    with torch.inference_mode():
        for block in range(-(-samples // batch_size)):
            runtime.logits(noise.block(0, block, batch_size, (1, 28, 28), device))
    synchronize(device)
    return samples / (time.perf_counter() - start)


def authors_forward(net, x: torch.Tensor):
    """The authors' MNIST model (paper appendix): ReLU then pool, softmax output, and the layers' activations."""
    x_1 = F.relu(net.conv1(x))
    x_2 = F.relu(net.conv2(F.max_pool2d(x_1, 2, 2)))
    x_3 = F.relu(net.fc1(F.max_pool2d(x_2, 2, 2).view(-1, 4 * 4 * 50)))
    return F.softmax(net.fc2(x_3), dim=1), x_3, x_2, x_1


def loop_rate(net, layer: str, samples: int, device: torch.device, position=(5, 5)) -> float:
    """The authors' notebook: a Python loop over samples, each one forward pass of their model, the layer's
    activations at one position (theirs: (5, 5)) weighting the receptive-field crop (units vectorised)."""
    net = net.to(device)
    size, stride = (5, 1) if layer == "conv1" else (14, 2)
    top, left = position[0] * stride, position[1] * stride
    units = net.conv1.out_channels if layer == "conv1" else net.conv2.out_channels
    sta = torch.zeros(units, size * size, device=device)
    total = torch.zeros(units, device=device)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(samples):
            x = torch.rand(1, 1, 28, 28, device=device)
            _, _, x_2, x_1 = authors_forward(net, x)
            a = (x_1 if layer == "conv1" else x_2)[0, :, position[0], position[1]]
            crop = x[0, 0, top:top + size, left:left + size].flatten() - 0.5
            sta += a[:, None] * crop[None, :]
            total += a
    synchronize(device)
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50_000, help="noise samples per engine and forward run")
    parser.add_argument("--baseline-samples", type=int, default=3000, help="samples per per-sample-loop run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model = load_default()
    for layer in LAYERS:  # warm-up
        engine_rate(model, layer, 5000, device)
        loop_rate(model.net, layer, 200, device)
    forward_rate(model, 5000, device)

    load_before = os.getloadavg()[0]
    best = {key: 0.0 for key in ("forward", *(f"{kind} {layer}" for layer in LAYERS
                                              for kind in ("engine", "engine, full passes", "loop")))}
    for _ in range(args.repeats):
        best["forward"] = max(best["forward"], forward_rate(model, args.samples, device))
        for layer in LAYERS:
            best[f"engine {layer}"] = max(best[f"engine {layer}"], engine_rate(model, layer, args.samples, device))
            best[f"engine, full passes {layer}"] = max(best[f"engine, full passes {layer}"],
                                                       engine_rate(model, layer, args.samples, device, crop=False))
            best[f"loop {layer}"] = max(best[f"loop {layer}"], loop_rate(model.net, layer, args.baseline_samples,
                                                                         device))
    print(f"date {date.today()}  torch {torch.__version__}  device {device}  threads {torch.get_num_threads()}  "
          f"samples {args.samples} (loop {args.baseline_samples})  rounds {args.repeats}  "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    forward = best["forward"]
    print(f"plain forward pass (classify noise)        {forward:10.0f} samples/s")
    for layer in LAYERS:
        engine, full, loop = (best[f"{kind} {layer}"] for kind in ("engine", "engine, full passes", "loop"))
        print(f"{layer}: authors' per-sample loop          {loop:10.0f} samples/s")
        print(f"{layer}: engine, full passes to the layer  {full:10.0f} samples/s   {full / loop:6.1f}x loop   "
              f"{full / forward:5.2f}x forward")
        print(f"{layer}: engine (crop path, default)       {engine:10.0f} samples/s   {engine / loop:6.1f}x loop   "
              f"{engine / forward:5.2f}x forward")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": str(date.today()), "torch": torch.__version__, "device": str(device),
                       "threads": torch.get_num_threads(), "samples": args.samples,
                       "baseline_samples": args.baseline_samples, "rounds": args.repeats,
                       "load_average": [load_before, os.getloadavg()[0]], "samples_per_s": best}, fh, indent=2)


if __name__ == "__main__":
    main()
