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
from dataclasses import dataclass
from typing import Any, Callable, Iterable

ROLES = ("measure", "budget", "fit", "runtime")
# Widget / CLI value types. "choice" takes ``choices`` (or ``options(model)`` for the model's classes or
# layers); "noise" is a noise source, its own parameters declared on the source classes.
# "multi" is a set of choices (a tuple of values; the CLI takes them comma-separated).
KINDS = ("int", "float", "bool", "choice", "multi", "text", "noise")


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
            words = [word for word in str(text).replace(" ", ",").split(",") if word]
            if words == ["all"]:
                return ()
            single = dataclasses.replace(self, kind="choice")
            return tuple(single.parse_text(word, model) for word in words)
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
            raise ValueError(f"{self.label.lower()} must be {'an integer' if self.kind == 'int' else 'a number'}, "
                             f"got {text!r}") from None
        return self.stored_value(raw)

    def to_json(self, value):
        if self.kind == "noise":
            return value.to_dict()
        if isinstance(value, tuple):
            return list(value)
        return value

    def from_json(self, value, arrays: dict | None = None):
        if self.kind == "noise":
            from .noise import noise_from_dict

            return noise_from_dict(value, arrays)
        if isinstance(value, list):
            return tuple(value)
        return value


_MISSING = object()


def param(default=None, label: str = "", help: str = "", *, kind: str | None = None, key: str | None = None,
          cli: str | None = None, role: str = "measure", default_factory=None, **extra) -> dataclasses.Field:
    """A dataclass field carrying its declaration; ``kind`` is inferred from the default when obvious."""
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
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        info = dict(info)
        info.pop("default")
        kind = info.pop("kind") or _infer_kind(info, default)
        key = info.pop("key") or f.name
        cli = info.pop("cli") or "--" + key.replace("_", "-")
        out.append(Param(name=f.name, default=default, kind=kind, key=key, cli=cli, **info))
    _CACHE[config_cls] = tuple(out)
    return _CACHE[config_cls]


_CACHE: dict[type, tuple[Param, ...]] = {}


def config_to_dict(config) -> dict:
    """The config as JSON-friendly settings: {key: value}."""
    return {p.key: p.to_json(getattr(config, p.name)) for p in params(type(config))}


def config_arrays(config) -> dict:
    """Array parameters of the config's noise sources, as session paths → arrays."""
    return {f"config/{p.key}/{name}": array for p in params(type(config)) if p.kind == "noise"
            for name, array in getattr(config, p.name).arrays().items()}


def config_from_dict(config_cls, data: dict, arrays: dict | None = None):
    """A config from JSON settings (and its record's arrays); missing keys take their defaults, unknown keys
    are ignored."""
    arrays = arrays or {}
    values = {}
    for p in params(config_cls):
        if p.key not in data:
            continue
        prefix = f"config/{p.key}/"
        own = {path[len(prefix):]: a for path, a in arrays.items() if path.startswith(prefix)}
        values[p.name] = p.from_json(data[p.key], own) if p.kind == "noise" else p.from_json(data[p.key])
    return config_cls(**values)


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
