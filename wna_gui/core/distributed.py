"""Scale-out: a run's blocks split over processes (torchrun, or any engine) with exact merges.

A block-based experiment (classification images, receptive fields) does its
sampling in *blocks*: block b is drawn from (seed, b) alone by the
counter-based noise, so any process on any device draws the same block. Its
state records which blocks are done (:class:`BlockSet`, not just a count),
so a run can be split across workers, cut off, and resumed with any number
of them. The pair every engine needs:

- :func:`block_statistics` ``(experiment, blocks)``: run those blocks into a
  blank state and return its sufficient statistics (a dict of float64 numpy
  arrays and the blocks' ranges; picklable, small for 10 classes);
- :func:`merge_statistics` ``(state, statistics)``: merge them into a run's
  state (Chan et al.'s update, exact for any split: the maps equal a
  single-process run's to rounding, ~1e-16 relative; merged one block at a
  time in block order, they are the same operations). A block merged twice
  is refused.

:func:`drive_distributed` is the torchrun engine: every process (rank) takes
the pending blocks ``pending[rank::world]``, and at each snapshot the ranks'
statistics are gathered on rank 0 in rank order and merged into the run,
which rank 0 alone shows, saves and autosaves (docs/scale-out.md). Runs
with small statistics merge after every round, one block per rank in block
order: the merged run is the single-process run's arithmetic.

A state offers the protocol as ``done`` (a BlockSet), ``blank()``,
``statistics()``, ``merge(statistics)`` and ``statistics_bytes()`` (an upper bound); its experiment as
``run_unit(block)`` (or ``run_unit(block_unit(block))``) for pending blocks and ``after_unit()`` (bookkeeping
on the merged state).
"""

from __future__ import annotations

import itertools
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .control import Cancelled, EngineError, friendly_errors
from .driver import drive

# How long a rank waits for the others at a merge before giving up (one slow block on a big model included).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
# Runs whose statistics take at most this many bytes per rank are merged after every round of blocks, so
# rank 0 merges the blocks one at a time in block order: the same float64 operations, in the same order, as a
# single process. Larger ones (a 1000-class model's kernels) merge at each snapshot: exact up to rounding.
BLOCK_ORDER_BYTES = 32 * 2**20


class BlockSet:
    """A set of block indices, kept as sorted disjoint half-open ranges [start, stop).

    A run's done blocks are a prefix plus, after a cut-off distributed run, a few scattered ones: the
    ranges stay few, whatever the number of blocks.
    """

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._ranges: list[tuple[int, int]] = []
        for start, stop in sorted((int(a), int(b)) for a, b in ranges):
            if start < 0 or stop < start:
                raise ValueError(f"block range [{start}, {stop}) is not a range of block indices")
            if start == stop:
                continue
            if self._ranges and start < self._ranges[-1][1]:
                raise ValueError(f"block ranges overlap at block {start}")
            if self._ranges and start == self._ranges[-1][1]:
                self._ranges[-1] = (self._ranges[-1][0], stop)
            else:
                self._ranges.append((start, stop))

    @classmethod
    def prefix(cls, n: int) -> "BlockSet":
        """Blocks 0 … n − 1 (what a count of blocks done meant before done-sets)."""
        return cls([(0, int(n))] if n > 0 else [])

    @classmethod
    def of(cls, blocks: Iterable[int]) -> "BlockSet":
        out = cls()
        for block in blocks:
            out.add(block)
        return out

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._ranges)

    def __len__(self) -> int:
        return sum(stop - start for start, stop in self._ranges)

    def __contains__(self, block: int) -> bool:
        return any(start <= block < stop for start, stop in self._ranges)

    def __eq__(self, other) -> bool:
        return isinstance(other, BlockSet) and self._ranges == other._ranges

    def __iter__(self) -> Iterator[int]:
        for start, stop in self._ranges:
            yield from range(start, stop)

    def __repr__(self) -> str:
        return "BlockSet(" + ", ".join(f"{a}" if b == a + 1 else f"{a}–{b - 1}" for a, b in self._ranges) + ")"

    def copy(self) -> "BlockSet":
        return BlockSet(self._ranges)

    def add(self, block: int) -> None:
        """Mark ``block`` done (ValueError if it already is: its statistics would count twice)."""
        self.update(BlockSet([(int(block), int(block) + 1)]))

    def update(self, other: "BlockSet") -> None:
        """Add every block of ``other``; ValueError naming a block both hold."""
        for start, stop in other._ranges:
            for a, b in self._ranges:
                if start < b and a < stop:
                    raise ValueError(f"block {max(start, a)} is already done: its statistics would count twice")
        self._ranges = BlockSet([*self._ranges, *other._ranges])._ranges

    def count_below(self, n: int) -> int:
        """How many of the blocks are below ``n``."""
        return sum(max(0, min(stop, n) - start) for start, stop in self._ranges if start < n)

    @property
    def end(self) -> int:
        """One past the highest block (0 when empty)."""
        return self._ranges[-1][1] if self._ranges else 0

    def pending(self, n_blocks: int) -> Iterator[int]:
        """The blocks below ``n_blocks`` not in the set, ascending."""
        previous = 0
        for start, stop in self._ranges:
            if start >= n_blocks:
                break
            yield from range(previous, start)
            previous = stop
        yield from range(previous, n_blocks)

    def to_array(self) -> np.ndarray:
        """(R, 2) int64 [start, stop) rows: how a session stores a done-set."""
        return np.asarray(self._ranges, dtype=np.int64).reshape(-1, 2)

    @classmethod
    def from_array(cls, array) -> "BlockSet":
        array = np.asarray(array, dtype=np.int64)
        if array.size and (array.ndim != 2 or array.shape[1] != 2):
            raise ValueError(f"done blocks have shape {array.shape}, expected (ranges, 2)")
        return cls(map(tuple, array.reshape(-1, 2).tolist()))


