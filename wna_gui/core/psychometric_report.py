"""Psychometric results as text, tables and files: shared by the `wna` command and the app's panel.

Qt-free: parsing of k lists and γ grids, the fit table's display text, and
records written as CSV or .npy.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .params import MAX_ENTRIES

if TYPE_CHECKING:  # the engine imports this module; only its snapshot's attributes are used here
    from .psychometric import PsychometricSnapshot


def parse_k_values(text: str) -> tuple[float, ...]:
    """Stimulation levels from a list ("0, 1, 2, 5"), inclusive ranges ("0:10", "0:10:2"), or both: 1 to
    MAX_ENTRIES finite numbers (a range is counted before it is built, so 0:1000000000 is refused at once)."""
    values: list[float] = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            numbers = [float(v) for v in part.split(":")]
        except ValueError:
            numbers = []
        if not np.isfinite(numbers).all():
            raise ValueError(f"k values must be finite numbers, got {text!r}")
        if len(numbers) == 1:
            values.append(numbers[0])
            continue
        start, stop, step = (numbers + [1.0])[:3] if len(numbers) in (2, 3) else (0.0, -1.0, 0.0)
        if step <= 0 or stop < start:
            raise ValueError(f"k values must look like 0:10, 0:10:2 or 0,1,2,5, got {text!r}")
        count = int(min(np.floor((stop - start) / step + 1e-9), MAX_ENTRIES)) + 1
        if len(values) + count > MAX_ENTRIES:
            raise ValueError(f"at most {MAX_ENTRIES:,} k values, got more from {text[:60]!r}")
        values.extend(float(v) for v in np.round(start + step * np.arange(count), 10))
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


def _interval_text(interval, signed: bool = False) -> str:
    if interval is None or np.isnan(np.asarray(interval, dtype=float)).any():
        return ""
    number = "{:+.3f}" if signed else "{:.3f}"

    def end(value):
        return ("−∞" if value < 0 else "+∞" if signed else "∞") if not np.isfinite(value) else number.format(value)

    return f" [{end(interval[0])}, {end(interval[1])}]".replace("-", "−")


def _signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "−")


def _out_of_range_text(value: float, gammas) -> str:
    from .censoring import bound_text

    return f"{bound_text(value, gammas[0], gammas[-1])} (out of range)"


def _threshold_text(snapshot: PsychometricSnapshot, condition: int) -> str:
    """The threshold, or which end of the γ range it lies beyond: an extrapolation is not a measurement."""
    fit = snapshot.fits[condition]
    assert fit is not None  # rows without a fit say so instead
    if snapshot.thresholds_in_range[condition]:
        return f"{fit.threshold:.3f}{_interval_text(fit.threshold_ci)}"
    return _out_of_range_text(fit.threshold, snapshot.gammas)


def _performance_text(snapshot: PsychometricSnapshot, condition: int) -> str:
    """The γ where P(target) reaches the level, or why there is none in the γ range, in words."""
    from .psyfit import CEILING_BELOW, FLOOR_ABOVE

    fit, level = snapshot.fits[condition], snapshot.performance_level
    assert fit is not None  # rows without a fit say so instead
    status = int(snapshot.performance_status[condition])
    if status == FLOOR_ABOVE:
        return f"none: floor {fit.guess:.2f} ≥ {level:.2f}"
    if status == CEILING_BELOW:
        return f"none: top {1 - fit.lapse:.2f} ≤ {level:.2f}"
    value = snapshot.performance_thresholds[condition]
    if snapshot.performance_in_range[condition]:
        return f"{value:.3f}{_interval_text(snapshot.performance_intervals[condition])}"
    return _out_of_range_text(value, snapshot.gammas)


def _pending_text(snapshot: PsychometricSnapshot, condition: int) -> str:
    measured = int(np.count_nonzero(snapshot.trials[condition]))
    return "fitting…" if measured == len(snapshot.gammas) else f"measuring ({measured}/{len(snapshot.gammas)} γ)"


def _p_text(p: float | None, samples: int = 0) -> str:
    """A p-value as a table shows it; the smallest Monte-Carlo p, 1/(samples + 1), as "≤ …"."""
    if p is None or not np.isfinite(p):
        return ""
    if samples and p <= 1.0 / (samples + 1) + 1e-12:
        return f"≤ {p:.2g}"
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def _test_p(test) -> str:
    """The test's p: Monte Carlo when it was simulated, else χ² (marked)."""
    if test is None:
        return ""
    if test.p_value is not None:
        return _p_text(test.p_value, test.samples)
    return f"{_p_text(test.p_chi2)} (χ²)"


