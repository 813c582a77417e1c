"""Declared settings: each config field is declared once, with everything the CLI, panels and sessions need.

An experiment's config is a frozen dataclass whose fields are made with
:func:`param`: the default lives in the dataclass, the label, help, range,
choices, CLI flag and role in the field's metadata. From that one
declaration the `wna run` flags, the panel's settings form, the JSON settings
and session records, and the continue/refit/restart rules are derived.

Roles say what changing a field does to a run that has started:
``measure`` (a different measurement: restart), ``budget`` (more of the same:
extend), ``fit`` (same data, new analysis: refit) and ``runtime`` (how, not
what: no effect on results).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from .noise_base import NoiseSource

ROLES = ("measure", "budget", "fit", "runtime")
# Widget / CLI value types. "choice" takes ``choices`` (or ``options(model)`` for the model's classes or
# layers); "noise" is a noise source, its own parameters declared on the source classes.
# "multi" is a set of choices (a tuple of values; the CLI takes them comma-separated).
KINDS = ("int", "float", "bool", "choice", "multi", "text", "noise")

# Ranges every declaration gets unless it names its own: an int must fit a spin box (32 bits), a float a double
# spin box's default span; a list (k values, γ grids, levels, a set of choices) holds at most MAX_ENTRIES entries.
INT_RANGE = (0, 2**31 - 1)
SPIN_BOX_INTS = (-(2**31), 2**31 - 1)
FLOAT_RANGE = (-1e9, 1e9)
MAX_ENTRIES = 10_000
MAX_TEXT = 1_000_000


@dataclass(frozen=True)
class Param:
    """One declared setting (read from a config dataclass by :func:`params`)."""

    name: str  # the dataclass attribute
    default: Any
    label: str
    help: str
    kind: str
    key: str  # its name in JSON settings and session records
    cli: str  # the `wna run` flag, e.g. "--samples"
    role: str = "measure"
    group: str = "Settings"
    choices: dict | None = None  # value → label
    tokens: dict | None = None  # CLI word → value, when values are not words themselves
    options: Callable | None = None  # model → {value: label}: choices that depend on the model
    low: float | None = None
    high: float | None = None
    step: float | None = None
    decimals: int = 3
    optional: bool = False  # None is allowed (it means "the default", e.g. a layer's λ)
    encode: Callable | None = None  # stored value → widget/CLI value (e.g. a γ grid → its point count)
    decode: Callable | None = None  # widget/CLI value → stored value
    shown_if: str | None = None  # name of a bool param of the same group: shown only when it is set
    cli_help: str | None = None  # the CLI's wording when it differs from the panel's

    def widget_value(self, value):
        return self.encode(value) if self.encode is not None and value is not None else value

    def stored_value(self, value):
        return self.decode(value) if self.decode is not None and value is not None else value

    def choices_for(self, model=None) -> dict:
        if self.options is not None:
            return dict(self.options(model)) if model is not None else {}
        return dict(self.choices or {})

    def parse_text(self, text: str, model=None):
        """A CLI word → the stored value; ValueError (one line) names the setting and what it accepts."""
        if self.optional and text is not None and str(text).lower() in ("none", "default", ""):
            return None
        if self.kind == "multi":
            words = self.words(text)
            if words == ["all"]:
                return ()
            single = dataclasses.replace(self, kind="choice")
            values = tuple(single.parse_text(word, model) for word in words)
            self.check(values, model)
            return values
        if self.kind == "choice":
            choices = self.choices_for(model)
            tokens = dict(self.tokens or {})
            for value, label in choices.items():
                tokens.setdefault(str(value).lower() if value is not None else "none", value)
                tokens.setdefault(str(label).lower(), value)
            value = tokens.get(str(text).lower(), _MISSING)
            if value is _MISSING:
                words = list(self.tokens) if self.tokens else ["none" if v is None else str(v) for v in choices]
                shown = ", ".join(words[:20]) + (" …" if len(words) > 20 else "")
                raise ValueError(f"unknown {self.label.lower()} {text!r}; choose one of {shown}")
            return value
        try:
            raw = {"int": int, "float": float, "text": str}[self.kind](text)
        except (TypeError, ValueError):
            raise ValueError(f"{self.label.lower()} must be {self._accepted()}, got {_shown(text)}") from None
        if self.decode is not None and self.kind in ("int", "float") and raw < self.low:
            self.stored_value(raw)  # cheap below the range: the param's own parser says what is wrong, if it can
        self._check_plain(raw, model)  # before decoding: a huge γ point count is refused before its grid is built
        value = self.stored_value(raw)
        if self.decode is not None:
            self.check(value, model)
        return value

    def words(self, text: str) -> list[str]:
        """The comma-separated words of a "multi" value: at least one (``all`` for every choice), at most
        MAX_ENTRIES."""
        words = [word for word in str(text).replace(" ", ",").split(",") if word]
        if not words:
            raise ValueError(f"{self.label.lower()}: give at least one value (all: every one), got {_shown(text)}")
        if len(words) > MAX_ENTRIES:
            raise ValueError(f"{self.label.lower()}: at most {MAX_ENTRIES:,} values, got {len(words):,}")
        return words

    def check(self, value, model=None) -> None:
        """ValueError (one line, naming the setting and what it accepts) unless ``value`` is a stored value of
        this param: the one range check behind the CLI, the forms and session loading."""
        if value is None:
            if self.optional:
                return
            raise ValueError(f"{self.label.lower()} must be {self._accepted()}, got none")
        if self.kind == "noise":
            if type(value) not in NOISE_SOURCES.values():
                raise ValueError(f"{self.label.lower()} must be a noise source ({', '.join(NOISE_SOURCES)}), "
                                 f"got {_shown(value)}")
            check_config(value)
            return
        if self.kind == "multi":
            entries = self._entries(value, allow_empty=True)  # empty: every choice
            if len(set(map(_hashable, entries))) < len(entries):
                raise ValueError(f"{self.label.lower()}: each value at most once, got {_shown(value)}")
            single = dataclasses.replace(self, kind="choice")
            for entry in entries:
                single.check(entry, model)
            return
        if self.decode is not None:  # a list edited as one number or text (a γ grid as its point count, k values)
            entries = self._entries(value, allow_empty=False)
            if not all(_is_number(v) and math.isfinite(v) for v in entries):
                raise ValueError(f"{self.label.lower()} must be finite numbers, got {_shown(value)}")
            self._check_plain(self.widget_value(tuple(entries)), model)
            self.stored_value(self.widget_value(tuple(entries)))  # the param's own parser accepts it
            return
        self._check_plain(value, model)

    def _check_plain(self, value, model=None) -> None:
        """The check of a widget/CLI value: a number in range, a known choice, a bool, a bounded text."""
        if self.kind in ("int", "float"):
            if self.kind == "int":
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            else:
                ok = _is_number(value) and math.isfinite(value)
            assert self.low is not None and self.high is not None  # params() gives every number its range
            if not ok or not self.low <= value <= self.high:
                name = self.label.lower()
                positive = f"positive ({name} > 0): " if ok and self.kind == "float" and value <= 0 < self.low else ""
                raise ValueError(f"{name} must be {positive}{self._accepted()}, got {_shown(value)}")
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.label.lower()} must be on or off, got {_shown(value)}")
        elif self.kind == "choice":
            choices = self.choices_for(model)
            known = self.options is None or model is not None
            if known and not any(_same(value, choice) for choice in choices):
                words = ["none" if v is None else str(v) for v in choices]
                shown = ", ".join(words[:20]) + (" …" if len(words) > 20 else "")
                raise ValueError(f"unknown {self.label.lower()} {_shown(value)}; choose one of {shown}")
        elif self.kind == "text":
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise ValueError(f"{self.label.lower()} must be a text of at most {MAX_TEXT:,} characters, "
                                 f"got {_shown(value)}")

    def _entries(self, value, allow_empty: bool) -> list:
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"{self.label.lower()} must be a list, got {_shown(value)}")
        if len(value) > MAX_ENTRIES or (not value and not allow_empty):
            raise ValueError(f"{self.label.lower()} must have 1 to {MAX_ENTRIES:,} entries, got {len(value):,}")
        return list(value)

    def _accepted(self) -> str:
        """What the param accepts, for messages: "an integer from 1 to 1,000"."""
        if self.kind == "int":
            return f"an integer from {self.low:,} to {self.high:,}"
        if self.kind == "float":
            return f"a finite number from {self.low:g} to {self.high:g}"
        return {"bool": "on or off", "text": "a text"}.get(self.kind, "one of its choices")

    def to_json(self, value):
        if self.kind == "noise":
            return value.to_dict()
        if isinstance(value, tuple):
            return list(value)
        return value

    def from_json(self, value, arrays: dict | None = None):
        if self.kind == "noise":
            return noise_from_dict(value, arrays)
        if isinstance(value, list):
            return tuple(value)
        return value


_MISSING = object()


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _same(value, choice) -> bool:
    """A stored value equals a choice (1 and 1.0 alike; a bool is never a number)."""
    return value == choice and isinstance(value, bool) == isinstance(choice, bool)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _shown(value) -> str:
    """A value for a one-line message: huge numbers in scientific notation, long texts cut."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10**15:
        return f"{float(value):.3g}"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def check_config(config, model=None) -> None:
    """ValueError (one line, naming the setting by its key) unless every declared param of ``config`` holds a
    value its declaration accepts; with ``model``, choices that depend on it (classes, layers) are checked too.
    (config_from_dict checks a session's values before building the config; this adds the model's choices.)"""
    for p in params(type(config)):
        _checked(p, p.check, getattr(config, p.name), model)


