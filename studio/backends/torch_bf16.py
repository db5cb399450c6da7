"""PyTorch BF16 on the CPU: weights and activations in bfloat16, logits returned as float32.

Fast where the CPU has BF16 instructions (AVX512-BF16, AMX); elsewhere PyTorch emulates them.
Nothing is cached: the artifact is the model's own weights, cast on load.
"""

from __future__ import annotations

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.torch_runtime import torch_predictor


class TorchBf16:
    def prepare(self, ctx: BuildContext) -> Artifact:
        return Artifact(None, ctx.model.info.parameters * 2, notes=["weights cast to BF16 on load"])

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        import torch

        ctx.report("load model in BF16", 0, 1)
        module = ctx.model.torch_module().to(torch.bfloat16)
        predictor: Predictor = torch_predictor(ctx, module)
        return predictor