def width_unit(sigmoid: str) -> str:
    """The unit of a sigmoid's width: γ, or ln γ for the Weibull (fitted on log γ)."""
    return "ln γ" if sigmoid == "weibull" else "γ"


PSYCHOMETRIC_COLUMNS = ("k", "threshold α\n[95% CI]", "Δα vs k=0\n[95% CI]", "γ at P = level\n[95% CI]",
                        "Δγ(P = level)\nvs k=0 [95% CI]", "p (LR)\nvs k=0", "width", "guess", "lapse",
                        "deviance\n(p GoF)", "flags")
# What each column means: the panel's header tooltips and the CLI's legend.
COLUMN_NOTES = (
    "stimulation level k (b ← b ± λ·k·ā); k = 0 is the reference",
    "midpoint threshold α: the γ where the sigmoid F is halfway (F = ½, psignifit's convention); "
    "ψ there is guess + (1 − guess − lapse)/2",
    "α(k) − α(k = 0), with a paired bootstrap interval (the same image resamples for every k)",
    "performance threshold: the γ where the fitted P(target) itself reaches the level; "
    "none when the curve's floor is above it or its top below it",
    "performance threshold(k) − performance threshold(k = 0), with a paired bootstrap interval",
    "likelihood-ratio test of α(k) = α(k = 0) within the fitted model: Monte-Carlo p from data simulated under "
    "that null as independent binomial trials (Palamedes' approach; it ignores that the same images appear at every "
    "k and γ, which the paired bootstrap intervals respect); (χ²) when not simulated",
    "distance from F = 0.05 to F = 0.95, in the sigmoid's unit: γ, or ln γ for the Weibull (its 95% interval: "
    "hover, or the CSV)",
    "the curve's floor as γ → 0 (fixed at 1/K when chance)",
    "1 − the curve's top",
    "deviance of the fitted ψ (this k's share under a joint fit) and its Monte-Carlo goodness-of-fit p",
    "estimates at a limit of the search (⚠: the limit shapes the fit); the reasons are listed with the table",
)


def column_headers(snapshot: PsychometricSnapshot, one_line: bool = False) -> list[str]:
    """PSYCHOMETRIC_COLUMNS with the run's level and width unit written in (on one line each for a terminal)."""
    level = f"{snapshot.performance_level:.2f}"
    headers = [header.replace("level", level).replace("width", f"width ({width_unit(snapshot.sigmoid)})")
               for header in PSYCHOMETRIC_COLUMNS]
    return [header.replace("\n", " ") for header in headers] if one_line else headers


def flag_text(flags) -> str:
    """A condition's flags in a cell: "⚠ guess=0.5, lapse=0" (warnings first, marked)."""
    from .psyfit import NOTE

    warned = [flag.label for flag in flags if flag.severity != NOTE]
    noted = [flag.label for flag in flags if flag.severity == NOTE]
    return ", ".join(filter(None, [("⚠ " + ", ".join(warned)) if warned else "", ", ".join(noted)]))


def _shift_text(snapshot: PsychometricSnapshot, condition: int, shifts, intervals, in_range) -> str:
    reference = snapshot.reference
    if condition == reference:
        return "reference"
    if reference is None or not np.isfinite(shifts[condition]):
        return ""
    if not (in_range[condition] and in_range[reference]):
        return "n/a (out of range)"
    return f"{_signed(shifts[condition])}{_interval_text(intervals[condition], signed=True)}"


