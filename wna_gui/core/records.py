"""Checks on a run record's values before a state is built from them, shared by every kind's ``from_record``.

A session file can be damaged or crafted: a count may be negative, a map NaN, ``n_classes`` 1e18. Each check
raises ValueError naming the field and what is wrong (``load_session`` adds the file and the run), before
anything is allocated from the value.
"""

from __future__ import annotations

import math

import numpy as np

MAX_COUNT = 10**15  # more samples, trials or steps than any run can reach
MAX_SIZE = 10**7  # classes, units, pixels, list lengths: far above any model wna-gui runs


def require_int(value, field: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """An integer in [low, high] (a float, even 2.0 or 2.5, or a bool is refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{field} must be an integer, not {_show(value)}")
    if not low <= value <= high:
        raise ValueError(f"{field} = {value} is outside [{low}, {high}]")
    return int(value)


def require_ints(values, field: str, low: int = 0, high: int = MAX_SIZE, length: int | None = None) -> tuple:
    """A list of integers, each in [low, high], of ``length`` entries when given."""
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{field} must be a list of integers, not {_show(values)}")
    if length is not None and len(values) != length:
        raise ValueError(f"{field} must have {length} entries, not {len(values)}")
    return tuple(require_int(v, f"{field}[{i}]", low, high) for i, v in enumerate(values))


def require_float(value, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number in [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} must be a number, not {_show(value)}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{field} = {value} is not a finite number in [{low:g}, {high:g}]")
    return float(value)


def require_choice(value, choices, field: str):
    if value not in choices:
        raise ValueError(f"{field} = {_show(value)} is not one of {', '.join(map(str, choices))}")
    return value


def require_strings(values, field: str, length: int | None = None) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{field} must be a list of strings")
    if length is not None and len(values) != length:
        raise ValueError(f"{field} has {len(values)} entries, expected {length}")
    return tuple(values)


def require_array(arrays: dict, path: str) -> np.ndarray:
    if path not in arrays:
        raise ValueError(f"array {path} is missing")
    return np.asarray(arrays[path])


def require_shape(array, shape: tuple, field: str) -> np.ndarray:
    """``array`` of ``shape`` (None: any length on that axis)."""
    array = np.asarray(array)
    if array.ndim != len(shape) or any(want is not None and have != want for have, want in zip(array.shape, shape)):
        wanted = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{field} has shape {array.shape}, expected {wanted}")
    return array


def require_counts(array, field: str, shape: tuple | None = None) -> np.ndarray:
    """Non-negative integers (of ``shape`` when given)."""
    array = np.asarray(array) if shape is None else require_shape(array, shape, field)
    if array.dtype.kind not in "biu":
        raise ValueError(f"{field} must hold integer counts, not {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"{field} holds a negative count ({array.min()})")
    return array


def require_finite(array, field: str, shape: tuple | None = None) -> np.ndarray:
    """Finite numbers (of ``shape`` when given)."""
    array = np.asarray(array) if shape is None else require_shape(array, shape, field)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{field} must hold numbers, not {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{field} holds NaN or infinite values")
    return array


def require_flags(array, field: str, shape: tuple | None = None) -> np.ndarray:
    """0/1 (or bool) values."""
    array = require_counts(array, field, shape)
    if array.size and array.max() > 1:
        raise ValueError(f"{field} must hold 0 or 1, not {array.max()}")
    return array


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def require_moments(name: str, state: dict, counts=(), finite=(), non_negative=()) -> None:
    """An accumulator's stored state: ``counts`` non-negative integers, ``finite`` finite numbers and
    ``non_negative`` finite numbers ≥ 0 (second moments, weights): anything else came from a damaged file and
    would become NaN maps or negative counts downstream."""
    for field in counts:
        require_counts(state[field], f"{name} accumulator field {field!r}")
    for field in (*finite, *non_negative):
        require_finite(state[field], f"{name} accumulator field {field!r}")
    for field in non_negative:
        value = np.asarray(state[field])
        if value.size and value.min() < 0:
            raise ValueError(f"{name} accumulator field {field!r} holds a negative value ({value.min():g})")


def require_shapes(name: str, state: dict, expected: dict[str, tuple]) -> None:
    """Each field of an accumulator's state has exactly its expected shape."""
    for field, shape in expected.items():
        value = np.asarray(state[field])
        if value.shape != tuple(shape):
            raise ValueError(f"{name} accumulator field {field!r} has shape {value.shape}, expected {tuple(shape)}")