def _checked(p: Param, check: Callable, *args):
    """``check(*args)`` with its ValueError naming the setting by its key (as sessions and settings store it)."""
    try:
        return check(*args)
    except ValueError as exc:
        raise ValueError(f"setting {p.key}: {exc}") from None


def param(default=None, label: str = "", help: str = "", *, kind: str | None = None, key: str | None = None,
          cli: str | None = None, role: str = "measure", default_factory=None, **extra) -> Any:
    """A dataclass field carrying its declaration; ``kind`` is inferred from the default when obvious.

    Typed Any, as ``dataclasses.field`` is: the field stands for its value in the config's annotations."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    info = {"default": default, "label": label, "help": help, "kind": kind, "key": key, "cli": cli,
            "role": role, **extra}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata={"param": info})
    return dataclasses.field(default=default, metadata={"param": info})


def _infer_kind(info: dict, default) -> str:
    if info.get("choices") is not None or info.get("options") is not None:
        return "choice"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "text"


def params(config_cls) -> tuple[Param, ...]:
    """The declared settings of a config dataclass, in declaration order."""
    cached = _CACHE.get(config_cls)
    if cached is not None:
        return cached
    out = []
    for f in dataclasses.fields(config_cls):
        info = f.metadata.get("param")
        if info is None:
            continue
        # the stubs cannot narrow default_factory away from MISSING
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        info = dict(info)
        info.pop("default")
        kind = info.pop("kind") or _infer_kind(info, default)
        key = info.pop("key") or f.name
        cli = info.pop("cli") or "--" + key.replace("_", "-")
        if kind in ("int", "float"):
            low, high = INT_RANGE if kind == "int" else FLOAT_RANGE
            info["low"] = low if info.get("low") is None else info["low"]
            info["high"] = high if info.get("high") is None else info["high"]
            if kind == "int" and not SPIN_BOX_INTS[0] <= info["low"] <= info["high"] <= SPIN_BOX_INTS[1]:
                raise TypeError(f"{config_cls.__name__}.{f.name}: an int param's range must lie within a spin "
                                f"box's {SPIN_BOX_INTS}, got [{info['low']}, {info['high']}]")
        out.append(Param(name=f.name, default=default, kind=kind, key=key, cli=cli, **info))
    _CACHE[config_cls] = tuple(out)
    return _CACHE[config_cls]


_CACHE: dict[type, tuple[Param, ...]] = {}

# Noise sources by kind, for params of kind "noise". Sources are declared with param(), so core.noise builds on
# this module and fills the dict when it is imported (every config with a noise param imports it for its default).
NOISE_SOURCES: dict[str, type[NoiseSource]] = {}


def noise_from_dict(data: dict, arrays: dict | None = None):
    """A noise source from its ``to_dict()`` (keys of other sources' parameters are ignored)."""
    kind = data.get("kind", "uniform")
    if kind not in NOISE_SOURCES:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_SOURCES)}")
    return NOISE_SOURCES[kind].from_dict(data, arrays)