def psychometric_table(snapshot: PsychometricSnapshot) -> list[list[str]]:
    """One row of display text per k, in PSYCHOMETRIC_COLUMNS order.

    A curve that could not be fitted says why in its threshold column; an
    unfinished one says how far it got. Thresholds outside the γ range and
    shifts involving one are not given as numbers; a performance threshold that
    does not exist says why.
    """
    rows = []
    for condition, k in enumerate(snapshot.k_values):
        fit, error = snapshot.fits[condition], snapshot.fit_errors[condition]
        if fit is None:
            note = f"no fit: {error}" if error else _pending_text(snapshot, condition)
            rows.append([f"{k:g}", note, *[""] * (len(PSYCHOMETRIC_COLUMNS) - 2)])
            continue
        test = snapshot.test_against_reference(condition)
        rows.append([
            f"{k:g}",
            _threshold_text(snapshot, condition),
            _shift_text(snapshot, condition, snapshot.threshold_shifts, snapshot.shift_intervals,
                        snapshot.thresholds_in_range),
            _performance_text(snapshot, condition),
            _shift_text(snapshot, condition, snapshot.performance_shifts, snapshot.performance_shift_intervals,
                        snapshot.performance_in_range),
            "—" if condition == snapshot.reference else _test_p(test),
            f"{fit.width:.3f}",
            f"{fit.guess:.3f}",
            f"{fit.lapse:.3f}",
            f"{fit.deviance:.2f}" + ("" if fit.p_value is None else f" ({fit.p_value:.2f})"),
            flag_text(snapshot.flags[condition] if snapshot.flags else ()),
        ])
    return rows


def _fitted_words(shared, guess_fixed) -> tuple[str, str]:
    """(parameters per k, parameters shared) in words."""
    own = ["threshold", *[p for p in ("width", "guess", "lapse") if p not in shared
                          and not (p == "guess" and guess_fixed is not None)]]
    return ", ".join(own), ", ".join(shared)


def _fixed_words(model: dict) -> str:
    fixed = model.get("guess_fixed")
    return "" if fixed is None else f"; guess fixed at {fixed:.3g}"


def model_lines(snapshot: PsychometricSnapshot, detail: bool = True) -> list[str]:
    """What was fitted, how well, and the tests: the lines below (CLI) or above (panel) the table.

    ``detail``: every statistic (LR, df, both p-values); without it, the p-values only (the panel
    shows the details in a tooltip).
    """
    model = snapshot.fit_model
    if model is not None and "error" in model:
        return [f"No joint fit: {model['error']}"]
    if snapshot.preliminary:
        return ["Each curve fitted alone, so far: the model's fit, its intervals and the tests follow when "
                "every curve is measured."]
    if model is None:
        return []
    curves = model["conditions"]
    gof = "" if model.get("p_value") is None else f", p (GoF) = {model['p_value']:.2f}"
    size = f"{model['n_params']} parameters · deviance {model['deviance']:.1f} on {model['n_points']} points{gof}"
    if model.get("legacy"):
        return [f"Curves {model['legacy']} · {size}.", "Change a fit setting to refit with the joint model and tests."]
    if curves == 1:
        lines = [f"One curve · {size}"]
    elif not model.get("shared"):
        own, _ = _fitted_words((), model.get("guess_fixed"))
        lines = [f"Curves fitted separately: {own} per k{_fixed_words(model)} · {size}"]
    else:
        own, shared = _fitted_words(model["shared"], model.get("guess_fixed"))
        lines = [f"Joint fit: {own} per k; {shared} shared{_fixed_words(model)} · {size}"]
    equal, sharing = snapshot.test_named("equal"), snapshot.test_named("sharing")
    tests = []
    if equal is not None:
        tests.append(f"α equal across k? {_test_words(equal, detail)}")
    if sharing is not None:
        verdict = (": no, the curves differ in more than their position (compare a fit with them per k)"
                   if _p_of(sharing) < 0.05 else ": consistent")
        tests.append(f"One {', '.join(model['shared'])} for every k? {_test_words(sharing, detail)}{verdict}")
    if detail:
        lines += tests
    elif tests:
        lines.append(" · ".join(tests))
    return lines


def _test_words(test, detail: bool) -> str:
    p = _test_p_words(test) if detail else (_p_text(test.p_value, test.samples) if test.p_value is not None
                                            else f"{_p_text(test.p_chi2)} (χ²)")
    if not detail:
        return f"p {p}" if p.startswith("≤") else f"p = {p}"
    return f"LR = {test.statistic:.1f}, df = {test.df}, p {p}"


