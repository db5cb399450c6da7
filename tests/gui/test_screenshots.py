"""Screenshots of the real window under Xvfb, mid-run and after a run, written to docs/screenshots/."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.xvfb import xvfb

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _require_xvfb() -> None:
    if shutil.which("Xvfb") is None:
        if os.environ.get("QSTUDIO_REQUIRE_XVFB"):
            pytest.fail("Xvfb is required here (CI installs Debian's xvfb)")
        pytest.skip("Debian's xvfb is not installed")


def test_screenshots_of_the_window_on_the_demo(tmp_path):
    _require_xvfb()
    out = tmp_path / "shots"
    with xvfb(91) as display:
        env = {
            **os.environ,
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            "QSTUDIO_HOME": str(tmp_path / "home"),
        }
        result = subprocess.run(
            [sys.executable, "-m", "tests.gui.capture", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    from PySide6.QtGui import QColor, QImage

    from tests.gui.capture import SHOTS

    for name in SHOTS:
        image = QImage(str(out / name))
        if name == "export-done.png":  # the verdicts' message box, not the window
            assert image.width() >= 300 and image.height() >= 150, name
        else:
            assert image.width() >= 1400 and image.height() >= 900, name
        colours = {
            QColor(image.pixel(x, y)).name()
            for x in range(0, image.width(), 13)
            for y in range(0, image.height(), 13)
        }
        assert len(colours) > (8 if name == "export-done.png" else 30), f"{name} looks blank"
    target = Path(os.environ.get("QSTUDIO_SCREENSHOTS") or ROOT / "docs" / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    for png in out.glob("*.png"):
        shutil.copy(png, target / png.name)


@pytest.mark.xdist_group("demo-llm")
def test_screenshots_of_the_window_on_the_language_model_demo(tmp_path, studio_home):
    """demo-llm in the real window: its run, LLM charts, prompts with continuations, a typed prompt.

    Uses the session's artifact cache (the slow demo-llm tests leave the dequantized model and the ONNX
    export there), with its own settings file."""
    _require_xvfb()
    out = tmp_path / "shots"
    with xvfb(92) as display:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "QSTUDIO_HOME": str(studio_home)}
        result = subprocess.run(
            [sys.executable, "-m", "tests.gui.capture_llm", str(out), "demo-llm", "--passages", "12", "--prompts", "5",
             "--decode-tokens", "24",
             # the INT4 recipe the slow demo-llm tests build too (in the shared cache); not HQQ: its float zero
             # points have no fast kernel on an AVX2-only CPU, where it alone took minutes of this test
             "--recipes", "llm-ort-int4"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    from PySide6.QtGui import QImage

    from tests.gui.capture_llm import SHOTS

    for name in SHOTS:
        image = QImage(str(out / name))
        assert image.width() >= 1400 and image.height() >= 900, name
    target = Path(os.environ.get("QSTUDIO_SCREENSHOTS") or ROOT / "docs" / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    for png in out.glob("*.png"):
        shutil.copy(png, target / png.name)
