"""`qstudio` with no arguments (or `qstudio gui`): the window, with the last model (or the demo) opening."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, cast

from studio.core.paths import resources_dir

if TYPE_CHECKING:
    from studio.gui.qt_main_window import MainWindow


def create_window(model: str | None = None, nvml: Any = None) -> MainWindow:
    """The main window over a fresh state; opens `model`, the last model, or the demo. `nvml` is for tests."""
    from studio.core.engine import default_store
    from studio.core.hardware import probe
    from studio.gui.qt_main_window import MainWindow
    from studio.gui.qt_state import StudioState, settings

    state = StudioState(probe(nvml), nvml=nvml)
    window = MainWindow(state, default_store())
    last = settings().value("last_model")
    target = model or (last if isinstance(last, str) and (last == "demo" or os.path.exists(last)) else "demo")
    state.open_model(target)
    return window


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyqtgraph as pg
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    argv = sys.argv if argv is None else argv
    app = cast(QApplication, QApplication.instance() or QApplication(argv))
    app.setApplicationName("Quantization Studio")
    app.setOrganizationName("Quantization Studio")
    icon = resources_dir() / "icons" / "qstudio.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    pg.setConfigOptions(antialias=True, foreground="k")
    model = next((a for a in argv[1:] if not a.startswith("-")), None)
    window = create_window(model)
    window.show()
    return int(app.exec())
