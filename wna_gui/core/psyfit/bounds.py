"""The ranges the fits search (rates, widths, thresholds) and the estimates that stop at one of them.

Every fit searches the same box (``_search_bounds``); ``bound_flags`` says which
fitted parameters sit on its edge and what that means for the reader (``BoundFlag``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .sigmoids import PARAMETERS, _to_u, _to_x_threshold

if TYPE_CHECKING:
    from .fit import PsychometricFit


BOUNDED_LAPSE_MAX = 0.06
FREE_RATE_MAX = 0.5  # upper bound of a "free" lapse rate

# A free guess rate may reach just below 1 − the largest lapse: a network's floor under noise can be ≈0.9 (the
# bundled CNN calls 84% of noise "8"), so a fixed 0.5 cap would let the bound, not the data, set the fit.
GUESS_MARGIN = 0.01

# Bounds of the search in units of the stimulus range: widths far outside it are not identifiable.
_WIDTH_BOUNDS = (0.005, 5.0)
_THRESHOLD_MARGIN = 0.5

# The grid the fits start from, inside the search box (in units of the stimulus range).
_WIDTH_GRID = (0.05, 2.0)
_GRID_THRESHOLDS = 11
_GRID_WIDTHS = 8

# The free guess rate's upper limit of wna-gui 0.1's curve-by-curve fits (stored fits of that version used it).
LEGACY_GUESS_MAX = 0.5


def guess_max(lapse) -> float:
    """Upper limit of a free guess rate: the curve must still rise, so guess < 1 − the largest lapse allowed."""
    lapse_max = {"bounded": BOUNDED_LAPSE_MAX, "free": FREE_RATE_MAX}.get(lapse, lapse)
    return max(0.0, 1.0 - float(lapse_max) - GUESS_MARGIN)


def _check_rates(guess, lapse) -> None:
    if guess is not None and not (isinstance(guess, numbers.Real) and 0 <= float(guess) < 1):
        raise ValueError(f"guess must be None (free) or a number in [0, 1), got {guess!r}")
    if isinstance(lapse, str):
        if lapse not in ("bounded", "free"):
            raise ValueError(f"lapse must be 'bounded', 'free' or a number in [0, 1), got {lapse!r}")
    elif not (isinstance(lapse, numbers.Real) and 0 <= float(lapse) < 1):
        raise ValueError(f"lapse must be 'bounded', 'free' or a number in [0, 1), got {lapse!r}")
    # psi must stay increasing: guess + lapse < 1 over the whole search range.
    highest_guess = guess_max(lapse) if guess is None else guess
    lapse_max = {"bounded": BOUNDED_LAPSE_MAX, "free": FREE_RATE_MAX}.get(lapse, lapse)
    both_fixed = guess is not None and not isinstance(lapse, str)
    if guess is None and highest_guess <= 0:
        raise ValueError(f"guess + lapse must stay below 1, but a lapse of {lapse_max} leaves no room for a free guess")
    if highest_guess + lapse_max > 1 or (both_fixed and guess + lapse == 1):
        raise ValueError(f"guess + lapse must stay below 1, but can reach {highest_guess} + {lapse_max}")


def _search_bounds(u: np.ndarray, guess, lapse) -> np.ndarray:
    """(4, 2) search bounds of (threshold in u units, log width, guess, lapse), as every fit searches them."""
    finite = u[np.isfinite(u)]
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo
    lapse_max = BOUNDED_LAPSE_MAX if lapse == "bounded" else FREE_RATE_MAX
    return np.array([
        [lo - _THRESHOLD_MARGIN * span, hi + _THRESHOLD_MARGIN * span],
        [np.log(_WIDTH_BOUNDS[0] * span), np.log(_WIDTH_BOUNDS[1] * span)],
        [0.0, guess_max(lapse)] if guess is None else [guess, guess],
        [0.0, lapse_max] if isinstance(lapse, str) else [lapse, lapse],
    ], dtype=float)


# --- estimates at a bound ---

WARNING, NOTE = "warning", "note"


@dataclass(frozen=True)
class BoundFlag:
    """An estimate at a bound of its search range: which, where, how serious, and what it means."""

    parameter: str  # threshold | width | guess | lapse
    side: str  # lower | upper
    bound: float  # in the parameter's reporting units (threshold in x, width as fitted)
    severity: str  # WARNING: an artificial limit constrains the fit; NOTE: a rate at its natural 0
    reason: str

    @property
    def label(self) -> str:
        """Short: "guess=0.5", "lapse=0", "width=min", "threshold=max"."""
        if self.parameter in ("guess", "lapse"):
            return f"{self.parameter}={self.bound:g}"
        return f"{self.parameter}={'min' if self.side == 'lower' else 'max'}"

    def to_dict(self) -> dict:
        return {"parameter": self.parameter, "side": self.side, "bound": float(self.bound),
                "severity": self.severity, "label": self.label, "reason": self.reason}


_AT_BOUND = 1e-4  # in rate units, in log-width units, and as a fraction of the level span for thresholds


def search_limits(x, sigmoid: str, guess, lapse) -> dict[str, tuple[float, float]]:
    """The ranges the fitter searches, per parameter, in reporting units (threshold in x units; width in
    the sigmoid's units: x, or ln x for the Weibull). ``x``: the levels with trials."""
    u = _to_u(sigmoid, np.asarray(x, dtype=float))
    bounds = _search_bounds(u, guess, lapse)
    return {"threshold": _pair(_to_x_threshold(sigmoid, bounds[0])), "width": _pair(np.exp(bounds[1])),
            "guess": _pair(bounds[2]), "lapse": _pair(bounds[3])}


def _pair(limits) -> tuple[float, float]:
    low, high = (float(v) for v in limits)
    return low, high


def bound_flags(fit: PsychometricFit, x, guess, lapse, shared=(), guess_limit: float | None = None
                ) -> tuple[BoundFlag, ...]:
    """The fitted parameters of ``fit`` that sit at a bound of the search (fixed ones are not flagged).

    ``x``: the levels fitted; ``guess``/``lapse``: as given to the fitter (None / "bounded" /
    "free" when fitted); ``shared``: parameters shared across conditions (their reasons say so);
    ``guess_limit``: the free guess rate's upper limit when the fit used another than today's (an old fit).
    """
    u = _to_u(fit.sigmoid, np.asarray(x, dtype=float))
    bounds = _search_bounds(u, guess, lapse)
    if guess_limit is not None and guess is None:
        bounds[2, 1] = guess_limit
    finite = u[np.isfinite(u)]
    span = float(finite.max() - finite.min())
    values = {"threshold": float(_to_u(fit.sigmoid, np.array(fit.threshold))), "width": float(np.log(fit.width)),
              "guess": fit.guess, "lapse": fit.lapse}
    tolerance = {"threshold": _AT_BOUND * span, "width": _AT_BOUND, "guess": _AT_BOUND, "lapse": _AT_BOUND}
    fitted = {"threshold": True, "width": True, "guess": guess is None, "lapse": isinstance(lapse, str)}
    flags = []
    for p, name in enumerate(PARAMETERS):
        if not fitted[name] or not np.isfinite(values[name]):
            continue
        for side, bound in (("lower", bounds[p, 0]), ("upper", bounds[p, 1])):
            if abs(values[name] - bound) <= tolerance[name]:
                shown = {"threshold": float(_to_x_threshold(fit.sigmoid, bound)), "width": float(np.exp(bound))}
                flags.append(_flag(name, side, shown.get(name, float(bound)), name in shared, fit.sigmoid))
                break
    return tuple(flags)


def _flag(name: str, side: str, bound: float, shared: bool, sigmoid: str) -> BoundFlag:
    whose = "the shared " if shared else "the "
    unit = "ln γ" if sigmoid == "weibull" else "γ"
    if name == "guess" and side == "lower":
        return BoundFlag(name, side, bound, NOTE, f"{whose}guess rate is 0, its lower limit: at low γ the target "
                         "is (almost) never chosen; its interval is one-sided")
    if name == "lapse" and side == "lower":
        return BoundFlag(name, side, bound, NOTE, f"{whose}lapse rate is 0, its lower limit: the curve reaches 1 at "
                         "high γ; its interval is one-sided")
    if name == "guess":
        return BoundFlag(name, side, bound, WARNING, f"{whose}guess rate stopped at its upper limit {bound:g}: the "
                         "floor took up the curve's lower part and may hide a threshold shift there; share the guess "
                         "across k, or read the performance threshold")
    if name == "lapse":
        return BoundFlag(name, side, bound, WARNING, f"{whose}lapse rate stopped at its upper limit {bound:g}: the "
                         f"curve's top sags below {1 - bound:g} and the threshold can move to follow the sag; "
                         "set the lapse free, or read the performance threshold")
    if name == "width":
        if side == "lower":
            return BoundFlag(name, side, bound, WARNING, f"{whose}width stopped at its lower search limit "
                             f"({bound:.3g} {unit}): the curve is a step between two γ points, its width unmeasured")
        return BoundFlag(name, side, bound, WARNING, f"{whose}width stopped at its upper search limit "
                         f"({bound:.3g} {unit}): the curve is nearly flat over the γ range")
    return BoundFlag(name, side, bound, WARNING, f"the threshold stopped at its search limit ({bound:.3g}, half a "
                     "γ range beyond the data): the data do not locate it")
