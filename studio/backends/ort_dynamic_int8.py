"""ONNX Runtime dynamic INT8: weights quantized offline, activation ranges computed per batch at run time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.onnx_graphs import lm_head_nodes, load_predictor, op_types, quantized_artifact
from studio.core.hardware import cpu_flags
from studio.core.isa import dynamic_int8_settings

# Operators ORT's dynamic quantizer knows; the recipe's exclude_ops are taken out of this set.
DYNAMIC_OPS = ("MatMul", "Attention", "Gather", "LSTM", "EmbedLayerNormalization", "Conv")


class _NoPreprocessHint(logging.Filter):
    """ORT's quantizer advises pre-processing on every call (a root-logger warning); dynamic INT8 reads
    the graph as exported or fused on purpose, and a ranking that builds dozens of variants repeats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "consider to run pre-processing" not in record.getMessage()


@contextmanager
def _without_preprocess_hint() -> Iterator[None]:
    hint = _NoPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(hint)


class OrtDynamicInt8:
    def prepare(self, ctx: BuildContext) -> Artifact:
        def write(source: Path, target: Path) -> None:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            ctx.report(f"quantize (dynamic INT8, optimum's {isa['preset']} preset)", 0, 1)
            present = op_types(source)
            ops = [op for op in DYNAMIC_OPS if op in present and op not in ctx.recipe.exclude_ops]
            excluded = list(ctx.recipe.exclude_nodes)
            if ctx.model.is_causal_lm and not ctx.recipe.quantize_lm_head:
                excluded += lm_head_nodes(source)
            # The dynamic quantizer rewrites Gemm as MatMul named NAME_MatMul: a Gemm named in exclude_nodes
            # must stay excluded once it is a MatMul.
            excluded += [f"{name}_MatMul" for name in excluded]
            with _without_preprocess_hint():
                quantize_dynamic(
                    source,
                    target,
                    op_types_to_quantize=ops,
                    per_channel=ctx.recipe.per_channel,
                    weight_type=getattr(QuantType, isa["weight_type"]),
                    reduce_range=isa["reduce_range"],
                    nodes_to_exclude=excluded,
                    use_external_data_format=source.stat().st_size > 2**31 - 2**26,
                    # Fused graphs carry com.microsoft ops whose outputs have no type info without this.
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )

        isa = dynamic_int8_settings(cpu_flags())
        ctx.notes.append(
            f"dynamic INT8 as optimum-onnx's {isa['preset']} preset sets it for this CPU: {isa['weight_type']} "
            "weights, QUInt8 activations"
        )
        return quantized_artifact(ctx, f"int8-dynamic-{isa['preset']}-v2", write)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return load_predictor(ctx, artifact)