def config_to_dict(config) -> dict:
    """The config as JSON-friendly settings: {key: value}."""
    return {p.key: p.to_json(getattr(config, p.name)) for p in params(type(config))}


def config_arrays(config) -> dict:
    """Array parameters of the config's noise sources, as session paths → arrays."""
    return {f"config/{p.key}/{name}": array for p in params(type(config)) if p.kind == "noise"
            for name, array in getattr(config, p.name).arrays().items()}


def config_from_dict(config_cls, data: dict, arrays: dict | None = None):
    """A config from JSON settings (and its record's arrays); missing keys take their defaults, unknown keys
    are ignored. Each value is checked against its declaration first (ValueError naming the setting), so a
    damaged or hand-edited session is refused before anything is built from it."""
    arrays = arrays or {}
    values = {}
    for p in params(config_cls):
        if p.key not in data:
            continue
        prefix = f"config/{p.key}/"
        own = {path[len(prefix):]: a for path, a in arrays.items() if path.startswith(prefix)}
        if p.kind == "noise":
            _checked(p, _check_noise_record, p, data[p.key])
            values[p.name] = p.from_json(data[p.key], own)
        else:
            values[p.name] = _checked(p, lambda value, p=p: p.check(value) or value, p.from_json(data[p.key]))
    return config_cls(**values)


