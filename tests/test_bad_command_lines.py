"""Every bad command line is one line on stderr, exit 2, and no work: no model trained, no file written.

Ranges come from one place, each param's declaration (core.params): the `wna` flags, the app's spin boxes and
session loading (check_config) all enforce it. Errors are one line, "wna: error: …" (no usage block), as every user error is.
"""

import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from wna_gui.cli import main
from wna_gui.core.models import load_model
from wna_gui.core.noise import NOISE_SOURCES
from wna_gui.core.params import (MAX_ENTRIES, check_config, config_arrays, config_from_dict, config_to_dict,
                                 params)
from wna_gui.core.registry import EXPERIMENTS, spec_of

# A bad line is refused while it is read, before torch builds anything: well under a second on an idle machine.
# The bound only has to tell that from work begun (every audited line asks for minutes of it or more), and must
# hold on a loaded 2-core machine running the tests in parallel (3 s was once missed by 0.1 s there).
FAST_SECONDS = 15.0


def refused(argv, capsys) -> str:
    """Run ``wna argv`` in-process; assert it failed with one stderr line, quickly; return that line."""
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (argv, code, captured.err)
    assert len(lines) == 1 and lines[0].startswith("wna: error: "), captured.err
    assert elapsed < FAST_SECONDS, f"{argv}: refused after {elapsed:.1f} s"
    return lines[0]


def run_line(command: str, *words: str, out: Path) -> list[str]:
    spec = next(spec for spec in EXPERIMENTS if spec.command == command)
    # A run that reads a session names one (missing here): the bad flag must be refused before it is opened.
    session = ["--session", str(out.with_name("missing-input.h5"))] if spec.requires else []
    return ["run", command, *words, *session, "--out", str(out)]


# The audit's bad lines (issue 20), each with the flag its message must name.
AUDIT_LINES = [
    (["run", "classification-images", "--samples", str(10**30)], "--samples"),
    (["run", "classification-images", "--seed", str(2**70)], "--seed"),
    (["run", "classification-images", "--estimators", ""], "--estimators"),
    (["run", "classification-images", "--autosave-seconds", "-1"], "--autosave-seconds"),
    (["run", "classification-images", "--autosave-seconds", "nan"], "--autosave-seconds"),
    (["run", "defence", "--epochs", "-1"], "--epochs"),
    (["run", "defence", "--lr", "nan"], "--lr"),
    (["run", "defence", "--lr", "-0.1"], "--lr"),
    (["run", "psychometric", "--k", "0:1000000000"], "--k"),
    (["run", "psychometric", "--gammas", "1000000000"], "--gammas"),
    (["run", "psychometric", "--k", "0:inf"], "--k"),
    (["run", "classification-images", "--model", "torchscript", "--input-shape", "1,28,999999"], "--input-shape"),
    (["run", "classification-images", "--model", "torchvision:resnet18", "--input-size", "0"], "--input-size"),
]


@pytest.mark.parametrize("argv, flag", AUDIT_LINES, ids=[" ".join(a[1:]) for a, _ in AUDIT_LINES])
def test_the_audits_bad_run_lines_are_refused_before_any_work(argv, flag, tmp_path, capsys):
    out = tmp_path / "s.h5"
    message = refused([*argv, "--out", str(out)], capsys)
    assert flag in message
    assert not out.exists()


@pytest.mark.parametrize("words, flag", [
    (["logreg", "--epochs", "0"], "--epochs"),
    (["mnist_cnn", "--classes", "1,99"], "--classes"),
    (["mnist_cnn", "--classes", "1,1"], "--classes"),
    (["mnist_cnn", "--classes", "3"], "--classes"),
    (["mnist_cnn", "--lr", "nan"], "--lr"),
    (["mnist_cnn", "--lr", "0"], "--lr"),
    (["mnist_cnn", "--batch-size", "0"], "--batch-size"),
    (["mnist_cnn", "--seed", str(2**70)], "--seed"),
])
def test_bad_train_lines_write_no_weights(words, flag, tmp_path, capsys):
    out = tmp_path / "w.pt"
    message = refused(["train", *words, "--out", str(out)], capsys)
    assert flag in message
    assert not out.exists()


