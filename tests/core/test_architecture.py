"""The layering rules (import-linter contracts in pyproject): the core, backends and CLI never import Qt,
and the layers import one way only: cli > gui > deploy > backends > core."""

import shutil
import subprocess
import sys
from pathlib import Path


def test_layers_import_one_way_and_the_core_does_not_import_qt() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([lint], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout
    assert "One-way layers" in result.stdout


def test_the_core_imports_nothing_of_the_backends() -> None:
    """Caught statically too (the layers contract): here, at run time, for the catalogue and the runner."""
    code = (
        "import sys; import studio.core.compare, studio.core.capability, studio.core.worker, studio.core.predict;"
        "print(','.join(m for m in sys.modules if m.startswith(('studio.backends', 'studio.deploy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


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