def _p_of(test) -> float:
    return test.p_value if test.p_value is not None else test.p_chi2


def _test_p_words(test) -> str:
    chi2 = f"χ² p = {test.p_chi2:.2g}"
    if test.p_value is None:
        return f"= {test.p_chi2:.2g} (χ²)"
    shown = _p_text(test.p_value, test.samples)
    relation = shown if shown.startswith("≤") else f"= {shown}"
    return f"{relation} (Monte Carlo, {test.samples} data sets; {chi2})"


def flag_notes(snapshot: PsychometricSnapshot) -> list[str]:
    """One line per distinct reason a flag was raised, with the k it applies to (warnings first)."""
    from .psyfit import NOTE

    by_reason: dict[tuple[str, str], list[str]] = {}
    for k, flags in zip(snapshot.k_values, snapshot.flags):
        for flag in flags:
            by_reason.setdefault((flag.severity, flag.reason), []).append(f"{k:g}")
    lines = []
    for (severity, reason), ks in sorted(by_reason.items(), key=lambda item: item[0][0] == NOTE):
        mark = "·" if severity == NOTE else "⚠"
        where = f"k = {', '.join(ks)}" if len(snapshot.k_values) > 1 else "the curve"
        lines.append(f"{mark} {where}: {reason}")
    return lines


def psychometric_text_tables(snapshot: PsychometricSnapshot) -> list[str]:
    """The table as text for a terminal: thresholds and tests, then the rest of the fit, then the flags."""
    headers, rows = column_headers(snapshot, one_line=True), psychometric_table(snapshot)
    # A terminal has room for the width's interval (the panel shows it on hover).
    headers[6] += " [95% CI]"
    for row, fit in zip(rows, snapshot.fits):
        if fit is not None:
            row[6] = f"{fit.width:.3f}{_interval_text(fit.width_ci)}"
    blocks = []
    for columns in ((0, 1, 2, 3, 4, 5), (0, 6, 7, 8, 9, 10)):
        table = [[headers[c] for c in columns], *[[row[c] for c in columns] for row in rows]]
        # A curve without a fit has one note instead of numbers; it must not widen the threshold column.
        fitted = [row for row in table if any(row[2:])]
        widths = [max(len(row[i]) for row in fitted) for i in range(len(columns))]
        lines = []
        for row in table:
            if any(row[2:]):
                cells = list(zip(row, widths))
            elif columns[1] == 1:
                cells = [(row[0], widths[0]), (row[1], 0)]
            else:
                continue  # its note is in the first table
            lines.append("  " + "  ".join(text.ljust(width) for text, width in cells).rstrip())
        if len(lines) > 1:
            blocks.append(lines)
    out = blocks[0] if blocks else []
    for block in blocks[1:]:
        out += ["", *block]
    notes = flag_notes(snapshot)
    return out + (["", *notes] if notes else [])


def _condition_fields(snapshot: PsychometricSnapshot) -> dict:
    return {"target": snapshot.target, "target_name": snapshot.target_name, "layer": snapshot.layer or "",
            "lambda": np.nan if snapshot.lambda_ is None else snapshot.lambda_, "sign": snapshot.sign}


def _model_word(snapshot: PsychometricSnapshot) -> str:
    model = snapshot.fit_model
    if snapshot.preliminary:
        return "preliminary (curve alone)"
    if model is None or "error" in model:
        return ""
    if model.get("legacy"):
        return "per k (wna-gui 0.1)"
    if model["conditions"] == 1:
        return "single curve"
    return "joint" if model.get("shared") else "per k"


def _pair(values, condition) -> tuple[float, float]:
    pair = np.asarray(values[condition], dtype=float)
    return float(pair[0]), float(pair[1])


