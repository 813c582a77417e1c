"""What every panel owes its declarations, checked for every panel and every registry kind.

Panels are built from the experiments' declarations (core.registry); these
tests hold each one to the contract, so a new experiment or panel is checked
without writing its own tests: settings survive being remembered (in memory
and through a window's close and relaunch), every declared artefact is offered
in File > Export and written by the same writer as `wna export`, a restored
run's settings are shown as they were, and the forms' defaults are the
declared ones.
"""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from wna_gui.app.main_window import MainWindow
from wna_gui.app.panels import build_panel, build_panels
from wna_gui.core.noise import NOISE_SOURCES, noise_source
from wna_gui.core.registry import EXPERIMENTS, spec_of
from wna_gui.core.runs import export_run

import smoke
from smoke import tiny_run

KINDS = [spec.kind for spec in EXPERIMENTS]
PANEL_NAMES = list(dict.fromkeys(spec.panel for spec in EXPERIMENTS))
# A non-default view per panel module, where the panel has view options.
OTHER_VIEWS = {"classification": {"map_view": "mean"}, "psychometric": {"view": "psychometric_grid"},
               "template_classifier": {"view": "confusion"},
               "robustness": {"tab": "kappa", "distortion": "blur", "level": 1},
               "adversarial": {"view": "backdoor", "target": 1},
               "sample_complexity": {"stimulus": "gabor-pca", "estimator": "logit"},
               "sta": {"tab": "stc", "filters": "zmap", "scale": "shared", "unit": 3, "map_layer": "fc1"}}
# Other valid texts than the defaults.
TEXTS = {"participant": "P02", "k_values": "0, 3", "data_dir": "/nowhere/data", "position": "5,5",
         "noise_levels": "0, 0.2", "blur_levels": "0, 1", "fgsm_levels": "0, 0.1", "ifgsm_levels": "0, 0.1"}
OTHER_NOISE = {"kind": "gaussian", "mean": 0.4, "std": 0.3, "clip": True, "low": 0.1, "high": 0.9}
DATA_SUFFIXES = (".csv", ".npy", ".npz")  # byte-for-byte reproducible (figures carry dates and ids)


@pytest.fixture(scope="module")
def model():
    return smoke.model()


def set_up(qtbot, panel, model):
    """A panel as the main window sets it up: given the model."""
    qtbot.addWidget(panel)
    panel.restore({}, model)
    return panel


@pytest.fixture
def panels(qtbot, model):
    """Every panel, built from the registry."""
    return [set_up(qtbot, panel, model) for panel in build_panels()]


@pytest.fixture
def panel_named(qtbot, model):
    """name → a new panel of that panel module (only the panels a test needs are built)."""
    built = []  # the test owns them: a panel without a parent lives as long as a reference to it

    def build(name):
        built.append(set_up(qtbot, build_panel(name), model))
        return built[-1]

    return build


@pytest.fixture
def panel_showing(panel_named):
    """kind → a new panel of the module that shows that kind."""
    return lambda kind: panel_named(spec_of(kind).panel)


def other_value(p, current, model):
    """A valid widget value of param ``p`` other than ``current``, from its declaration alone."""
    if p.kind == "noise":
        return dict(OTHER_NOISE)
    if p.kind == "bool":
        return not current
    if p.kind == "choice":
        return [value for value in p.choices_for(model) if value != current][-1]
    if p.kind == "multi":
        options = list(p.choices_for(model))
        return options[1:3] if list(current) != options[1:3] else options[:1]
    if p.kind == "int":
        return current + 1 if p.high is None or current + 1 <= p.high else current - 1
    if p.kind == "float":
        return 0.05 if current is None else round(current + (p.step or 0.1), p.decimals)
    return TEXTS.get(p.key, "other text")


def other_settings(panel, model) -> dict:
    """Every setting of every form of ``panel`` changed (a valid config each), and another view."""
    forms = {}
    for kind, form in panel.forms.items():
        current = form.values()
        forms[kind] = {p.key: other_value(p, current[p.key], model) for p in form.params}
    return {"forms": forms, "view": OTHER_VIEWS.get(panel.name, {})}


def test_every_kind_is_shown_by_exactly_one_panel(panels):
    assert [panel.name for panel in panels] == PANEL_NAMES
    for spec in EXPERIMENTS:
        (showing,) = [panel for panel in panels if spec.kind in panel.specs]
        assert showing.name == spec.panel and set(showing.forms) == set(showing.specs)