@pytest.mark.parametrize("words", [["--dpi", "30"], ["--dpi", "1e9"], ["--width-mm", "nan"], ["--width-mm", "5"]])
def test_a_bad_export_size_is_refused_before_the_session_is_opened(words, tmp_path, capsys):
    # The session does not exist: the message is about the size, so the file was never looked at.
    message = refused(["export", str(tmp_path / "absent.h5"), "--out", str(tmp_path / "x"), *words], capsys)
    assert words[0] in message and "absent.h5" not in message
    assert not (tmp_path / "x").exists()


def _bad_values(p) -> list[str]:
    """Values the declaration of ``p`` refuses, by kind."""
    if p.options is not None:
        return [""] if p.kind == "multi" else []  # the rest is checked against the model's classes and layers
    if p.kind == "int" and p.decode is None:
        return [str(int(p.high) + 1), str(int(p.low) - 1), "1.5", str(10**30)]
    if p.kind == "int":  # a grid given by its point count: refused before it is built
        return [str(int(p.high) + 1), str(10**12)]
    if p.kind == "float":
        return ["nan", "inf", "-inf", f"{p.high * 2 + 1:g}"]
    if p.kind == "multi":
        return ["", ","]
    if p.decode is not None:  # k values, distortion levels
        return ["", "nan", f"0:{MAX_ENTRIES * 10}"]
    if p.kind == "choice" and p.choices:
        return ["no-such-choice"]
    return []


def _declared_cases():
    cases = []
    for spec in EXPERIMENTS:
        for p in params(spec.config):
            cases += [(spec.command, p.cli, value) for value in _bad_values(p)]
    # The noise sources' flags are the same on every run: checked once, on the main one.
    for source in NOISE_SOURCES.values():
        for p in params(source):
            cases += [("classification-images", p.cli, value) for value in _bad_values(p)
                      if ("classification-images", p.cli, value) not in cases]
    return cases


DECLARED_CASES = _declared_cases()


@pytest.mark.parametrize("command, flag, value", DECLARED_CASES,
                         ids=[f"{c} {f} {v!r}" for c, f, v in DECLARED_CASES])
def test_every_declared_param_refuses_values_outside_its_declaration(command, flag, value, tmp_path, capsys):
    out = tmp_path / "s.h5"
    message = refused(run_line(command, f"{flag}={value}", out=out), capsys)
    assert flag in message
    assert not out.exists()


def test_the_generated_lines_cover_every_kind_of_range():
    flags = {(command, flag) for command, flag, _ in DECLARED_CASES}
    for command, flag in [("classification-images", "--samples"), ("classification-images", "--signal-gamma"),
                          ("classification-images", "--estimators"), ("psychometric", "--gammas"),
                          ("psychometric", "--k"), ("robustness", "--fgsm-levels"), ("defence", "--lr"),
                          ("classification-images", "--noise-std")]:
        assert (command, flag) in flags


@pytest.mark.parametrize("argv, flag", [
    (["run", "psychometric", "--target", "99"], "--target"),
    (["run", "psychometric", "--layer", "no-such-layer"], "--layer"),
    (["run", "activation-injection", "--classes", "1,99"], "--classes"),
    (["run", "activation-injection", "--classes", "1,1"], "--classes"),
])
def test_classes_and_layers_outside_the_model_are_refused_before_the_run(argv, flag, tmp_path, capsys):
    out = tmp_path / "s.h5"
    message = refused([*argv, "--out", str(out)], capsys)
    assert flag in message
    assert not out.exists()


