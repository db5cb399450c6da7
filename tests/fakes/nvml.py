"""A faithful stand-in for `pynvml` (nvidia-ml-py): the calls the studio makes, with NVML's error types.

Cards are described by name, compute capability and memory; `FakeNvml.missing()` behaves like a
machine without the NVIDIA driver (nvmlInit raises NVMLError_LibraryNotFound, value 12).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_NOT_SUPPORTED = 3


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__(value)

    def __str__(self) -> str:
        return {
            NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
            NVML_ERROR_UNINITIALIZED: "Uninitialized",
            NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
            NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        }.get(self.value, f"NVML error {self.value}")


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND)


class NVMLError_Uninitialized(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_UNINITIALIZED)


@dataclass
class Card:
    name: str
    cc: tuple[int, int]
    total_gib: float
    used_gib: float = 0.5
    processes: dict[int, int] = field(default_factory=dict)  # pid -> bytes


# Cards the capability rules are tested against.
CARDS = {
    "gtx1060": Card("NVIDIA GeForce GTX 1060 6GB", (6, 1), 6),
    "t4": Card("Tesla T4", (7, 5), 15),
    "a100": Card("NVIDIA A100-SXM4-80GB", (8, 0), 80),
    "l4": Card("NVIDIA L4", (8, 9), 24),
    "h100": Card("NVIDIA H100 80GB HBM3", (9, 0), 80),
    "b200": Card("NVIDIA B200", (10, 0), 180),
}


class FakeNvml:
    """Module-like object with pynvml's functions over a list of fake cards."""

    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound

    def __init__(self, cards: list[Card], driver: str = "580.95.05", library_present: bool = True) -> None:
        self.cards = cards
        self.driver = driver
        self.library_present = library_present
        self.initialised = 0
        self.calls: list[str] = []

    @classmethod
    def missing(cls) -> FakeNvml:
        return cls([], library_present=False)

    @classmethod
    def with_cards(cls, *names: str) -> FakeNvml:
        return cls([CARDS[name] for name in names])

    def _check(self) -> None:
        if not self.initialised:
            raise NVMLError_Uninitialized()

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if not self.library_present:
            raise NVMLError_LibraryNotFound()
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._check()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Card:
        self._check()
        if not 0 <= index < len(self.cards):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.cards[index]

    def nvmlDeviceGetName(self, handle: Card) -> str:
        return handle.name

    def nvmlDeviceGetCudaComputeCapability(self, handle: Card) -> tuple[int, int]:
        return handle.cc

    def nvmlDeviceGetMemoryInfo(self, handle: Card) -> SimpleNamespace:
        total = int(handle.total_gib * 2**30)
        used = int(handle.used_gib * 2**30) + sum(handle.processes.values())
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Card) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in handle.processes.items()]
