"""Dialogs: choosing a model and exporting. They collect choices; the window does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.models import ZOO, parse_class_names, parse_numbers
from ..core.trust import revoke_trust, trusted_models
from ..figures.page import DPI_CHOICES, WIDTH_PRESETS_MM, FigureSize, figure_size, sized
from .worker import describe_error

MODEL_SOURCES = {
    "zoo": "Zoo model + weights file",
    "exported": "torch.export program (.pt2)",
    "torchscript": "TorchScript file",
    "torchvision": "torchvision model",
}
WEIGHTS_FILTER = "PyTorch weights (*.pt *.pth *.bin);;All files (*)"


class ExportTarget:
    """Something a panel can export; ``write(path)`` picks the format from the path's suffix."""

    def __init__(self, label: str, suffixes: tuple[str, ...], write: Callable[[Path], object]) -> None:
        self.label, self.suffixes, self.write = label, suffixes, write


class _FileField(QWidget):
    def __init__(self, caption: str, file_filter: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(caption, file_filter))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self, caption: str, file_filter: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, caption, self.edit.text(), file_filter)
        if path:
            self.edit.setText(path)

    def path(self) -> str:
        return self.edit.text().strip()


def _shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in parse_numbers(text, "the input shape"))
    if len(shape) != 3:
        raise ValueError(f"the input shape needs 3 numbers (channels, height, width), got {len(shape)}")
    return shape


class ModelDialog(QDialog):
    """Describes a model for ``core.models.load_model``; loading itself happens in the engine thread."""

    def __init__(self, source: str = "zoo", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a model")
        self.source = QComboBox()
        for key, label in MODEL_SOURCES.items():
            self.source.addItem(label, key)
        pages = QStackedWidget()
        self.source.currentIndexChanged.connect(lambda _: pages.setCurrentIndex(
            list(MODEL_SOURCES).index(self.source.currentData())))

        self.zoo_architecture = QComboBox()
        for name, arch in ZOO.items():
            self.zoo_architecture.addItem(f"{name}: {arch.description}", name)
        self.zoo_weights = _FileField("Weights file", WEIGHTS_FILTER)
        zoo = QWidget()
        form = QFormLayout(zoo)
        form.addRow("Architecture", self.zoo_architecture)
        form.addRow("Weights (state_dict)", self.zoo_weights)
        pages.addWidget(zoo)

        self.export_file = _FileField("torch.export program", "torch.export programs (*.pt2);;All files (*)")
        self.export_shape = QLineEdit()
        self.export_shape.setPlaceholderText("optional (default: the shape it was exported with)")
        exported = QWidget()
        form = QFormLayout(exported)
        form.addRow("File", self.export_file)
        form.addRow("Input shape C, H, W", self.export_shape)
        pages.addWidget(exported)

        self.script_file = _FileField("TorchScript model", "TorchScript (*.pt *.pth *.ts);;All files (*)")
        self.script_shape = QLineEdit("1, 28, 28")
        script = QWidget()
        form = QFormLayout(script)
        form.addRow("File", self.script_file)
        form.addRow("Input shape C, H, W", self.script_shape)
        pages.addWidget(script)

        self.vision_name = QComboBox()
        self.vision_name.setEditable(True)
        self.vision_name.addItems(_torchvision_models())
        self.vision_weights = _FileField("Weights file", WEIGHTS_FILTER)
        self.vision_download = QCheckBox("download the pretrained weights (needs internet)")
        vision = QWidget()
        form = QFormLayout(vision)
        form.addRow("Model", self.vision_name)
        form.addRow("Weights (state_dict)", self.vision_weights)
        self.vision_size = QLineEdit("224")
        form.addRow("", self.vision_download)
        form.addRow("Input size (square)", self.vision_size)
        pages.addWidget(vision)

        # Every source: empty fields keep the model's own (the same flags on the command line).
        self.script_classes = QLineEdit()
        self.script_classes.setPlaceholderText("optional, comma-separated (default: the model's own, else 0, 1, …)")
        self.script_mean, self.script_std = QLineEdit(), QLineEdit()
        self.script_mean.setPlaceholderText("optional, e.g. 0.485, 0.456, 0.406 (default: the model's own)")
        self.script_std.setPlaceholderText("optional, e.g. 0.229, 0.224, 0.225 (default: the model's own)")
        common = QWidget()
        form = QFormLayout(common)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Class names", self.script_classes)
        form.addRow("Normalise: mean", self.script_mean)
        form.addRow("Normalise: std", self.script_std)

        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source)
        layout.addWidget(pages)
        layout.addWidget(common)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.source.setCurrentIndex(max(0, self.source.findData(source)))
        self.resize(560, 0)

    def entries(self) -> dict:
        """What the user typed and chose, to offer again next time (also after a failed load)."""
        return {"source": self.source.currentData(), "zoo_architecture": self.zoo_architecture.currentData(),
                "zoo_weights": self.zoo_weights.path(), "script_file": self.script_file.path(),
                "script_shape": self.script_shape.text(), "script_classes": self.script_classes.text(),
                "script_mean": self.script_mean.text(), "script_std": self.script_std.text(),
                "vision_name": self.vision_name.currentText(), "vision_weights": self.vision_weights.path(),
                "vision_download": self.vision_download.isChecked(), "vision_size": self.vision_size.text(),
                "export_file": self.export_file.path(), "export_shape": self.export_shape.text()}

    def set_entries(self, entries: dict, source: str | None = None) -> None:
        """Fill the fields from ``entries()`` of an earlier dialog; ``source`` picks the page shown."""
        for name in ("script_shape", "script_classes", "script_mean", "script_std", "vision_size", "export_shape"):
            if isinstance(entries.get(name), str):
                getattr(self, name).setText(entries[name])
        for name in ("zoo_weights", "script_file", "vision_weights", "export_file"):
            if isinstance(entries.get(name), str):
                getattr(self, name).edit.setText(entries[name])
        index = self.zoo_architecture.findData(entries.get("zoo_architecture"))
        if index >= 0:
            self.zoo_architecture.setCurrentIndex(index)
        if entries.get("vision_name"):
            self.vision_name.setCurrentText(str(entries["vision_name"]))
        self.vision_download.setChecked(bool(entries.get("vision_download", False)))
        index = self.source.findData(source or entries.get("source"))
        if index >= 0:
            self.source.setCurrentIndex(index)

    def request(self) -> tuple[str, str | None, dict]:
        """(spec, weights, keyword arguments) for load_model; ValueError if something is missing or malformed.
        Each keyword has a `wna` model flag (cli._model_words writes them back)."""
        source = self.source.currentData()
        options: dict = {}
        if self.script_classes.text().strip():
            options["class_names"] = parse_class_names(self.script_classes.text())
        if self.script_mean.text().strip():
            options["mean"] = parse_numbers(self.script_mean.text(), "the mean")
        if self.script_std.text().strip():
            options["std"] = parse_numbers(self.script_std.text(), "the std", positive=True)
        if source == "zoo":
            if not self.zoo_weights.path():
                raise ValueError("choose the weights file of the zoo model")
            return self.zoo_architecture.currentData(), self.zoo_weights.path(), options
        if source == "exported":
            if not self.export_file.path():
                raise ValueError("choose the .pt2 file (torch.export.save)")
            if self.export_shape.text().strip():
                options["input_shape"] = _shape(self.export_shape.text())
            return "exported", self.export_file.path(), options
        if source == "torchscript":
            if not self.script_file.path():
                raise ValueError("choose the TorchScript file")
            return "torchscript", self.script_file.path(), {**options, "input_shape": _shape(self.script_shape.text())}
        name = self.vision_name.currentText().strip()
        if not name:
            raise ValueError("name the torchvision model")
        size = parse_numbers(self.vision_size.text() or "224", "the input size", positive=True)
        if len(size) != 1 or size[0] != int(size[0]):
            raise ValueError(f"the input size must be one whole number of pixels, got {self.vision_size.text()!r}")
        if int(size[0]) != 224:
            options["input_size"] = int(size[0])
        return f"torchvision:{name}", self.vision_weights.path() or None, \
            {**options, "download": self.vision_download.isChecked()}

    def accept(self) -> None:
        try:
            self.request()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        super().accept()