def split_blocks(pending: Iterable[int], workers: int, worker: int) -> Iterator[int]:
    """Worker ``worker``'s share of ``pending``: every ``workers``-th block from its own index (deterministic, so
    each block goes to exactly one worker and the workers advance through the run together)."""
    return itertools.islice(iter(pending), worker, None, workers)


# --- the block API for any engine ---

def pending_blocks(state) -> Iterator[int]:
    """The blocks of ``state``'s run still to do, ascending."""
    return state.done.pending(state.config.n_blocks)


def block_statistics(experiment, blocks: Iterable[int]) -> dict:
    """Run ``blocks`` of ``experiment``'s run into a blank state and return its sufficient statistics.

    ``experiment.state`` is left as it was: merge the statistics into it (or into any copy of the run) with
    :func:`merge_statistics`. Blocks already done in the run are refused.
    """
    state = experiment.state
    blank = state.blank()
    experiment.state = blank
    try:
        for block in blocks:
            if int(block) in state.done:
                raise ValueError(f"block {block} is already done in this run")
            with friendly_errors(getattr(state.config, "batch_size", 0)):
                _run_block(experiment, int(block))
    finally:
        experiment.state = state
    return blank.statistics()


def _run_block(experiment, block: int) -> None:
    """Run noise block ``block`` (an experiment with several kinds of unit names a block's by ``block_unit``)."""
    block_unit = getattr(experiment, "block_unit", None)
    experiment.run_unit(block_unit(block) if block_unit is not None else block)


def merge_statistics(state, statistics: dict) -> None:
    """Merge what :func:`block_statistics` returned into ``state`` (exact float64 merges; blocks counted once)."""
    state.merge(statistics)


# --- torchrun ---

@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # gloo | nccl

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None) -> str:
        """The device this rank runs on: cuda:LOCAL_RANK for auto/cuda (with GPUs), else what was asked."""
        import torch

        if requested in (None, "", "auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested or "auto"


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when torchrun (or any launcher setting its variables) started us."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise EngineError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)") from None
    if not 0 <= rank < world:
        raise EngineError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return rank, world, local


def init_distributed(device: str | None = None) -> DistributedContext | None:
    """Join the torchrun job this process belongs to (None when not under torchrun, or a world of one).

    gloo on CPU, nccl when the ranks run on CUDA GPUs (device cuda:LOCAL_RANK).
    """
    env = torchrun_env()
    if env is None or env[1] == 1:
        return None
    import torch
    import torch.distributed as dist

    rank, world, local = env
    use_cuda = device in (None, "", "auto", "cuda") and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return DistributedContext(rank, world, local, backend)


