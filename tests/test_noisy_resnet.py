"""Noisy pre-activation ResNets and their ensembles (core/noisy_resnet.py)."""

from __future__ import annotations

import pytest
import torch

from wna_gui.core.models import ZOO, load_zoo, model_from_record, model_record
from wna_gui.core.noisy_resnet import (Ensemble, NoisyPreActBlock, noisy_ensemble, noisy_resnet, set_noise,
                                       set_noise_generator)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_outputs_vary_between_calls_at_test_time_and_not_without_noise(shape):
    torch.manual_seed(0)
    net = noisy_resnet(10, in_channels=shape[0], blocks=1).eval()
    x = torch.rand(4, *shape)
    with torch.inference_mode():
        first, second = net(x), net(x)
        assert first.shape == (4, 10)
        assert not torch.allclose(first, second), "the noise must stay on in eval mode"
        set_noise(net, 0.0)
        assert torch.equal(net(x), net(x))


def test_noise_is_a_tenth_of_each_images_std_after_the_residual_addition():
    torch.manual_seed(1)
    block = NoisyPreActBlock(8, 8, 1).eval()
    x = torch.randn(3, 8, 10, 10)
    # One image 100× larger than the others: per-image std keeps the others' noise small.
    x[0] *= 100
    with torch.inference_mode():
        block.noise = 0.0
        clean = block(x)
        block.noise = 0.1
        noisy = block(x)
    for i in range(3):
        ratio = float((noisy[i] - clean[i]).std() / clean[i].std())
        assert ratio == pytest.approx(0.1, rel=0.1)


def test_ensemble_averages_its_members_logits_under_fixed_noise():
    torch.manual_seed(2)
    ensemble = noisy_ensemble(10, in_channels=1, members=3, blocks=1).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.inference_mode():
        set_noise_generator(ensemble, torch.Generator().manual_seed(7))
        averaged = ensemble(x)
        set_noise_generator(ensemble, torch.Generator().manual_seed(7))
        manual = sum(member(x) for member in ensemble.members) / 3
        # The members draw different noise from one another: the average is not one member repeated.
        set_noise_generator(ensemble, torch.Generator().manual_seed(7))
        first = ensemble.members[0](x)
    torch.testing.assert_close(averaged, manual)
    assert not torch.allclose(averaged, first)


def test_an_ensemble_needs_members():
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


@pytest.mark.parametrize("name", ["noisy_resnet8", "noisy_en5resnet8", "noisy_resnet20_cifar"])
def test_zoo_variants_round_trip_through_session_records(name):
    model = load_zoo(name)
    description, blob = model_record(model)
    again = model_from_record(description, blob)
    assert again.architecture == name and again.input_spec == ZOO[name].input_spec
    assert again.weights_sha256() == model.weights_sha256()
    set_noise(model.net, 0.0)
    set_noise(again.net, 0.0)
    x = torch.rand(2, *ZOO[name].input_spec.shape)
    with torch.inference_mode():
        torch.testing.assert_close(model.pixel_model(x), again.pixel_model(x))
