"""PyTorch INT8 weight-only with torchao: INT8 weights dequantized in the matmul, activations in float.

For decoding at batch 1, which reads every weight once per token, reading a quarter of FP32's bytes is
what speeds it up; the arithmetic stays in float, so fidelity is close to FP32.
"""

from __future__ import annotations

from typing import Any

from studio.backends.torchao_quantized import TorchaoBackend


class TorchWeightOnlyInt8(TorchaoBackend):
    step = "torchao-int8-weight-only"
    title = "torchao INT8 weight-only"

    def config(self) -> Any:
        from torchao.quantization import Int8WeightOnlyConfig

        return Int8WeightOnlyConfig()
