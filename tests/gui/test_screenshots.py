"""Screenshots of the real window under Xvfb, mid-run and after a run, written to docs/screenshots/."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _xvfb():
    if shutil.which("Xvfb") is None:
        if os.environ.get("QSTUDIO_REQUIRE_XVFB"):
            pytest.fail("Xvfb is required here (CI installs Debian's xvfb)")
        pytest.skip("Debian's xvfb is not installed")
    for display in range(91, 99):
        if not Path(f"/tmp/.X11-unix/X{display}").exists():
            break
    server = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{display}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return server, f":{display}"


def test_screenshots_of_the_window_on_the_demo(tmp_path):
    server, display = _xvfb()
    out = tmp_path / "shots"
    try:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "QSTUDIO_HOME": str(tmp_path / "home")}
        result = subprocess.run([sys.executable, "-m", "tests.gui.capture", str(out)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=900)
    finally:
        server.terminate()
        server.wait()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    from PySide6.QtGui import QColor, QImage

    for name in ("main-window-running.png", "main-window-finished.png", "topk.png", "history.png"):
        image = QImage(str(out / name))
        assert image.width() >= 1400 and image.height() >= 900, name
        colours = {QColor(image.pixel(x, y)).name() for x in range(0, image.width(), 13) for y in range(0, image.height(), 13)}
        assert len(colours) > 30, f"{name} looks blank"
    target = os.environ.get("QSTUDIO_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in out.glob("*.png"):
            shutil.copy(png, Path(target) / png.name)
