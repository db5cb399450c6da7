"""The installers, for real: build the bundle and the .deb, install it with apt, start it under Xvfb, run
it, upgrade it, remove it; and compile the Windows NSIS script against a dummy payload.

Marked `installer` (CI runs them: .ci/run sets QSTUDIO_REQUIRE_INSTALLER). The .deb test needs root and
apt; QSTUDIO_DEB=path reuses a package built before instead of building one.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.xvfb import xvfb

pytestmark = pytest.mark.installer
ROOT = Path(__file__).resolve().parents[2]


def _require(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("QSTUDIO_REQUIRE_INSTALLER"):
            pytest.fail(why)
        pytest.skip(why)


def test_nsis_script_compiles(tmp_path):
    makensis = shutil.which("makensis")
    _require(makensis is not None, "Debian's nsis (makensis) is not installed")
    payload = tmp_path / "payload"
    (payload / "_internal").mkdir(parents=True)
    (payload / "qstudio.exe").write_bytes(b"MZ dummy payload")
    (payload / "_internal" / "base_library.zip").write_bytes(b"dummy")
    out = tmp_path / "setup.exe"
    result = subprocess.run(
        [makensis, "-V2", "-DVERSION=9.9.9", f"-DPAYLOAD={payload}", f"-DOUTFILE={out}",
         str(ROOT / "packaging" / "windows" / "installer.nsi")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.stat().st_size > 30_000 and out.read_bytes()[:2] == b"MZ"


def _run(*command, env=None, timeout=600, check=True):
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=check)


def test_deb_installs_starts_upgrades_and_removes_cleanly(tmp_path):
    _require(os.geteuid() == 0 and shutil.which("apt-get") is not None, "needs root and apt to install a .deb")
    _require(shutil.which("Xvfb") is not None, "needs Debian's xvfb")
    build = tmp_path / "build"
    deb = os.environ.get("QSTUDIO_DEB")
    if deb:
        first = Path(deb)
        bundle_build = first.parent
    else:
        env = {**os.environ, "QSTUDIO_BUILD": str(build)}
        _run(str(ROOT / "packaging" / "build.sh"), env=env, timeout=1800)
        first = next(build.glob("quantization-studio_*_amd64.deb"))
        bundle_build = build
    version = re.search(r"_(\d+\.\d+\.\d+)_", first.name).group(1)
    newer = ".".join([*version.split(".")[:2], str(int(version.split(".")[2]) + 1)])
    _run(str(ROOT / "packaging" / "build.sh"), "--deb-only", newer, env={**os.environ, "QSTUDIO_BUILD": str(bundle_build)})
    second = bundle_build / f"quantization-studio_{newer}_amd64.deb"

    _run("apt-get", "install", "-y", "-qq", str(first), timeout=900)
    try:
        for path in ("/opt/quantization-studio/qstudio", "/usr/bin/qstudio",
                     "/usr/share/applications/quantization-studio.desktop",
                     "/usr/share/icons/hicolor/scalable/apps/quantization-studio.svg"):
            assert Path(path).exists(), path
        home = tmp_path / "home"
        home.mkdir()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}  # a plain user, nothing of ours
        version_out = _run("qstudio", "--version", env=env).stdout
        assert version_out.startswith(f"Quantization Studio {version}") and "onnxruntime" in version_out
        assert f"user data: {home}/.local/share/quantization-studio" in version_out
        probe = json.loads(_run("qstudio", "probe", "--json", env=env).stdout)
        assert probe["hardware"]["gpu_status"].startswith(("ok", "not available"))
        assert any(r["recipe"] == "ort-int8-dynamic" and r["available"] for r in probe["recipes"])

        shot = tmp_path / "installed-window.png"
        with xvfb(81) as display:
            started = time.monotonic()
            out = _run("qstudio", "gui", "--screenshot", str(shot), env={**env, "DISPLAY": display}, timeout=120).stdout
            wall = time.monotonic() - started
        assert "window ready with MiniLM-L6 intent classifier (demo)" in out, out
        seconds = float(re.search(r"demo\) ([\d.]+) s after start", out).group(1))
        print(f"installed app: window with the demo model ready {seconds:.2f} s after start (wall {wall:.2f} s)")
        assert seconds < 30, "the installed window took far too long"
        from PySide6.QtGui import QColor, QImage

        image = QImage(str(shot))
        assert image.width() > 800 and image.height() > 600
        colours = {QColor(image.pixel(x, y)).name() for x in range(0, image.width(), 11) for y in range(0, image.height(), 11)}
        assert len(colours) > 30, "the window screenshot is blank"
        target = os.environ.get("QSTUDIO_SCREENSHOTS")
        if target:
            shutil.copy(shot, Path(target) / "installed-window.png")

        run = _run("qstudio", "run", "--recipe", "ort-int8-dynamic", "--limit", "24", "--iterations", "3",
                   "--seconds", "0", "--quiet", "--json", str(tmp_path / "run.json"), env=env, timeout=600)
        results = json.loads((tmp_path / "run.json").read_text())["results"]
        assert [r["status"] for r in results] == ["ok", "ok"], run.stderr
        history = home / ".local" / "share" / "quantization-studio" / "history.sqlite"
        assert history.exists()
        # export from the bundle, verified by the bundle's own interpreter (`__script__ predict.py`)
        exported = _run("qstudio", "export", "1", "ort-int8-dynamic", "--to", str(tmp_path / "export"), "--json",
                        env=env, timeout=600)
        checks = {c["name"]: c for c in json.loads(exported.stdout)["checks"]}
        for name in ("artifact-present", "artifact-loadable", "outputs-reproduced", "runtime-isolated"):
            assert checks[name]["passed"], checks[name]
        verified = _run("qstudio", "verify", str(tmp_path / "export"), "--json", env=env, timeout=600, check=False)
        assert {c["name"]: c["passed"] for c in json.loads(verified.stdout)["checks"]}["outputs-reproduced"]

        _run("apt-get", "install", "-y", "-qq", str(second), timeout=900)  # upgrade
        assert _run("qstudio", "--version", env=env).stdout.startswith(f"Quantization Studio {version}")  # bundle is the same
        with sqlite3.connect(history) as db:
            assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2, "the upgrade lost the history"
        assert "finished" in _run("qstudio", "history", env=env).stdout
    finally:
        _run("apt-get", "remove", "-y", "-qq", "quantization-studio", timeout=600, check=False)
    for path in ("/opt/quantization-studio", "/usr/bin/qstudio", "/usr/share/applications/quantization-studio.desktop",
                 "/usr/share/icons/hicolor/scalable/apps/quantization-studio.svg"):
        assert not Path(path).exists(), f"{path} left after removal"
    assert history.exists(), "removal must keep the user's own data"
