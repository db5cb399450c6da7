"""ONNX Runtime FP32: the exported (and, by default, fused) graph as it is."""

from __future__ import annotations

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.onnx_graphs import copy_model, load_predictor, quantized_artifact


class OrtFp32:
    def prepare(self, ctx: BuildContext) -> Artifact:
        return quantized_artifact(ctx, "fp32", copy_model)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return load_predictor(ctx, artifact)
