"""Sessions are documents people share: opening one never runs code stored in it.

A crafted session whose model is a TorchScript archive that writes a marker
file when it is unpickled (``__setstate__``) and when it runs (``forward``),
through ``torch.from_file(path, True, n)`` as a real attack would. ``wna
info``, ``wna export``, ``--resume`` without trust, File > Open and crash
recovery must write no marker; ``--trust-model <sha256>`` lets the run go on.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch

from wna_gui.cli import main
from wna_gui.core.classification import KIND as CLASSIFICATION
from wna_gui.core.models import MNIST_CLASSES, InputSpec, LoadedModel, UntrustedModelError, load_default
from wna_gui.core.registry import spec_of
from wna_gui.core.runs import resolve_inputs
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.trust import revoke_trust, trusted_models

TINY = {"samples": 400, "batch_size": 200, "seed": 3}


class MarkerNet(torch.nn.Module):
    """A linear classifier whose archive touches ``marker``.setstate when loaded and ``marker``.forward when run."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.randn(10, 784, generator=torch.Generator().manual_seed(0)) * 0.01)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool, torch.Tensor]:
        return (self.marker, self.training, self.weight)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool, torch.Tensor]) -> None:
        self.marker = state[0]
        self.training = state[1]
        # Used in the result, so TorchScript cannot drop the call as dead code.
        self.weight = state[2] + 0.0 * torch.from_file(self.marker + ".setstate", True, 8).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        touched = torch.from_file(self.marker + ".forward", True, 8).sum()
        return x.flatten(1) @ self.weight.t() + 0.0 * touched


def markers(marker: Path) -> list[str]:
    return sorted(p.name for p in marker.parent.glob(marker.name + ".*"))


