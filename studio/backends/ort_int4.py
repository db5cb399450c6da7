"""ONNX Runtime INT4 weight-only: MatMul weights in blocks of 4-bit integers (MatMulNBits).

Activations stay in float; on CPU, accuracy_level 4 lets the kernel compute in INT8, which is what
makes it fast there.
"""

from __future__ import annotations

from pathlib import Path

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.onnx_graphs import load_predictor, quantized_artifact
from studio.core.errors import StudioError


class OrtInt4:
    def prepare(self, ctx: BuildContext) -> Artifact:
        def write(source: Path, target: Path) -> None:
            import onnx
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            ctx.report("quantize (INT4 weight-only)", 0, 1)
            quantizer = MatMulNBitsQuantizer(
                onnx.load(str(source)),
                bits=4,
                block_size=ctx.recipe.block_size,
                is_symmetric=True,
                accuracy_level=4 if ctx.recipe.device == "cpu" else None,
                nodes_to_exclude=list(ctx.recipe.exclude_nodes),
                op_types_to_quantize=("MatMul",) if "MatMul" not in ctx.recipe.exclude_ops else (),
            )
            quantizer.process()
            if not any(node.op_type == "MatMulNBits" for node in quantizer.model.model.graph.node):
                raise StudioError(
                    "INT4 weight-only found no MatMul with constant weights to quantize in this model",
                    "use an INT8 recipe for this model",
                )
            quantizer.model.save_model_to_file(str(target), use_external_data_format=False)

        return quantized_artifact(ctx, "int4-weight-only", write)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return load_predictor(ctx, artifact)
