"""Settings forms built from an experiment's declared params (core.params): no panel builds its form by hand.

One group box per param group, one row per param, a widget chosen by the
param's kind; noise sources add their own rows, shown for the chosen source.
The form reads and writes three things: widget values (JSON, remembered
between launches), a config (what Start runs) and a config to show (a
restored run's).
"""

from __future__ import annotations

from typing import Any, cast

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.dataset_choices import dataset_field_of
from ..core.noise import NOISE_SOURCES, noise_source
from ..core.params import Param, flatten_noise_params, inactive, params


class _ChecksWidget(QWidget):
    """Rows of check boxes: a "multi" param (an empty selection of classes means every class)."""

    toggled = Signal()
    # More choices wrap onto further rows, so a long list does not widen the settings column:
    # up to this many per row for short labels (fewer for longer labels).
    PER_ROW = 3

    def __init__(self) -> None:
        super().__init__()
        self._boxes: dict = {}
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def set_choices(self, choices: dict) -> None:
        checked = self.value()
        for box in self._boxes.values():
            box.deleteLater()
        self._boxes = {}
        longest = max((len(str(label)) for label in choices.values()), default=0)
        per_row = self.PER_ROW if longest <= 8 else 2 if longest <= 16 else 1
        for value, label in choices.items():
            box = QCheckBox(str(label))
            box.toggled.connect(self.toggled)
            self._layout.addWidget(box, *divmod(len(self._boxes), per_row))
            self._boxes[value] = box
        self.set_value(checked)

    def value(self) -> list:
        return [value for value, box in self._boxes.items() if box.isChecked()]

    def set_value(self, values) -> None:
        for value, box in self._boxes.items():
            box.setChecked(value in values)


class _DataPathEdit(QWidget):
    """A data folder's line edit with a Browse button: a file chooser when the paired dataset choice is ``npz``,
    else a folder chooser (torchvision datasets, a folder of class sub-folders)."""

    textChanged = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.dataset_of = lambda: ""  # the paired choice's current value; set by the form
        self.edit = QLineEdit()
        self.edit.textChanged.connect(self.textChanged)
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setObjectName("browse")
        self.browse.setToolTip("Choose the folder (or, for npz, the file)")
        self.browse.clicked.connect(self._choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)

    def text(self) -> str:
        return self.edit.text()

    def setText(self, text: str) -> None:
        self.edit.setText(text)

    def wants_file(self) -> bool:
        return self.dataset_of() == "npz"

    def _choose(self) -> None:
        if self.wants_file():
            path, _ = QFileDialog.getOpenFileName(self, "Images (.npz with x and y)", self.text(),
                                                  "NumPy archive (*.npz)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Data folder", self.text())
        if path:
            self.setText(path)