def finish_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def supports_blocks(experiment) -> bool:
    """Whether ``experiment``'s run can be split into blocks (its state keeps a done-set)."""
    state = experiment.state
    return all(hasattr(state, name) for name in ("done", "blank", "statistics", "merge"))


@contextmanager
def _with_every_worker():
    """A collective that fails because a worker is gone (killed, crashed, hung past the timeout) stops this one
    with a one-line EngineError instead of the backend's report."""
    try:
        yield
    except RuntimeError as exc:  # gloo's and NCCL's errors (DistBackendError is one)
        if isinstance(exc, EngineError):
            raise
        raise EngineError("lost another torchrun worker mid-run (it stopped or stopped answering); the session "
                          "holds the run as last saved: continue it with --resume") from None


def _flags(context: DistributedContext, values: list[int]) -> list[int]:
    """The element-wise maximum of ``values`` over every rank (one small all-reduce)."""
    import torch
    import torch.distributed as dist

    device = f"cuda:{torch.cuda.current_device()}" if context.backend == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.int64, device=device)
    with _with_every_worker():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [int(v) for v in tensor.cpu()]


def _gather(context: DistributedContext, statistics: dict) -> list[dict] | None:
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * context.world_size if context.is_main else None
    with _with_every_worker():
        dist.gather_object(statistics, gathered, dst=0)
    return gathered


def drive_distributed(work, context: DistributedContext, snapshot_seconds: float = 0.2,
                      autosave: Callable[[], object] | None = None, autosave_seconds: float = 0.0) -> Iterator:
    """Run ``work``'s pending blocks over every rank of ``context``; rank 0 yields snapshots of the merged run.

    Every rank runs the same number of rounds (one block each, or none for the last, uneven round) and
    takes part in each merge, so the collectives always match. A cancel on any rank (Ctrl-C, SIGTERM
    from torchrun) stops every rank after the next merge, with the merged state consistent; ``Cancelled``
    then propagates on every rank.
    """
    master = work.state
    work.prepare()
    n_blocks = master.config.n_blocks
    n_pending = n_blocks - master.done.count_below(n_blocks)
    rounds = -(-n_pending // context.world_size)
    every_round = master.statistics_bytes() <= BLOCK_ORDER_BYTES
    mine = split_blocks(master.done.pending(n_blocks), context.world_size, context.rank)
    started = last_shown = last_save = time.perf_counter()
    start_done, base_seconds = master.progress_done, master.seconds
    paused_for = 0.0
    work.state = master.blank()
    stopped = False
    try:
        for round_ in range(rounds):
            block = next(mine, None)
            pause_began = time.perf_counter()
            try:
                work.control.checkpoint()
            except Cancelled:
                stopped = True
            paused_for += time.perf_counter() - pause_began
            if block is not None and not stopped:
                with friendly_errors(getattr(master.config, "batch_size", 0)):
                    _run_block(work, block)
            now = time.perf_counter()
            show_here = context.is_main and now - last_shown >= snapshot_seconds
            merge, show, stop = _flags(context, [int(every_round or show_here or round_ == rounds - 1), int(show_here),
                                                 int(stopped)])
            if not (merge or stop):
                continue
            gathered = _gather(context, work.state.statistics())
            blank = work.state = master.blank()
            if not context.is_main:
                if stop:
                    raise Cancelled()
                continue
            work.state = master
            assert gathered is not None  # rank 0 gathers every rank's statistics
            for statistics in gathered:  # rank order: block order when each rank ran one block since the last
                master.merge(statistics)
                work.after_unit()  # bookkeeping (convergence records) as a single process keeps it
            now = time.perf_counter()
            active = now - started - paused_for
            master.seconds = base_seconds + active  # the job's wall time
            work.rate = (master.progress_done - start_done) / active if active > 0 else 0.0  # the world's rate
            if stop:
                raise Cancelled()
            if autosave is not None and autosave_seconds and now - last_save >= autosave_seconds:
                autosave()
                last_save = time.perf_counter()
            if show and not master.finished:
                last_shown = now
                yield work.snapshot()
            work.state = blank
    finally:
        work.state = master
    if context.is_main and not master.finished:
        # What is left is not blocks (STA's real-digit maps and shuffle test): rank 0 does it, as one process would.
        yield from drive(work, snapshot_seconds, autosave, autosave_seconds)
    elif context.is_main:
        yield work.snapshot()
