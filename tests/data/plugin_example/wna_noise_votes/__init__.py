"""Noise votes: the share of white-noise images a network assigns to each class (the bias that classification
images start from). A complete wna-gui experiment in one module, built on the floor (wna_gui.core.state): a config
of declared params, a state that saves and resumes, a unit of work (one block of counter-based noise) and the
ExperimentSpec the entry point names. docs/architecture.md ("Adding an experiment") walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wna_gui.core.distributed import BlockSet
from wna_gui.core.experiment import Artefact, Experiment, ExperimentSpec
from wna_gui.core.noise import UniformNoise
from wna_gui.core.params import param
from wna_gui.core.records import require_counts
from wna_gui.core.state import BlockState, RunConfig, RunSnapshot

KIND = "noise_votes"


@dataclass(frozen=True)
class NoiseVotesConfig(RunConfig):
    samples: int = param(10_000, "Sample budget", "noise images shown", low=1, high=10**9, step=1000, role="budget")
    batch_size: int = param(1000, "Batch size", "noise images per block", low=1, high=100_000)
    seed: int = param(0, "Seed", "seed of the counter-based noise", low=0, high=2**31 - 1)
    snapshot_seconds: float = 0.2

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)


@dataclass(frozen=True)
class NoiseVotesSnapshot(RunSnapshot):
    class_names: tuple[str, ...]
    votes: np.ndarray


@dataclass
class NoiseVotesState(BlockState):
    config: NoiseVotesConfig
    class_names: tuple[str, ...]
    votes: np.ndarray  # (classes,) int64: how many noise images the model called each class
    done: BlockSet = field(default_factory=BlockSet)  # the noise blocks counted in votes
    noise_device: str = ""  # device type whose generator drew the noise
    seconds: float = 0.0

    @staticmethod
    def new_run_text(config: NoiseVotesConfig) -> str:
        return f"Start shows {config.samples:,} noise images and counts the class each is called."

    def snapshot(self, rate: float = 0.0) -> NoiseVotesSnapshot:
        return NoiseVotesSnapshot(**self.progress_fields(rate), class_names=self.class_names, votes=self.votes.copy())

    @classmethod
    def from_record(cls, meta: dict, arrays: dict) -> NoiseVotesState:
        state = super().from_record(meta, arrays)  # the default record: every field, votes and done as arrays
        require_counts(state.votes, "votes", (len(state.class_names),))
        return state


class NoiseVotesExperiment(Experiment):
    @classmethod
    def new_state(cls, model, config: NoiseVotesConfig) -> NoiseVotesState:
        return NoiseVotesState(config, tuple(model.class_names), np.zeros(len(model.class_names), dtype=np.int64))

    def pending(self):
        return self.state.done.pending(self.config.n_blocks)

    def run_unit(self, block: int) -> None:
        config = self.config
        size = min(config.batch_size, config.samples - block * config.batch_size)
        noise = UniformNoise().block(config.seed, block, size, self.model.input_spec.shape, self.device)
        called = self.runtime.logits(noise).argmax(1).cpu().numpy()
        self.state.votes += np.bincount(called, minlength=len(self.state.class_names))
        self.state.done.add(block)

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