def _combo() -> QComboBox:
    """A choice box whose long entries elide instead of widening the settings column."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(12)
    return combo


def _widget(p: Param):
    """The editor of one param and its change signal."""
    if p.kind == "bool":
        check = QCheckBox()
        return check, check.toggled
    if p.kind in ("choice", "noise"):
        return _combo(), None
    if p.kind == "multi":
        widget = _ChecksWidget()
        return widget, widget.toggled
    # The range is the declaration's (every int and float param has one, see core.params), as on the command line.
    if p.kind == "int":
        assert p.low is not None and p.high is not None
        spin = QSpinBox()
        spin.setRange(int(p.low), int(p.high))
        spin.setSingleStep(int(p.step or 1))
        spin.setGroupSeparatorShown(p.high > 100_000 and p.name != "seed")
        return spin, spin.valueChanged
    if p.kind == "float":
        assert p.low is not None and p.high is not None
        box = QDoubleSpinBox()
        box.setDecimals(p.decimals)
        # An optional value shows "—" (None: the default) at the bottom of its range.
        box.setRange(p.low - (10 ** -p.decimals if p.optional else 0), p.high)
        box.setSingleStep(p.step or 0.1)
        if p.optional:
            box.setSpecialValueText("—")
        return box, box.valueChanged
    if p.name.endswith("data_dir"):
        path = _DataPathEdit()
        return path, path.textChanged
    edit = QLineEdit()
    return edit, edit.textChanged


class SettingsForm(QWidget):
    """The form of one config class. ``edited`` fires on any change."""

    edited = Signal()

    def __init__(self, config_cls, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config_cls = config_cls
        self.params = params(config_cls)
        self._model = None
        self._editors: dict[str, QWidget] = {}
        self._rows: dict[str, tuple[QFormLayout, QWidget]] = {}
        self._noise: Param | None = None
        self._noise_params = flatten_noise_params(NOISE_SOURCES.values())
        self.groups: list[QGroupBox] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        boxes: dict[str, QFormLayout] = {}
        for p in self.params:
            if p.group not in boxes:
                group = QGroupBox(p.group)
                self.groups.append(group)
                layout.addWidget(group)
                boxes[p.group] = QFormLayout(group)
            form = boxes[p.group]
            if p.kind == "noise":
                self._noise = p
                self._add_row(form, p, f"noise:{p.key}")
                for source_param in self._noise_params:
                    self._add_row(form, source_param, f"noise_param:{source_param.key}")
                continue
            self._add_row(form, p, p.key)
        self._pair_data_folders()
        self._pending: dict = {}  # values of model-dependent params written before a model gave their choices
        self._fill_static_choices()
        self.set_values(self.default_values())

    def _add_row(self, form: QFormLayout, p: Param, name: str) -> None:
        widget, signal = _widget(p)
        widget.setObjectName(name.replace(":", "_"))
        widget.setToolTip(p.help)
        if signal is not None:
            signal.connect(self._changed)
        elif isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(self._changed)
        form.addRow(p.label if p.kind != "bool" else "", widget)
        if p.kind == "bool":
            widget.setText(p.label)
        self._editors[name] = widget
        self._rows[name] = (form, widget)

    def _pair_data_folders(self) -> None:
        """Each data-folder editor asks its dataset choice (the form's or the noise source's) what to browse for."""
        for group, prefix in ((self.params, ""), (self._noise_params, "noise_param:")):
            by_name = {p.name: p for p in group}
            for p in group:
                choice = dataset_field_of(p.name, by_name)
                editor = self._editors.get(prefix + p.key)
                if choice is not None and isinstance(editor, _DataPathEdit):
                    editor.dataset_of = self._combo(prefix + by_name[choice].key).currentData

    def _fill_static_choices(self) -> None:
        for p in self.params:
            if p.kind == "noise":
                self._set_combo(self._combo(f"noise:{p.key}"), {k: s.label for k, s in NOISE_SOURCES.items()})
                for q in self._noise_params:  # the sources' own choices (their generator)
                    if q.kind == "choice":
                        self._set_combo(self._combo(f"noise_param:{q.key}"), q.choices_for())
            elif p.kind in ("choice", "multi") and p.options is None:
                self._set_choices(p, p.choices_for())

    def _set_choices(self, p: Param, choices: dict) -> None:
        if p.kind == "multi":
            cast(_ChecksWidget, self._editors[p.key]).set_choices(choices)  # a multi param's editor
        else:
            self._set_combo(self._combo(p.key), choices)

    def _combo(self, key: str) -> QComboBox:
        return cast(QComboBox, self._editors[key])  # a choice or noise param's editor (_widget)

    @staticmethod
    def _set_combo(combo: QComboBox, choices: dict) -> None:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for value, label in choices.items():
            combo.addItem(str(label), value)
        index = combo.findData(current)
        combo.setCurrentIndex(index if index >= 0 else 0)
        combo.blockSignals(False)

    def set_model(self, model) -> None:
        """Choices that depend on the model (its classes, its layers)."""
        self._model = model
        for p in self.params:
            if p.options is not None:
                wanted = self._pending.pop(p.key, self._read(p, self._editors[p.key]))
                self._set_choices(p, p.choices_for(model))
                self._write(p, self._editors[p.key], wanted)
        self._changed()

    # --- values ---

    def default_values(self) -> dict:
        return self.values_of(self.config_cls())

    def values_of(self, config) -> dict:
        """Widget values showing ``config``."""
        out: dict[str, Any] = {}
        for p in self.params:
            value = getattr(config, p.name)
            if p.kind == "noise":
                # Every source's editors show their declared defaults, the chosen source its own values.
                out[p.key] = {**{q.key: q.widget_value(q.default) for q in self._noise_params}, **value.to_dict()}
            elif p.kind == "multi":
                out[p.key] = list(value)
            else:
                widget_value = p.widget_value(value)
                out[p.key] = list(widget_value) if isinstance(widget_value, tuple) else widget_value
        return out

    def values(self) -> dict:
        """The widgets' values, JSON-friendly (what is remembered between launches)."""
        out = {}
        for p in self.params:
            if p.kind == "noise":
                noise = {"kind": self._combo(f"noise:{p.key}").currentData()}
                for q in self._noise_params:
                    noise[q.key] = self._read(q, self._editors[f"noise_param:{q.key}"])
                out[p.key] = noise
            else:
                out[p.key] = self._read(p, self._editors[p.key])
        return out

    def set_values(self, values: dict) -> None:
        """Show ``values`` (from values() or values_of()); unknown keys and values are ignored."""
        for p in self.params:
            if p.key not in values:
                continue
            if p.kind == "noise":
                noise = values[p.key] or {}
                combo = self._combo(f"noise:{p.key}")
                index = combo.findData(noise.get("kind"))
                if index >= 0:
                    combo.setCurrentIndex(index)
                for q in self._noise_params:
                    if q.key in noise:
                        self._write(q, self._editors[f"noise_param:{q.key}"], noise[q.key])
            else:
                if p.options is not None and self._model is None:
                    self._pending[p.key] = values[p.key]
                self._write(p, self._editors[p.key], values[p.key])
        self._changed()

    def set_config(self, config) -> None:
        self.set_values(self.values_of(config))

    def config(self):
        """The config the widgets describe; ValueError (one line, naming the setting) when they cannot."""
        values = {}
        for p in self.params:
            if p.kind == "noise":
                kind = self._editors[f"noise:{p.key}"].currentData()
                source_keys = {q.key for q in params(NOISE_SOURCES[kind])}
                given = {q.name: self._read(q, self._editors[f"noise_param:{q.key}"])
                         for q in self._noise_params if q.key in source_keys}
                values[p.name] = noise_source(kind, **given)
                continue
            raw = self._read(p, self._editors[p.key])
            try:
                values[p.name] = tuple(raw) if p.kind == "multi" else p.stored_value(raw)
                p.check(values[p.name], self._model)  # the declared range, as the CLI and session loading check it
            except ValueError as exc:
                raise ValueError(f"{p.label}: {exc}") from None
        return self.config_cls(**values)

    def editor(self, key: str) -> QWidget:
        """The widget of the param stored under ``key`` (for panels that link settings)."""
        return self._editors[key]

    @staticmethod
    def _read(p: Param, widget):
        if p.kind == "bool":
            return widget.isChecked()
        if p.kind in ("choice", "noise"):
            return widget.currentData()
        if p.kind == "multi":
            return widget.value()
        if p.kind in ("int", "float"):
            value = widget.value()
            if p.optional and value == widget.minimum():
                return None
            return value
        return widget.text().strip()

    @staticmethod
    def _write(p: Param, widget, value) -> None:
        if p.kind == "bool":
            widget.setChecked(bool(value))
        elif p.kind == "choice":
            index = widget.findData(value)
            if index >= 0:
                widget.setCurrentIndex(index)
        elif p.kind == "multi":
            widget.set_value(list(value or []))
        elif p.kind in ("int", "float"):
            if value is None:
                if p.optional:
                    widget.setValue(widget.minimum())
                return
            widget.setValue(int(value) if p.kind == "int" else float(value))
        else:
            widget.setText("" if value is None else str(value))

    # --- visibility and locking ---

    def _changed(self, *args) -> None:
        self._update_rows()
        self.edited.emit()

    def _update_rows(self) -> None:
        if self._noise is not None:
            kind = self._combo(f"noise:{self._noise.key}").currentData()
            own = {q.key: q for q in params(NOISE_SOURCES[kind])} if kind in NOISE_SOURCES else {}
            for q in self._noise_params:
                form, widget = self._rows[f"noise_param:{q.key}"]
                shown_if = own[q.key].shown_if if q.key in own else None
                visible = q.key in own and (shown_if is None or self._noise_flag(shown_if))
                form.setRowVisible(widget, visible)
        try:
            ignored = set(inactive(self.config()))
        except (ValueError, TypeError):
            ignored = set()
        for p in self.params:
            if p.kind != "noise":
                self._editors[p.key].setEnabled(p.name not in ignored)

    def _noise_flag(self, name: str) -> bool:
        editor = self._editors.get(f"noise_param:{name}")
        return bool(editor.isChecked()) if isinstance(editor, QCheckBox) else True

    def set_locked(self, locked: bool) -> None:
        for group in self.groups:
            group.setEnabled(not locked)
