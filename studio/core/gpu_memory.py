"""GPU memory of a process, read from NVML (not from a framework's allocator).

ONNX Runtime and TensorRT keep memory until their process ends and torch's caching allocator hides
what it holds, so only the driver's view is honest. Where the driver lists the process (compute
processes with usedGpuMemory), the reading is per process; otherwise it is the device's used memory,
and says so.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["process", "device", "none"]


@dataclass(frozen=True)
class GpuMemoryReading:
    bytes: int | None
    scope: Scope
    note: str = ""


class GpuMemoryProbe:
    """Opens NVML once; `read(pid)` is cheap enough for 10 samples a second."""

    def __init__(self, nvml: Any = None, index: int = 0) -> None:
        self.reason = ""
        self._nvml = nvml
        self._handle: Any = None
        try:
            if self._nvml is None:
                self._nvml = importlib.import_module("pynvml")
            self._nvml.nvmlInit()
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as error:
            self.reason = f"not available: {error or type(error).__name__}"
            self._handle = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def read(self, pid: int | None) -> GpuMemoryReading:
        if self._handle is None:
            return GpuMemoryReading(None, "none", self.reason)
        nvml = self._nvml
        try:
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:
            processes = []
        for process in processes:
            used = getattr(process, "usedGpuMemory", None)
            if pid is not None and process.pid == pid and used is not None:
                return GpuMemoryReading(int(used), "process")
        used_total = int(nvml.nvmlDeviceGetMemoryInfo(self._handle).used)
        return GpuMemoryReading(
            used_total, "device", "the driver does not report this process: device-wide memory"
        )

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._handle = None
