"""The `wna` command: run experiments, inspect and export sessions, train zoo models.

It drives the same core experiments as the desktop app.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .core.classification import (
    KIND as CLASSIFICATION,
    MAP_VIEWS,
    ClassificationImageConfig,
    ClassificationImageExperiment,
    ClassificationImageState,
)
from .core.control import Cancelled, EngineError, RunControl, pick_device
from .core.data import DATASETS, DatasetError
from .core.models import ZOO, ModelError, load_model
from .core.noise import NOISE_KINDS, NoiseSpec
from .core.psychometric import (
    GRID_KIND as PSYCHOMETRIC_GRID,
    GUESS_MODES,
    KIND as PSYCHOMETRIC,
    LAPSE_MODES,
    PsychometricConfig,
    PsychometricExperiment,
    PsychometricGridState,
    PsychometricSnapshot,
)
from .core.psychometric_report import (
    PSYCHOMETRIC_COLUMNS,
    SIGNS,
    format_k_values,
    gamma_grid,
    grid_records,
    parse_k_values,
    psychometric_data_records,
    psychometric_fit_records,
    psychometric_table,
    stimulation_text,
    write_records,
)
from .core.psyfit import SIGMOIDS
from .core.session import Session, SessionError, load_session, read_header, save_session

USER_ERRORS = (ModelError, SessionError, EngineError, DatasetError, ValueError, OSError)


def _format_seconds(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class ProgressBar:
    """One self-rewriting stderr line: done/total, rate, ETA (plain lines when not a terminal)."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total, self.quiet = total, quiet
        self.interactive = sys.stderr.isatty()
        self._last_plain = 0.0

    def update(self, done: int, rate: float, eta: float | None, note: str = "") -> None:
        if self.quiet:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} "
                f"{rate:,.0f} samples/s ETA {_format_seconds(eta)} {note}")
        if self.interactive:
            sys.stderr.write("\r" + line.ljust(100))
            sys.stderr.flush()
        elif time.monotonic() - self._last_plain > 5 or done >= self.total:
            self._last_plain = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.interactive and not self.quiet:
            sys.stderr.write("\n")


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"input shape must look like 1,28,28, got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input shape must be C,H,W with positive sizes, got {text!r}")
    return shape


def _noise_from_args(args) -> NoiseSpec:
    return NoiseSpec(kind=args.noise, low=args.noise_low, high=args.noise_high, mean=args.noise_mean,
                     std=args.noise_std, clip=args.clip)


def _load_model_from_args(args):
    return load_model(args.model, args.weights, input_shape=_parse_shape(args.input_shape),
                      download=args.download)


def drive_run(experiment, session: Session, out: Path, args, command: str, note):
    """Run an experiment to the end with a progress bar, autosaving ``session`` to ``out``.

    Ctrl-C cancels between batches, so the session on disk is consistent and
    resumable; returns the final snapshot, or None after an interruption.
    """
    control = experiment.control
    save_session(session, out)  # a bad --out fails now, not after the run
    snapshot = experiment.snapshot()
    progress = ProgressBar(snapshot.samples_total, quiet=args.quiet)
    previous_handler = signal.signal(signal.SIGINT, lambda *_: control.cancel())
    last_save = time.monotonic()
    try:
        for snapshot in experiment.run():
            progress.update(snapshot.samples_done, snapshot.samples_per_second, snapshot.eta_seconds, note(snapshot))
            if args.autosave_seconds and time.monotonic() - last_save > args.autosave_seconds:
                save_session(session, out)
                last_save = time.monotonic()
    except Cancelled:
        progress.close()
        save_session(session, out)
        snapshot = experiment.snapshot()
        print(f"interrupted after {snapshot.samples_done:,} of {snapshot.samples_total:,} samples; session saved to "
              f"{out}; continue with: wna run {command} --resume {out}", file=sys.stderr)
        return None
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    progress.close()
    save_session(session, out)
    return snapshot


def _resumed(args, kind: str, label: str):
    """(session to write, the run's state, output path) for ``--resume FILE [--out OTHER]``."""
    session = load_session(args.resume)
    state = session.experiments.get(kind)
    if state is None:
        raise SessionError(f"{args.resume} holds no {label} run to resume")
    out = Path(args.out or args.resume)
    if out != Path(args.resume):
        session = _session_for_out(out, session.model)
        session.experiments[kind] = state
    return session, state, out