def _torchvision_models() -> list[str]:
    try:
        import torchvision

        return sorted(torchvision.models.list_models(module=torchvision.models))
    except Exception:  # the dialog still takes a typed name; loading reports the real problem
        return []


class ExportDialog(QDialog):
    """Pick what to export, the format and the file; writes it and reports errors inline."""

    exported = Signal(Path)

    def __init__(self, targets: list[ExportTarget], directory: str, parent: QWidget | None = None,
                 stem: str = "", size: FigureSize | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._targets = targets
        self._stem = stem or "wna"
        self.target = QComboBox()
        for target in targets:
            self.target.addItem(target.label)
        self.format = QComboBox()
        self.path = _FileField("Export to", "All files (*)")
        self.path.edit.setText(str(Path(directory) / self._suggested_name(0)))
        size = size or figure_size()
        self.width_preset = QComboBox()
        self.width_preset.setObjectName("width_preset")
        for name, mm in WIDTH_PRESETS_MM.items():
            self.width_preset.addItem(f"{name} ({mm:g} mm)", mm)
        self.width_preset.addItem("other width", None)
        self.width_mm = QDoubleSpinBox()
        self.width_mm.setObjectName("width_mm")
        self.width_mm.setRange(20.0, 600.0)
        self.width_mm.setDecimals(0)
        self.width_mm.setSuffix(" mm")
        self.width_mm.setValue(size.width_mm)
        self.width_mm.setToolTip("Width of the figure on paper; text is set at 8 pt for this width")
        self.dpi = QComboBox()
        self.dpi.setObjectName("dpi")
        for dpi in DPI_CHOICES:
            self.dpi.addItem(f"{dpi} dpi", dpi)
        self.dpi.setCurrentIndex(max(0, self.dpi.findData(size.dpi)))
        self.dpi.setToolTip("Resolution of PNG files (PDF and SVG are vector graphics at the chosen width)")
        self._show_preset(size.width_mm)
        self.width_preset.currentIndexChanged.connect(self._preset_chosen)
        self.width_mm.valueChanged.connect(self._show_preset)
        width_row = QHBoxLayout()
        width_row.addWidget(self.width_preset, 1)
        width_row.addWidget(self.width_mm)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        self.error.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Export", self.target)
        form.addRow("Format", self.format)
        form.addRow("Figure width", width_row)
        form.addRow("PNG resolution", self.dpi)
        form.addRow("File", self.path)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Save).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.target.currentIndexChanged.connect(self._target_changed)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._target_changed(0)
        self.resize(560, 0)

    def _suggested_name(self, index: int) -> str:
        """session_target, e.g. "digits_psychometric-curves-plot" (the suffix follows the format)."""
        label = self._targets[index].label.split(":")[0].split("(")[0] if self._targets else "export"
        slug = "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())[:40]
        return f"{self._stem}_{slug}"

    def figure_size(self) -> FigureSize:
        return FigureSize(self.width_mm.value(), int(self.dpi.currentData()))

    def _preset_chosen(self) -> None:
        if self.width_preset.currentData() is not None:
            self.width_mm.setValue(self.width_preset.currentData())

    def _show_preset(self, mm: float) -> None:
        index = self.width_preset.findData(float(mm))
        self.width_preset.blockSignals(True)
        self.width_preset.setCurrentIndex(index if index >= 0 else self.width_preset.count() - 1)
        self.width_preset.blockSignals(False)

    def _target_changed(self, index: int) -> None:
        self.format.clear()
        self.format.addItems(list(self._targets[index].suffixes))
        folder = Path(self.path.path()).parent if self.path.path() else Path.home()
        self.path.edit.setText(str(folder / (self._suggested_name(index) + self.format.currentText())))

    def _format_changed(self) -> None:
        if self.format.currentText() and self.path.path():
            self.path.edit.setText(str(Path(self.path.path()).with_suffix(self.format.currentText())))

    def destination(self) -> Path:
        return Path(self.path.path()).with_suffix(self.format.currentText())

    def accept(self) -> None:
        path = self.destination()
        if path.exists() and QMessageBox.question(
                self, "Replace file?", f"{path.name} already exists in {path.parent}. Replace it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel) != QMessageBox.StandardButton.Yes:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with sized(self.figure_size()):
                self._targets[self.target.currentIndex()].write(path)
        except Exception as exc:
            self.error.setText(describe_error(exc)[0])
            return
        self.exported.emit(path)
        super().accept()


def trust_question(model) -> str:
    """The trust question's text: which model, where from, its sha256, and what loading it means."""
    source = f"embedded in {model.origin}" if model.stored_sha256 is not None else \
        f"the file {model.weights_path}, referenced by {model.origin}"
    shape = "×".join(str(size) for size in model.input_spec.shape)
    return (f"{model.label[:1].upper()}{model.label[1:]} (input {shape}, {model.n_classes} classes) is a "
            f"TorchScript model, {source}.\n\n"
            f"sha256: {model.archive_sha256()}\n\n"
            "Loading it runs code stored in the file, with your permissions: it can read, write or delete your "
            "files. Trust it only if you trust whoever made the file. Trusting remembers this exact file (by its "
            "sha256) until you revoke it in Settings > Trusted models.")


class TrustedModelsDialog(QDialog):
    """Settings > Trusted models: every remembered trust (core/trust.py), with Revoke."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Trusted models")
        layout = QVBoxLayout(self)
        intro = QLabel("TorchScript models you trusted or loaded yourself. Opening a session never runs a model; "
                       "running one needs its sha256 here (or --trust-model on the command line).")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Name", "Origin", "Trusted (UTC)", "sha256"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.revoke_button = buttons.addButton("Revoke", QDialogButtonBox.ButtonRole.ActionRole)
        self.revoke_button.setToolTip("Forget the trust of the selected models: running them will ask again")
        self.revoke_button.clicked.connect(self.revoke_selected)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(960, 320)  # the full sha256 fits
        self.refresh()

    def refresh(self) -> None:
        entries = trusted_models()
        self.table.setRowCount(len(entries))
        for row, (sha, entry) in enumerate(sorted(entries.items(), key=lambda item: item[1].get("trusted", ""))):
            for column, text in enumerate((entry.get("name", ""), entry.get("origin", ""),
                                           str(entry.get("trusted", "")).replace("T", " ").split("+")[0], sha)):
                item = QTableWidgetItem(str(text))
                item.setToolTip(str(text))
                self.table.setItem(row, column, item)
        self.revoke_button.setEnabled(bool(entries))

    def revoke_selected(self) -> None:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        for row in rows:
            sha_item = self.table.item(row, 3)
            assert sha_item is not None  # refresh() fills every cell of every row
            revoke_trust(sha_item.text())
        self.refresh()
