"""Where the app keeps its settings (QSettings), shared by the window and `wna settings`.

Only QtCore: `wna settings --reset` works without a display and without loading
torch. Every key is listed in docs/settings.md.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANIZATION = "wna-gui"
APPLICATION = "wna-gui"


def app_settings() -> QSettings:
    """The user's settings store (an .ini file on Linux, the registry on Windows, a .plist on macOS)."""
    return QSettings(ORGANIZATION, APPLICATION)


def app_settings_file() -> str:
    return app_settings().fileName()


def reset_app_settings(store: QSettings | None = None) -> tuple[str, list[str]]:
    """Remove every key of the store; returns (where it lives, the keys removed). Trusted models live elsewhere
    (core/trust.py) and are untouched."""
    store = store if store is not None else app_settings()
    keys = sorted(store.allKeys())
    store.clear()
    store.sync()
    return store.fileName(), keys