def marker_model(marker: Path) -> tuple[LoadedModel, bytes]:
    """The crafted model as its author holds it (scripted in memory, never loaded from the archive here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; attackers do not care
        scripted = torch.jit.script(MarkerNet(str(marker)))
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    archive = buffer.getvalue()
    model = LoadedModel("torchscript", "torchscript", scripted, InputSpec((1, 28, 28)), MNIST_CLASSES,
                        archive=archive)
    return model, archive


@pytest.fixture
def crafted(tmp_path):
    """(session path, marker, archive sha256): a half-done classification run on the crafted model."""
    marker = tmp_path / "pwned"
    model, archive = marker_model(marker)
    spec = spec_of(CLASSIFICATION)
    config = spec.config(**TINY)
    experiment = spec.experiment(model, config=config, device="cpu")
    units = iter(experiment.pending())
    experiment.run_unit(next(units))  # the author ran it: it has results to show
    experiment.after_unit()
    path = save_session(Session(model, {CLASSIFICATION: experiment.state}), tmp_path / "shared.h5")
    for made in marker.parent.glob(marker.name + ".*"):
        made.unlink()
    return path, marker, hashlib.sha256(archive).hexdigest()


def test_info_export_and_load_never_run_the_stored_model(crafted, tmp_path, capsys):
    path, marker, sha = crafted
    session = load_session(path)
    assert session.model.sealed and session.model.archive_sha256() == sha
    assert main(["info", str(path)]) == 0
    assert sha in capsys.readouterr().out  # info says which archive this is, so the user can decide
    assert main(["export", str(path), "--out", str(tmp_path / "export")]) == 0
    assert any((tmp_path / "export").iterdir())
    assert markers(marker) == []


def test_resume_refuses_an_untrusted_model_and_names_it(crafted, capsys):
    path, marker, sha = crafted
    before = path.read_bytes()
    assert main(["run", "classification-images", "--resume", str(path), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert sha in error and "--trust-model" in error and "runs code" in error
    assert markers(marker) == []
    assert path.read_bytes() == before  # nothing written either


def test_trust_model_flag_lets_the_run_proceed(crafted):
    path, marker, sha = crafted
    wrong = hashlib.sha256(b"another archive").hexdigest()
    assert main(["run", "classification-images", "--resume", str(path), "--quiet", "--trust-model", wrong]) == 2
    assert markers(marker) == []
    assert main(["run", "classification-images", "--resume", str(path), "--quiet", "--trust-model", sha]) == 0
    assert "pwned.forward" in markers(marker)  # it really ran, because the user said so
    resumed = load_session(path)
    assert resumed.runs[CLASSIFICATION].progress_done == TINY["samples"]
    assert resumed.model.sealed and resumed.model.archive_sha256() == sha  # stored byte for byte, still sealed
    assert trusted_models() == {}  # one command's trust is not remembered


def test_a_torchscript_file_the_user_loads_is_trusted_by_that_act(tmp_path, capsys):
    marker = tmp_path / "mine"
    _, archive = marker_model(marker)
    script = tmp_path / "mine.pt"
    script.write_bytes(archive)
    out = tmp_path / "s.h5"
    code = main(["run", "classification-images", "--model", "torchscript", "--weights", str(script),
                 "--samples", "400", "--batch-size", "200", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    sha = hashlib.sha256(archive).hexdigest()
    assert sha in trusted_models()
    assert load_session(out).model.archive_sha256() == sha  # the session stores the very bytes that were trusted
    assert main(["run", "classification-images", "--resume", str(out), "--samples", "800", "--quiet"]) == 0
    revoke_trust(sha)
    assert main(["run", "classification-images", "--resume", str(out), "--samples", "1200", "--quiet"]) == 2


def test_a_sealed_extra_model_is_loaded_only_on_trust(tmp_path):
    marker = tmp_path / "extra"
    model, archive = marker_model(marker)
    path = save_session(Session(load_default(), models={"student": model}), tmp_path / "s.h5")
    for made in tmp_path.glob("extra.*"):
        made.unlink()
    session = load_session(path)
    assert session.models["student"].sealed
    robustness = spec_of("robustness")
    with pytest.raises(UntrustedModelError, match=hashlib.sha256(archive).hexdigest()):
        resolve_inputs(robustness, session, {"models": "student"})
    assert markers(marker) == []
    _, inputs = resolve_inputs(robustness, session, {"models": "student"},
                               trusted=(hashlib.sha256(archive).hexdigest(),))
    assert not inputs["models"]["student"].sealed
    assert markers(marker) == ["extra.setstate"]


def test_a_sealed_model_cannot_run_even_when_a_caller_forgets_to_check(crafted):
    path, marker, _ = crafted
    session = load_session(path)
    with pytest.raises(UntrustedModelError):
        session.model.pixel_model(torch.zeros(1, 1, 28, 28))
    assert markers(marker) == []


def test_the_app_opens_and_recovers_without_running_the_model_and_asks_before_a_run(crafted, qtbot, tmp_path,
                                                                                   monkeypatch):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMessageBox

    from wna_gui.app.main_window import MainWindow

    path, marker, sha = crafted
    asked = []

    def question(parent, title, text, *args, **kwargs):
        asked.append((title, text))
        return QMessageBox.StandardButton.No if title == "Run code from this file?" else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    window.open_session(path)
    qtbot.waitUntil(lambda: window.model.sealed, timeout=20_000)
    qtbot.waitUntil(lambda: window.panels[0].snapshot is not None, timeout=20_000)  # its stored maps show
    window.start_run()
    assert asked and asked[-1][0] == "Run code from this file?" and sha in asked[-1][1]
    assert "runs code" in asked[-1][1]
    assert not window.engine.running and markers(marker) == []
    # Crash recovery reads the autosave the same way.
    window.autosave_file.parent.mkdir(parents=True, exist_ok=True)
    window.autosave_file.write_bytes(path.read_bytes())
    assert window.offer_recovery()
    qtbot.waitUntil(lambda: window.model.sealed and window.dirty, timeout=20_000)
    assert markers(marker) == []
    assert trusted_models() == {}


def test_trusting_in_the_app_runs_it_remembers_it_and_settings_revoke_it(crafted, qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMessageBox

    from wna_gui.app.dialogs import TrustedModelsDialog
    from wna_gui.app.main_window import MainWindow

    path, marker, sha = crafted
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args, **kwargs: QMessageBox.StandardButton.Yes))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    window.open_session(path)
    qtbot.waitUntil(lambda: window.model.sealed and window.panels[0].snapshot is not None, timeout=20_000)
    with qtbot.waitSignal(window.engine.run_finished, timeout=90_000):
        window.start_run()
    assert not window.model.sealed and "pwned.forward" in markers(marker)
    assert sha in trusted_models()
    dialog = TrustedModelsDialog(window)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 3).text() == sha
    dialog.table.selectRow(0)
    dialog.revoke_selected()
    assert trusted_models() == {} and dialog.table.rowCount() == 0
