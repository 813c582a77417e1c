"""Image distortions and gradient attacks in pixel space ([0, 1] images, (N, C, H, W) tensors).

The definitions follow the robustness reports (../shared/SCIENCE.md, "Robustness lab"):

- Gaussian noise of *variance* v added to every pixel, then clipped to [0, 1].
  The noise is counter-based (core.noise): pixel p of image i of stream
  (seed, block) is a pure function of (seed, block, i·P + p), so it does not
  depend on the device or on how a test set is split into chunks.
- Gaussian blur of width σ with a kernel of 2⌈2σ⌉+1 taps (MATLAB's imgaussfilt
  default), replicate padding at the borders, clipped; σ = 0 is the identity.
- FGSM: x + η·sign(∇ₓ L(f(x), y)), clipped, with the model's own loss L.
- IFGSM / PGD: ``steps`` signed-gradient steps of ``step`` each, projected
  back into the L∞ ball of radius ε around x and into [0, 1] after every step
  (20 steps of 2/255 by default, as in the noisy-ResNet report). For ε beyond
  16/255 the default step grows to 2.5·ε/steps (Madry et al.'s rule): 20 steps
  of 2/255 reach only 0.157, so at the sleep paper's η up to 0.4 a fixed step
  would make IFGSM weaker than FGSM by construction.

A model is attacked with the loss it was trained with: ``model.extra["loss"]``
of a LoadedModel (``squared_error`` for the sleep paper's control MLP: ½‖y − a‖²
against one-hot y), else cross-entropy. For a stochastic model (noise inside
the forward pass, e.g. a noisy ResNet) the gradient is averaged over ``draws``
forward passes (expectation over transformation, EOT), so the attack aims at
the expected loss rather than at one noise draw.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .noise_base import counter_normal


class DistortionError(ValueError):
    """A distortion level or attack setting is out of range; the message names it."""


# --- Gaussian noise and blur ---


def gaussian_noise(images: torch.Tensor, variance: float, seed: int = 0, block: int = 0,
                   start: int = 0) -> torch.Tensor:
    """``images`` + N(0, variance) per pixel, clipped to [0, 1]; variance 0 returns a copy.

    ``(seed, block)`` names the noise stream and ``start`` is the index of
    ``images[0]`` in it: the noise of image ``start + i`` is the same whichever
    chunk it is drawn in.
    """
    variance = float(variance)
    if not variance >= 0 or not math.isfinite(variance):
        raise DistortionError(f"noise variance must be a finite number >= 0, got {variance}")
    if variance == 0:
        return images.clone()
    per_image = int(images[0].numel()) if len(images) else 0
    first, count = int(start) * per_image, len(images) * per_image
    if first + count >= 2**31:
        raise DistortionError(f"a noise stream holds at most 2^31 - 1 values; image {start + len(images):,} "
                              "is past its end (use another block)")
    index = torch.arange(first, first + count, dtype=torch.int64, device=images.device)
    z = counter_normal(seed, block, first + count, images.device, index=index).reshape(images.shape)
    return (images + math.sqrt(variance) * z.to(images.dtype)).clamp_(0.0, 1.0)


def blur_kernel_size(sigma: float) -> int:
    """Taps of the Gaussian kernel of width ``sigma``: 2⌈2σ⌉+1 (1 at σ = 0)."""
    return 2 * math.ceil(2 * float(sigma)) + 1


def blur_kernel(sigma: float, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The normalised 1-D Gaussian kernel of width ``sigma`` (2⌈2σ⌉+1 taps; [1] at σ = 0)."""
    sigma = float(sigma)
    if not sigma >= 0 or not math.isfinite(sigma):
        raise DistortionError(f"blur sigma must be a finite number >= 0, got {sigma}")
    if sigma == 0:
        return torch.ones(1, dtype=dtype, device=device)
    radius = blur_kernel_size(sigma) // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``images`` blurred by a Gaussian of width ``sigma`` pixels (separable, replicate padding), clipped.

    σ = 0 returns a copy. A kernel wider than the image still works: replicate
    padding repeats the border pixel as far as needed.
    """
    kernel = blur_kernel(sigma, images.dtype, images.device)
    if kernel.numel() == 1:
        return images.clone()
    n, c, h, w = images.shape
    radius = kernel.numel() // 2
    x = images.reshape(n * c, 1, h, w)
    # Pad by index (clamped coordinates) rather than F.pad(mode="replicate"), which refuses pads wider than
    # the image; the result is the same where both apply.
    rows = torch.arange(-radius, h + radius, device=images.device).clamp_(0, h - 1)
    cols = torch.arange(-radius, w + radius, device=images.device).clamp_(0, w - 1)
    x = x[:, :, rows][:, :, :, cols]
    x = nn.functional.conv2d(x, kernel.reshape(1, 1, -1, 1))  # along rows
    x = nn.functional.conv2d(x, kernel.reshape(1, 1, 1, -1))  # along columns
    return x.reshape(n, c, h, w).clamp_(0.0, 1.0)


# --- losses and input gradients ---


def _cross_entropy(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, labels, reduction="none")


def _squared_error(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    target = nn.functional.one_hot(labels, outputs.shape[1]).to(outputs.dtype)
    return 0.5 * ((target - outputs) ** 2).sum(1)


# Per-sample losses of (outputs, labels). Names are what a LoadedModel declares in extra["loss"].
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "squared_error": _squared_error,
}
LOSS_ALIASES = {"ce": "cross_entropy", "crossentropy": "cross_entropy", "mse": "squared_error",
                "squared": "squared_error", "sse": "squared_error"}


def loss_name(name: str | None) -> str:
    """The canonical name of a loss (None → cross_entropy)."""
    if name is None:
        return "cross_entropy"
    key = str(name).strip().lower().replace("-", "_")
    key = LOSS_ALIASES.get(key, key)
    if key not in LOSSES:
        raise DistortionError(f"unknown loss {name!r}; use {' or '.join(LOSSES)}")
    return key


def model_loss(model) -> str:
    """The loss a model was trained with (what its attacks use): its declared ``extra['loss']``, else
    cross-entropy."""
    extra = getattr(model, "extra", None) or {}
    return loss_name(extra.get("loss"))


def pixel_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pixel-space forward pass of a LoadedModel, a Runtime or a plain module taking [0, 1] pixels."""
    if hasattr(model, "pixel_model"):  # LoadedModel
        return model.pixel_model
    if hasattr(model, "network") and hasattr(model, "logits"):  # Runtime: its private device copy
        return model.network
    if callable(model):
        return model
    raise DistortionError(f"cannot attack a {type(model).__name__}: pass a model, a Runtime or a module")


