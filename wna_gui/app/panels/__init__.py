"""Experiment panels. Registering a panel is one line: add its class to PANELS.

The main window shows one tab per entry, in this order, and saves each
panel's state in the session under the panel's ``kind``.
"""

from .base import ExportTarget, Panel
from .classification import ClassificationPanel
from .psychometric import PsychometricPanel

PANELS: list[type[Panel]] = [ClassificationPanel, PsychometricPanel]

__all__ = ["PANELS", "ExportTarget", "Panel"]