def cmd_run_classification(args) -> int:
    if args.resume:
        session, state, out = _resumed(args, CLASSIFICATION, "classification-images")
        if args.samples is not None and args.samples != state.config.samples:
            state.with_budget(args.samples)
        model = session.model
    else:
        if not args.out:
            raise ValueError("--out FILE is required (where the session is written)")
        out = Path(args.out)
        session = _session_for_out(out, _load_model_from_args(args))
        model = session.model
        samples = 100_000 if args.samples is None else args.samples
        config = ClassificationImageConfig(noise=_noise_from_args(args), samples=samples,
                                           batch_size=args.batch_size, seed=args.seed, weighting=args.weighting)
        state = ClassificationImageState(config, model.n_classes, tuple(model.input_spec.shape),
                                         tuple(model.class_names))
    session.experiments[CLASSIFICATION] = state
    control = RunControl()
    experiment = ClassificationImageExperiment(model, state=state, device=args.device, control=control)
    snapshot = drive_run(experiment, session, out, args, "classification-images",
                         lambda snap: f"[{experiment.device.type}]")
    if snapshot is None:
        return 130
    if not args.quiet:
        counts = snapshot.counts
        top = ", ".join(f"{snapshot.class_names[k]}: {counts[k]:,}" for k in np.argsort(counts)[::-1][:5] if counts[k])
        print(f"wrote {out}: {state.samples_done:,} samples in {state.seconds:.1f} s on {experiment.device.type}; "
              f"most frequent classes {top}")
    return 0


def _psychometric_config_from_args(args, model) -> PsychometricConfig:
    if args.target is None:
        raise ValueError("--target CLASS is required (a class index or name)")
    names = list(model.class_names)
    target = names.index(args.target) if args.target in names else None
    if target is None:
        try:
            target = int(args.target)
        except ValueError:
            raise ValueError(f"unknown target class {args.target!r}; the model's classes: "
                             f"{', '.join(names[:20])}{' …' if len(names) > 20 else ''}") from None
    layer = None if args.layer.lower() == "none" else args.layer
    return PsychometricConfig(
        target=target, layer=layer, lambda_=args.lambda_, k_values=parse_k_values(args.k), sign=SIGNS[args.sign],
        gammas=gamma_grid(args.gammas), seed=args.seed, sigmoid=args.sigmoid, guess=args.guess, lapse=args.lapse,
        n_boot=args.boot, gof_samples=args.gof_samples, batch_size=args.batch_size)


def _session_for_out(out: Path, model):
    """The session at ``out`` when it exists (its other experiments are kept), else a new one for ``model``."""
    if not out.exists():
        return Session(model, {})
    session = load_session(out)
    if session.model.weights_sha256() != model.weights_sha256():
        raise SessionError(f"{out} holds a session of another model ({session.model.display_name}); "
                           "choose another --out")
    return session


def print_psychometric_summary(snapshot: PsychometricSnapshot, file=None) -> None:
    stimulation = stimulation_text(snapshot.layer, snapshot.sign, snapshot.lambda_)
    print(f"target {snapshot.target_name} · {stimulation} · {snapshot.n_images} images per γ", file=file)
    rows = [list(PSYCHOMETRIC_COLUMNS), *psychometric_table(snapshot)]
    # A curve without a fit has one note instead of numbers; it must not widen the threshold column.
    fitted = [row for row in rows if any(row[2:])]
    widths = [max(len(row[c]) for row in fitted) for c in range(len(PSYCHOMETRIC_COLUMNS))]
    for row in rows:
        cells = zip(row, widths) if any(row[2:]) else [(row[0], widths[0]), (row[1], 0)]
        print("  " + "  ".join(text.ljust(width) for text, width in cells).rstrip(), file=file)


def cmd_run_psychometric(args) -> int:
    if args.resume:
        session, state, out = _resumed(args, PSYCHOMETRIC, "psychometric")
        model, config = session.model, None
    else:
        if not args.out:
            raise ValueError("--out FILE is required (where the session is written)")
        model = _load_model_from_args(args)
        config = _psychometric_config_from_args(args, model)
        out = Path(args.out)
        session = _session_for_out(out, model)
        model, state = session.model, None
    control = RunControl()
    experiment = PsychometricExperiment(model, config, state=state, device=args.device, control=control)
    state = experiment.state
    session.experiments[PSYCHOMETRIC] = state
    snapshot = drive_run(experiment, session, out, args, "psychometric",
                         lambda snap: f"{snap.conditions_done}/{len(snap.k_values)} curves fitted "
                                      f"[{experiment.device.type}]")
    if snapshot is None:
        return 130
    if not args.quiet:
        print(f"wrote {out}: {state.cells_done} (k, γ) cells × {state.n_images} images in {state.seconds:.1f} s "
              f"on {experiment.device.type}")
        print_psychometric_summary(snapshot)
    return 0


