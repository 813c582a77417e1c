"""Noise samples per second of the bundled MNIST CNN through the real engine.

Compares, in one process and interleaved (so a busy machine slows all of them alike):
  * the engine: ClassificationImageExperiment with the settings a user gets by default;
  * the engine with each set of estimators (``--estimators``), against the hard label alone: what the
    logit kernel, the probability-weighted map, the gradient and the signal-plus-noise trials cost;
  * the authors' notebook loop: eager NCHW fp32, batches of 10,000, per-class means by
    boolean masks (``mean[c] += x[pred == c].mean(0)``);
  * the machine's fp32 GEMM rate, which sets the compute roof:
    roof = GEMM FLOP/s / FLOPs per image (multiply-adds count 2; conv and linear layers only).

Each figure is the best of ``--repeats`` rounds: on a shared machine the best round is the
one least disturbed by other work. The load average is printed for the same reason.

    python benchmarks/throughput.py                    # defaults: 50,000 samples, 3 rounds
    python benchmarks/throughput.py --batch-size 250 500 1000 2000
    python benchmarks/throughput.py --device cuda
    python benchmarks/throughput.py --estimators hard hard,logit,prob   # only these sets
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date

import torch
import torch.nn.functional as F
from torch import nn

from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.control import pick_device
from wna_gui.core.models import load_default

BASELINE_BATCH = 10_000
GEMM_SIZE = 2048


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def flops_per_image(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one image's conv and linear layers, from the layers themselves (2 per multiply-add)."""
    total = 0

    def count(module: nn.Module, inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output[0].numel() * per_output
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            net(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def gemm_flops(device: torch.device, seconds: float) -> tuple[float, float]:
    """fp32 FLOP/s of square matrix products: (sustained over ``seconds``, fastest single product).

    The sustained rate is timed over as long as an engine run, so on a shared machine both see
    the same share of the cores; the fastest product shows what an undisturbed core does.
    """
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device)
    a @ b  # first call pays for library initialisation
    products, fastest = 0, float("inf")
    synchronize(device)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or products < 3:
        began = time.perf_counter()
        a @ b
        synchronize(device)
        fastest = min(fastest, time.perf_counter() - began)
        products += 1
    flops = 2 * GEMM_SIZE**3
    return flops * products / (time.perf_counter() - start), flops / fastest


ESTIMATOR_SETS = ("hard", "hard,logit", "hard,prob", "hard,logit,prob", "hard,gradient", "hard,signal",
                  "hard,logit,prob,gradient,signal")


def engine_rate(model, samples: int, batch_size: int, device: torch.device, estimators: str | None = None
                ) -> tuple[float, list[int]]:
    """Samples per second of one run (default estimators unless ``estimators``, comma-separated, is given)."""
    config = ClassificationImageConfig(samples=samples, batch_size=batch_size)
    if estimators is not None:
        config = ClassificationImageConfig(samples=samples, batch_size=batch_size,
                                           estimators=tuple(estimators.split(",")))
    start = time.perf_counter()
    experiment = ClassificationImageExperiment(model, config, device=str(device))
    snapshot = experiment.run_to_end()
    synchronize(device)
    return samples / (time.perf_counter() - start), snapshot.counts.tolist()


def authors_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The MNIST CNN as the authors' notebooks run it: ReLU, then pool."""
    x = F.max_pool2d(F.relu(net.conv1(x)), 2)
    x = F.max_pool2d(F.relu(net.conv2(x)), 2)
    return net.fc2(F.relu(net.fc1(x.flatten(1))))


def baseline_rate(net: nn.Module, samples: int, device: torch.device, n_classes: int = 10) -> float:
    """The notebook loop: fresh noise, eager NCHW forward, per-class means by boolean masks."""
    net = net.to(device)
    mean = torch.zeros(n_classes, 1, 28, 28, device=device)
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, samples, BASELINE_BATCH):
            x = torch.rand(min(BASELINE_BATCH, samples - first), 1, 28, 28, device=device)
            pred = authors_forward(net, x).argmax(1)
            for c in range(n_classes):
                if (pred == c).any():
                    mean[c] += x[pred == c].mean(0)
    synchronize(device)
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50_000, help="noise samples per measured run")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[ClassificationImageConfig().batch_size],
                        help="engine block size(s) to measure; the default is what users get")
    parser.add_argument("--estimators", nargs="*", default=list(ESTIMATOR_SETS),
                        help="estimator sets to measure against the hard label alone (comma-separated names; "
                             "none: skip); default: each estimator on its own, the default set and all")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model = load_default()
    baseline_net = model.net
    flops = flops_per_image(baseline_net, tuple(model.input_spec.shape))

    # Warm-up: first calls initialise oneDNN/cuDNN kernels and the allocator.
    engine_rate(model, min(args.samples, 5000), args.batch_size[0], device)
    baseline_rate(baseline_net, min(args.samples, BASELINE_BATCH), device)
    estimator_sets = list(dict.fromkeys(["hard", *args.estimators])) if args.estimators else []
    for estimators in estimator_sets:  # warm-up: the gradient's backward kernels, the signal images
        engine_rate(model, min(args.samples, 2 * args.batch_size[0]), args.batch_size[0], device, estimators)
    with_estimators = {estimators: 0.0 for estimators in estimator_sets}

    load_before = os.getloadavg()[0]
    engine = {batch: 0.0 for batch in args.batch_size}
    counts = {}
    baseline = gemm = gemm_peak = 0.0
    for _ in range(args.repeats):
        for batch in args.batch_size:
            rate, counts[batch] = engine_rate(model, args.samples, batch, device)
            engine[batch] = max(engine[batch], rate)
        for estimators in estimator_sets:
            rate, _ = engine_rate(model, args.samples, args.batch_size[0], device, estimators)
            with_estimators[estimators] = max(with_estimators[estimators], rate)
        baseline = max(baseline, baseline_rate(baseline_net, args.samples, device))
        sustained, peak = gemm_flops(device, seconds=args.samples / max(engine.values()))
        gemm, gemm_peak = max(gemm, sustained), max(gemm_peak, peak)

    roof = gemm / flops
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"date {date.today()}  torch {torch.__version__}  device {device_name}  "
          f"threads {torch.get_num_threads()}  samples {args.samples}  rounds {args.repeats}  "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"FLOPs per image (conv + linear)     {flops / 1e6:8.3f} MFLOP")
    print(f"fp32 GEMM {GEMM_SIZE}x{GEMM_SIZE}, sustained    {gemm / 1e9:8.1f} GFLOP/s   "
          f"(fastest single product {gemm_peak / 1e9:.1f})")
    print(f"compute roof (sustained GEMM)        {roof:8.0f} samples/s")
    print(f"baseline (notebook loop, NCHW)       {baseline:8.0f} samples/s   {baseline / roof:5.1%} of roof")
    for batch, rate in engine.items():
        print(f"engine, batch size {batch:<6d}           {rate:8.0f} samples/s   {rate / roof:5.1%} of roof   "
              f"{rate / baseline:4.2f}x baseline")
    best = max(engine, key=engine.get)
    print(f"best engine batch size: {best}  (class counts {counts[best]})")
    if with_estimators:
        alone = with_estimators["hard"]
        default = ",".join(ClassificationImageConfig().estimators)
        gradient_every = ClassificationImageConfig().gradient_every
        print(f"estimators (batch {args.batch_size[0]}; gradient on every {gradient_every}th block; "
              f"default set: {default})")
        for estimators, rate in with_estimators.items():
            note = "  (default)" if estimators == default else ""
            print(f"  {estimators:<34s} {rate:8.0f} samples/s   cost vs hard label alone "
                  f"{1 - rate / alone:6.1%}{note}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": str(date.today()), "torch": torch.__version__, "device": device_name,
                       "threads": torch.get_num_threads(), "samples": args.samples, "rounds": args.repeats,
                       "load_average": [load_before, os.getloadavg()[0]], "flops_per_image": flops,
                       "gemm_flops_sustained": gemm, "gemm_flops_peak": gemm_peak, "roof_samples_per_s": roof,
                       "baseline_samples_per_s": baseline,
                       "engine_samples_per_s": {str(b): r for b, r in engine.items()},
                       "estimators_samples_per_s": with_estimators}, fh, indent=2)


if __name__ == "__main__":
    main()
