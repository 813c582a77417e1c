"""The plugin's tab: the base panel gives the settings form, Start, saving and export; this adds one view."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from wna_gui.app.panels.base import Panel


class NoiseVotesPanel(Panel):
    def build_views(self) -> QWidget:
        self.votes_label = QLabel("No run yet.")
        self.votes_label.setObjectName("votes")
        return self.votes_label

    def draw(self, kind: str, snapshot) -> None:
        total = max(int(snapshot.votes.sum()), 1)
        self.votes_label.setText("\n".join(f"{name}: {int(v):,} ({v / total:.1%})"
                                           for name, v in zip(snapshot.class_names, snapshot.votes)))

    def clear_views(self) -> None:
        self.votes_label.setText("No run yet.")


PANEL = NoiseVotesPanel