def _check_noise_record(p: Param, record) -> None:
    """A stored noise source: a known kind whose stored parameters its declarations accept."""
    kind = record.get("kind", "uniform") if isinstance(record, dict) else None
    if kind not in NOISE_SOURCES:
        raise ValueError(f"{p.label.lower()} must be one of {', '.join(NOISE_SOURCES)}, got {_shown(record)}")
    for q in params(NOISE_SOURCES[kind]):
        if q.key in record:
            try:
                q.check(q.from_json(record[q.key]))
            except ValueError as exc:
                raise ValueError(f"{q.key}: {exc}") from None


def inactive(config) -> tuple[str, ...]:
    """Names of params that mean nothing with the config's other values (its ``inactive_params()``)."""
    method = getattr(config, "inactive_params", None)
    return tuple(method()) if method is not None else ()


def changed_params(old, new) -> list[Param]:
    """The params whose values differ between two configs of one class (ignoring ones inactive in both)."""
    ignored = set(inactive(old)) & set(inactive(new))
    return [p for p in params(type(old)) if p.name not in ignored and getattr(old, p.name) != getattr(new, p.name)]


def changed_roles(old, new) -> set[str]:
    """The roles of the params whose values differ between two configs of one class."""
    return {p.role for p in changed_params(old, new)}


def flatten_noise_params(sources: Iterable[type]) -> list[Param]:
    """The union of the noise sources' params, by CLI flag (a flag shared by sources is declared alike)."""
    seen: dict[str, Param] = {}
    for source in sources:
        for p in params(source):
            seen.setdefault(p.cli, p)
    return list(seen.values())