def psychometric_fit_records(snapshot: PsychometricSnapshot) -> list[dict]:
    """The fits as numbers, one record per k (NaN where a curve has no fit; see fit_error).

    Performance thresholds that do not exist (performance_status "floor above level" or
    "never reaches level") and infinite interval ends are empty cells.
    """
    from .psyfit import CEILING_BELOW, FLOOR_ABOVE

    status_words = {0: "reached", FLOOR_ABOVE: "floor above level", CEILING_BELOW: "never reaches level"}
    model = snapshot.fit_model or {}
    shared = " ".join(model.get("shared") or ()) if "error" not in model else ""
    records = []
    for condition, k in enumerate(snapshot.k_values):
        fit = snapshot.fits[condition]
        nan2 = (np.nan, np.nan)
        threshold_ci = fit.threshold_ci if fit is not None and fit.threshold_ci else nan2
        width_ci = fit.width_ci if fit is not None and fit.width_ci else nan2
        guess_ci = fit.guess_ci if fit is not None and fit.guess_ci else nan2
        lapse_ci = fit.lapse_ci if fit is not None and fit.lapse_ci else nan2
        test = snapshot.test_against_reference(condition)
        flags = snapshot.flags[condition] if snapshot.flags else ()
        performance_ci = _pair(snapshot.performance_intervals, condition)
        performance_shift_ci = _pair(snapshot.performance_shift_intervals, condition)
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
            # Added with record version 3.
            "width_unit": width_unit(snapshot.sigmoid),
            "guess_ci_low": guess_ci[0], "guess_ci_high": guess_ci[1],
            "lapse_ci_low": lapse_ci[0], "lapse_ci_high": lapse_ci[1],
            "performance_level": snapshot.performance_level,
            "performance_threshold": float(snapshot.performance_thresholds[condition]),
            "performance_status": "" if fit is None else status_words[int(snapshot.performance_status[condition])],
            "performance_in_range": bool(snapshot.performance_in_range[condition]),
            "performance_ci_low": performance_ci[0], "performance_ci_high": performance_ci[1],
            "performance_shift": float(snapshot.performance_shifts[condition]),
            "performance_shift_ci_low": performance_shift_ci[0],
            "performance_shift_ci_high": performance_shift_ci[1],
            "lr_vs_reference": np.nan if test is None else test.statistic,
            "lr_p_vs_reference": np.nan if test is None or test.p_value is None else test.p_value,
            "lr_p_chi2_vs_reference": np.nan if test is None else test.p_chi2,
            "model": "" if fit is None else _model_word(snapshot),
            "shared": "" if fit is None else shared,
            "images": snapshot.n_images, "noise_samples": snapshot.repeats,
            "flags": "; ".join(flag.label for flag in flags),
            "flag_severities": "; ".join(flag.severity for flag in flags),
            "flag_reasons": "; ".join(flag.reason for flag in flags),
        })
    return records


def psychometric_test_records(snapshot: PsychometricSnapshot) -> list[dict]:
    """The likelihood-ratio tests, one record each; pairwise tests against k = 0 also Holm-adjusted."""
    pairs = [test for test in snapshot.lr_tests if test.name == "pair"]
    holm = dict(zip((id(t) for t in pairs), _holm([t.p_value if t.p_value is not None else t.p_chi2
                                                     for t in pairs])))
    records = []
    for test in snapshot.lr_tests:
        ks = [snapshot.k_values[c] for c in test.conditions]
        if test.name == "pair":
            hypothesis = f"α(k = {ks[1]:g}) = α(k = {ks[0]:g})"
        elif test.name == "equal":
            hypothesis = "α equal across k"
        else:
            hypothesis = f"one {', '.join((snapshot.fit_model or {}).get('shared') or ())} for every k"
        records.append({
            **_condition_fields(snapshot), "test": test.name, "null_hypothesis": hypothesis,
            "k_values": " ".join(f"{k:g}" for k in ks), "df": test.df, "statistic": test.statistic,
            "p_value": np.nan if test.p_value is None else test.p_value, "p_chi2": test.p_chi2,
            "samples": test.samples, "p_holm": holm.get(id(test), np.nan),
        })
    return records


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (monotone, capped at 1)."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def psychometric_data_records(snapshot: PsychometricSnapshot) -> list[dict]:
    """The measurements, one record per (k, γ): trials classified as the target out of the trials."""
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
