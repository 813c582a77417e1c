"""Structured noise (paper Appendix, Fig. 15): the Gabor bank, the Gabor-PCA fit and its explained variance,
autoencoder / VAE samples, and noise that regenerates bit for bit from (seed, block), after a session round
trip too and from the command line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from wna_gui.cli import main
from wna_gui.core import structured_noise
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.models import load_default
from wna_gui.core.noise import NOISE_SOURCES, noise_from_dict, noise_source
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.sta import is_structured
from wna_gui.core.structured_noise import (
    AutoencoderNoise,
    GaborPCANoise,
    StructuredNoiseError,
    VAENoise,
    gabor_bank,
)

MNIST = (1, 28, 28)


@pytest.fixture(scope="module")
def gabor() -> GaborPCANoise:
    return GaborPCANoise().fit(MNIST)


@pytest.fixture(scope="module")
def decoders() -> dict:
    return {cls.kind: cls().fit(MNIST) for cls in (AutoencoderNoise, VAENoise)}


def restored(source):
    """The source as a session gives it back: its declared params and its arrays."""
    return noise_from_dict(source.to_dict(), source.arrays())


def test_gabor_banks_have_the_appendix_counts_and_unit_norm():
    for side, count in ((28, 2 * 2 * 8 + 4 * 4 * 8 + 10 * 10 * 8), (32, 2 * 2 * 8 + 4 * 4 * 8 + 7 * 7 * 8 + 11 * 11 * 8)):
        bank = gabor_bank(side)
        assert bank.shape == (count, side * side)
        assert np.allclose(np.linalg.norm(bank, axis=1), 1.0)
        assert np.linalg.matrix_rank(bank[:200]) == 200  # distinct wavelets, not copies
    assert gabor_bank(28).shape[0] == 960 and gabor_bank(32).shape[0] == 1520
    with pytest.raises(StructuredNoiseError, match="28×28 and 32×32"):
        gabor_bank(64)


def test_structured_sources_are_offered_wherever_noise_is():
    for kind in ("gabor-pca", "autoencoder", "vae"):
        assert kind in NOISE_SOURCES and noise_source(kind).kind == kind
    assert is_structured(GaborPCANoise())  # STA analyses it on its scores and maps back


def test_gabor_pca_fit_reports_explained_variance_and_keeps_250_components(gabor):
    arrays = gabor.arrays()
    assert arrays["basis"].shape == (1, 250, 784) and arrays["offset"].shape == (1, 784)
    assert int(arrays["bank_size"]) == 960 and int(arrays["fit_count"]) == 4000
    explained = gabor.explained_variance
    # Paper, 60K MNIST digits: 96.1%; the bundled 4,000 digits give a little more (fewer images, same rank).
    assert explained.shape == (1,) and 0.93 < explained[0] < 0.995
    per_component = arrays["explained"][0]
    assert np.all(np.diff(per_component) <= 1e-12)  # components in order of variance
    assert f"{explained[0]:.1%}" in gabor.fit_summary() and "960 wavelets" in gabor.fit_summary()


def test_gabor_pca_noise_is_digit_scale_structure_in_range_and_linear_in_its_scores(gabor):
    x = gabor.block(3, 1, 500, MNIST)
    assert x.shape == (500, *MNIST) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # min–max scaled per image (the authors')
    # Correlated, unlike white noise: neighbouring pixels move together.
    flat = x.reshape(500, 28, 28).double()
    neighbours = np.corrcoef(flat[:, 14, 10:18].ravel(), flat[:, 14, 11:19].ravel())[0, 1]
    assert neighbours > 0.5
    raw = dataclasses.replace(gabor, scaling="none")  # same fit: scaling is not a fit setting
    assert raw.fitted is gabor.fitted
    images, scores = raw.block_with_scores(3, 1, 500, MNIST)
    assert scores.shape == (500, 250)
    assert abs(float(scores.mean())) < 0.02 and abs(float(scores.var()) - 1.0) < 0.02  # white scores
    basis = torch.as_tensor(raw.score_basis(MNIST), dtype=torch.float64)
    offset = torch.as_tensor(gabor.arrays()["offset"][0], dtype=torch.float64)
    assert torch.allclose(images.reshape(500, -1).double(), offset + scores.double() @ basis, atol=1e-4)


def test_gabor_pca_noise_regenerates_bit_for_bit_without_refitting(gabor, monkeypatch):
    first = gabor.block(7, 12, 300, MNIST)
    again = restored(gabor)
    monkeypatch.setattr(GaborPCANoise, "_fit", lambda self, shape: pytest.fail("refitted"))
    assert torch.equal(again.block(7, 12, 300, MNIST), first)
    assert again == gabor
    assert not torch.equal(again.block(7, 13, 300, MNIST), first)  # another block, other noise
    assert not torch.equal(again.block(8, 12, 300, MNIST), first)  # another seed, other noise


def test_a_changed_fit_setting_drops_the_fit_and_a_wrong_shape_is_one_line(gabor):
    assert dataclasses.replace(gabor, components=100).fitted is None
    with pytest.raises(StructuredNoiseError, match="fitted to 1×28×28 images; the model takes 1×32×32"):
        gabor.block(0, 0, 2, (1, 32, 32))
    with pytest.raises(StructuredNoiseError, match="needs training images of that shape"):
        GaborPCANoise().fit((1, 32, 32))
    with pytest.raises(ValueError, match="unknown fit data"):
        GaborPCANoise(fit_data="imagenet")


@pytest.mark.slow
def test_gabor_pca_for_colour_images_fits_each_channel(monkeypatch):
    """32×32 RGB: 1520 wavelets and 600 components per channel (paper: CIFAR-10). Images: the bundled digits
    enlarged and tinted per channel, so the channels differ."""
    from wna_gui.core.data import bundled_mnist

    digits = torch.nn.functional.pad(bundled_mnist("train").images[:700], (2, 2, 2, 2)).numpy().astype(np.float64)
    tints = np.array([1.0, 0.6, 0.3])[None, :, None, None]
    colour = np.clip(digits * tints + 0.2 * (1 - digits) * tints[:, ::-1], 0, 1)
    monkeypatch.setattr(structured_noise, "_training_images", lambda *args: colour)
    source = GaborPCANoise().fit((3, 32, 32))
    arrays = source.arrays()
    assert int(arrays["bank_size"]) == 1520
    assert arrays["basis"].shape == (3, 600, 1024)
    assert source.score_basis((3, 32, 32)).shape == (1800, 3072)
    assert source.explained_variance.shape == (3,) and np.all(source.explained_variance > 0.9)
    x = source.block(0, 0, 50, (3, 32, 32))
    assert x.shape == (50, 3, 32, 32) and torch.equal(restored(source).block(0, 0, 50, (3, 32, 32)), x)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["autoencoder", "vae"])
def test_decoder_sources_train_sample_in_range_and_regenerate(decoders, kind, monkeypatch):
    source = decoders[kind]
    losses = source.arrays()["losses"]
    assert len(losses) == 2 and losses[1] < losses[0]  # two epochs, and it learned
    x = source.block(5, 3, 400, MNIST)
    assert x.shape == (400, *MNIST) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # Faint digit structure, not white noise: samples differ, and pixels far from the digits stay dark.
    assert float(x.std(0).mean()) > 0.01 and float(x[:, 0, 0, 0].mean()) < 0.2
    again = restored(source)
    monkeypatch.setattr(type(source), "_fit", lambda self, shape: pytest.fail("retrained"))
    assert torch.equal(again.block(5, 3, 400, MNIST), x)
    assert not torch.equal(again.block(5, 4, 400, MNIST), x)
    assert source.latent_size == (9 if kind == "autoencoder" else 20)
    assert "trained 2 epochs on 4,000 images" in source.fit_summary()


def test_decoders_train_the_same_from_the_same_seed():
    first, again = (AutoencoderNoise(fit_images=500).fit(MNIST) for _ in range(2))
    for name, value in first.arrays().items():
        assert np.array_equal(again.arrays()[name], value), name
    other = AutoencoderNoise(fit_images=500, train_seed=2).fit(MNIST)
    assert not np.array_equal(other.arrays()["weight_0"], again.arrays()["weight_0"])


def test_a_classification_run_stores_the_fit_and_regenerates_after_a_session_round_trip(gabor, tmp_path, monkeypatch):
    model = load_default()
    config = ClassificationImageConfig(noise=GaborPCANoise(), samples=300, batch_size=100, estimators=("hard",))
    run = ClassificationImageExperiment(model, config, device="cpu")
    run.run_to_end()
    drawn = run.state.config.noise.block(0, 2, 100, MNIST)
    save_session(Session(model, {"classification_images": run.state}), tmp_path / "s.h5")
    monkeypatch.setattr(GaborPCANoise, "_fit", lambda self, shape: pytest.fail("refitted"))
    loaded = load_session(tmp_path / "s.h5").runs["classification_images"]
    assert loaded.config == run.state.config
    assert torch.equal(loaded.config.noise.block(0, 2, 100, MNIST), drawn)
    assert np.array_equal(loaded.total().count, run.state.total().count)


def test_the_command_line_runs_classification_images_on_gabor_pca_noise(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    assert main(["run", "classification-images", "--noise", "gabor-pca", "--noise-components", "120",
                 "--noise-fit-images", "500", "--samples", "200", "--batch-size", "100", "--estimators", "hard", "--device", "cpu", "--quiet",
                 "--out", str(out)]) == 0
    noise = load_session(out).runs["classification_images"].config.noise
    assert isinstance(noise, GaborPCANoise) and noise.components == 120
    assert noise.arrays()["basis"].shape == (1, 120, 784) and int(noise.arrays()["fit_count"]) == 500
    fresh = GaborPCANoise(components=120, fit_images=500)
    assert torch.equal(noise.block(0, 1, 10, MNIST), fresh.block(0, 1, 10, MNIST))


def test_classification_maps_of_structured_noise_are_also_averaged_in_score_space(gabor, tmp_path):
    """k = B·STA_a beside the pixel average: with no scaling the two are the same maps (the images are linear
    in the scores); the score-space accumulators survive a session round trip and merge like the others."""
    model = load_default()
    noise = dataclasses.replace(gabor, scaling="none")
    config = ClassificationImageConfig(noise=noise, samples=1000, batch_size=250, estimators=("hard",))
    run = ClassificationImageExperiment(model, config, device="cpu")
    snapshot = run.run_to_end()
    score, pixel = snapshot.score_maps, snapshot.maps
    assert score is not None and score.samples == 1000
    seen = pixel.classes[pixel.counts[pixel.classes] >= 2]
    np.testing.assert_allclose(score.of("centered", seen), pixel.of("centered", seen), atol=1e-4)
    z = score.of("zmap", seen)
    assert np.isfinite(z).all() and 0.5 < np.std(z) < 5  # standard errors of the right size
    white = ClassificationImageExperiment(model, ClassificationImageConfig(samples=200, batch_size=100),
                                          device="cpu").run_to_end()
    assert white.score_maps is None  # white noise has no scores
    save_session(Session(model, {"classification_images": run.state}), tmp_path / "s.h5")
    loaded = load_session(tmp_path / "s.h5").runs["classification_images"]
    np.testing.assert_array_equal(loaded.score_maps().centered, score.centered)
    written = ClassificationImageExperiment.spec.artefacts[-1].write(snapshot, tmp_path / "score_maps.png")
    assert written.stat().st_size > 1000
    # Workers' statistics carry the score accumulators: two halves of the blocks merge to the whole run.
    first, second = run.state.blank(), run.state.blank()
    for part, blocks in ((first, (0, 1)), (second, (2, 3))):
        worker = ClassificationImageExperiment(model, state=part, device="cpu")
        for block in blocks:
            worker.run_unit(block)
    first.merge(second.statistics())
    np.testing.assert_allclose(first.score_maps().centered, score.centered, atol=1e-12)
