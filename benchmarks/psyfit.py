"""Psychometric fitter: bootstrap refits all at once against one at a time, on 11 curves × 200 resamples.

Data: the bundled CNN's digit-3 sweep with fc1 excited, k = 0…10, 21 γ points, 100 images per point
(seed 0), measured once; or, with --simulated, 11 logistic curves of 100 simulated items.

Timed, best of --rounds:
- one at a time: ``bootstrap_fit(..., engine="scalar")`` for each curve, the batch fitter on a batch of one
  per resample (two starts: the estimate and the grid's best point), the loop the vectorised refits replace.
  There is one optimiser since issue 23: the scipy TNC fitter that issue 9 timed as "scalar" is gone, so
  this row is not the one docs/performance.md's table of 2026-11-23 measured;
- batch: the same bootstrap with every resample of a curve refitted at once (``engine="batch"``);
- separate curves, all at once: ``analyse_conditions(shared=())``, every resample of every curve in one
  vectorised pass (the 11 point fits included, and shown apart);
- joint: one width, guess and lapse for all k (14 parameters), 200 resamples refitted jointly;
- the default analysis: joint fit, 200 resamples, 200 goodness-of-fit simulations and 12 likelihood-ratio
  tests of 200 simulations each.
It also reports how far the batch refits are from the one-at-a-time ones, resample by resample: the same
optimiser on the same resamples, so a difference means a fit depends on the others in its batch.

    python benchmarks/psyfit.py [--rounds 3] [--simulated]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from wna_gui.core.psyfit import analyse_conditions, bootstrap_fit, sigmoid_cdf

GAMMAS = np.round(np.linspace(0.0, 1.0, 21), 10)
SHARED = ("width", "guess", "lapse")


def cnn_items() -> np.ndarray:
    """(100 images, 11 k, 21 γ) 0/1: digit 3, fc1 excited, k = 0…10, seed 0, on the bundled CNN."""
    from wna_gui.core.models import load_default
    from wna_gui.core.psychometric import PsychometricConfig, PsychometricExperiment

    config = PsychometricConfig(target=3, layer="fc1", n_boot=0, gof_samples=0, lr_samples=0)
    experiment = PsychometricExperiment(load_default(), config, device="cpu")
    experiment.run_to_end()
    return experiment.state.item_counts()


def simulated_items(seed: int = 0) -> np.ndarray:
    thresholds = np.linspace(0.15, 0.03, 11)
    psi = 0.05 + 0.93 * sigmoid_cdf("logistic", GAMMAS[None, :], thresholds[:, None], 0.3)
    return (np.random.default_rng(seed).random((100, *psi.shape)) < psi).astype(float)


def best_of(rounds: int, run) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--simulated", action="store_true", help="simulated curves instead of the bundled CNN's")
    args = parser.parse_args()
    items = simulated_items() if args.simulated else cnn_items()
    n_curves = items.shape[1]
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, numpy {np.__version__}; "
          f"{n_curves} curves × {len(GAMMAS)} γ × {items.shape[0]} items, {args.boot} resamples, "
          f"best of {args.rounds}")

    def one_at_a_time():
        return [bootstrap_fit(GAMMAS, items[:, c], guess=None, n_boot=args.boot, gof_samples=0, seed=0,
                              return_samples=True, engine="scalar") for c in range(n_curves)]

    def batch():
        return [bootstrap_fit(GAMMAS, items[:, c], guess=None, n_boot=args.boot, gof_samples=0, seed=0,
                              return_samples=True) for c in range(n_curves)]

    def separate():
        return analyse_conditions(GAMMAS, items, guess=None, shared=(), n_boot=args.boot, gof_samples=0,
                                  lr_samples=0, seed=0)

    def point_fits_only():
        return analyse_conditions(GAMMAS, items, guess=None, shared=(), n_boot=0, gof_samples=0, lr_samples=0,
                                  seed=0)

    def joint():
        return analyse_conditions(GAMMAS, items, guess=None, shared=SHARED, n_boot=args.boot, gof_samples=0,
                                  lr_samples=0, seed=0)

    def default():
        return analyse_conditions(GAMMAS, items, guess=None, shared=SHARED, n_boot=args.boot, gof_samples=200,
                                  lr_samples=200, seed=0)

    t_single, single_fits = best_of(args.rounds, one_at_a_time)
    t_batch, batch_fits = best_of(args.rounds, batch)
    t_separate, separate_analysis = best_of(args.rounds, separate)
    t_points, _ = best_of(args.rounds, point_fits_only)
    t_joint, _ = best_of(args.rounds, joint)
    t_default, default_analysis = best_of(max(1, args.rounds - 1), default)

    rows = [('one resample at a time (engine="scalar")', t_single),
            ("batch, curve by curve", t_batch),
            ("batch, all curves at once (separate fits)", t_separate),
            ("  of which the resamples (less the 11 point fits)", t_separate - t_points),
            ("batch, joint model (14 parameters)", t_joint),
            (f"default analysis: joint + {args.boot} resamples + 200 GoF + {len(default_analysis.lr_tests)} "
             "LR tests × 200", t_default)]
    for label, seconds in rows:
        print(f"  {label:<72} {seconds:7.3f} s  ({t_single / seconds:5.1f}× one at a time)")

    single_thresholds = np.array([samples.threshold for _, samples in single_fits])
    batch_thresholds = np.array([samples.threshold for _, samples in batch_fits])
    joint_resamples = separate_analysis.boot[:, :, 0]
    for label, values in (("batch, curve by curve", batch_thresholds), ("all curves at once", joint_resamples)):
        difference = np.abs(values - single_thresholds)
        print(f"  |threshold − one at a time| per resample, {label}: median {np.median(difference):.1e}, "
              f"99th percentile {np.percentile(difference, 99):.1e}, max {difference.max():.1e}")
    interval = np.array([[fit.threshold_ci for fit, _ in fits] for fits in (single_fits, batch_fits)])
    print(f"  95% threshold intervals, batch vs one at a time: max |difference| {np.abs(interval[0] - interval[1]).max():.1e}")


if __name__ == "__main__":
    main()
