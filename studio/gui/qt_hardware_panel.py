"""What this machine can do: GPUs (NVML), the CPU and its flags, runtimes and execution providers."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.core.hardware import HardwareInfo
from studio.core.units import human_bytes


def hardware_html(hw: HardwareInfo) -> str:
    if hw.gpus:
        gpus = "".join(
            f"<li><b>{g.name}</b><br>compute capability {g.cc_text} · VRAM {human_bytes(g.memory_used_bytes)} used of "
            f"{human_bytes(g.memory_total_bytes)} · driver {g.driver}</li>"
            for g in hw.gpus
        )
    else:
        reason = hw.gpu_status.removeprefix("not available: ")
        gpus = f"<li><b>No NVIDIA GPU</b>: {reason}. GPU recipes are shown greyed out.</li>"
    runtimes = "".join(
        f"<li>{name} {version}</li>" if version else f"<li style='color:#888'>{name}: not installed</li>"
        for name, version in hw.runtimes.items()
    )
    return (
        f"<h3>GPU</h3><ul>{gpus}</ul>"
        f"<h3>CPU</h3><ul><li>{hw.cpu.model}</li><li>{hw.cpu.physical_cores or '?'} cores, {hw.cpu.logical_cores} threads</li>"
        f"<li>flags: {', '.join(hw.cpu.flags) or 'none of interest'}</li></ul>"
        f"<h3>Runtimes</h3><ul>{runtimes}</ul>"
        f"<h3>ONNX Runtime providers</h3><ul>{''.join(f'<li>{p}</li>' for p in hw.ort_providers) or '<li>none</li>'}</ul>"
        f"<p style='color:#666'>{hw.os}, Python {hw.python}</p>"
    )


class HardwarePanel(QWidget):
    def __init__(self, hardware: HardwareInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(hardware_html(hardware))
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(self.label.textInteractionFlags().TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addStretch(1)
