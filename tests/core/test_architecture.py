"""The layering rule: the core, backends and CLI never import Qt (import-linter contract in pyproject)."""

import shutil
import subprocess
import sys
from pathlib import Path


def test_core_does_not_import_qt() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([lint], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken" in result.stdout


def test_importing_the_core_loads_no_heavy_runtime() -> None:
    """Listing recipes and probing must not wait for torch or onnxruntime's quantizer."""
    code = (
        "import sys; import studio.core.recipe, studio.core.capability, studio.core.hardware, studio.cli.main;"
        "print(','.join(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
