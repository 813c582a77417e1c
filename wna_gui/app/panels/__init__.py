"""Experiment panels, derived from the registry: each spec names the panel module that shows it.

A panel module defines ``PANEL``; the main window shows one tab per module, in
the order its experiments first appear in ``core.registry.EXPERIMENTS``.
"""

from __future__ import annotations

from importlib import import_module

from ...core.registry import EXPERIMENTS
from .base import ExportTarget, Panel


def build_panel(name: str) -> Panel:
    """The panel of panel module ``name`` (a spec's ``panel``), given the specs it shows."""
    # a built-in panel by its module here; a plugin's (core.registry) by its full module name
    panel_class = import_module(name if "." in name else f"{__name__}.{name}").PANEL
    panel = panel_class([spec for spec in EXPERIMENTS if spec.panel == name])
    panel.name = name
    return panel


def build_panels() -> list[Panel]:
    """One panel per panel module named by the registry, in the registry's order."""
    return [build_panel(name) for name in dict.fromkeys(spec.panel for spec in EXPERIMENTS)]


__all__ = ["ExportTarget", "Panel", "build_panel", "build_panels"]