def export_psychometric(snapshot: PsychometricSnapshot, out_dir: Path) -> list[Path]:
    """Write the fit table (CSV), the measurements (CSV and .npy) and the curves plot (PNG and SVG)."""
    from .app.psychometric_plots import save_curves_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_records(psychometric_fit_records(snapshot), out_dir / "psychometric_fits.csv")]
    data = psychometric_data_records(snapshot)
    written += [write_records(data, out_dir / f"psychometric_data{suffix}") for suffix in (".csv", ".npy")]
    written += [save_curves_plot(snapshot, out_dir / f"psychometric_curves{suffix}") for suffix in (".png", ".svg")]
    return written


def export_psychometric_grid(grid: PsychometricGridState, class_names: tuple[str, ...], out_dir: Path) -> list[Path]:
    """The small-multiples grid as the panel exports it: fit table (CSV), measurements (CSV, .npy), plot (PNG, SVG)."""
    from .app.psychometric_plots import save_grid_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    snapshots = tuple(None if cell is None else cell.snapshot() for cell in grid.cells)
    written = [write_records(grid_records(snapshots, psychometric_fit_records), out_dir / "psychometric_grid_fits.csv")]
    data = grid_records(snapshots, psychometric_data_records)
    written += [write_records(data, out_dir / f"psychometric_grid_data{suffix}") for suffix in (".csv", ".npy")]
    written += [save_grid_plot(grid.configs, snapshots, class_names, out_dir / f"psychometric_grid{suffix}")
                for suffix in (".png", ".svg")]
    return written


def session_summary(path: str | Path) -> dict:
    """The facts `wna info --json` prints."""
    header = read_header(path)
    model = header["model"]
    summary = {
        "file": str(path),
        "format_version": header.get("format_version"),
        "app_version": header.get("app_version"),
        "created": header.get("created"),
        "modified": header.get("modified"),
        "model": {k: model.get(k) for k in ("kind", "architecture", "weights_path", "weights_sha256",
                                            "n_parameters", "input_spec", "resource")},
        "experiments": {},
    }
    if model.get("kind") == "default":
        from .core.models import default_model_record

        summary["model"]["heldout_accuracy"] = default_model_record().get("heldout_accuracy")
    session = None
    for kind, meta in header["experiments"].items():
        entry = {"samples_done": meta.get("samples_done"), "config": meta.get("config")}
        if kind == CLASSIFICATION:
            session = session or load_session(path)
            state = session.experiments[kind]
            counts = state.total().count
            entry["class_counts"] = {name: int(c) for name, c in zip(state.class_names, counts)}
            entry["samples_total"] = state.config.samples
            entry["finished"] = state.finished
            entry["compute_seconds"] = round(state.seconds, 3)
        elif kind == PSYCHOMETRIC:
            session = session or load_session(path)
            entry.update(_psychometric_summary(session.experiments[kind].snapshot()))
        elif kind == PSYCHOMETRIC_GRID:
            session = session or load_session(path)
            entry.update(_grid_summary(session.experiments[kind]))
        summary["experiments"][kind] = entry
    return summary


def _psychometric_summary(snapshot: PsychometricSnapshot) -> dict:
    def numbers(values):  # JSON has no NaN
        return [None if not np.isfinite(v) else float(v) for v in values]

    return {
        "samples_done": snapshot.samples_done,
        "target": snapshot.target, "target_name": snapshot.target_name, "layer": snapshot.layer,
        "lambda": snapshot.lambda_, "sign": snapshot.sign, "k_values": numbers(snapshot.k_values),
        "images_per_gamma": snapshot.n_images, "gammas": numbers(snapshot.gammas),
        "cells_done": snapshot.cells_done, "cells_total": snapshot.cells_total, "finished": snapshot.finished,
        "thresholds": numbers(snapshot.thresholds),
        "thresholds_in_range": [bool(v) for v in snapshot.thresholds_in_range],
        "threshold_shifts": numbers(snapshot.threshold_shifts),
        "fit_errors": list(snapshot.fit_errors),
        "compute_seconds": round(snapshot.seconds, 3),
        "table": psychometric_table(snapshot),
    }


