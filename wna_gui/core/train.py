"""Training and evaluation of zoo models (the `wna train` command)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import bundled_mnist
from .images import ImageSet
from .models import ZOO, LoadedModel, build_zoo
from .runtime import Runtime


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "mnist_cnn"
    epochs: int = 15
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 1  # the authors' seed
    # Small random shifts make up for training on a few thousand digits.
    augment_shift: int = 0


def correct_answers(classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                    batch_size: int = 1000, device: torch.device | str | None = None) -> np.ndarray:
    """Per image, 1 where the largest of ``classify``'s outputs is its label: the one scoring rule behind every
    accuracy (training curves, stored held-out accuracies, the Robustness lab's curves and clean accuracy)."""
    out = np.empty(len(labels), dtype=np.uint8)
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            x = images[start:start + batch_size]
            predicted = classify(x if device is None else x.to(device)).argmax(1).cpu()
            out[start:start + len(predicted)] = (predicted == labels[start:start + batch_size].cpu()).numpy()
    return out


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> float:
    """Top-1 accuracy of a module that takes [0, 1] pixels."""
    model.eval()
    device = next(model.parameters()).device
    return float(correct_answers(model, images, labels, batch_size, device).mean()) if len(labels) else 0.0


def heldout_accuracy(model: LoadedModel, images: ImageSet, device: torch.device | str | None = None,
                     batch_size: int = 1000) -> float:
    """A model's accuracy on ``images`` as the Robustness lab measures clean accuracy: through a Runtime (the
    private copy, chunking and output checks every run uses) and :func:`correct_answers`."""
    runtime = Runtime(model, None if device is None else str(device))
    answers = correct_answers(runtime.logits, images.images, images.labels, batch_size, runtime.device)
    return float(answers.mean()) if len(answers) else 0.0


def chance_limit(n_classes: int, floor: float = 0.0) -> float:
    """The accuracy below which a model is "at chance": twice chance 1/K (for few classes, where 2/K is near
    or above 1, at most a quarter of the way from chance to perfect), or the user's ``floor`` when higher."""
    chance = 1.0 / max(int(n_classes), 1)
    return max(min(2.0 * chance, chance + 0.25 * (1.0 - chance)), float(floor))


def at_chance(accuracy: float, n_classes: int, floor: float = 0.0) -> bool:
    """The chance guard: a model whose accuracy is below :func:`chance_limit` gets no thresholds and no κ."""
    return not float(accuracy) >= chance_limit(n_classes, floor)


def _shift(batch: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Random integer translations with zero fill (digits stay on a black background)."""
    if max_shift <= 0:
        return batch
    n, _, h, w = batch.shape
    padded = nn.functional.pad(batch, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, batch.shape[1], h, w + 2 * max_shift)
    shifted = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, batch.shape[1], h, w)
    return torch.gather(shifted, 3, cols)


def train_zoo_model(
    config: TrainConfig,
    train_set: ImageSet,
    device: torch.device | str = "cpu",
    progress: Callable[[int, float], None] | None = None,
) -> LoadedModel:
    """Train a zoo architecture with Adam and cross-entropy on logits (no double softmax)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    net = build_zoo(config.architecture, len(train_set.class_names)).to(device)
    model = LoadedModel("zoo", config.architecture, net, ZOO[config.architecture].input_spec, train_set.class_names)
    model.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    for epoch in range(config.epochs):
        loss = train_epoch(model, optimiser, train_set, config, generator, device)
        if progress is not None:
            progress(epoch + 1, loss)
    net.eval()
    return model


def train_epoch(model: LoadedModel, optimiser: torch.optim.Optimizer, train_set: ImageSet, config: TrainConfig,
                generator: torch.Generator, device: torch.device | str = "cpu") -> float:
    """One epoch of cross-entropy on logits over ``train_set`` in the order ``generator`` draws; the mean loss.

    One epoch at a time lets a run that trains (a poisoned copy, say) stop and resume between epochs: keep
    the weights, the optimiser's and the generator's states.
    """
    net = model.net
    net.train()
    loss_fn = nn.CrossEntropyLoss()
    n = len(train_set)
    order = torch.randperm(n, generator=generator)
    total_loss = 0.0
    for start in range(0, n, config.batch_size):
        idx = order[start:start + config.batch_size]
        x = _shift(train_set.images[idx], config.augment_shift, generator).to(device)
        y = train_set.labels[idx].to(device)
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model.pixel_model(x), y)
        loss.backward()
        optimiser.step()
        total_loss += float(loss.detach()) * len(idx)
    net.eval()
    return total_loss / n


def train_binary_cnn(classes: tuple[int, int] = (1, 3), epochs: int = 5, seed: int = 1,
                     device: torch.device | str = "cpu") -> LoadedModel:
    """A two-class MNIST CNN of the paper's yes/no experiments (1 vs 3, 2 vs 8; Fig. 25).

    The zoo mnist_cnn with two outputs, trained on the bundled train split's
    digits of ``classes`` (~800 digits: seconds on a CPU). Its labels are 0 and
    1 in the order of ``classes``; its class names are the digits.
    """
    train_set = bundled_mnist("train").relabelled(tuple(classes))
    return train_zoo_model(TrainConfig(epochs=epochs, seed=seed), train_set, device)