@pytest.mark.slow
def test_a_real_wna_process_refuses_a_runaway_k_range_at_once(tmp_path):
    out = tmp_path / "s.h5"
    wna = Path(sys.executable).with_name("wna")
    command = [str(wna)] if wna.exists() else [sys.executable, "-m", "wna_gui.cli"]
    done = subprocess.run([*command, "run", "psychometric", "--k", "0:1000000000", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "--k" in done.stderr
    assert "10,000" in done.stderr and not out.exists()


# --- session loading: check_config ---

@pytest.fixture(scope="module")
def model():
    return load_model("default")


@pytest.mark.parametrize("kind", [spec.kind for spec in EXPERIMENTS])
def test_declared_defaults_pass_their_own_check(kind, model):
    check_config(spec_of(kind).config(), model)


@pytest.mark.parametrize("key, value, words", [
    ("samples", 10**30, ("samples", "2,000,000,000")),
    ("seed", 2**70, ("seed",)),
    ("seed", "7", ("seed", "'7'")),
    ("seed", True, ("seed",)),
    ("signal_gamma", math.nan, ("signal_gamma", "nan")),
    ("estimators", ["hard", "hard"], ("estimators", "once")),
    ("estimators", ["hard", "no-such"], ("estimators", "no-such")),
    ("estimators", "hard", ("estimators", "list")),
    ("weighting", "no-such", ("weighting",)),
    ("noise", {"kind": "gaussian", "std": -1}, ("noise", "std")),
    ("noise", {"kind": "no-such"}, ("noise",)),
    ("noise", "uniform", ("noise",)),
])
def test_a_damaged_config_in_a_session_is_refused_naming_the_setting(key, value, words):
    """Session loading builds configs with config_from_dict: each stored value is checked before it is used."""
    config_cls = spec_of("classification_images").config
    record = {**config_to_dict(config_cls()), key: value}
    with pytest.raises(ValueError) as error:
        config_from_dict(config_cls, record)
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value)


@pytest.mark.parametrize("kind", [spec.kind for spec in EXPERIMENTS])
def test_every_stored_default_config_reads_back(kind):
    config = spec_of(kind).config()
    assert config_from_dict(type(config), config_to_dict(config), config_arrays(config)) == config


@pytest.mark.parametrize("k_values", [[], [0.0, math.inf], list(range(MAX_ENTRIES + 1)), "0:10"])
def test_a_stored_k_list_must_be_finite_and_bounded(k_values):
    config_cls = spec_of("psychometric").config
    with pytest.raises(ValueError, match="setting k_values"):
        config_from_dict(config_cls, {**config_to_dict(config_cls()), "k_values": k_values})


def test_check_config_adds_the_models_classes_and_the_noise_sources_ranges(model):
    far = replace(spec_of("psychometric").config(), target=99)
    check_config(far)  # without the model its classes are unknown
    with pytest.raises(ValueError, match="setting target: unknown target class 99"):
        check_config(far, model)
    sta = spec_of("sta").config()
    with pytest.raises(ValueError, match="setting noise: setting high"):
        check_config(replace(sta, noise=replace(sta.noise, high=1e6)))


# --- the app's forms take their ranges from the same declarations ---

@pytest.mark.parametrize("kind", [spec.kind for spec in EXPERIMENTS])
def test_spin_boxes_take_their_range_from_the_declaration(qtbot, kind, model):
    from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

    from wna_gui.app.forms import SettingsForm

    form = SettingsForm(spec_of(kind).config)
    qtbot.addWidget(form)
    declared = [(p, p.key) for p in params(spec_of(kind).config)]
    if any(p.kind == "noise" for p, _ in declared):
        declared += [(q, f"noise_param:{q.key}") for source in NOISE_SOURCES.values() for q in params(source)]
    checked = 0
    for p, name in declared:
        if p.kind not in ("int", "float"):
            continue
        editor = form._editors[name]
        assert isinstance(editor, QSpinBox if p.kind == "int" else QDoubleSpinBox), name
        below = 10 ** -p.decimals if p.kind == "float" and p.optional else 0  # the "—" (default) slot
        assert (editor.minimum(), editor.maximum()) == pytest.approx((p.low - below, p.high)), name
        checked += 1
    assert checked
    form.set_model(model)
    check_config(form.config(), model)  # what the form gives passes the check session loading makes
