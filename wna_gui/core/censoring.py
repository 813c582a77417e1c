"""Censored thresholds: a threshold outside the measured grid is a bound ("> 0.9", "< 0.1"), not a measurement.

A fitted curve can be extrapolated to any level, but the data constrain it
only inside the grid that was measured. Every experiment that reports a
threshold (robustness, psychometric curves) applies this one rule, in tables,
plots and CSV files: inside the grid the value is reported, outside it only
the side and the grid's end ("> max" / "< min", the fitted value at most as a
note), and a curve that never leaves chance has no threshold at all.
"""

from __future__ import annotations

import math

import numpy as np

INSIDE, ABOVE, BELOW, NONE = "inside", "above", "below", "none"


def side(value: float, low: float, high: float) -> str:
    """Where ``value`` lies against the measured grid [low, high]: inside, above, below, or none (NaN)."""
    value = float(value)
    if math.isnan(value):
        return NONE
    if value > high:
        return ABOVE
    if value < low:
        return BELOW
    return INSIDE


def in_grid(values, low: float, high: float) -> np.ndarray:
    """Elementwise: the value is a measured threshold (finite and within [low, high])."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= low) & (values <= high)


def bound_text(value: float, low: float, high: float) -> str:
    """"> high" or "< low" for a value outside the grid ("" inside it or for NaN)."""
    where = side(value, low, high)
    return f"> {high:g}" if where == ABOVE else f"< {low:g}" if where == BELOW else ""


def censored_value(value: float, low: float, high: float):
    """What a CSV column holds: the value inside the grid, else its bound as text ("> 0.9"); NaN stays NaN."""
    return float(value) if side(value, low, high) in (INSIDE, NONE) else bound_text(value, low, high)


def censored_text(value: float, low: float, high: float, digits: str = ".3g", interval: str = "",
                  none: str = "none") -> str:
    """The threshold as a table shows it: "0.31 [0.28, 0.35]" inside the grid, "> 0.9" or "< 0" outside, else
    ``none``."""
    where = side(value, low, high)
    if where == NONE:
        return none
    if where == INSIDE:
        return f"{float(value):{digits}}{interval}"
    return bound_text(value, low, high)


__all__ = ["ABOVE", "BELOW", "INSIDE", "NONE", "bound_text", "censored_text", "censored_value", "in_grid", "side"]
