"""One small run per registered kind, declared once and made once per test process, for every test that needs
something measured (the contract tests, the app contract, export sizes, interruption, fuzzing).

A new experiment adds one line to SMALL; ``tests/test_contract.py`` fails until it does.
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from wna_gui.core.data import bundled_mnist
from wna_gui.core.images import stratified_subset
from wna_gui.core.models import load_default
from wna_gui.core.registry import BY_KIND
from wna_gui.core.runs import resolve_inputs
from wna_gui.core.session import Session



def _small_digits(per_class: int = 40) -> str:
    """A seeded, stratified draw of the bundled training digits written as one's own images (.npz): the
    backdoor's small run trains its two networks on these in a second instead of on all 4,000 digits."""
    folder = Path(tempfile.mkdtemp(prefix="wna-smoke-"))
    atexit.register(shutil.rmtree, folder, True)
    digits = bundled_mnist("train")
    chosen = stratified_subset(digits.labels.numpy(), per_class * len(digits.class_names), seed=0).indices
    path = folder / "digits.npz"
    np.savez(path, x=(digits.images[chosen, 0].numpy() * 255).round().astype(np.uint8),
             y=digits.labels[chosen].numpy())
    return str(path)


SMALL_DIGITS = _small_digits()

# Per kind, the few settings that make a run take well under two seconds on a CPU.
SMALL = {
    "classification_images": dict(samples=2000),
    "psychometric": dict(gammas=(0.0, 0.5, 1.0), n_boot=5, gof_samples=0, layer="fc1", k_values=(0.0, 5.0)),
    "psychometric_grid": dict(targets=(1, 2), layers=("fc1",), k_values=(0.0, 5.0), gammas=(0.0, 0.5, 1.0)),
    "sta": dict(samples=2000, stc_samples=1000, map_samples=1000),
    "bias_attack": dict(gammas=(0.0, 0.5, 1.0), samples=100, signals=100, min_support=1.0),
    "backdoor": dict(epochs=1, map_samples=1000, dataset="npz", data_dir=SMALL_DIGITS),
    "activation_injection": dict(layers=("input", "fc1"), gammas=(0.0, 1.0), samples=1000, images=50),
    "sample_complexity": dict(stimuli=("uniform", "gaussian"), samples=400, batch_size=100),
    "defence": dict(method="sleep", epochs=1, train_images=300, sleep_steps=300, eval_images=200),
    "template_classifier": dict(lr_steps=5),
    "two_class": dict(samples=500, batch_size=250, epochs=1, gamma_points=2),
    "robustness": dict(images=40, noise_levels=(0.0, 0.5), blur_levels=(0.0, 2.0), fgsm_levels=(0.0, 0.2),
                       ifgsm_levels=(0.0, 0.2), ifgsm_steps=2, repetitions=1, n_boot=10),
    "human_observer": dict(observer="simulated", task="2ifc", trials=30, double_pass=10),
}

@cache
def model():
    """The bundled model, loaded once per test process (read-only: tests never change it)."""
    return load_default()


def small_config(spec):
    assert spec.kind in SMALL, f"add a small config for {spec.kind!r} to SMALL in {__file__}"
    return dataclasses.replace(spec.config(), **SMALL[spec.kind])


def input_session(kind: str) -> Session:
    """A session holding small runs of every kind ``kind`` reads (recursively), each named after its kind."""
    session = Session(model())
    for need in BY_KIND[kind].requires:
        if need.kind != "model":
            session.runs.update(input_session(need.kind).runs)
            session.runs[need.kind] = tiny_run(need.kind)[0]
    return session


def tiny_inputs(kind: str) -> dict:
    return resolve_inputs(BY_KIND[kind], input_session(kind))[1]


@cache
def tiny_run(kind: str):
    """(state, snapshots) of a small run of ``kind`` to the end (its inputs given), made on first use.

    Shared by every test in the process: treat both as read-only."""
    spec = BY_KIND[kind]
    experiment = spec.experiment(model(), small_config(spec), device="cpu", **tiny_inputs(kind))
    snapshots = [experiment.snapshot(), *experiment.run()]
    return experiment.state, snapshots