def _grid_summary(grid: PsychometricGridState) -> dict:
    snapshots = [None if cell is None else cell.snapshot() for cell in grid.cells]
    return {
        "samples_done": sum(s.samples_done for s in snapshots if s is not None),
        "targets": list(grid.targets), "layers": list(grid.layers), "signs": list(grid.signs),
        "k_values": list(grid.base.k_values), "gammas": list(grid.base.gammas),
        "plots_done": grid.plots_done, "plots_total": len(grid.cells), "finished": grid.finished,
        "plots": [{"target": config.target, "layer": config.layer, "sign": config.sign,
                   "finished": snapshot is not None and snapshot.finished,
                   "threshold_shifts": None if snapshot is None else
                   [None if not np.isfinite(v) else float(v) for v in snapshot.threshold_shifts]}
                  for config, snapshot in zip(grid.configs, snapshots)],
    }


def cmd_info(args) -> int:
    summary = session_summary(args.session)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    model = summary["model"]
    print(f"{summary['file']}  (session format {summary['format_version']}, wna-gui {summary['app_version']})")
    print(f"  created {summary['created']}, modified {summary['modified']}")
    accuracy = f", held-out accuracy {model['heldout_accuracy']:.1%}" if model.get("heldout_accuracy") else ""
    print(f"  model: {model['kind']} {model['architecture']}, {model['n_parameters']:,} parameters, "
          f"input {model['input_spec']['shape']}{accuracy}")
    print(f"  weights sha256 {model['weights_sha256'][:16]}…")
    for kind, entry in summary["experiments"].items():
        if kind == PSYCHOMETRIC:
            _print_psychometric_info(entry)
            continue
        if kind == PSYCHOMETRIC_GRID:
            signs = " and ".join("excite" if sign > 0 else "inhibit" for sign in entry["signs"])
            print(f"  {PSYCHOMETRIC_GRID}: {len(entry['targets'])} classes × {', '.join(entry['layers'])} ({signs}), "
                  f"k = {format_k_values(entry['k_values'])} × {len(entry['gammas'])} γ; "
                  f"{entry['plots_done']} of {entry['plots_total']} plots done")
            continue
        print(f"  {kind}: {entry['samples_done']:,} samples", end="")
        if "samples_total" in entry:
            print(f" of {entry['samples_total']:,}{'' if entry['finished'] else ' (unfinished)'}", end="")
        print()
        for name, count in entry.get("class_counts", {}).items():
            print(f"    class {name:>10}: {count:>12,}")
    return 0


def _print_psychometric_info(entry: dict) -> None:
    stimulation = stimulation_text(entry["layer"], entry["sign"], entry["lambda"])
    progress = "" if entry["finished"] else f" (unfinished: {entry['cells_done']} of {entry['cells_total']} cells)"
    print(f"  {PSYCHOMETRIC}: target {entry['target_name']}, {stimulation}, {len(entry['k_values'])} k × "
          f"{len(entry['gammas'])} γ × {entry['images_per_gamma']} images{progress}")
    for row in entry["table"]:
        shift = f", shift {row[5]}" if row[5] else ""
        print(f"    k = {row[0]:>4}: threshold {row[1]}{shift}")


