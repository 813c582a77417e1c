"""Runs that read other runs or models: inputs are resolved by the declared rules, missing ones are named."""

from __future__ import annotations

import dataclasses

import pytest

from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.experiment import Requirement
from wna_gui.core.models import load_default, load_zoo
from wna_gui.core.registry import spec_of
from wna_gui.core.runs import InputError, resolve_inputs
from wna_gui.core.session import Session, load_session, save_session


@pytest.fixture(scope="module")
def maps_run():
    experiment = ClassificationImageExperiment(load_default(), ClassificationImageConfig(samples=500), device="cpu")
    experiment.run_to_end()
    return experiment.state


def reader(*requires):
    return dataclasses.replace(spec_of("classification_images"), command="reader", requires=requires)


def test_the_default_input_is_the_run_named_after_its_kind_else_the_last(maps_run):
    spec = reader(Requirement("maps", "classification_images"))
    session = Session(load_default(), {"first": maps_run, "second": maps_run})
    assert resolve_inputs(spec, session)[0] == {"maps": "second"}
    session.runs["classification_images"] = maps_run
    names, objects = resolve_inputs(spec, session)
    assert names == {"maps": "classification_images"} and objects["maps"] is maps_run
    assert resolve_inputs(spec, session, {"maps": "first"})[0] == {"maps": "first"}


def test_a_missing_input_is_a_one_line_error_naming_what_to_run(maps_run):
    spec = reader(Requirement("maps", "classification_images"))
    with pytest.raises(InputError, match="wna run classification-images"):
        resolve_inputs(spec, Session(load_default()))
    with pytest.raises(InputError, match="no classification_images run named 'nope'.*it has: first"):
        resolve_inputs(spec, Session(load_default(), {"first": maps_run}), {"maps": "nope"})
    optional = reader(Requirement("maps", "classification_images", optional=True))
    assert resolve_inputs(optional, Session(load_default())) == ({}, {})


def test_model_inputs_one_or_many():
    mlp, logistic = load_zoo("mlp"), load_zoo("logreg")
    session = Session(load_default(), models={"mlp": mlp, "lr": logistic})
    many = reader(Requirement("models", "model", many=True))
    assert resolve_inputs(many, session)[1]["models"] == {"mlp": mlp, "lr": logistic}
    assert resolve_inputs(many, session, {"models": "lr"}) == ({"models": "lr"}, {"models": {"lr": logistic}})
    one = reader(Requirement("teacher", "model"))
    assert resolve_inputs(one, session, {"teacher": "mlp"})[1]["teacher"] is mlp
    with pytest.raises(InputError, match="--teacher"):
        resolve_inputs(one, session)
    with pytest.raises(InputError, match="no model named 'cnn'"):
        resolve_inputs(one, session, {"teacher": "cnn"})


def test_models_a_run_made_are_saved_once_and_given_back(maps_run, tmp_path):
    student = load_zoo("mlp")
    maps_run.made_models = lambda: {"student": student}  # what a distillation run's state does
    try:
        path = save_session(Session(load_default(), {"classification_images": maps_run}), tmp_path / "s.h5")
    finally:
        del maps_run.made_models
    loaded = load_session(path)
    assert list(loaded.models) == ["student"]
    assert loaded.models["student"].weights_sha256() == student.weights_sha256()
