"""PyTorch on an NVIDIA GPU in FP32, FP16 or BF16 (the capability rules pick FP32 below cc 7.0 for FP16).

The artifact is the model's own weights cast on load; nothing is cached. Memory is read from NVML by the
engine, not from torch's caching allocator.
"""

from __future__ import annotations

from typing import Any

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.torch_runtime import torch_predictor
from studio.core.errors import StudioError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


def cuda_device(ctx: BuildContext) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise StudioError(
            "this PyTorch has no CUDA (a CPU build, or no driver)",
            "install a CUDA build of torch on the GPU machine: pip install 'quantization-studio[gpu]'",
        )
    return torch.device("cuda", 0)


class TorchCuda:
    def prepare(self, ctx: BuildContext) -> Artifact:
        return Artifact(None, ctx.model.info.parameters * BYTES[ctx.precision])

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        import torch

        device = cuda_device(ctx)
        ctx.report("load model on the GPU", 0, 1)
        dtype = getattr(torch, DTYPES[ctx.precision])
        module = ctx.model.torch_module().to(device=device, dtype=dtype)
        return torch_predictor(ctx, module, str(device))
