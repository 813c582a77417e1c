"""The one place a run meets torch: device choice, the private model copy, chunked and checked forward passes,
and the device the noise is drawn on.

Every experiment runs its model through a Runtime, so chunking, memory
layout, output checks and out-of-memory messages are the same everywhere.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .control import EngineError, friendly_errors, pick_device
from .models import LoadedModel

# On CPU a batch is classified in chunks of at most this many samples: a whole block's
# activations (46 MB after the MNIST CNN's conv1 for 1000 samples) overflow the caches and
# are mapped fresh by the allocator on every call. Chunks run ~1.5x faster on one thread;
# smaller ones lose again to per-operator threading overhead (docs/performance.md).
# GPUs take the whole batch at once.
CPU_FORWARD_CHUNK = 512


class Runtime:
    """A private, device-resident copy of ``model``'s pixel-space network and how to run it.

    The copy means moving to the GPU, switching to channels_last or
    microstimulating biases never changes the model the user loaded (other
    panels and callers share it).
    """

    def __init__(self, model: LoadedModel, device: str | torch.device | None = None) -> None:
        self.model = model
        self.device = pick_device(device if not isinstance(device, torch.device) else str(device))
        self.n_classes = model.n_classes
        network = copy.deepcopy(model.pixel_model).eval()
        if any(t.device != self.device for t in (*network.parameters(), *network.buffers())):
            # Only when needed: moving a deep-copied TorchScript network touches its (non-leaf) .grad.
            network = network.to(self.device)
        for parameter in network.parameters():
            if parameter.is_leaf:  # a deep-copied TorchScript network's parameters are not leaves
                parameter.requires_grad_(False)
        self.channels_last = len(model.input_spec.shape) == 3 and any(
            isinstance(m, nn.Conv2d) for m in network.modules())
        if self.channels_last:
            # NHWC convolutions run ~2x faster on CPU (oneDNN) and use tensor cores on GPU.
            network = network.to(memory_format=torch.channels_last)
        self.network = network
        self.chunk = CPU_FORWARD_CHUNK if self.device.type == "cpu" else None

    def layer(self, name: str) -> nn.Module:
        """A layer of the private copy (what stimulation may change)."""
        # named_modules, not get_submodule: TorchScript modules do not support the latter.
        return dict(self.network.net.named_modules())[name]

    def logits(self, x: torch.Tensor, batch_size: int | None = None, context: str = "") -> torch.Tensor:
        """The model's outputs for ``x`` (pixel space, on the device), checked for shape and finiteness.

        ``batch_size`` caps one forward pass (the CPU chunk caps it further);
        ``context`` ends the NaN message, e.g. "at sample 12,000".
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step = min(s for s in (batch_size, self.chunk, len(x)) if s)
        outputs = []
        with friendly_errors(batch_size or len(x)):
            for chunk in x.split(max(step, 1)):
                logits = self.network(chunk)
                if logits.ndim != 2 or logits.shape != (chunk.shape[0], self.n_classes):
                    raise EngineError(f"model returned shape {tuple(logits.shape)} for {chunk.shape[0]} samples; "
                                      f"expected (batch, {self.n_classes})")
                outputs.append(logits)
        logits = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        if not torch.isfinite(logits).all():
            raise EngineError("model produced NaN or infinite outputs" + (f" {context}" if context else ""))
        return logits

    def input_gradients(self, x: torch.Tensor, classes=None, batch_size: int | None = None,
                        context: str = "") -> torch.Tensor:
        """∂z_k/∂x of each sample for each class k in ``classes`` (every class when None), from autograd:
        (B, len(classes), *x.shape[1:]) float32 on the device, checked for finiteness.

        One forward pass with gradients and one backward pass per class (parameters need no gradients).
        Call it outside ``torch.inference_mode()``: ``x`` must not be an inference tensor.
        """
        classes = list(range(self.n_classes)) if classes is None else [int(k) for k in classes]
        step = min(s for s in (batch_size, self.chunk, len(x)) if s)
        outputs = []
        with friendly_errors(batch_size or len(x)), torch.enable_grad():
            for chunk in x.detach().split(max(step, 1)):
                if self.channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                chunk = chunk.clone().requires_grad_(True)
                logits = self.network(chunk)
                if logits.ndim != 2 or logits.shape != (chunk.shape[0], self.n_classes):
                    raise EngineError(f"model returned shape {tuple(logits.shape)} for {chunk.shape[0]} samples; "
                                      f"expected (batch, {self.n_classes})")
                if not logits.requires_grad:
                    raise EngineError("the model's outputs carry no gradient: the gradient estimator needs a "
                                      "differentiable model")
                rows = []
                for i, k in enumerate(classes):
                    (gradient,) = torch.autograd.grad(logits[:, k].sum(), chunk, retain_graph=i < len(classes) - 1,
                                                      allow_unused=True)
                    rows.append(torch.zeros_like(chunk) if gradient is None else gradient)
                outputs.append(torch.stack(rows, 1).contiguous())
        gradients = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        if not torch.isfinite(gradients).all():
            raise EngineError("model produced NaN or infinite gradients" + (f" {context}" if context else ""))
        return gradients

    def check_noise_device(self, state) -> None:
        """Refuse to continue a run whose noise came from another device's generator; claim a fresh one.

        Checked when a run starts, not when it is shown: a session from a GPU
        machine can still be viewed and exported anywhere.
        """
        started, finished = state.progress_done > 0, state.finished
        noise = getattr(state.config, "noise", None)
        if noise is not None and noise.device_independent:  # counter-based noise: the same on every device
            if not started:
                state.noise_device = self.device.type
            return
        if state.noise_device and started and not finished and state.noise_device != self.device.type:
            raise EngineError(f"this session's noise was drawn on {state.noise_device}; continue it on "
                              f"{state.noise_device} to get the same noise (device is {self.device.type})")
        if not started:  # nothing drawn yet: the noise will come from this device
            state.noise_device = self.device.type
