"""CPU headroom of the bundled MNIST CNN's forward pass (the cost of a noise block): what torch.compile, bfloat16
(oneDNN; AMX where the CPU has it) and larger fused chunks buy, and how exact each stays.

Every variant classifies the same noise block (counter-based, seed 0) and is compared with the engine's path
(Runtime: channels_last fp32, CPU chunks of CPU_FORWARD_CHUNK): samples/s (best of ``--repeats`` rounds,
interleaved so a busy machine slows all alike), the largest logit difference and the share of samples whose
label changes (a changed label moves a sample to another class's map: the maps are no longer the same).

    python benchmarks/cpu_headroom.py                      # 1000-sample blocks, 5 rounds
    python benchmarks/cpu_headroom.py --no-compile         # skip torch.compile (slow to compile)
    python benchmarks/cpu_headroom.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from wna_gui.core.models import load_default
from wna_gui.core.noise import UniformNoise
from wna_gui.core.runtime import CPU_FORWARD_CHUNK, Runtime


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            line = next(line for line in fh if line.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def chunked(network, x: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([network(part) for part in x.split(chunk)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    flags = cpu_flags()
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; ISA: {isa}")
    print(f"load average {os.getloadavg()[0]:.1f}; block of {args.batch_size} samples, best of {args.repeats}")

    runtime = Runtime(load_default(), "cpu")
    network = runtime.network
    x = UniformNoise().block(0, 0, args.batch_size, (1, 28, 28), torch.device("cpu"))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reference = runtime.logits(x)
    labels = reference.argmax(1)

    def bf16(chunk):
        def run(v):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return chunked(network, v, chunk).float()
        return run

    variants = {f"engine (fp32, channels_last, chunks of {CPU_FORWARD_CHUNK})": lambda v: runtime.logits(v)}
    for chunk in (128, 256, 1024, args.batch_size):
        if chunk != CPU_FORWARD_CHUNK and chunk <= args.batch_size:
            variants[f"fp32 chunks of {chunk}"] = lambda v, c=chunk: chunked(network, v, c)
    variants[f"bf16 autocast, chunks of {CPU_FORWARD_CHUNK}"] = bf16(CPU_FORWARD_CHUNK)
    variants["bf16 autocast, whole block"] = bf16(args.batch_size)
    if not args.no_compile:
        started = time.perf_counter()
        try:
            compiled = torch.compile(network, dynamic=False)
            with torch.inference_mode():
                chunked(compiled, x, CPU_FORWARD_CHUNK)  # compile (and warm) outside the timing
            print(f"torch.compile: {time.perf_counter() - started:.1f} s to compile")
            variants[f"torch.compile, chunks of {CPU_FORWARD_CHUNK}"] = lambda v: chunked(compiled, v,
                                                                                          CPU_FORWARD_CHUNK)
        except Exception as exc:  # no compiler on the machine, unsupported op…
            print(f"torch.compile unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")

    best = {name: float("inf") for name in variants}
    errors = {}
    with torch.inference_mode():
        for name, run in variants.items():
            out = run(x)  # warm-up, and the exactness check
            errors[name] = (float((out.float() - reference).abs().max()),
                            float((out.argmax(1) != labels).float().mean()))
        for _ in range(args.repeats):
            for name, run in variants.items():
                started = time.perf_counter()
                run(x)
                best[name] = min(best[name], time.perf_counter() - started)
    base = best[next(iter(variants))]
    print(f"{'variant':48s} {'samples/s':>10s} {'vs engine':>9s} {'max |Δlogit|':>13s} {'labels changed':>15s}")
    for name in variants:
        diff, changed = errors[name]
        print(f"{name:48s} {args.batch_size / best[name]:10,.0f} {base / best[name]:8.2f}× {diff:13.2e} "
              f"{changed:14.2%}")


if __name__ == "__main__":
    main()