def export_classification(snapshot, out_dir: Path, views=MAP_VIEWS) -> list[Path]:
    """Write .npz arrays, CSV tables and PNG/PDF map grids of a classification-images run."""
    from .figures import map_titles, save_map_grid, shown_classes

    out_dir.mkdir(parents=True, exist_ok=True)
    shown = shown_classes(snapshot.counts)
    titles = map_titles(snapshot.class_names, snapshot.counts, snapshot.map_predictions)
    written: list[Path] = []
    for view in views:
        written.append(snapshot.save_arrays(out_dir / f"maps_{view}.npz", view))
        maps = snapshot.maps.of(view, shown).reshape(len(shown), *snapshot.image_shape)
        for suffix in (".png", ".pdf"):
            written.append(save_map_grid(maps, [titles[k] for k in shown], out_dir / f"maps_{view}{suffix}",
                                         view=view, title=f"Classification images ({view}), "
                                                          f"N = {snapshot.samples_done:,}"))
    counts_csv = out_dir / "class_counts.csv"
    with counts_csv.open("w") as fh:
        fh.write("class,name,count\n")
        for k, (name, count) in enumerate(zip(snapshot.class_names, snapshot.counts)):
            fh.write(f"{k},{name},{int(count)}\n")
    reliability_csv = out_dir / "reliability.csv"
    with reliability_csv.open("w") as fh:
        fh.write("samples," + ",".join(f"r_{name}" for name in snapshot.class_names) + "\n")
        for n, row in zip(snapshot.reliability_samples, snapshot.reliability_per_class):
            fh.write(f"{n}," + ",".join("" if not np.isfinite(v) else f"{v:.6f}" for v in row) + "\n")
    return written + [counts_csv, reliability_csv]


def cmd_export(args) -> int:
    session = load_session(args.session)
    out_dir = Path(args.out)
    written: list[Path] = []
    # First: their plots need a QApplication, which cannot be created once figures has made a QGuiApplication.
    if PSYCHOMETRIC in session.experiments:
        written += export_psychometric(session.experiments[PSYCHOMETRIC].snapshot(), out_dir)
    grid = session.experiments.get(PSYCHOMETRIC_GRID)
    if grid is not None and any(cell is not None for cell in grid.cells):
        written += export_psychometric_grid(grid, session.model.class_names, out_dir)
    state = session.experiments.get(CLASSIFICATION)
    if state is not None:
        experiment = ClassificationImageExperiment(session.model, state=state, device="cpu")
        snapshot = experiment.snapshot()
        views = MAP_VIEWS if args.view == "all" else (args.view,)
        written += export_classification(snapshot, out_dir, views)
    if not written:
        raise SessionError(f"{args.session} holds nothing to export yet")
    print(f"wrote {len(written)} files to {out_dir}")
    return 0


