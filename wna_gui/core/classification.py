"""Classification images (bias maps) from white noise: the streaming experiment.

noise block (seed, b) → model → predicted class → per-class float64
accumulators. Even and odd blocks go to separate accumulators: their merge is
the full result and their comparison is the split-half reliability, at no
extra cost. The experiment is a generator of immutable snapshots; the CLI and
the GUI worker drive the same code.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch

from .accumulators import ClassAccumulator, ClassMaps, class_maps, split_half_reliability
from .control import Cancelled, EngineError, RunControl, friendly_errors, pick_device
from .models import LoadedModel
from .noise import NoiseSpec, log_spaced_checkpoints, noise_block

KIND = "classification_images"
WEIGHTINGS = ("none", "confidence")
MAP_VIEWS = ("mean", "centered", "zmap")
# Reliability is recorded at these many log-spaced points per decade of samples.
RELIABILITY_POINTS_PER_DECADE = 8
# On CPU a block is classified in chunks of at most this many samples: a whole block's
# activations (46 MB after the MNIST CNN's conv1 for 1000 samples) overflow the caches and
# are mapped fresh by the allocator on every call. Chunks run ~1.5x faster on one thread;
# smaller ones lose again to per-operator threading overhead (docs/performance.md).
# GPUs take the whole block at once.
CPU_FORWARD_CHUNK = 512


@dataclass(frozen=True)
class ClassificationImageConfig:
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    samples: int = 100_000
    batch_size: int = 1000  # also the noise block: resuming needs the same value
    seed: int = 0
    weighting: str = "none"  # "confidence": weight by the softmax maximum (paper footnote 5)
    snapshot_seconds: float = 0.2

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"sample budget must be positive, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; use {' or '.join(WEIGHTINGS)}")

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.batch_size)

    def to_dict(self) -> dict:
        return {"noise": self.noise.to_dict(), "samples": self.samples, "batch_size": self.batch_size,
                "seed": self.seed, "weighting": self.weighting, "snapshot_seconds": self.snapshot_seconds}

    @classmethod
    def from_dict(cls, data: dict) -> "ClassificationImageConfig":
        fields = {k: data[k] for k in ("samples", "batch_size", "seed", "weighting", "snapshot_seconds") if k in data}
        return cls(noise=NoiseSpec.from_dict(data.get("noise", {})), **fields)


def reliability_grid(up_to: int) -> np.ndarray:
    """Log-spaced sample counts from 1e2 at which split-half reliability is recorded."""
    decades = max(np.log10(max(up_to, 100)) - 2, 0)
    points = np.logspace(2, 2 + decades, int(np.ceil(decades * RELIABILITY_POINTS_PER_DECADE)) + 1)
    return np.unique(np.round(points).astype(np.int64))


@dataclass
class ClassificationImageState:
    """Everything needed to continue a run exactly: accumulators, progress, history."""

    config: ClassificationImageConfig
    n_classes: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    blocks_done: int = 0
    noise_device: str = ""  # device type whose generator drew the noise ("cpu" / "cuda")
    even: ClassAccumulator | None = None
    odd: ClassAccumulator | None = None
    reliability_samples: list[int] = field(default_factory=list)
    reliability_per_class: list[np.ndarray] = field(default_factory=list)
    # samples → (classes seen, their mean maps as float32 (R, D)) when the run first reached 1e3, 1e4, …
    checkpoint_maps: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0  # compute time spent so far

    def __post_init__(self) -> None:
        n_features = int(np.prod(self.image_shape))
        if self.even is None:
            self.even = ClassAccumulator(self.n_classes, n_features)
        if self.odd is None:
            self.odd = ClassAccumulator(self.n_classes, n_features)

    @property
    def samples_done(self) -> int:
        return min(self.blocks_done * self.config.batch_size, self.config.samples)

    @property
    def finished(self) -> bool:
        return self.blocks_done >= self.config.n_blocks

    def total(self) -> ClassAccumulator:
        return self.even.merged(self.odd)

    def with_budget(self, samples: int) -> "ClassificationImageState":
        """The same run with a larger (or smaller, not below what is done) sample budget."""
        if samples < self.samples_done:
            raise ValueError(f"budget {samples} is below the {self.samples_done} samples already done")
        if self.samples_done % self.config.batch_size and samples != self.samples_done:
            raise ValueError("a run that ended on a partial batch cannot be extended")
        self.config = replace(self.config, samples=samples)
        return self

    # --- records for the session file (session.py writes them to HDF5) ---

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "config": self.config.to_dict(),
            "n_classes": self.n_classes,
            "image_shape": list(self.image_shape),
            "class_names": list(self.class_names),
            "blocks_done": self.blocks_done,
            "samples_done": self.samples_done,
            "noise_device": self.noise_device,
            "seconds": self.seconds,
        }
        arrays: dict[str, np.ndarray] = {}
        for half, acc in (("even", self.even), ("odd", self.odd)):
            for name, value in acc.state().items():
                arrays[f"accumulators/{half}/{name}"] = value
        maps = class_maps(self.total())
        arrays["results/counts"] = maps.counts
        arrays["results/classes"] = maps.classes
        for name in MAP_VIEWS:
            arrays[f"results/{name}"] = getattr(maps, name).reshape(-1, *self.image_shape)
        arrays["results/grand_mean"] = maps.grand_mean.reshape(self.image_shape)
        arrays["convergence/samples"] = np.asarray(self.reliability_samples, dtype=np.int64)
        arrays["convergence/reliability"] = (
            np.vstack(self.reliability_per_class) if self.reliability_per_class
            else np.zeros((0, self.n_classes)))
        for samples, (classes, mean_maps) in self.checkpoint_maps.items():
            arrays[f"checkpoints/{samples}/classes"] = classes
            arrays[f"checkpoints/{samples}/mean"] = mean_maps.reshape(-1, *self.image_shape)
        return meta, arrays

    @classmethod
    def from_record(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "ClassificationImageState":
        state = cls(
            config=ClassificationImageConfig.from_dict(meta["config"]),
            n_classes=int(meta["n_classes"]),
            image_shape=tuple(int(s) for s in meta["image_shape"]),
            class_names=tuple(meta["class_names"]),
            blocks_done=int(meta["blocks_done"]),
            noise_device=meta.get("noise_device", ""),
            seconds=float(meta.get("seconds", 0.0)),
        )
        for half in ("even", "odd"):
            acc_state = {name: arrays[f"accumulators/{half}/{name}"] for name in ClassAccumulator.FIELDS}
            setattr(state, half, ClassAccumulator.from_state(acc_state))
        state.reliability_samples = [int(s) for s in arrays.get("convergence/samples", [])]
        state.reliability_per_class = list(arrays.get("convergence/reliability", np.zeros((0, state.n_classes))))
        for key, classes in arrays.items():
            if key.startswith("checkpoints/") and key.endswith("/classes"):
                samples = key.split("/")[1]
                mean_maps = arrays[f"checkpoints/{samples}/mean"]
                state.checkpoint_maps[int(samples)] = (classes, mean_maps.reshape(len(classes), -1))
        return state


@dataclass(frozen=True)
class ClassificationSnapshot:
    """An immutable view of a run for plots and progress bars (all arrays are copies)."""

    samples_done: int
    samples_total: int
    blocks_done: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    maps: ClassMaps
    map_predictions: np.ndarray  # class the model assigns to each class's own mean map (−1 if empty)
    reliability_samples: np.ndarray
    reliability_per_class: np.ndarray  # (T, K)
    samples_per_second: float
    seconds: float
    finished: bool

    @property
    def counts(self) -> np.ndarray:
        return self.maps.counts

    @property
    def reliability_mean(self) -> np.ndarray:
        """Mean split-half r over classes with data, per recorded point."""
        if self.reliability_per_class.size == 0:
            return np.zeros(0)
        r = self.reliability_per_class
        valid = np.isfinite(r)
        return np.where(valid.any(1), np.nansum(r, 1) / np.maximum(valid.sum(1), 1), np.nan)

    @property
    def eta_seconds(self) -> float | None:
        if self.samples_per_second <= 0:
            return None
        return (self.samples_total - self.samples_done) / self.samples_per_second

    def image(self, view: str, k: int) -> np.ndarray:
        """One class's map as (C, H, W); view is mean, centered or zmap."""
        return self.maps.of(view, [k])[0].reshape(self.image_shape)

    def save_arrays(self, path, view: str) -> Path:
        """One view's maps as .npz: ``maps`` (R, C, H, W) of the classes seen, their indices
        ``classes``, and ``counts`` / ``class_names`` of all K classes."""
        path = Path(path)
        np.savez_compressed(path, maps=getattr(self.maps, view).reshape(-1, *self.image_shape),
                            classes=self.maps.classes, counts=self.counts, class_names=np.asarray(self.class_names),
                            samples=self.samples_done)
        return path



