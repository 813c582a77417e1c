"""The four sigmoid shapes F and the performance threshold of ψ = guess + (1 − guess − lapse) F.

Each shape is a standard CDF G evaluated at z = a (u − t) / width + b (u = x, or
log x for the Weibull), a and b set so that G(b) = 0.5 and z(F = 0.95) −
z(F = 0.05) = a (the package doc gives the formulas). ``check_shape`` is the
sanity check every shape must pass; the tests run it for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special


SIGMOIDS = ("logistic", "gauss", "weibull", "gumbel")
WIDTH_ALPHA = 0.05  # width spans F = WIDTH_ALPHA ... 1 - WIDTH_ALPHA
_PSI_EPS = 1e-12

# Beyond |z| = 40 every G is within 1e-17 of 0 or 1; clipping avoids overflow in the Gumbel.
_Z_LIMIT = 40.0


@dataclass(frozen=True)
class SigmoidShape:
    """A standard CDF G (with its pdf and quantile): a sigmoid is G(a (u − t) / width + b), a = ``scale``,
    b = ``offset``."""

    cdf: Callable[[np.ndarray], np.ndarray]
    pdf: Callable[[np.ndarray], np.ndarray]
    quantile: Callable[[float | np.ndarray], np.ndarray]  # also of a single level (scale, offset)

    @property
    def scale(self) -> float:
        return float(self.quantile(1 - WIDTH_ALPHA) - self.quantile(WIDTH_ALPHA))

    @property
    def offset(self) -> float:
        return float(self.quantile(0.5))


def _logistic_pdf(z):
    f = special.expit(z)
    return f * (1 - f)


_LOGISTIC = SigmoidShape(special.expit, _logistic_pdf, special.logit)
_GAUSS = SigmoidShape(special.ndtr, lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi), special.ndtri)
_GUMBEL = SigmoidShape(
    lambda z: -np.expm1(-np.exp(z)),
    lambda z: np.exp(z - np.exp(z)),
    lambda p: np.log(-np.log1p(-p)),
)
SHAPES = {"logistic": _LOGISTIC, "gauss": _GAUSS, "gumbel": _GUMBEL, "weibull": _GUMBEL}


def _check_sigmoid(sigmoid: str) -> SigmoidShape:
    if sigmoid not in SHAPES:
        raise ValueError(f"unknown sigmoid {sigmoid!r}; choose one of {', '.join(SIGMOIDS)}")
    return SHAPES[sigmoid]


def check_shape(sigmoid: str, shapes: dict[str, SigmoidShape] | None = None) -> None:
    """ValueError (naming the sigmoid and the broken rule) unless it keeps the conventions both fitters rely on:
    F rises from 0 to 1, F(threshold) = 0.5, F goes from WIDTH_ALPHA to 1 − WIDTH_ALPHA over ``width`` (in ln x
    for the Weibull), the quantile inverts the CDF and the pdf is its derivative. ``shapes``: another table
    whose shapes to check (the rules in x are checked on SHAPES, through sigmoid_cdf and sigmoid_inverse)."""
    shape = (shapes or SHAPES).get(sigmoid)
    if shape is None:
        raise ValueError(f"unknown sigmoid {sigmoid!r}; choose one of {', '.join(SIGMOIDS)}")

    def fail(rule: str):
        raise ValueError(f"the {sigmoid} sigmoid breaks its conventions: {rule}")

    z = np.linspace(-6.0, 6.0, 241)
    f = shape.cdf(z)
    if not (np.all(np.diff(f) >= 0) and f[0] < 0.01 and f[-1] > 0.99 and np.all((f >= 0) & (f <= 1))):
        fail("its CDF does not rise from 0 to 1")
    if abs(shape.cdf(np.array(shape.offset)) - 0.5) > 1e-12:
        fail("F(threshold) is not 0.5")
    ends = np.array([WIDTH_ALPHA, 1 - WIDTH_ALPHA])
    if not np.allclose(shape.cdf(shape.quantile(ends)), ends, atol=1e-12):
        fail("its quantile does not invert its CDF")
    step = 1e-6
    slope = (shape.cdf(z + step) - shape.cdf(z - step)) / (2 * step)
    if not np.allclose(shape.pdf(z), slope, rtol=1e-5, atol=1e-9):
        fail("its pdf is not the derivative of its CDF")
    if shapes is not None:
        return  # the rules in x below are those of sigmoid_cdf / sigmoid_inverse, which use SHAPES
    threshold, width = (2.0, 0.4) if sigmoid == "weibull" else (0.3, 0.25)
    x_low, x_mid, x_high = sigmoid_inverse(sigmoid, [WIDTH_ALPHA, 0.5, 1 - WIDTH_ALPHA], threshold, width)
    span = np.log(x_high) - np.log(x_low) if sigmoid == "weibull" else x_high - x_low
    if not (np.isclose(x_mid, threshold, rtol=1e-12) and np.isclose(span, width, rtol=1e-9)):
        fail(f"F(threshold) = 0.5 and F = {WIDTH_ALPHA:g} … {1 - WIDTH_ALPHA:g} over the width do not hold in x")
    levels = np.linspace(0.01, 0.99, 99)
    if not np.allclose(sigmoid_cdf(sigmoid, sigmoid_inverse(sigmoid, levels, threshold, width), threshold, width),
                       levels, atol=1e-10):
        fail("sigmoid_inverse does not invert sigmoid_cdf")


def sigmoid_cdf(sigmoid: str, x, threshold: float, width: float) -> np.ndarray:
    """F(x) of the named sigmoid; for the Weibull, x <= 0 gives 0."""
    standard = _check_sigmoid(sigmoid)
    x = np.asarray(x, dtype=float)
    if sigmoid == "weibull":
        positive = x > 0
        u = np.log(np.where(positive, x, 1.0))
        f = standard.cdf(standard.scale * (u - np.log(threshold)) / width + standard.offset)
        return np.where(positive, f, 0.0)
    return standard.cdf(standard.scale * (x - threshold) / width + standard.offset)


def sigmoid_inverse(sigmoid: str, f, threshold: float | np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """x at which the named sigmoid reaches F = f; f = 0 and 1 give -inf and inf (0 and inf for the Weibull)."""
    standard = _check_sigmoid(sigmoid)
    with np.errstate(divide="ignore"):
        z = standard.quantile(np.asarray(f, dtype=float))
    if sigmoid == "weibull":
        return np.exp(np.log(threshold) + (z - standard.offset) * width / standard.scale)
    return threshold + (z - standard.offset) * width / standard.scale


def _to_u(sigmoid: str, x: np.ndarray) -> np.ndarray:
    if sigmoid != "weibull":
        return x
    with np.errstate(divide="ignore"):
        return np.log(x)  # x = 0 becomes -inf, where F = 0


def _to_x_threshold(sigmoid: str, threshold_u):
    return np.exp(threshold_u) if sigmoid == "weibull" else threshold_u


PARAMETERS = ("threshold", "width", "guess", "lapse")

# --- the performance threshold: where ψ itself reaches a stated level ---

REACHED, FLOOR_ABOVE, CEILING_BELOW = 0, -1, 1  # performance_threshold statuses


def performance_threshold(sigmoid: str, level: float, threshold, width, guess, lapse) -> tuple[np.ndarray, np.ndarray]:
    """The x at which ψ = ``level`` (e.g. P(target) = 0.5), and whether ψ reaches it.

    Arrays broadcast. Status REACHED (0): the value is the x; FLOOR_ABOVE (−1): the
    guess rate is at or above the level, so ψ exceeds it everywhere (value −inf);
    CEILING_BELOW (+1): 1 − lapse is at or below the level, so ψ never reaches it
    (value +inf). NaN parameters give NaN (status REACHED).
    """
    _check_sigmoid(sigmoid)
    if not 0 < level < 1:
        raise ValueError(f"the performance level must lie strictly between 0 and 1, got {level}")
    threshold, width, guess, lapse = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                            for v in (threshold, width, guess, lapse)))
    known = np.isfinite(threshold) & np.isfinite(width) & np.isfinite(guess) & np.isfinite(lapse)
    status = np.where(known & (guess >= level), FLOOR_ABOVE,
                      np.where(known & (1 - lapse <= level), CEILING_BELOW, REACHED))
    reached = known & (status == REACHED)
    f = np.where(reached, (level - np.where(reached, guess, 0)) / np.where(reached, 1 - guess - lapse, 1), 0.5)
    x = sigmoid_inverse(sigmoid, f, np.where(reached, threshold, 1.0), np.where(reached, width, 1.0))
    x = np.where(status == FLOOR_ABOVE, -np.inf, np.where(status == CEILING_BELOW, np.inf, x))
    return np.where(known, x, np.nan), status
