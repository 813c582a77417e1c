"""A batch norm between a layer and its nonlinearity: applied from its running statistics, and refused (one line
naming it) when it has none, since it then normalises every batch by that batch's own statistics even in eval mode.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wna_gui.core.control import USER_ERRORS, EngineError
from wna_gui.core.models import InputSpec, LoadedModel
from wna_gui.core.receptive_field import ReceptiveFieldError, post_activation, trace
from wna_gui.core.sta import STAConfig, STAExperiment


class NormedNet(nn.Module):
    """conv → batch norm → ReLU → linear read-out of two classes."""

    def __init__(self, running_stats: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 5)
        self.norm = nn.BatchNorm2d(3, track_running_stats=running_stats)
        self.head = nn.Linear(3 * 24 * 24, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).flatten(1))


def _net(running_stats: bool) -> NormedNet:
    torch.manual_seed(3)
    net = NormedNet(running_stats)
    with torch.no_grad():
        net.norm.weight.uniform_(0.5, 2.0)
        net.norm.bias.uniform_(-1.0, 1.0)
        if running_stats:
            net.norm.running_mean.uniform_(-0.5, 0.5)
            net.norm.running_var.uniform_(0.5, 3.0)
    return net.eval()


def test_batch_norm_with_running_statistics_is_applied_as_the_network_applies_it():
    net = _net(running_stats=True)
    post = post_activation(trace(net, (1, 28, 28)), "conv")
    assert post.description == "batch norm → relu"
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        layer_out = net.conv(x)
        torch.testing.assert_close(post(layer_out), torch.relu(net.norm(layer_out)))


def test_batch_norm_without_running_statistics_is_refused_in_one_line_naming_it():
    net = _net(running_stats=False)
    # the reason for refusing: in eval mode the layer still normalises by the batch, so one image's
    # response changes with the images beside it
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert not torch.allclose(net(x)[:1], net(x[:1]))
    with pytest.raises(ReceptiveFieldError) as refused:
        post_activation(trace(net, (1, 28, 28)), "conv")
    message = str(refused.value)
    assert "layer norm is a batch norm without running statistics" in message and "\n" not in message


def test_sta_refuses_the_model_with_a_user_error_of_one_line():
    model = LoadedModel("zoo", "normed", _net(running_stats=False), InputSpec((1, 28, 28)), ("a", "b"))
    config = STAConfig(layer="conv", samples=64, stc_samples=0, map_samples=0)
    with pytest.raises(EngineError, match="^layer norm is a batch norm without running statistics") as refused:
        STAExperiment(model, config)
    assert "\n" not in str(refused.value)
    # mapping the read-out instead still passes the conv layer on the way to the per-class maps
    config = STAConfig(layer="head", samples=64, stc_samples=0, map_samples=64)
    with pytest.raises(USER_ERRORS, match="layer norm is a batch norm without running statistics"):
        STAExperiment(model, config)
