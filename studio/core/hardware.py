"""What this machine can do: NVIDIA GPUs through NVML, the CPU and its flags, the installed runtimes.

Nothing here raises for a missing GPU or runtime: each part says "not available: <reason>" instead, so
the probe works the same on a laptop without a GPU as on a workstation. NVML is injectable so tests can
stand in a fake card.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

# The CPU flags that matter for quantized kernels, in the order people read them.
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    # Arm: NEON, dot product, int8 matrix multiply, BF16, SVE
    "asimd",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
)

# Runtimes the studio can use: distribution name -> import name.
RUNTIMES = {
    "torch": "torch",
    "torchao": "torchao",
    "transformers": "transformers",
    "optimum": "optimum",
    "optimum-onnx": "optimum.onnxruntime",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "onnxruntime-gpu": "onnxruntime",
    "onnxruntime-genai": "onnxruntime_genai",
    "tensorrt": "tensorrt",
    "bitsandbytes": "bitsandbytes",
    "nvidia-ml-py": "pynvml",
}


class GpuInfo(BaseModel):
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_total_bytes: int
    memory_used_bytes: int
    driver: str

    @property
    def cc_text(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    @property
    def memory_free_bytes(self) -> int:
        return self.memory_total_bytes - self.memory_used_bytes


class CpuInfo(BaseModel):
    model: str
    logical_cores: int
    physical_cores: int | None
    flags: list[str]
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None


class HardwareInfo(BaseModel):
    """A snapshot of the machine, stored with every run so results can be read in context."""

    gpus: list[GpuInfo] = Field(default_factory=list)
    gpu_status: str = "ok"  # "ok" or "not available: <reason>"
    cpu: CpuInfo
    os: str
    python: str
    runtimes: dict[str, str | None]  # distribution -> version, None when absent
    ort_providers: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # set-up problems worth fixing

    def has_runtime(self, import_name: str) -> bool:
        return any(
            version is not None and RUNTIMES.get(dist) == import_name
            for dist, version in self.runtimes.items()
        )


def _read_cpu() -> CpuInfo:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    total = available = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory = psutil.virtual_memory()
        total, available = int(memory.total), int(memory.available)
    except Exception:
        physical = None
    return CpuInfo(
        model=model or "unknown",
        logical_cores=os.cpu_count() or 1,
        physical_cores=physical,
        flags=[flag for flag in CPU_FLAGS if flag in flags],
        memory_total_bytes=total,
        memory_available_bytes=available,
    )


def cpu_flags() -> list[str]:
    """The instruction-set flags of interest of the CPU this process runs on."""
    return _read_cpu().flags


def _installed_runtimes() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for dist, import_name in RUNTIMES.items():
        try:
            version: str | None = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is not None and importlib.util.find_spec(import_name.split(".")[0]) is None:
            version = None
        versions[dist] = version
    return versions


def _ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_gpus(nvml: Any = None) -> tuple[list[GpuInfo], str]:
    """Every NVIDIA GPU NVML reports, or an empty list and the reason none is usable."""
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return [], "not available: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    try:
        nvml.nvmlInit()
    except Exception as error:
        reason = _text(getattr(error, "args", [error])[0] if getattr(error, "args", None) else error)
        if type(error).__name__ == "NVMLError_LibraryNotFound" or "LibraryNotFound" in repr(error):
            reason = "no NVIDIA driver found (NVML library missing)"
        elif type(error).__name__ == "NVMLError_DriverNotLoaded":
            reason = "the NVIDIA driver is not loaded"
        return [], f"not available: {reason}"
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    compute_capability=(int(major), int(minor)),
                    memory_total_bytes=int(memory.total),
                    memory_used_bytes=int(memory.used),
                    driver=driver,
                )
            )
    except Exception as error:
        return [], f"not available: NVML failed while reading the GPUs ({error})"
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    if not gpus:
        return [], "not available: the NVIDIA driver reports no GPU"
    return gpus, "ok"


def probe(nvml: Any = None) -> HardwareInfo:
    """Read the machine now. Takes well under a second; does not import torch."""
    gpus, status = probe_gpus(nvml)
    runtimes = _installed_runtimes()
    warnings = []
    if runtimes.get("onnxruntime") and runtimes.get("onnxruntime-gpu"):
        warnings.append(
            "both onnxruntime and onnxruntime-gpu are installed; they share one module and the CPU one may "
            "hide CUDA: pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    return HardwareInfo(
        gpus=gpus,
        gpu_status=status,
        cpu=_read_cpu(),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        runtimes=runtimes,
        ort_providers=_ort_providers(),
        warnings=warnings,
    )
