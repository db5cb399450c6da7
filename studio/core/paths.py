"""Where the studio finds its bundled resources and keeps the user's data."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "quantization-studio"


def resources_dir() -> Path:
    """The `resources/` folder: next to the package in a checkout, inside it once installed or bundled."""
    override = os.environ.get("QSTUDIO_RESOURCES")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "resources", package / "resources"):
        if (candidate / "recipes").is_dir():
            return candidate
    return package.parent / "resources"


def data_dir() -> Path:
    """The user's data (history, settings); `QSTUDIO_HOME` moves everything, as tests do."""
    home = os.environ.get("QSTUDIO_HOME")
    path = Path(home) / "data" if home else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Quantized artifacts; safe to delete, they are rebuilt on demand."""
    home = os.environ.get("QSTUDIO_HOME")
    path = Path(home) / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path