def cmd_train(args) -> int:
    from .core.data import load_dataset
    from .core.models import serialize_state_dict
    from .core.train import TrainConfig, evaluate, train_zoo_model

    train_set = load_dataset(args.dataset, args.data_dir, train=True, download=args.download)
    test_set = load_dataset(args.dataset, args.data_dir, train=False, download=args.download)
    if args.classes:
        classes = tuple(int(c) for c in args.classes.split(","))
        train_set, test_set = train_set.relabelled(classes), test_set.relabelled(classes)
    arch = ZOO[args.architecture]
    if tuple(train_set.images.shape[1:]) != arch.input_spec.shape:
        raise ValueError(f"{args.architecture} takes {arch.input_spec.shape} images but {args.dataset} has "
                         f"{tuple(train_set.images.shape[1:])}")
    config = TrainConfig(args.architecture, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, augment_shift=args.shift)
    device = pick_device(args.device)
    model = train_zoo_model(config, train_set, device=device,
                            progress=lambda e, loss: print(f"epoch {e}/{args.epochs} loss {loss:.4f}", flush=True))
    accuracy = evaluate(model.pixel_model, test_set.images, test_set.labels)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(serialize_state_dict(model.net.state_dict()))
    print(f"wrote {out}: {args.architecture} test accuracy {accuracy:.2%} on {len(test_set):,} {test_set.name} images")
    return 0


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="default",
                       help=f"default (bundled MNIST CNN), a zoo name ({', '.join(ZOO)}), torchscript, "
                            "or torchvision:<name>")
    model.add_argument("--weights", help="state_dict (.pt) for a zoo/torchvision model, or the TorchScript file")
    model.add_argument("--input-shape", help="C,H,W for a TorchScript model (default 1,28,28)")
    model.add_argument("--download", action="store_true", help="download torchvision weights (needs internet)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wna", description="White-noise analysis of neural networks.")
    parser.add_argument("--version", action="version", version=f"wna-gui {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run an experiment and write a session file")
    experiments = run.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    ci = experiments.add_parser("classification-images", help="per-class mean noise (bias maps)")
    _add_model_arguments(ci)
    stim = ci.add_argument_group("stimulus")
    stim.add_argument("--noise", choices=NOISE_KINDS, default="uniform")
    stim.add_argument("--noise-low", type=float, default=0.0)
    stim.add_argument("--noise-high", type=float, default=1.0)
    stim.add_argument("--noise-mean", type=float, default=0.5, help="Gaussian mean")
    stim.add_argument("--noise-std", type=float, default=0.25, help="Gaussian standard deviation")
    stim.add_argument("--clip", action="store_true", help="clip Gaussian noise to [low, high]")
    ci.add_argument("--samples", type=int, help="sample budget (default 100000; with --resume: the new total)")
    ci.add_argument("--batch-size", type=int, default=1000)
    ci.add_argument("--seed", type=int, default=0)
    ci.add_argument("--weighting", choices=("none", "confidence"), default="none")
    ci.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1...")
    ci.add_argument("--out", help="session file to write (.h5)")
    ci.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE")
    ci.add_argument("--autosave-seconds", type=float, default=60.0, help="save every N seconds (0: only at the end)")
    ci.add_argument("--quiet", action="store_true")
    ci.set_defaults(func=cmd_run_classification)

    psy = experiments.add_parser(
        "psychometric", help="psychometric curves of one class, with or without microstimulation",
        description="Mix the target's images with noise, t = γ·s + (1 − γ)·n, over a γ grid and fit the "
                    "fraction classified as the target; optionally raise (or lower) a layer's biases, "
                    "b ← b ± λ·k·ā.")
    _add_model_arguments(psy)
    stim = psy.add_argument_group("stimulus and microstimulation")
    stim.add_argument("--target", help="class index or name (required for a new run)")
    stim.add_argument("--layer", default="none", help="layer whose biases are stimulated, e.g. fc1 (default: none)")
    stim.add_argument("--lambda", dest="lambda_", type=float, metavar="LAMBDA",
                      help="λ (default: the paper's, 0.01 fc / 0.1 first conv / 1 deeper conv)")
    stim.add_argument("--k", default="0:10", help="stimulation levels k: 0:10, 0:10:2 or 0,1,2,5 (default 0:10)")
    stim.add_argument("--sign", choices=tuple(SIGNS), default="excite")
    stim.add_argument("--gammas", type=int, default=21, help="points of the γ grid over [0, 1] (default 21)")
    stim.add_argument("--seed", type=int, default=0)
    fit = psy.add_argument_group("fit")
    fit.add_argument("--sigmoid", choices=SIGMOIDS, default="logistic")
    fit.add_argument("--guess", choices=GUESS_MODES, default="free",
                     help="free (default: the network does not guess at 1/K on noise) or chance (1/K)")
    fit.add_argument("--lapse", choices=LAPSE_MODES, default="bounded", help="bounded [0, 0.06] or free [0, 0.5]")
    fit.add_argument("--boot", type=int, default=200, help="bootstrap resamples of the images for 95%% intervals")
    fit.add_argument("--gof-samples", type=int, default=200, help="Monte-Carlo samples for the deviance p-value")
    psy.add_argument("--batch-size", type=int, default=PsychometricConfig.batch_size)
    psy.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1...")
    psy.add_argument("--out", help="session file to write (.h5); an existing session of the same model keeps "
                                   "its other experiments")
    psy.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE (with its settings)")
    psy.add_argument("--autosave-seconds", type=float, default=60.0, help="save every N seconds (0: only at the end)")
    psy.add_argument("--quiet", action="store_true")
    psy.set_defaults(func=cmd_run_psychometric)

    info = commands.add_parser("info", help="summarise a session file")
    info.add_argument("session")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)

    export = commands.add_parser("export", help="export maps and curves (PNG/PDF/SVG), arrays (.npy) and tables (.csv)")
    export.add_argument("session")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--view", choices=(*MAP_VIEWS, "all"), default="all")
    export.set_defaults(func=cmd_export)

    train = commands.add_parser("train", help="train a zoo architecture and save its state_dict")
    train.add_argument("architecture", choices=list(ZOO))
    train.add_argument("--dataset", choices=["bundled", *DATASETS], default="bundled")
    train.add_argument("--data-dir", help="folder holding the torchvision dataset")
    train.add_argument("--download", action="store_true")
    train.add_argument("--classes", help="train a K-way model on these classes only, e.g. 1,3")
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--shift", type=int, default=0, help="random-shift augmentation (pixels)")
    train.add_argument("--device", default="auto")
    train.add_argument("--out", required=True, help="weights file to write (.pt)")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"wna: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
