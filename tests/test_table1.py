"""Paper Table 1 on torchvision backbones: 1000-class models at 32×32 (or 224), class names from the weights'
metadata, classes reached and empty in `wna info`, and accumulators that grow with the classes reached only.

The weights here are random (no download): what is checked is the workflow and the memory, not ImageNet's
numbers (docs/scale-out.md has the recipe for those).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

from wna_gui.cli import main
from wna_gui.core.classification import KIND, ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.models import ModelError, load_model
from wna_gui.core.session import load_session

CATEGORIES = tuple(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random resnet18 weights saved under the name torchvision publishes them as (no download needed)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def resnet(weights):
    return load_model("torchvision:resnet18", weights, input_size=32)


def test_a_file_published_under_a_weights_name_gets_its_class_names(resnet):
    assert resnet.input_spec.shape == (3, 32, 32) and resnet.n_classes == 1000
    assert resnet.class_names == CATEGORIES and resnet.class_names[1] == "goldfish"


def test_a_checkpoint_carrying_its_categories_names_the_classes(tmp_path, resnet):
    path = tmp_path / "mine.pt"
    names = [f"thing {k}" for k in range(1000)]
    torch.save({"state_dict": resnet.net.state_dict(), "meta": {"categories": names}}, path)
    model = load_model("torchvision:resnet18", path, input_size=32)
    assert model.class_names == tuple(names) and model.weights_sha256() == resnet.weights_sha256()


def test_a_weights_name_not_in_the_cache_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError, match="not in the torch hub cache.*--download"):
        load_model("torchvision:resnet152", "ResNet152_Weights.IMAGENET1K_V2", input_size=32)
    with pytest.raises(ModelError, match="weights file not found"):
        load_model("torchvision:resnet152", tmp_path / "missing.pt")


def accumulator_rows(state) -> int:
    return sum(acc.classes.size for acc in (state.even, state.odd))


def test_a_1000_class_model_holds_maps_only_for_the_classes_noise_reaches(resnet):
    config = ClassificationImageConfig(samples=300, batch_size=100, seed=1, estimators=("hard",))
    experiment = ClassificationImageExperiment(resnet, config, device="cpu")
    state = experiment.state
    d, k = 3 * 32 * 32, 1000
    per_class = 2 * d * 8 + 8  # mean and M2 rows (float64) and the class index
    per_run = 2 * 3 * k * 8  # both halves' counts and weights over all classes: O(K), no pixels
    assert state.allocated_bytes() == per_run  # nothing reached yet, nothing allocated for maps
    sizes = []
    for _ in experiment.run():
        sizes.append((accumulator_rows(state), state.allocated_bytes()))
    reached = int(np.count_nonzero(state.total().count))
    assert state.finished and 1 <= reached < 50
    # At every snapshot: the counts, plus one row per class reached in each half, nothing else.
    assert all(size == per_run + per_class * rows for rows, size in sizes) and sizes[-1][0] == accumulator_rows(state)
    assert accumulator_rows(state) <= 2 * reached
    # A thousand classes × pixels × both halves up front would be 100 times more.
    assert state.allocated_bytes() < 0.01 * 2 * 2 * k * d * 8


def test_table1_workflow_from_the_command_line(weights, tmp_path, capsys):
    out = tmp_path / "r18.h5"
    assert main(["run", "classification-images", "--model", "torchvision:resnet18", "--weights", str(weights),
                 "--input-size", "32", "--samples", "200", "--batch-size", "100", "--estimators", "hard",
                 "--out", str(out), "--quiet"]) == 0
    state = load_session(out).runs[KIND]
    assert state.image_shape == (3, 32, 32) and state.class_names == CATEGORIES
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["experiments"][KIND]
    reached = int(np.count_nonzero(state.total().count))
    assert entry["classes_reached"] == reached and entry["empty_classes"] == 1000 - reached
    assert entry["samples_per_second"] > 0 and entry["done_blocks"] == [[0, 2]]
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"classes reached {reached:,} of 1,000, empty {1000 - reached:,}" in text
    assert "more classes (wna info --json lists every count)" in text and len(text.splitlines()) < 60


def test_figures_of_a_1000_class_run_show_the_classes_noise_reached():
    from wna_gui.figures import shown_classes

    counts = np.zeros(1000, dtype=np.int64)
    counts[[7, 400, 999]] = [5, 90, 1]
    assert shown_classes(counts).tolist() == [7, 400, 999]  # not 17 blank tiles of empty classes
    assert shown_classes(np.zeros(1000, dtype=np.int64)).size == 20  # nothing reached yet: the first 20