class ClassificationImageExperiment:
    """Runs (or continues) a classification-image experiment on a model."""

    kind = KIND

    def __init__(
        self,
        model: LoadedModel,
        config: ClassificationImageConfig | None = None,
        state: ClassificationImageState | None = None,
        device: str | torch.device | None = None,
        control: RunControl | None = None,
    ) -> None:
        self.model = model
        self.device = pick_device(device if not isinstance(device, torch.device) else str(device))
        if state is None:
            state = ClassificationImageState(config or ClassificationImageConfig(), model.n_classes,
                                             tuple(model.input_spec.shape), tuple(model.class_names))
        elif state.n_classes != model.n_classes or tuple(state.image_shape) != tuple(model.input_spec.shape):
            raise EngineError(
                f"session was made with {state.n_classes} classes of {tuple(state.image_shape)} images; "
                f"this model has {model.n_classes} classes of {tuple(model.input_spec.shape)}")
        self.state = state
        self.control = control or RunControl()
        self._rate = 0.0
        self._grid = reliability_grid(state.config.samples)
        self._checkpoints = log_spaced_checkpoints(1000, max(state.config.samples, 1000))
        self._network = self._prepare_network()
        self._forward_chunk = CPU_FORWARD_CHUNK if self.device.type == "cpu" else state.config.batch_size

    @property
    def config(self) -> ClassificationImageConfig:
        return self.state.config

    def _prepare_network(self) -> torch.nn.Module:
        # A private copy: moving it to the GPU or to channels_last must not change
        # the model the user loaded (other panels and callers share it).
        net = copy.deepcopy(self.model.pixel_model).to(self.device).eval()
        self._channels_last = len(self.model.input_spec.shape) == 3 and any(
            isinstance(m, torch.nn.Conv2d) for m in net.modules())
        if self._channels_last:
            # NHWC convolutions run ~2x faster on CPU (oneDNN) and use tensor cores on GPU.
            net = net.to(memory_format=torch.channels_last)
        return net

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outputs = []
        for chunk in x.split(self._forward_chunk):
            logits = self._network(chunk)
            if logits.shape != (chunk.shape[0], self.state.n_classes):
                raise EngineError(f"model returned shape {tuple(logits.shape)} for {chunk.shape[0]} samples; "
                                  f"expected (batch, {self.state.n_classes})")
            outputs.append(logits)
        return torch.cat(outputs)

    def _classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self._logits(x)
        if not torch.isfinite(logits).all():
            raise EngineError(f"model produced NaN or infinite outputs at sample {self.state.samples_done}")
        labels = logits.argmax(1)
        weights = None
        if self.config.weighting == "confidence":
            weights = torch.softmax(logits.float(), 1).amax(1)
        return labels, weights

    def run_block(self, block: int) -> None:
        """Draw block ``block``, classify it and merge it into its half."""
        cfg = self.config
        size = min(cfg.batch_size, cfg.samples - block * cfg.batch_size)
        x = noise_block(cfg.noise, cfg.seed, block, cfg.batch_size, tuple(self.state.image_shape), self.device)
        x = x[:size]
        with torch.inference_mode(), friendly_errors(cfg.batch_size):
            labels, weights = self._classify(x)
            half = self.state.even if block % 2 == 0 else self.state.odd
            half.update(x, labels, weights)

    def run(self) -> Iterator[ClassificationSnapshot]:
        """Process the remaining blocks, yielding a snapshot every ``snapshot_seconds`` and at the end.

        Pause and cancel take effect between blocks (``Cancelled`` propagates
        after the state is consistent, so the run can be saved and resumed).
        """
        state = self.state
        # Checked here, not when built: a session from a GPU machine can still be shown anywhere.
        if state.noise_device and state.blocks_done and not state.finished and state.noise_device != self.device.type:
            raise EngineError(f"this session's noise was drawn on {state.noise_device}; continue it on "
                              f"{state.noise_device} to get the same noise (device is {self.device.type})")
        if not state.blocks_done:  # nothing drawn yet: the noise will come from this device
            state.noise_device = self.device.type
        started = last_yield = time.perf_counter()
        start_samples = state.samples_done
        paused_for = 0.0
        while not state.finished:
            pause_began = time.perf_counter()
            self.control.checkpoint()
            paused_for += time.perf_counter() - pause_began
            block_start = time.perf_counter()
            self.run_block(state.blocks_done)
            state.blocks_done += 1
            state.seconds += time.perf_counter() - block_start
            self._record_progress()
            now = time.perf_counter()
            active = now - started - paused_for
            self._rate = (state.samples_done - start_samples) / active if active > 0 else 0.0
            if now - last_yield >= self.config.snapshot_seconds and not state.finished:
                last_yield = now
                yield self.snapshot()
        yield self.snapshot()

    def run_to_end(self) -> ClassificationSnapshot:
        snapshot = None
        for snapshot in self.run():
            pass
        return snapshot  # run() always ends with a final snapshot

    def _record_progress(self) -> None:
        state = self.state
        n = state.samples_done
        recorded = state.reliability_samples[-1] if state.reliability_samples else 0
        pending = self._grid[(self._grid > recorded) & (self._grid <= n)]
        if pending.size or state.finished:
            if n != recorded:
                state.reliability_samples.append(n)
                state.reliability_per_class.append(split_half_reliability(state.even, state.odd))
        for checkpoint in self._checkpoints:
            # Keyed by the first sample count that reached the checkpoint.
            if checkpoint <= n and not any(key >= checkpoint for key in state.checkpoint_maps):
                maps = class_maps(state.total())
                state.checkpoint_maps[n] = (maps.classes, maps.mean.astype(np.float32))
                break

    def snapshot(self) -> ClassificationSnapshot:
        state = self.state
        maps = class_maps(state.total())
        return ClassificationSnapshot(
            samples_done=state.samples_done,
            samples_total=state.config.samples,
            blocks_done=state.blocks_done,
            image_shape=tuple(state.image_shape),
            class_names=tuple(state.class_names),
            maps=maps,
            map_predictions=self.classify_maps(maps),
            reliability_samples=np.asarray(state.reliability_samples, dtype=np.int64),
            reliability_per_class=(np.vstack(state.reliability_per_class) if state.reliability_per_class
                                   else np.zeros((0, state.n_classes))),
            samples_per_second=self._rate,
            seconds=state.seconds,
            finished=state.finished,
        )

    def classify_maps(self, maps: ClassMaps) -> np.ndarray:
        """The class the model assigns to each class's own mean map (Fig. 2A titles); −1 for empty classes."""
        out = np.full(maps.counts.shape[0], -1, dtype=np.int64)
        finite = np.isfinite(maps.mean).all(1)
        if not finite.any():
            return out
        x = torch.as_tensor(maps.mean[finite], dtype=torch.float32).reshape(-1, *self.state.image_shape)
        with torch.inference_mode():
            out[maps.classes[finite]] = self._logits(x.to(self.device)).argmax(1).cpu().numpy()
        return out


def run_classification_images(model: LoadedModel, config: ClassificationImageConfig,
                              device: str | None = None) -> ClassificationSnapshot:
    """Convenience for notebooks: run to the end and return the final snapshot."""
    return ClassificationImageExperiment(model, config, device=device).run_to_end()


__all__ = [
    "Cancelled", "ClassificationImageConfig", "ClassificationImageExperiment", "ClassificationImageState",
    "ClassificationSnapshot", "MAP_VIEWS", "run_classification_images",
]
