"""The floor under every experiment's config and state: what they would otherwise each copy.

A config is a frozen dataclass of :func:`~wna_gui.core.params.param` fields; :class:`RunConfig` gives it its
settings record (``to_dict`` / ``from_dict``). A state is a dataclass with a ``config`` (and usually
``seconds`` of compute time); :class:`RunState` gives it

- the budget: ``budget_of(config)`` reads the config's parameter whose role is "budget", and
  ``with_budget(n)`` extends (or trims, never below what is done) the run to ``n``;
- progress: ``finished`` (all of ``progress_total`` done), :meth:`RunState.progress` (one
  :class:`Progress` value, the one a snapshot's ``progress`` gives back: core.driver.ProgressView) and
  :meth:`RunState.progress_fields` (what a :class:`RunSnapshot`'s progress fields are made from);
- records: :meth:`RunState.to_record` / :meth:`RunState.from_record` derived from the dataclass fields.
  Kinds whose record versions predate this keep their hand-written ones (so no session file changes).

:class:`BlockState` is a run whose unit of work is a noise block (``done``: a BlockSet of
``config.n_blocks`` blocks of ``config.batch_size`` samples, the last one cut to the budget).
Subclasses define ``progress_done`` and ``progress_total`` (in the experiment's progress unit) and,
unless the default record suits them, their record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .distributed import BlockSet
from .driver import Progress, ProgressView
from .params import Param, config_arrays, config_from_dict, config_to_dict, params

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class RunConfig:
    """Mixin of a config dataclass: its JSON settings (and noise arrays) in and out."""

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, arrays: dict | None = None):
        return config_from_dict(cls, data, arrays)


def class_options(model) -> dict:
    """The choices of a setting that names the model's classes: index → class name."""
    return dict(enumerate(model.class_names))


def budget_param(config_cls) -> Param | None:
    """The config's parameter whose role is "budget" (None: the run cannot be extended)."""
    found = [p for p in params(config_cls) if p.role == "budget"]
    if len(found) > 1:
        raise TypeError(f"{config_cls.__name__} declares {len(found)} budget parameters; a run has one budget")
    return found[0] if found else None


def _extendable(config) -> Param:
    p = budget_param(type(config))
    if p is None:
        raise ValueError(f"{type(config).__name__} has no budget setting: the run cannot be extended")
    return p


@dataclass(frozen=True)
class RunSnapshot(ProgressView):
    """The fields every snapshot starts with: its run's progress (made by :meth:`RunState.progress_fields`)."""

    samples_done: int  # in the experiment's progress unit
    samples_total: int
    samples_per_second: float
    finished: bool
    seconds: float  # compute time spent so far


