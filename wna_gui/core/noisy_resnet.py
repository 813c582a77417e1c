"""Noisy pre-activation ResNets and ensembles with averaged logits (Wang et al. 2019, EnResNet).

A pre-activation ResNet (3 stages of ``blocks`` basic blocks, widths w, 2w,
4w; ResNet20 is blocks=3, w=16) with no input normalisation, where every
residual addition is followed by ``out += noise · std(out) · N(0, I)``, on at
test time too (noise = 0.1 in the report). The network is stochastic on
purpose: attacks on it should take the expectation over noise draws.

``std(out)`` is taken per image (over channels and pixels), not over the
batch as in the EnResNet code: a batch-wide std would make one image's noise
depend on which other images share its batch, so chunked forward passes
(CPU vs GPU) would see different networks. For a batch of one they agree.

The noise comes from torch's default generator, or from ``noise_generator``
when one is set (tests fix it to compare an ensemble with its members).
Global average pooling makes the same network run at 28×28 greyscale and
32×32 RGB (``in_channels``).
"""

from __future__ import annotations

import torch
from torch import nn

NOISE = 0.1


class NoisyPreActBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus the shortcut, then the noise."""

    def __init__(self, c_in: int, c_out: int, stride: int, noise: float = NOISE) -> None:
        super().__init__()
        self.noise = float(noise)
        self.noise_generator: torch.Generator | None = None
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, bias=False)
                         if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        # Pre-activation: a projection shortcut sees the normalised input, an identity one the raw input.
        shortcut = self.shortcut(pre) if self.shortcut is not None else x
        out = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        out = out + shortcut
        return self.add_noise(out)

    def add_noise(self, out: torch.Tensor) -> torch.Tensor:
        if self.noise <= 0:
            return out
        std = out.detach().flatten(1).std(dim=1).reshape(-1, *([1] * (out.ndim - 1)))
        if self.noise_generator is None:
            draw = torch.randn_like(out)
        else:
            draw = torch.randn(out.shape, generator=self.noise_generator, device=self.noise_generator.device,
                               dtype=out.dtype).to(out.device)
        return out + self.noise * std * draw


class NoisyPreActResNet(nn.Module):
    """Noisy pre-activation ResNet (6·blocks + 2 layers deep) for 28×28 or 32×32 images."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, blocks: int = 3, width: int = 16,
                 noise: float = NOISE) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        layers, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(NoisyPreActBlock(c_in, c_out, stride, noise))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.conv1(x))
        x = torch.relu(self.bn(x))
        return self.fc(x.mean(dim=(2, 3)))


class Ensemble(nn.Module):
    """N networks whose logits are averaged (trained jointly on the averaged logits)."""

    def __init__(self, members: list[nn.Module] | tuple[nn.Module, ...]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.members[0](x)
        for member in self.members[1:]:
            total = total + member(x)
        return total / len(self.members)


def set_noise_generator(net: nn.Module, generator: torch.Generator | None) -> None:
    """Draw every noisy block's noise of ``net`` (a network or an ensemble) from ``generator``."""
    for module in net.modules():
        if isinstance(module, NoisyPreActBlock):
            module.noise_generator = generator


def set_noise(net: nn.Module, noise: float) -> None:
    """Change the noise coefficient of every noisy network in ``net`` (0 turns the noise off)."""
    for module in net.modules():
        if isinstance(module, NoisyPreActBlock):
            module.noise = float(noise)


def noisy_resnet(num_classes: int = 10, in_channels: int = 1, blocks: int = 3, width: int = 16,
                 noise: float = NOISE) -> NoisyPreActResNet:
    return NoisyPreActResNet(num_classes, in_channels, blocks, width, noise)


def noisy_ensemble(num_classes: int = 10, in_channels: int = 1, members: int = 5, blocks: int = 3,
                   width: int = 16, noise: float = NOISE) -> Ensemble:
    return Ensemble([NoisyPreActResNet(num_classes, in_channels, blocks, width, noise) for _ in range(members)])


# Zoo names → (in_channels, members (0: a single net), blocks per stage, width). "8" is the small
# ResNet8 (one block per stage) that trains in seconds on a CPU; "20" the report's ResNet20.
ZOO_VARIANTS: dict[str, tuple[int, int, int, int]] = {
    "noisy_resnet20": (1, 0, 3, 16),
    "noisy_resnet8": (1, 0, 1, 16),
    "noisy_en5resnet20": (1, 5, 3, 16),
    "noisy_en5resnet8": (1, 5, 1, 16),
    "noisy_resnet20_cifar": (3, 0, 3, 16),
    "noisy_en5resnet20_cifar": (3, 5, 3, 16),
}


def build_variant(name: str, num_classes: int) -> nn.Module:
    in_channels, members, blocks, width = ZOO_VARIANTS[name]
    if members:
        return noisy_ensemble(num_classes, in_channels, members, blocks, width)
    return noisy_resnet(num_classes, in_channels, blocks, width)
