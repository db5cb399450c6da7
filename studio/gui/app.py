"""`qstudio` with no arguments (or `qstudio gui`): the window, with the last model (or the demo) opening."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, cast

from studio.core.paths import resources_dir

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

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
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and os.environ.get("QT_QPA_PLATFORM", "") not in ("offscreen", "minimal", "vnc")
    ):
        print(
            "qstudio: no display to open the window on: use `qstudio run` for the headless comparison, "
            "or start the window under a display (xvfb-run qstudio)",
            file=sys.stderr,
        )
        return 2
    app = cast(QApplication, QApplication.instance() or QApplication(argv))
    app.setApplicationName("Quantization Studio")
    app.setOrganizationName("Quantization Studio")
    icon = resources_dir() / "icons" / "qstudio.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    pg.setConfigOptions(antialias=True, foreground="k")
    arguments = argv[1:]
    screenshot = None
    if "--screenshot" in arguments:
        position = arguments.index("--screenshot")
        screenshot = arguments[position + 1]
        del arguments[position : position + 2]
    model = next((a for a in arguments if not a.startswith("-")), None)
    window = create_window(model)
    window.show()
    if screenshot:
        _screenshot_when_ready(window, screenshot, app)
    return int(app.exec())


def _screenshot_when_ready(window: MainWindow, path: str, app: QApplication) -> None:
    """`qstudio gui --screenshot FILE`: once the model is open, save the window and quit; prints how long
    the window took from process start (what the installer's startup check measures)."""
    import time

    import psutil
    from PySide6.QtCore import QTimer

    def capture() -> None:
        window.grab().save(path)
        elapsed = time.time() - psutil.Process().create_time()
        print(
            f"window ready with {window.state.model.name if window.state.model else 'no model'} "
            f"{elapsed:.2f} s after start; screenshot {path}",
            flush=True,
        )
        app.quit()

    window.state.modelChanged.connect(lambda _: QTimer.singleShot(300, capture))
    window.state.modelFailed.connect(lambda *_: QTimer.singleShot(300, capture))
