"""Distortions and attacks: the definitions of the robustness reports, and attacks that do what they claim."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wna_gui.core.data import bundled_mnist
from wna_gui.core.distortions import (
    DistortionError,
    blur_kernel,
    blur_kernel_size,
    fgsm,
    gaussian_blur,
    gaussian_noise,
    input_gradient,
    model_loss,
    pgd,
)
from wna_gui.core.models import load_default


@pytest.fixture(scope="module")
def model():
    return load_default()


@pytest.fixture(scope="module")
def digits():
    data = bundled_mnist("heldout")
    return data.images[:200], data.labels[:200]


def accuracy(model, x, y) -> float:
    with torch.inference_mode():
        return float((model.pixel_model(x).argmax(1) == y).float().mean())


# --- blur ---

@pytest.mark.parametrize("sigma, size", [(0.0, 1), (0.5, 3), (1.0, 5), (1.2, 7), (2.5, 11), (4.0, 17)])
def test_blur_kernel_has_2_ceil_2sigma_plus_1_taps_sums_to_one_and_is_symmetric(sigma, size):
    kernel = blur_kernel(sigma, torch.float64)
    assert blur_kernel_size(sigma) == size == kernel.numel()
    assert math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-12)
    assert torch.equal(kernel, kernel.flip(0))
    if sigma:
        x = torch.arange(size, dtype=torch.float64) - size // 2
        expected = torch.exp(-x**2 / (2 * sigma**2))
        torch.testing.assert_close(kernel, expected / expected.sum())


def test_blur_pads_by_replicating_the_border(digits):
    x = digits[0][:5].double()
    sigma = 1.5
    kernel = blur_kernel(sigma, torch.float64)
    radius = kernel.numel() // 2
    padded = nn.functional.pad(x, (radius,) * 4, mode="replicate")
    expected = nn.functional.conv2d(padded, torch.outer(kernel, kernel)[None, None]).clamp(0, 1)
    torch.testing.assert_close(gaussian_blur(x, sigma), expected)
    # A constant image stays constant up to the border (zero padding would darken it there).
    flat = torch.full((1, 1, 28, 28), 0.7, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(flat, 4.0), flat)


def test_blur_wider_than_the_image_and_zero_sigma(digits):
    x = digits[0][:3]
    assert torch.equal(gaussian_blur(x, 0.0), x)
    tiny = x[:, :, :4, :4]
    out = gaussian_blur(tiny, 4.0)  # 17 taps on a 4×4 image
    assert out.shape == tiny.shape and out.min() >= 0 and out.max() <= 1
    with pytest.raises(DistortionError, match="sigma"):
        gaussian_blur(x, -1.0)


# --- noise ---

def test_noise_has_the_variance_asked_is_clipped_and_zero_is_identity(digits):
    grey = torch.full((200, 1, 28, 28), 0.5)
    variance = 0.01  # ±5 σ stays inside [0, 1]: nothing is clipped
    noisy = gaussian_noise(grey, variance, seed=3)
    assert math.isclose(float((noisy - grey).var()), variance, rel_tol=0.02)
    assert abs(float((noisy - grey).mean())) < 0.002
    strong = gaussian_noise(digits[0], 0.9, seed=3)
    assert strong.min() == 0 and strong.max() == 1  # clipped, both ends reached
    assert torch.equal(gaussian_noise(digits[0], 0.0), digits[0])
    with pytest.raises(DistortionError, match="variance"):
        gaussian_noise(digits[0], -0.1)


def test_noise_is_reproducible_and_independent_of_chunking(digits):
    x = digits[0]
    whole = gaussian_noise(x, 0.3, seed=7, block=2)
    assert torch.equal(whole, gaussian_noise(x, 0.3, seed=7, block=2))
    chunks = torch.cat([gaussian_noise(x[:64], 0.3, seed=7, block=2),
                        gaussian_noise(x[64:], 0.3, seed=7, block=2, start=64)])
    assert torch.equal(whole, chunks)
    assert not torch.equal(whole, gaussian_noise(x, 0.3, seed=8, block=2))
    assert not torch.equal(whole, gaussian_noise(x, 0.3, seed=7, block=3))


# --- attacks ---

def test_fgsm_at_zero_is_clean_and_accuracy_falls_with_eta(model, digits):
    x, y = digits
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    accuracies = [accuracy(model, fgsm(model, x, y, eta), y) for eta in (0.0, 0.05, 0.1, 0.2, 0.3)]
    assert accuracies[0] == accuracy(model, x, y) > 0.95
    assert all(later < earlier for earlier, later in zip(accuracies, accuracies[1:])), accuracies
    assert accuracies[-1] < 0.4
    adversarial = fgsm(model, x, y, 0.1)
    assert (adversarial - x).abs().max() <= 0.1 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1


@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_ifgsm_is_at_least_as_strong_as_fgsm_and_stays_in_the_ball(model, digits, eps):
    x, y = digits[0][:100], digits[1][:100]
    iterative = pgd(model, x, y, eps, steps=10)  # 10 steps of 2.5·ε/10: fewer than the default 20, as strong
    assert (iterative - x).abs().max() <= eps + 1e-6 and iterative.min() >= 0 and iterative.max() <= 1
    assert accuracy(model, iterative, y) <= accuracy(model, fgsm(model, x, y, eps), y)


def test_fgsm_agrees_with_a_published_implementation(model, digits):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = digits
    for eps in (0.05, 0.2):
        reference = torchattacks.FGSM(model.pixel_model, eps=eps)(x, y)
        torch.testing.assert_close(fgsm(model, x, y, eps), reference, rtol=0, atol=1e-6)


def test_an_attack_uses_the_loss_the_model_declares(model, digits):
    x, y = digits[0][:20], digits[1][:20]
    assert model_loss(model) == "cross_entropy"
    squared = load_default()
    squared.extra["loss"] = "squared_error"
    leaf = x.clone().requires_grad_(True)
    outputs = squared.pixel_model(leaf)
    (0.5 * ((nn.functional.one_hot(y, 10) - outputs) ** 2).sum()).backward()
    torch.testing.assert_close(input_gradient(squared, x, y), leaf.grad)
    assert not torch.equal(input_gradient(squared, x, y).sign(), input_gradient(model, x, y).sign())
    with pytest.raises(DistortionError, match="unknown loss"):
        input_gradient(model, x, y, loss="hinge")


class NoisyInput(nn.Module):
    """The bundled CNN behind strong input noise, drawn afresh on every pass: a stochastic, trained classifier."""

    def __init__(self, net: nn.Module, std: float = 0.35) -> None:
        super().__init__()
        self.net, self.std = net, std

    def forward(self, x):
        return self.net(x + self.std * torch.randn_like(x))


def test_an_eot_attack_is_at_least_as_strong_as_a_single_draw_attack(model, digits):
    x, y = digits[0][:120], digits[1][:120]
    noisy = NoisyInput(model.pixel_model).eval()
    torch.manual_seed(0)

    def mean_accuracy(images, draws=8):
        with torch.inference_mode():
            return sum(float((noisy(images).argmax(1) == y).float().mean()) for _ in range(draws)) / draws

    eps = 0.15
    single = mean_accuracy(fgsm(noisy, x, y, eps, draws=1))
    eot = mean_accuracy(fgsm(noisy, x, y, eps, draws=12))
    assert eot <= single + 0.01, (eot, single)
