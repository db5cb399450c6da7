"""ONNX Runtime INT4 weight-only: MatMul weights in blocks of 4-bit integers (MatMulNBits).

Activations stay in float; on CPU, accuracy_level 4 lets the kernel compute in INT8, which is what
makes it fast there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.onnx_graphs import lm_head_nodes, load_predictor, quantized_artifact, save_graph
from studio.core.errors import StudioError


def gemm_as_matmul(model: Any) -> int:
    """Rewrite Gemm nodes with a constant weight as MatMul (+ Add of the bias), in place.

    MatMulNBits only replaces MatMul; GPT-2-style models (Conv1D) export their projections as Gemm, which
    would leave them all in float. Returns how many nodes were rewritten."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    rewritten = 0
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
        )
        if node.op_type != "Gemm" or not plain or node.input[1] not in weights:
            nodes.append(node)
            continue
        weight = weights[node.input[1]]
        if attrs.get("transB", 0):
            transposed = numpy_helper.from_array(numpy_helper.to_array(weight).T.copy(), weight.name + "_T")
            graph.initializer.append(transposed)
            weight_name = transposed.name
        else:
            weight_name = weight.name
        product = node.output[0] + ("_matmul" if len(node.input) > 2 else "")
        nodes.append(
            helper.make_node("MatMul", [node.input[0], weight_name], [product], name=node.name + "_MatMul")
        )
        if len(node.input) > 2 and node.input[2]:
            nodes.append(
                helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=node.name + "_Add")
            )
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


class OrtInt4:
    def prepare(self, ctx: BuildContext) -> Artifact:
        def write(source: Path, target: Path) -> None:
            import onnx
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            ctx.report("quantize (INT4 weight-only, MatMulNBits)", 0, 1)
            excluded = list(ctx.recipe.exclude_nodes)
            if ctx.model.is_causal_lm and not ctx.recipe.quantize_lm_head:
                excluded += lm_head_nodes(source)
            excluded += [f"{name}_MatMul" for name in excluded]  # the same node, once a Gemm is rewritten
            level = ctx.recipe.accuracy_level
            graph = onnx.load(str(source))
            if "Gemm" not in ctx.recipe.exclude_ops and gemm_as_matmul(graph):
                ctx.notes.append("Gemm projections rewritten as MatMul so that MatMulNBits quantizes them")
            algorithm = None
            if ctx.recipe.algorithm == "hqq":
                from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig

                algorithm = HQQWeightOnlyQuantConfig(block_size=ctx.recipe.block_size, bits=4)
            quantizer = MatMulNBitsQuantizer(
                graph,
                algo_config=algorithm,
                bits=4,
                block_size=ctx.recipe.block_size,
                is_symmetric=ctx.recipe.symmetric,
                accuracy_level=level if level is not None else (4 if ctx.recipe.device == "cpu" else None),
                nodes_to_exclude=excluded,
                op_types_to_quantize=("MatMul",) if "MatMul" not in ctx.recipe.exclude_ops else (),
            )
            quantizer.process()
            if not any(node.op_type == "MatMulNBits" for node in quantizer.model.model.graph.node):
                raise StudioError(
                    "INT4 weight-only found no MatMul with constant weights to quantize in this model",
                    "use an INT8 recipe for this model",
                )
            save_graph(quantizer.model.model, target)

        return quantized_artifact(ctx, "int4-weight-only-v2", write)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return load_predictor(ctx, artifact)
