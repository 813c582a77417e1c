"""Install a desktop entry and icon for the current user (freedesktop menus: GNOME, KDE, Xfce…).

`wna-gui --install-desktop-entry` writes the bundled wna-gui.desktop (with the
installed `wna-gui` command's full path filled in) to $XDG_DATA_HOME/applications and the
icon to $XDG_DATA_HOME/icons/hicolor/scalable/apps; nothing system-wide.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..core.resources import resource_path

def install_desktop_entry(data_home: str | Path | None = None) -> list[Path]:
    """Write the entry and the icon; returns the paths written."""
    data_home = Path(data_home or os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    if getattr(sys, "frozen", False):  # the app bundle (packaging/build_app.py): its own executable
        command = sys.executable
    else:
        command = shutil.which("wna-gui") or f"{sys.executable} -m wna_gui"
    entry = data_home / "applications" / "wna-gui.desktop"
    icon = data_home / "icons" / "hicolor" / "scalable" / "apps" / "wna-gui.svg"
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    template = resource_path("wna-gui.desktop").read_text()
    entry.write_text(template.replace("Exec=wna-gui ", f"Exec={command} "))
    shutil.copyfile(resource_path("wna-gui.svg"), icon)
    return [entry, icon]
