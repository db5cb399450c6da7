"""What `qstudio --version` and the About dialog say: the version, the runtimes it carries, where data lives."""

from __future__ import annotations

import importlib.metadata

import studio
from studio.core.paths import cache_dir, data_dir

CARRIED = (
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "torchao",
    "transformers",
    "optimum-onnx",
    "onnx",
    "PySide6-Essentials",
    "pyqtgraph",
    "tensorrt",
    "bitsandbytes",
)


def runtime_versions() -> dict[str, str]:
    versions = {}
    for name in CARRIED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def about_lines() -> list[str]:
    runtimes = ", ".join(f"{name} {version}" for name, version in runtime_versions().items())
    return [
        f"Quantization Studio {studio.__version__}",
        f"runtimes: {runtimes or 'none found'}",
        f"user data: {data_dir()}",
        f"artifact cache: {cache_dir()}",
    ]
