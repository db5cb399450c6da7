"""A private X server for the tests that need a real window (Debian's xvfb)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def xvfb(first: int = 81) -> Iterator[str]:
    """Start Xvfb on a free display and yield its DISPLAY value; stops it afterwards."""
    display = next(d for d in range(first, first + 20) if not Path(f"/tmp/.X11-unix/X{d}").exists())
    server = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{display}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield f":{display}"
    finally:
        server.terminate()
        server.wait()