@pytest.mark.parametrize("name", PANEL_NAMES)
def test_settings_survive_being_applied_to_a_new_panel(panel_named, model, name):
    panel = panel_named(name)
    defaults = panel.settings()
    panel.apply_settings(other_settings(panel, model))
    saved = panel.settings()
    for kind, values in saved["forms"].items():
        changed = [key for key in values if values[key] != defaults["forms"][kind][key]]
        assert changed == list(values), f"{kind}: not every setting took a new value"
        panel.forms[kind].config()  # valid
    if defaults["view"]:
        assert saved["view"] != defaults["view"], f"add a non-default view of panel {name!r} to OTHER_VIEWS"
    # JSON, as the window remembers them.
    saved = json.loads(json.dumps(saved))

    fresh = panel_named(name)
    fresh.apply_settings(saved)
    assert fresh.settings() == saved
    assert fresh.active_kind() == panel.active_kind()
    for kind, form in fresh.forms.items():
        assert form.config() == panel.forms[kind].config()


def test_settings_survive_closing_and_relaunching_the_window(qtbot, tmp_path, monkeypatch, model):
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard))
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)

    def launch():
        window = MainWindow(settings=store, data_dir=tmp_path / "appdata", model=model)
        qtbot.addWidget(window)
        window.show()
        return window

    first = launch()
    for panel in first.panels:
        panel.apply_settings(other_settings(panel, model))
    saved = {panel.name: panel.settings() for panel in first.panels}
    configs = {kind: form.config() for panel in first.panels for kind, form in panel.forms.items()}
    first.tabs.setCurrentIndex(first.tabs.count() - 1)
    assert first.close()

    second = launch()
    assert {panel.name: panel.settings() for panel in second.panels} == saved
    assert {kind: form.config() for panel in second.panels for kind, form in panel.forms.items()} == configs
    assert second.tabs.currentIndex() == second.tabs.count() - 1
    assert second.close()


@pytest.mark.parametrize("kind", KINDS)
def test_export_offers_every_declared_artefact(panel_showing, kind):
    panel = panel_showing(kind)
    labels = [target.label for target in panel.export_targets()]
    assert len(labels) == len(set(labels)), "two export targets share a label"
    for artefact in spec_of(kind).artefacts:
        assert artefact.label in labels
        target = next(target for target in panel.export_targets() if target.label == artefact.label)
        assert target.suffixes == artefact.suffixes


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_restored_run_shows_its_settings_and_exports_as_wna_export(panel_showing, model, tmp_path, kind):
    spec, state = spec_of(kind), tiny_run(kind)[0]
    panel = panel_showing(kind)
    panel.restore({kind: state}, model)
    assert panel.session_states() == {kind: state} and panel.session_states()[kind] is state
    assert panel.active_kind() == kind
    assert panel.forms[kind].config() == state.config
    assert "complete" in panel.plan_label.text()
    for shown_kind, snapshot in panel.preview_factory(model)():  # what the window does, in its engine thread
        panel.show_snapshot(snapshot, shown_kind)
    assert panel.snapshots[kind] is not None

    cli_files = {path.name: path for path in export_run(spec, spec.snapshot(state, model), tmp_path / "cli")}
    (tmp_path / "app").mkdir()
    for artefact in spec.artefacts:
        target = next(target for target in panel.export_targets() if target.label == artefact.label)
        for suffix in artefact.suffixes:
            path = tmp_path / "app" / f"{artefact.name}{suffix}"
            target.write(path)
            assert path.stat().st_size > 0
            if suffix in DATA_SUFFIXES:
                assert path.read_bytes() == cli_files[path.name].read_bytes(), f"{artefact.label} ({suffix})"

    panel.restore({}, model)
    assert panel.session_states() == {} and panel.snapshots == {}


@pytest.mark.parametrize("kind", KINDS)
def test_default_widget_values_are_the_declared_defaults(panel_showing, kind):
    """Defaults live in the config dataclass only: a form left alone describes ``spec.config()``."""
    panel, spec = panel_showing(kind), spec_of(kind)
    assert panel.forms[kind].config() == spec.config()
    assert "Invalid" not in panel.plan_text()


@pytest.mark.parametrize("noise_kind", list(NOISE_SOURCES))
@pytest.mark.parametrize("kind", [spec.kind for spec in EXPERIMENTS
                                  if any(p.kind == "noise" for p in spec.params())])
def test_choosing_a_noise_source_gives_its_declared_defaults(panel_showing, kind, noise_kind):
    form = panel_showing(kind).forms[kind]
    form.set_config(spec_of(kind).config())
    (noise,) = [p for p in form.params if p.kind == "noise"]
    form.set_values({noise.key: {"kind": noise_kind}})
    assert getattr(form.config(), noise.name) == noise_source(noise_kind)
