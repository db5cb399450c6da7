"""The suite's time on CI rests on `--dist loadgroup` keeping each xdist_group in one test process.

pytest 9.2 with pytest-xdist 3.8 ignores the groups without a word (pytest-dev/pytest-xdist#1386): the
demo-llm module's fixture (minutes) then runs once per process. This fails when an upgrade brings that back.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

GROUPED = """
import pytest

pytestmark = pytest.mark.xdist_group("shared")


@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    pass
"""


def test_an_xdist_group_runs_in_one_process(tmp_path: Path) -> None:
    for name in ("test_one.py", "test_two.py"):
        (tmp_path / name).write_text(GROUPED)
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workers = re.findall(r"\[(gw\d+)\] .*PASSED", result.stdout)
    assert len(workers) == 8, result.stdout
    assert len(set(workers)) == 1, f"one group ran on {sorted(set(workers))}:\n{result.stdout}"
