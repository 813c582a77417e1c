"""Psychometric-function fits by binomial maximum likelihood (Wichmann & Hill 2001).

Model, in psignifit 4's conventions::

    psi(x) = guess + (1 - guess - lapse) * F(x; threshold, width)

``threshold`` is where F = 0.5 and ``width`` is the distance between F = 0.05
and F = 0.95. Sigmoids (``SIGMOIDS``):

- ``"logistic"``: F = 1 / (1 + exp(-(x - threshold) / s)), s = width / (2 ln 19).
- ``"gauss"``: cumulative normal, sigma = width / (2 Phi^-1(0.95)).
- ``"gumbel"``: cumulative Gumbel (log-Weibull), F = 1 - exp(-exp(z)),
  z = c (x - threshold) + ln(ln 2), c = (ln(-ln 0.05) - ln(-ln 0.95)) / width.
- ``"weibull"``: the Gumbel applied to log x, as psignifit does, with one
  difference: ``threshold`` is reported in x units (F(threshold) = 0.5) while
  ``width`` stays in log-x units. Needs x >= 0; F(0) = 0.

Every sigmoid is a standard CDF G evaluated at z = a (u - t) / width + b, with
u = x (u = log x, t = log threshold for the Weibull) and the constants a, b
set so that G(b) = 0.5 and z(F=0.95) - z(F=0.05) = a.

What it offers (one module per concern: ``sigmoids``, ``bounds``, ``fit`` (one
curve and the result types), ``batch`` (the fitter), ``bootstrap``, ``conditions``;
every name is importable from the package). One optimiser does every fit: the
vectorised one of ``batch`` (Fisher scoring in a box), a single curve being a
batch of one.

- ``fit_psychometric``: one curve's maximum-likelihood estimate (from the best
  points of a coarse grid; agrees with psignifit 4's estimates).
- ``bootstrap_fit``: one curve with item-bootstrap intervals and a Monte-Carlo
  goodness of fit; the resamples are refitted all at once (``engine="batch"``)
  or one at a time (``"scalar"``, the same optimiser on batches of one).
- ``fit_batch``: the fitter itself, many data sets of several
  conditions at once, with ``shared`` parameters (one width, guess or lapse
  for every condition; thresholds per condition), as Palamedes' multiple-
  condition fits do.
- ``analyse_conditions``: several conditions measured on the same items,
  fitted together under a model, with a paired item bootstrap, a Monte-Carlo
  goodness of fit and likelihood-ratio tests (``LRTest``) of equal thresholds,
  of each condition against a reference, and of the sharing itself.
- ``lr_test_batch``: the test of equal thresholds on many data sets (simulations).
- ``performance_threshold``: the x where psi itself reaches a level, with
  whether psi reaches it at all (its floor may be above, its top below).
- ``check_shape``: the conventions every sigmoid keeps (the tests check each).
- ``bound_flags``: the estimates stuck at a limit of the search, with why it
  matters (``BoundFlag``).

Numpy and scipy only: no Qt, no torch.
"""

from .sigmoids import (
    CEILING_BELOW,
    FLOOR_ABOVE,
    PARAMETERS,
    REACHED,
    SHAPES,
    SIGMOIDS,
    SigmoidShape,
    WIDTH_ALPHA,
    check_shape,
    performance_threshold,
    sigmoid_cdf,
    sigmoid_inverse,
)
from .bounds import (
    BOUNDED_LAPSE_MAX,
    BoundFlag,
    FREE_RATE_MAX,
    GUESS_MARGIN,
    LEGACY_GUESS_MAX,
    NOTE,
    WARNING,
    _search_bounds,
    bound_flags,
    guess_max,
    search_limits,
)
from .fit import (
    BootstrapSamples,
    PsychometricFit,
    _interval,
    fit_psychometric,
)
from .batch import (
    SHAREABLE,
    _Batch,
    _Layout,
    _to_internal,
    fit_batch,
)
from .bootstrap import (
    bootstrap_fit,
    shift_interval,
    threshold_shift,
)
from .conditions import (
    ConditionAnalysis,
    LRTest,
    analyse_conditions,
    lr_test_batch,
)

__all__ = [
    "analyse_conditions",
    "bootstrap_fit",
    "BootstrapSamples",
    "bound_flags",
    "BOUNDED_LAPSE_MAX",
    "BoundFlag",
    "CEILING_BELOW",
    "check_shape",
    "ConditionAnalysis",
    "fit_batch",
    "fit_psychometric",
    "FLOOR_ABOVE",
    "FREE_RATE_MAX",
    "GUESS_MARGIN",
    "guess_max",
    "LEGACY_GUESS_MAX",
    "lr_test_batch",
    "LRTest",
    "NOTE",
    "PARAMETERS",
    "performance_threshold",
    "PsychometricFit",
    "REACHED",
    "search_limits",
    "SHAPES",
    "SHAREABLE",
    "shift_interval",
    "sigmoid_cdf",
    "sigmoid_inverse",
    "SIGMOIDS",
    "SigmoidShape",
    "threshold_shift",
    "WARNING",
    "WIDTH_ALPHA",
    "_Batch",
    "_interval",
    "_Layout",
    "_search_bounds",
    "_to_internal",
]