class RunState:
    """Mixin of an experiment's state dataclass (fields ``config`` and, for timing, ``seconds``)."""

    config: Any
    seconds: float = 0.0

    # --- progress ---

    @property
    def progress_done(self) -> int:
        raise NotImplementedError

    @property
    def progress_total(self) -> int:
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        return self.progress_done >= self.progress_total

    def progress(self, samples_per_second: float = 0.0) -> Progress:
        return Progress(int(self.progress_done), int(self.progress_total), float(samples_per_second),
                        bool(self.finished), float(getattr(self, "seconds", 0.0)))

    def progress_fields(self, samples_per_second: float = 0.0) -> dict:
        """``samples_done``, ``samples_total``, ``samples_per_second``, ``finished`` and ``seconds`` for the
        snapshot being made."""
        return self.progress(samples_per_second).snapshot_fields()

    # --- budget ---

    @classmethod
    def budget_of(cls, config) -> int:
        """The run's size asked for by ``config``: its budget parameter's value."""
        return int(getattr(config, _extendable(config).name))

    @property
    def budget_done(self) -> int:
        """What is done, in the budget parameter's unit (the progress unit unless a kind says otherwise)."""
        return self.progress_done

    budget_unit = "samples"  # what the budget counts, for messages

    def with_budget(self, budget: int):
        """The same run with a larger (or smaller, not below what is done) budget; the state itself."""
        name = _extendable(self.config).name
        self.check_budget(budget)
        self.config = replace(self.config, **{name: int(budget)})
        return self

    def check_budget(self, budget: int) -> None:
        """Raise ValueError (one line) when the run cannot be resized to ``budget``."""
        done, batch = self.budget_done, getattr(self.config, "batch_size", 0)
        if budget < done:
            raise ValueError(f"budget {budget} is below the {done} {self.budget_unit} already done")
        if batch and done % batch and budget != done:
            raise ValueError("a run that ended on a partial batch cannot be extended")

    # --- records ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The default record: the config's settings and every field's value, arrays apart (session.py writes
        meta as JSON and arrays as datasets; a BlockSet is stored as its ranges). A kind whose fields hold more
        (accumulators, nested runs) writes its own."""
        meta: dict = {"config": self.config.to_dict()}
        arrays: dict[str, np.ndarray] = dict(config_arrays(self.config))
        for f in dataclasses.fields(cast("DataclassInstance", self)):  # every RunState is a dataclass
            if f.name == "config":
                continue
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, BlockSet):
                arrays[f.name] = value.to_array()
            elif isinstance(value, tuple):
                meta[f.name] = list(value)
            elif value is None or isinstance(value, (bool, int, float, str, list, dict)):
                meta[f.name] = value
            else:
                raise TypeError(f"{type(self).__name__}.{f.name} ({type(value).__name__}) has no default record: "
                                "the state writes its own to_record/from_record")
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict):
        """The state of a default record (:meth:`to_record`): tuple fields come back as tuples."""
        fields = dataclasses.fields(cast("type[DataclassInstance]", cls))  # every RunState is a dataclass
        config_cls = {f.name: f for f in fields}["config"].type
        if isinstance(config_cls, str):  # postponed annotations: the config class by its name
            config_cls = _resolve(cls, config_cls)
        values = {"config": config_cls.from_dict(meta["config"], arrays)}
        for f in fields:
            if f.name == "config":
                continue
            if f.name in arrays:
                array = np.asarray(arrays[f.name])
                values[f.name] = BlockSet.from_array(array) if _annotation(f) == "BlockSet" else array
            elif f.name in meta:
                value = meta[f.name]
                values[f.name] = tuple(value) if isinstance(value, list) and _is_tuple(f) else value
        return cls(**values)


class BlockState(RunState):
    """A run whose unit of work is a noise block; the state has ``done`` (BlockSet) and ``config`` with
    ``samples``, ``batch_size`` and ``n_blocks``."""

    done: BlockSet

    @property
    def blocks_done(self) -> int:
        return self.done.count_below(self.config.n_blocks)

    @blocks_done.setter
    def blocks_done(self, n: int) -> None:  # blocks 0 … n − 1 (a run done in order)
        self.done = BlockSet.prefix(n)

    @property
    def samples_done(self) -> int:
        cfg = self.config
        last_short = cfg.n_blocks * cfg.batch_size - cfg.samples  # the last block is cut to the budget
        return self.blocks_done * cfg.batch_size - (last_short if cfg.n_blocks - 1 in self.done else 0)

    @property
    def progress_done(self) -> int:
        return self.samples_done

    @property
    def progress_total(self) -> int:
        return self.config.samples

    @property
    def finished(self) -> bool:
        return self.blocks_done >= self.config.n_blocks

    def check_budget(self, samples: int) -> None:
        super().check_budget(samples)
        if self.done.end * self.config.batch_size > samples:
            raise ValueError(f"budget {samples} leaves out blocks already done (up to sample "
                             f"{self.done.end * self.config.batch_size:,})")


def _annotation(f: dataclasses.Field) -> str:
    return str(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", f.type))


def _is_tuple(f: dataclasses.Field) -> bool:
    return _annotation(f).startswith("tuple")


def _resolve(cls, name: str):
    import sys

    return getattr(sys.modules[cls.__module__], name)


__all__ = ["BlockState", "Progress", "RunConfig", "RunSnapshot", "RunState", "budget_param", "class_options"]
