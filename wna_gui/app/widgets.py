"""Small settings-widget builders shared by the panels."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox


def double_spin(low: float, high: float, step: float, decimals: int = 3) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    return box


def int_spin(low: int, high: int, step: int = 1) -> QSpinBox:
    """An integer box showing thousands separators (sample budgets run to the millions)."""
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setGroupSeparatorShown(True)
    return box


def combo_box(items: dict) -> QComboBox:
    """A combo box of {data: label}."""
    box = QComboBox()
    for data, label in items.items():
        box.addItem(label, data)
    return box


def select_data(box: QComboBox, data) -> None:
    """Select the entry holding ``data``; unknown data leaves the selection as it is."""
    index = box.findData(data)
    if index >= 0:
        box.setCurrentIndex(index)
