"""ONNX Runtime FP16: weights and activations in half precision, inputs and outputs kept in their types.

ORT's own converter is used (onnxconverter-common's output is refused by ORT); `keep_io_types` keeps
int64 token inputs and float32 logits, so every backend is called and compared the same way.
"""

from __future__ import annotations

from pathlib import Path

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.onnx_graphs import copy_model, load_predictor, quantized_artifact


class OrtFp16:
    def prepare(self, ctx: BuildContext) -> Artifact:
        if ctx.precision == "fp32":  # the card cannot do FP16: the capability check chose FP32 instead
            return quantized_artifact(ctx, "fp32-fallback", copy_model)

        def write(source: Path, target: Path) -> None:
            import onnx
            from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

            ctx.report("convert to FP16", 0, 1)
            converted = convert_float_to_float16(
                onnx.load(str(source)),
                keep_io_types=True,
                op_block_list=[*DEFAULT_OP_BLOCK_LIST, *ctx.recipe.exclude_ops],
                node_block_list=list(ctx.recipe.exclude_nodes) or None,
            )
            onnx.save(converted, str(target))

        return quantized_artifact(ctx, "fp16", write)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return load_predictor(ctx, artifact)
