"""Noise votes: the share of white-noise images a network assigns to each class (the bias that classification
images start from). A complete wna-gui experiment in one module: a config of declared params, a state that
saves and resumes, a unit of work (one block of counter-based noise) and the ExperimentSpec the entry point names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wna_gui.core.driver import ProgressView
from wna_gui.core.experiment import Artefact, Experiment, ExperimentSpec
from wna_gui.core.noise import UniformNoise
from wna_gui.core.params import config_from_dict, config_to_dict, param

KIND = "noise_votes"


@dataclass(frozen=True)
class NoiseVotesConfig:
    samples: int = param(10_000, "Sample budget", "noise images shown", low=1, high=10**9, step=1000, role="budget")
    batch_size: int = param(1000, "Batch size", "noise images per block", low=1, high=100_000)
    seed: int = param(0, "Seed", "seed of the counter-based noise", low=0, high=2**31 - 1)
    snapshot_seconds: float = 0.2

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, arrays: dict | None = None) -> NoiseVotesConfig:
        return config_from_dict(cls, data, arrays)


@dataclass(frozen=True)
class NoiseVotesSnapshot(ProgressView):
    class_names: tuple[str, ...]
    votes: np.ndarray
    samples_done: int
    samples_total: int
    samples_per_second: float
    finished: bool


@dataclass
class NoiseVotesState:
    config: NoiseVotesConfig
    class_names: tuple[str, ...]
    votes: np.ndarray  # (classes,) int64: how many noise images the model called each class
    blocks_done: int = 0
    noise_device: str = ""
    seconds: float = 0.0

    @property
    def n_blocks(self) -> int:
        return -(-self.config.samples // self.config.batch_size)

    @property
    def progress_done(self) -> int:
        return min(self.blocks_done * self.config.batch_size, self.config.samples)

    @property
    def progress_total(self) -> int:
        return self.config.samples

    @property
    def finished(self) -> bool:
        return self.blocks_done >= self.n_blocks

    @staticmethod
    def budget_of(config: NoiseVotesConfig) -> int:
        return config.samples

    @staticmethod
    def new_run_text(config: NoiseVotesConfig) -> str:
        return f"Start shows {config.samples:,} noise images and counts the class each is called."

    def with_budget(self, samples: int) -> None:
        self.config = NoiseVotesConfig(samples=samples, batch_size=self.config.batch_size, seed=self.config.seed)

    def snapshot(self, rate: float = 0.0) -> NoiseVotesSnapshot:
        return NoiseVotesSnapshot(self.class_names, self.votes.copy(), self.progress_done, self.progress_total,
                                  rate, self.finished)

    def to_record(self) -> tuple[dict, dict]:
        meta = {"config": self.config.to_dict(), "class_names": list(self.class_names),
                "blocks_done": self.blocks_done, "noise_device": self.noise_device, "seconds": self.seconds}
        return meta, {"votes": self.votes}

    @classmethod
    def from_record(cls, meta: dict, arrays: dict) -> NoiseVotesState:
        names = tuple(str(name) for name in meta["class_names"])
        votes = np.asarray(arrays["votes"], dtype=np.int64)
        if votes.shape != (len(names),) or (votes < 0).any():
            raise ValueError(f"votes must be {len(names)} counts, got shape {votes.shape}")
        return cls(NoiseVotesConfig.from_dict(meta["config"]), names, votes, int(meta["blocks_done"]),
                   str(meta.get("noise_device", "")), float(meta.get("seconds", 0.0)))


class NoiseVotesExperiment(Experiment):
    @classmethod
    def new_state(cls, model, config: NoiseVotesConfig) -> NoiseVotesState:
        return NoiseVotesState(config, tuple(model.class_names), np.zeros(len(model.class_names), dtype=np.int64))

    def pending(self):
        return range(self.state.blocks_done, self.state.n_blocks)

    def run_unit(self, block: int) -> None:
        config = self.config
        size = min(config.batch_size, config.samples - block * config.batch_size)
        noise = UniformNoise().block(config.seed, block, size, self.model.input_spec.shape, self.device)
        called = self.runtime.logits(noise).argmax(1).cpu().numpy()
        self.state.votes += np.bincount(called, minlength=len(self.state.class_names))
        self.state.blocks_done = block + 1

    def snapshot(self) -> NoiseVotesSnapshot:
        return self.state.snapshot(self.rate)


def write_votes(snapshot: NoiseVotesSnapshot, path) -> Path:
    path = Path(path)
    total = max(int(snapshot.votes.sum()), 1)
    rows = ["class,votes,share"] + [f"{name},{int(v)},{v / total:.6f}"
                                    for name, v in zip(snapshot.class_names, snapshot.votes)]
    path.write_text("\n".join(rows) + "\n")
    return path


def summary(state: NoiseVotesState) -> dict:
    return {"samples_done": state.progress_done, "votes": dict(zip(state.class_names, state.votes.tolist()))}


def describe(entry: dict) -> list[str]:
    votes = entry["votes"]
    top = max(votes, key=votes.get) if votes else "none"
    return [f"  {entry['samples_done']:,} noise images; most called {top!r} ({votes.get(top, 0):,})"]


def report(snapshot: NoiseVotesSnapshot) -> list[str]:
    total = max(int(snapshot.votes.sum()), 1)
    return [", ".join(f"{name}: {v / total:.1%}" for name, v in zip(snapshot.class_names, snapshot.votes))]


EXPERIMENT = ExperimentSpec(
    kind=KIND,
    command="noise-votes",
    title="Noise votes",
    help="share of white-noise images the model calls each class (example plugin)",
    config=NoiseVotesConfig,
    state=NoiseVotesState,
    experiment=NoiseVotesExperiment,
    unit="samples",
    panel="wna_noise_votes.panel",
    artefacts=(Artefact("noise_votes", "Votes per class (.csv)", (".csv",), write_data=write_votes),),
    can_extend=True,
    summary=summary,
    describe=describe,
    report=report,
)
NoiseVotesExperiment.spec = EXPERIMENT
