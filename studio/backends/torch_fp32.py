"""PyTorch FP32 eager: the reference every other recipe is measured against."""

from __future__ import annotations

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.torch_runtime import torch_predictor


class TorchFp32:
    def prepare(self, ctx: BuildContext) -> Artifact:
        # Nothing to build: the artifact is the model's own weights (a GGUF file's, dequantized to FP32).
        return Artifact(None, ctx.model.fp32_bytes)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        ctx.report("load model", 0, 1)
        module = ctx.model.torch_module()
        return torch_predictor(ctx, module)
