"""Template-matching classifier: known templates recovered at the Bayes rate, references trained on the bundled
digits, the bundled CNN's bias maps against chance, classes without a map, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from wna_gui.cli import main
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.data import bundled_mnist
from wna_gui.core.images import ImageSet
from wna_gui.core.models import InputSpec, LoadedModel, load_default
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.template_classifier import (
    SourceResult,
    TemplateClassifierConfig,
    TemplateClassifierExperiment,
    class_means,
    classify,
    confusion_matrix,
    logistic_regression_weights,
    report,
    summary,
)
from wna_gui.core.stats import wilson_interval


def bayes_rate(k: int, d_prime: float) -> float:
    """P(correct) of the ideal observer for k orthogonal equal-energy templates in white Gaussian noise:
    the scores are independent normals, the true one shifted by d' = |t|/σ; ∫ φ(u) Φ(u + d')^(k−1) du."""
    value, _ = integrate.quad(lambda u: stats.norm.pdf(u) * stats.norm.cdf(u + d_prime) ** (k - 1), -12, 12)
    return value


def synthetic_classes(k=4, shape=(3, 4, 4), d_prime=1.5, n=20_000, seed=0):
    """Images t_y + σε of k orthogonal templates of equal norm (RGB-shaped; the same for every seed), labels
    uniform; ``seed`` draws the images."""
    d = int(np.prod(shape))
    templates = np.linalg.qr(np.random.default_rng(99).normal(size=(d, k)))[0].T * 2.0  # orthogonal, |t| = 2
    rng = np.random.default_rng(seed)
    sigma = 2.0 / d_prime
    labels = rng.integers(0, k, n)
    images = templates[labels] + sigma * rng.normal(size=(n, d))
    return templates.reshape(k, *shape), images.reshape(n, *shape), labels


def test_known_templates_classify_at_the_bayes_rate_with_any_similarity():
    k, d_prime = 4, 1.5
    templates, images, labels = synthetic_classes(k, d_prime=d_prime)
    bayes = bayes_rate(k, d_prime)
    se = np.sqrt(bayes * (1 - bayes) / len(labels))
    for similarity in ("dot", "cosine", "minmax-cosine"):
        accuracy = (classify(images, templates, similarity) == labels).mean()
        # Equal-norm templates: dot and cosine are the ideal observer; min–max normalising moves each
        # template's offset, which costs little here.
        tolerance = 4 * se if similarity != "minmax-cosine" else 0.03
        assert abs(accuracy - bayes) < tolerance, (similarity, accuracy, bayes)
    # Templates estimated as class means of noisy training images reach the same rate.
    _, train_images, train_labels = synthetic_classes(k, d_prime=d_prime, n=4000, seed=1)
    estimated = class_means(ImageSet("train", torch.as_tensor(train_images, dtype=torch.float32),
                                     torch.as_tensor(train_labels), tuple("abcd")), k)
    assert abs((classify(images, estimated) == labels).mean() - bayes) < 0.02


def test_a_class_without_a_template_is_never_predicted_and_its_images_count_as_misses():
    templates, images, labels = synthetic_classes(4, d_prime=3.0, n=2000)
    templates = templates.copy()
    templates[2] = np.nan
    predictions = classify(images, templates)
    assert not (predictions == 2).any()
    confusion = confusion_matrix(labels, predictions, 4)
    result = SourceResult("hard", confusion, np.isfinite(templates.reshape(4, -1)).all(1), np.bincount(labels))
    assert result.n == len(labels) and result.no_map("abcd") == ["c"]
    assert result.recall[2] == 0 and result.accuracy == pytest.approx((predictions == labels).mean())
    # The other classes are still recognised: the missing template costs its own class only.
    assert result.accuracy > 0.9 * (1 - (labels == 2).mean())


def test_wilson_interval_matches_scipy():
    for successes, trials in ((84, 100), (0, 10), (10, 10), (258, 1000)):
        reference = stats.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
        assert wilson_interval(successes, trials) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_logistic_regression_weights_beat_class_mean_images_on_the_bundled_digits():
    train, test = bundled_mnist("train"), bundled_mnist("heldout")
    labels = test.labels.numpy()
    results = {}
    for name, templates in (("mean", class_means(train, 10)), ("lr", logistic_regression_weights(train, 10))):
        correct = int((classify(test.images, templates) == labels).sum())
        results[name] = wilson_interval(correct, len(labels))
    # Paper, full MNIST: 63.1 % and 83.8 %; here (1,000 held-out digits) ~64 % and ~84 %.
    assert results["lr"][0] > results["mean"][1], results


def test_an_rgb_linear_observers_logit_kernels_are_its_templates():
    """A linear RGB model z = Wx: its logit kernels are W, so classifying images made from W's rows by the
    kernels reaches the ideal observer's rate; class means of the training images do too."""
    k, shape, d_prime = 3, (3, 8, 8), 2.0
    templates, images, labels = synthetic_classes(k, shape, d_prime, n=6000)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(shape)), k, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.as_tensor(templates.reshape(k, -1), dtype=torch.float32))
    model = LoadedModel("zoo", "linear", net, InputSpec(shape), ("a", "b", "c"))
    maps = ClassificationImageExperiment(model, ClassificationImageConfig(
        samples=20_000, batch_size=2000, estimators=("logit",)), device="cpu")
    maps.run_to_end()

    def image_set(x, y, name):
        return ImageSet(name, torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y), ("a", "b", "c"))

    _, train_images, train_labels = synthetic_classes(k, shape, d_prime, n=3000, seed=1)
    snapshot = TemplateClassifierExperiment(
        model, TemplateClassifierConfig(sources=("logit", "mean-image"), similarity="cosine"), maps=maps.state,
        device="cpu", test_set=image_set(images, labels, "test"),
        train_set=image_set(train_images, train_labels, "train")).run_to_end()
    bayes = bayes_rate(k, d_prime)
    assert snapshot.templates["logit"].shape == (k, int(np.prod(shape)))
    for source in ("logit", "mean-image"):
        assert abs(snapshot.results[source].accuracy - bayes) < 0.03, (source, snapshot.results[source].accuracy)