def input_gradient(model, images: torch.Tensor, labels: torch.Tensor, loss: str | None = None,
                   draws: int = 1) -> torch.Tensor:
    """∇ₓ of each sample's loss, averaged over ``draws`` forward passes (EOT for stochastic models).

    ``loss`` None: the model's declared loss. Each sample's gradient is that of
    its own loss (the batch loss is their sum; a network in eval mode does not
    mix samples).
    """
    if draws < 1:
        raise DistortionError(f"an attack needs at least 1 noise draw, got {draws}")
    forward = pixel_forward(model)
    loss_fn = LOSSES[loss_name(loss) if loss is not None else model_loss(model)]
    x = images.detach().clone().requires_grad_(True)
    total = torch.zeros_like(x)
    with torch.enable_grad():
        for _ in range(int(draws)):
            outputs = forward(x)
            (gradient,) = torch.autograd.grad(loss_fn(outputs, labels).sum(), x, allow_unused=True)
            if gradient is not None:
                total += gradient
    return total / int(draws)


def _check_eps(eps: float, label: str = "attack strength eps") -> float:
    eps = float(eps)
    if not eps >= 0 or not math.isfinite(eps):
        raise DistortionError(f"{label} must be a finite number >= 0, got {eps}")
    return eps


def fgsm(model, images: torch.Tensor, labels: torch.Tensor, eps: float, loss: str | None = None,
         draws: int = 1) -> torch.Tensor:
    """Fast gradient sign method: clip(x + ε·sign(∇ₓ L), 0, 1). ε = 0 returns a copy (no gradient taken)."""
    eps = _check_eps(eps)
    if eps == 0:
        return images.detach().clone()
    gradient = input_gradient(model, images, labels, loss, draws)
    return (images.detach() + eps * gradient.sign()).clamp_(0.0, 1.0)


IFGSM_STEPS = 20
IFGSM_STEP = 2.0 / 255.0


def ifgsm_step(eps: float, steps: int = IFGSM_STEPS) -> float:
    """The default IFGSM step at ε: 2/255, or 2.5·ε/steps where that is larger (so the steps reach the ball's
    edge with room to move along it)."""
    return max(IFGSM_STEP, 2.5 * float(eps) / max(int(steps), 1))


def pgd(model, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = IFGSM_STEPS,
        step: float | None = None, loss: str | None = None, draws: int = 1, random_start: bool = False,
        seed: int = 0) -> torch.Tensor:
    """Iterative FGSM (IFGSM; PGD with ``random_start``): ``steps`` steps of ``step``·sign(∇ₓ L), each followed
    by projection onto the L∞ ball of radius ε around x and onto [0, 1]. ε = 0 returns a copy; ``step`` None
    is :func:`ifgsm_step` (2/255 up to ε = 16/255).

    ``random_start`` begins at a uniform point of the ε ball (Madry et al.),
    drawn counter-based from ``seed``.
    """
    eps = _check_eps(eps)
    step = _check_eps(ifgsm_step(eps, steps) if step is None else step, "attack step")
    if steps < 1:
        raise DistortionError(f"an iterative attack needs at least 1 step, got {steps}")
    x0 = images.detach()
    if eps == 0:
        return x0.clone()
    x = x0.clone()
    if random_start:
        from .noise_base import counter_uniform

        u = counter_uniform(seed, 0, x0.numel(), x0.device).reshape(x0.shape).to(x0.dtype)
        x = (x0 + eps * (2 * u - 1)).clamp_(0.0, 1.0)
    low, high = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)
    for _ in range(int(steps)):
        gradient = input_gradient(model, x, labels, loss, draws)
        x = torch.minimum(torch.maximum(x + step * gradient.sign(), low), high)
    return x


ifgsm = pgd  # the name the noisy-ResNet report uses
