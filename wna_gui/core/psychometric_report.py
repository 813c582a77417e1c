"""Psychometric results as text, tables and files: shared by the `wna` command and the app's panel.

Qt-free: parsing of k lists and γ grids, the fit table's display text, and
records written as CSV or .npy.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the engine imports this module; only its snapshot's attributes are used here
    from .psychometric import PsychometricSnapshot

def parse_k_values(text: str) -> tuple[float, ...]:
    """Stimulation levels from a list ("0, 1, 2, 5"), inclusive ranges ("0:10", "0:10:2"), or both."""
    values: list[float] = []
    try:
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            if ":" not in part:
                values.append(float(part))
                continue
            start, stop, *step = (float(v) for v in part.split(":"))
            step = step[0] if step else 1.0
            if len(part.split(":")) > 3 or step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            values.extend(float(v) for v in np.round(start + step * np.arange(count), 10))
    except ValueError:
        raise ValueError(f"k values must look like 0:10, 0:10:2 or 0,1,2,5, got {text!r}") from None
    if not values:
        raise ValueError("give at least one k value, e.g. 0:10")
    return tuple(values)


def format_k_values(values) -> str:
    """What parse_k_values reads back: "0:10" for 0, 1, …, 10 (four or more evenly spaced integers), else a list."""
    values = [float(v) for v in values]
    steps = np.diff(values)
    if len(values) >= 4 and all(v.is_integer() for v in values) and steps[0] > 0 and np.all(steps == steps[0]):
        step = "" if steps[0] == 1 else f":{steps[0]:g}"
        return f"{values[0]:g}:{values[-1]:g}{step}"
    return ", ".join(f"{v:g}" for v in values)


def gamma_grid(points: int) -> tuple[float, ...]:
    """``points`` evenly spaced signal fractions γ from 0 (pure noise) to 1 (clean image)."""
    if points < 2:
        raise ValueError(f"the γ grid needs at least 2 points, got {points}")
    return tuple(float(g) for g in np.round(np.linspace(0.0, 1.0, points), 10))


def _interval_text(interval, signed: bool = False) -> str:
    if interval is None or not np.all(np.isfinite(interval)):
        return ""
    number = "{:+.3f}" if signed else "{:.3f}"
    return f" [{number.format(interval[0])}, {number.format(interval[1])}]"


def _threshold_text(snapshot: PsychometricSnapshot, condition: int) -> str:
    """The threshold, or which end of the γ range it lies beyond: an extrapolation is not a measurement."""
    fit = snapshot.fits[condition]
    if snapshot.thresholds_in_range[condition]:
        return f"{fit.threshold:.3f}{_interval_text(fit.threshold_ci)}"
    low, high = snapshot.gammas[0], snapshot.gammas[-1]
    return f"< {low:g} (out of range)" if fit.threshold < low else f"> {high:g} (out of range)"


def _pending_text(snapshot: PsychometricSnapshot, condition: int) -> str:
    measured = int(np.count_nonzero(snapshot.trials[condition]))
    return "fitting…" if measured == len(snapshot.gammas) else f"measuring ({measured}/{len(snapshot.gammas)} γ)"


PSYCHOMETRIC_COLUMNS = ("k", "threshold [95% CI]", "width [95% CI]", "guess", "lapse",
                        "Δthreshold vs k=0 [95% CI]", "deviance", "p (GoF)")


def psychometric_table(snapshot: PsychometricSnapshot) -> list[list[str]]:
    """One row of display text per k, in PSYCHOMETRIC_COLUMNS order.

    A curve that could not be fitted says why in its threshold column; an
    unfinished one says how far it got. Shifts involving an out-of-range
    threshold are not given as numbers.
    """
    reference = int(np.flatnonzero(snapshot.k_values == 0)[0]) if np.any(snapshot.k_values == 0) else None
    rows = []
    for condition, k in enumerate(snapshot.k_values):
        fit, error = snapshot.fits[condition], snapshot.fit_errors[condition]
        if fit is None:
            note = f"no fit: {error}" if error else _pending_text(snapshot, condition)
            rows.append([f"{k:g}", note, *[""] * (len(PSYCHOMETRIC_COLUMNS) - 2)])
            continue
        if condition == reference:
            shift = "reference"
        elif not np.isfinite(snapshot.threshold_shifts[condition]):
            shift = ""
        elif not (snapshot.thresholds_in_range[condition] and snapshot.thresholds_in_range[reference]):
            shift = "n/a (threshold out of range)"
        else:
            shift = (f"{snapshot.threshold_shifts[condition]:+.3f}"
                     f"{_interval_text(snapshot.shift_intervals[condition], signed=True)}")
        rows.append([f"{k:g}", _threshold_text(snapshot, condition), f"{fit.width:.3f}{_interval_text(fit.width_ci)}",
                     f"{fit.guess:.3f}", f"{fit.lapse:.3f}", shift, f"{fit.deviance:.2f}",
                     "" if fit.p_value is None else f"{fit.p_value:.2f}"])
    return rows


def _condition_fields(snapshot: PsychometricSnapshot) -> dict:
    return {"target": snapshot.target, "target_name": snapshot.target_name, "layer": snapshot.layer or "",
            "lambda": np.nan if snapshot.lambda_ is None else snapshot.lambda_, "sign": snapshot.sign}


def psychometric_fit_records(snapshot: PsychometricSnapshot) -> list[dict]:
    """The fits as numbers, one record per k (NaN where a curve has no fit; see fit_error)."""
    records = []
    for condition, k in enumerate(snapshot.k_values):
        fit = snapshot.fits[condition]
        threshold_ci = fit.threshold_ci if fit is not None and fit.threshold_ci else (np.nan, np.nan)
        width_ci = fit.width_ci if fit is not None and fit.width_ci else (np.nan, np.nan)
        records.append({
            **_condition_fields(snapshot), "k": float(k),
            "sigmoid": "" if fit is None else fit.sigmoid,
            "threshold": np.nan if fit is None else fit.threshold,
            "threshold_ci_low": threshold_ci[0], "threshold_ci_high": threshold_ci[1],
            "threshold_in_range": bool(snapshot.thresholds_in_range[condition]),
            "width": np.nan if fit is None else fit.width,
            "width_ci_low": width_ci[0], "width_ci_high": width_ci[1],
            "guess": np.nan if fit is None else fit.guess,
            "lapse": np.nan if fit is None else fit.lapse,
            "threshold_shift": snapshot.threshold_shifts[condition],
            "shift_ci_low": snapshot.shift_intervals[condition, 0],
            "shift_ci_high": snapshot.shift_intervals[condition, 1],
            "deviance": np.nan if fit is None else fit.deviance,
            "p_value": np.nan if fit is None or fit.p_value is None else fit.p_value,
            "fit_error": snapshot.fit_errors[condition] or "",
        })
    return records


def psychometric_data_records(snapshot: PsychometricSnapshot) -> list[dict]:
    """The measurements, one record per (k, γ): images classified as the target out of the trials."""
    return [{**_condition_fields(snapshot), "k": float(k), "gamma": float(gamma),
             "n_correct": int(snapshot.n_correct[condition, j]), "trials": int(snapshot.trials[condition, j]),
             "fraction_correct": float(snapshot.fraction_correct[condition, j])}
            for condition, k in enumerate(snapshot.k_values) for j, gamma in enumerate(snapshot.gammas)]


def grid_records(snapshots, records_of) -> list[dict]:
    """``records_of`` (psychometric_fit_records or psychometric_data_records) of every measured plot of a grid."""
    return [record for snapshot in snapshots if snapshot is not None for record in records_of(snapshot)]


def write_records(records: list[dict], path: str | Path) -> Path:
    """Records as a CSV table (NaN as an empty cell) or a .npy structured array (one field per column)."""
    path = Path(path)
    if not records:
        raise ValueError("nothing to export yet")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            for record in records:
                writer.writerow({key: "" if isinstance(value, float) and not np.isfinite(value) else value
                                 for key, value in record.items()})
    elif suffix == ".npy":
        def field_type(key):
            value = records[0][key]
            if isinstance(value, str):
                return f"U{max(1, max(len(r[key]) for r in records))}"
            return {bool: "?", int: "i8"}.get(type(value), "f8")

        dtype = np.dtype([(key, field_type(key)) for key in records[0]])
        np.save(path, np.array([tuple(r.values()) for r in records], dtype=dtype))
    else:
        raise ValueError(f"a table exports as .csv or .npy, not {suffix or 'a file without suffix'}")
    return path


def stimulation_text(layer: str | None, sign: int, lambda_: float | None) -> str:
    """"fc1 excited, λ = 0.01", or "unstimulated"."""
    if layer is None:
        return "unstimulated"
    return f"{layer} {'excited' if sign > 0 else 'inhibited'}, λ = {lambda_:g}"