@pytest.fixture(scope="module")
def cnn_maps():
    """The bundled CNN's hard-label and logit-kernel maps from 10,000 uniform-noise samples.

    How many samples the logit kernel needs (measured on the bundled held-out digits, dot product): 5,000 →
    43.1 %, 10,000 → 42.4 %, 20,000 → 41.6 %, 50,000 → 41.8 %, 100,000 → 41.5 %: the classifier saturates
    by 5,000 samples, so 10,000 (a few seconds) tests what 100,000 would.
    """
    model = load_default()
    experiment = ClassificationImageExperiment(model, ClassificationImageConfig(
        samples=10_000, batch_size=1000, estimators=("hard", "logit")), device="cpu")
    experiment.run_to_end()
    return model, experiment.state


def test_the_bundled_cnns_logit_maps_beat_three_times_chance_and_hard_maps_list_their_empty_classes(cnn_maps):
    model, maps = cnn_maps
    experiment = TemplateClassifierExperiment(model, TemplateClassifierConfig(sources=("hard", "logit")),
                                              maps=maps, device="cpu")
    snapshot = experiment.run_to_end()
    assert snapshot.chance == pytest.approx(0.1)
    logit, hard = snapshot.results["logit"], snapshot.results["hard"]
    assert logit.has_template.all() and logit.interval[0] > 3 * snapshot.chance, logit.accuracy
    # Uniform noise reaches few classes: the hard label has maps of 2-4 of them and names the others.
    empty = hard.no_map(model.class_names)
    assert 6 <= len(empty) <= 8 and hard.n == 1000
    assert summary(experiment.state)["no_map"]["hard"] == empty
    assert any("no map for " + ", ".join(empty) in line for line in report(snapshot))
    # A class without a map is never predicted.
    assert hard.confusion[:, ~hard.has_template].sum() == 0


def test_cli_runs_into_the_session_and_info_lists_accuracy_by_source(tmp_path, capsys):
    session = tmp_path / "s.h5"
    assert main(["run", "classification-images", "--samples", "2000", "--estimators", "hard,logit",
                 "--device", "cpu", "--quiet", "--out", str(session)]) == 0
    assert main(["run", "template-classifier", "--session", str(session), "--lr-steps", "5", "--device", "cpu",
                 "--quiet"]) == 0
    saved = load_session(session)
    assert set(saved.runs) == {"classification_images", "template_classifier"}
    assert saved.inputs["template_classifier"] == {"maps": "classification_images"}
    capsys.readouterr()
    assert main(["info", str(session), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["experiments"]["template_classifier"]
    assert list(entry["accuracy"]) == ["hard", "logit", "mean-image", "lr-weights"]
    assert all(0 <= value <= 1 for value in entry["accuracy"].values())
    assert entry["chance"] == pytest.approx(0.1) and "Wilson" in entry["interval"]


def test_a_session_without_a_classification_run_is_a_one_line_error(tmp_path, capsys):
    path = save_session(Session(load_default()), tmp_path / "empty.h5")
    capsys.readouterr()
    assert main(["run", "template-classifier", "--session", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wna run classification-images" in err and "Traceback" not in err
