"""The sleep phase of Tadros et al. (ICLR 2020) as the authors' public MATLAB code runs it, and its network.

The control network is fully connected 784-1200-1200-10 with no biases and
ReLU on hidden *and* output units, dropout 0.2 on the hidden units in the
authors' non-inverted form (a mask while training, activations × 0.8 at test).

Sleep turns it into a spiking network for ``steps`` time steps
(../shared/SCIENCE.md, "Robustness lab"; the Southampton reproduction changed
thresholds, rates and the sign of STDP and its sleep network fell to chance;
none of that is followed here):

- data-based normalisation: per layer l, scale_l = max(largest positive
  weight, largest activation of layer l+1 over the training data);
  applied_l = scale_l / applied_{l−1}; α_l = α_scale / applied_l. The weights
  are not rescaled; α only scales the input currents;
- time step t shows training image t (in MNIST's order, which mixes the
  classes; a set stored by class is shown in a seeded shuffled order; cycling
  when the set is shorter than the sleep): pixel p spikes when
  u·(1/(dt·max_rate))/2 ≤ p;
- every layer: v ← decay·v + α_l·W_l·s_{l−1}; spike where v ≥ β_l, reset
  those to 0; STDP on the weights into each unit that spiked: pre spiked →
  W += inc·σ₂(W), pre silent → W −= dec·σ₂(W), σ₂(w) = 2·(1 − 1/(1 + e^(−w/0.001))).
  σ₂ is ≈ 2 for negative weights and ≈ 0 above ~0.005: sleep mostly moves the
  negative weights, as intended. All three matrices are plastic and nothing
  is renormalised afterwards.

:class:`Sleeper` runs it in resumable chunks of time steps (vectorised torch,
only the rows of units that spiked are touched) and records spike rasters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .noise_base import counter_uniform

HIDDEN = 1200
DROPOUT = 0.2
INIT_RANGE = 0.01
SIGMA_WIDTH = 0.001  # σ₂'s width: weights above a few of these barely change


class ControlMLP(nn.Module):
    """The sleep paper's control: 784-1200-1200-K, no biases, ReLU outputs, non-inverted dropout 0.2.

    ``output="linear"`` gives the distillation network (logits for a softmax
    at temperature T), otherwise the same. Dropout masks come from
    ``dropout_generator`` when set (reproducible training), else torch's.
    """

    OUTPUTS = ("relu", "linear")

    def __init__(self, num_classes: int = 10, output: str = "relu", hidden: int = HIDDEN,
                 dropout: float = DROPOUT) -> None:
        super().__init__()
        if output not in self.OUTPUTS:
            raise ValueError(f"output must be one of {self.OUTPUTS}, got {output!r}")
        self.output = output
        self.dropout = float(dropout)
        self.dropout_generator: torch.Generator | None = None
        self.fc1 = nn.Linear(784, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.fc3 = nn.Linear(hidden, num_classes, bias=False)
        with torch.no_grad():
            for layer in self.weight_layers():
                layer.weight.uniform_(-INIT_RANGE, INIT_RANGE)  # the authors' U(−0.01, 0.01)

    def weight_layers(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        return self.fc1, self.fc2, self.fc3

    def _drop(self, h: torch.Tensor) -> torch.Tensor:
        if self.dropout <= 0:
            return h
        if not self.training:
            return h * (1.0 - self.dropout)
        g = self.dropout_generator
        u = torch.rand(h.shape, generator=g, device=g.device if g is not None else h.device).to(h.device)
        return h * (u > self.dropout).to(h.dtype)

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations of the three layers (what the normalisation takes the maximum of)."""
        h1 = self._drop(torch.relu(self.fc1(x.flatten(1))))
        h2 = self._drop(torch.relu(self.fc2(h1)))
        out = self.fc3(h2)
        return [h1, h2, torch.relu(out) if self.output == "relu" else out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_activations(x)[-1]


@dataclass(frozen=True)
class SleepParams:
    """The authors' parameters for the noise, blur and FGSM experiments on MNIST (not the ones starting 239.5,
    which belong to their catastrophic-forgetting paper)."""

    max_rate: float = 39.037119
    inc: float = 0.063997
    dec: float = 0.069220
    thresholds: tuple[float, float, float] = (36.186585, 23.362736, 36.384713)
    alpha_scale: float = 2.193698
    steps: int = 27105
    decay: float = 0.999
    dt: float = 0.001


def sigma2(w: torch.Tensor) -> torch.Tensor:
    """σ₂(w) = 2·(1 − 1/(1 + exp(−w/0.001))) = 2·sigmoid(−w/0.001), without overflow."""
    return 2.0 * torch.sigmoid(-w / SIGMA_WIDTH)


def layer_maxima(net: ControlMLP, images: torch.Tensor, batch: int = 1000) -> list[float]:
    """The largest activation of each layer over ``images`` (network in test mode: hidden × 0.8)."""
    was_training = net.training
    net.eval()
    device = net.fc1.weight.device
    maxima = [0.0, 0.0, 0.0]
    with torch.no_grad():
        for start in range(0, len(images), batch):
            acts = net.hidden_activations(images[start:start + batch].to(device))
            maxima = [max(m, float(a.max())) for m, a in zip(maxima, acts)]
    net.train(was_training)
    return maxima


def input_scales(net: ControlMLP, images: torch.Tensor, alpha_scale: float) -> tuple[list[float], list[float]]:
    """(α per layer, applied factor per layer) of the authors' data-based normalisation."""
    maxima = layer_maxima(net, images)
    alphas, applied_all, previous = [], [], 1.0
    for layer, activation_max in zip(net.weight_layers(), maxima):
        scale = max(float(layer.weight.detach().max().clamp(min=0)), activation_max)
        if scale <= 0:
            raise ValueError("the network is silent on its training data; train it before sleep")
        applied = scale / previous
        alphas.append(alpha_scale / applied)
        applied_all.append(applied)
        previous = applied
    return alphas, applied_all


def input_spikes(images: torch.Tensor, t0: int, t1: int, seed: int, params: SleepParams,
                 block: int = 0, order: torch.Tensor | None = None) -> torch.Tensor:
    """(t1 − t0, 784) bool spikes of time steps t0..t1−1: image order[t mod N], pixel p spikes when
    u·rescale/2 ≤ p.

    u is counter-based noise indexed by (time step, pixel), so a sleep split into
    chunks or resumed draws the same spikes. ``order`` (default: as stored)
    matters: MNIST's own order mixes the classes, a set sorted by class (the
    bundled sample) would show hundreds of one digit in a row, and the
    potentials (decay 0.999: a memory of ~1,000 steps) would integrate one
    class at a time.
    """
    n, pixels = len(images), images[0].numel()
    steps = torch.arange(t0, t1)
    which = steps % n if order is None else order[steps % n]
    x = images.reshape(n, pixels)[which]
    index = (steps[:, None] * pixels + torch.arange(pixels)[None, :]).flatten()
    u = counter_uniform(seed, block, int(index.max()) + 1 if index.numel() else 0, index=index)
    rescale = 1.0 / (params.dt * params.max_rate)
    return (u.reshape(len(steps), pixels) * (rescale / 2)) <= x.cpu()


class Sleeper:
    """Sleep on three weight matrices, one chunk of time steps at a time (resumable: weights and potentials are
    its whole state).

    Spikes are sparse, so each step touches only the rows of the units that
    spiked: input currents are sums of the weight rows of the presynaptic
    spikes (weights are held transposed, pre × post), STDP rewrites the
    columns of the postsynaptic units that spiked, and a layer that receives
    no spike only decays (no unit can newly cross its threshold).
    """

    def __init__(self, weights: list[torch.Tensor], alphas: list[float], params: SleepParams,
                 potentials: list[torch.Tensor] | None = None) -> None:
        self.transposed = [w.detach().t().contiguous().clone() for w in weights]  # pre × post
        self.alphas = [float(a) for a in alphas]
        self.params = params
        device = weights[0].device
        self.potentials = potentials if potentials is not None else \
            [torch.zeros(w.shape[0], dtype=w.dtype, device=device) for w in weights]

    def weights(self) -> list[torch.Tensor]:
        """The weight matrices now (post × pre, as the network holds them)."""
        return [wt.t().contiguous() for wt in self.transposed]

    def run(self, spikes_in: torch.Tensor, record_units: list[torch.Tensor] | None = None,
            record_steps: int = 0) -> tuple[list[int], list[torch.Tensor]]:
        """Sleep through the time steps of ``spikes_in`` ((T, 784) bool).

        Returns (spike count per layer including the input, per layer including
        the input the (record_steps, len(units)) bool raster of ``record_units``
        over the chunk's first ``record_steps`` steps).
        """
        p = self.params
        device = self.transposed[0].device
        spikes_in = spikes_in.to(device)
        counts = [int(spikes_in.sum())] + [0] * len(self.transposed)
        record_steps = min(int(record_steps), len(spikes_in)) if record_units is not None else 0
        rasters = [torch.zeros(record_steps, len(u), dtype=torch.bool) for u in record_units or ()]
        if record_steps:
            assert record_units is not None  # record_steps is 0 without them
            rasters[0][:] = spikes_in[:record_steps][:, record_units[0].to(device)].cpu()
        changes = [torch.full((wt.shape[0],), -p.dec, dtype=wt.dtype, device=device) for wt in self.transposed]
        for t in range(len(spikes_in)):
            pre = torch.nonzero(spikes_in[t]).flatten()
            for layer, (wt, v) in enumerate(zip(self.transposed, self.potentials)):
                v.mul_(p.decay)
                if pre.numel() == 0:
                    continue  # nothing arrives: no unit can newly reach its threshold
                v.add_(wt.index_select(0, pre).sum(0), alpha=self.alphas[layer])
                post = torch.nonzero(v >= p.thresholds[layer]).flatten()
                if post.numel():
                    columns = wt.index_select(1, post)
                    # pre spiked: + inc·σ₂(w); pre silent: − dec·σ₂(w)
                    change = changes[layer]
                    change[pre] = p.inc
                    wt.index_copy_(1, post, columns + sigma2(columns) * change[:, None])
                    change[pre] = -p.dec
                    v.index_fill_(0, post, 0.0)
                    counts[layer + 1] += int(post.numel())
                    if t < record_steps:
                        assert record_units is not None  # record_steps is 0 without them
                        rasters[layer + 1][t] = torch.isin(record_units[layer + 1], post.cpu())
                pre = post
        return counts, rasters
