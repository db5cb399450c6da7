"""ONNX Runtime INT4 through onnxruntime-genai's model builder: the builder writes its own LLM graph
(fused rotary embedding and GroupQueryAttention, MatMulNBits weights) straight from the Hugging Face
weights, instead of quantizing optimum's export.

The graph keeps optimum's interface (input_ids, attention_mask, past_key_values.N.key/value in, logits
and present.N.* out), so the studio runs it with the same KV-cache loop (`ort_lm.OrtCausalLM`) and an
export ships it like any ONNX Runtime recipe: the builder is needed to make it, not to run it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from studio.backends.base import Artifact, BuildContext, Predictor, artifact_size
from studio.backends.onnx_graphs import MODEL_FILE, load_predictor
from studio.core.errors import StudioError

STEP = "genai-int4"


def build_options(ctx: BuildContext) -> list[str]:
    """The builder's key=value options for the recipe's INT4 knobs."""
    options = [
        f"int4_block_size={ctx.recipe.block_size}",
        f"int4_is_symmetric={str(ctx.recipe.symmetric).lower()}",
    ]
    if ctx.recipe.accuracy_level is not None:
        options.append(f"int4_accuracy_level={ctx.recipe.accuracy_level}")
    if not ctx.recipe.quantize_lm_head:
        options.append("int4_nodes_to_exclude=/lm_head/MatMul")
    return options


class OrtGenaiInt4:
    def prepare(self, ctx: BuildContext) -> Artifact:
        def build(folder: Path) -> None:
            from onnxruntime_genai.models.builder import create_model, parse_extra_options

            ctx.report("build the INT4 graph (onnxruntime-genai model builder)", 0, 1)
            provider = "cuda" if ctx.recipe.device == "cuda" else "cpu"
            options = parse_extra_options(build_options(ctx), provider)
            with (
                tempfile.TemporaryDirectory(prefix="qstudio-genai-") as scratch,
                contextlib.redirect_stdout(io.StringIO()),
            ):
                try:
                    create_model(
                        None, str(ctx.model.weights_folder), str(folder), "int4", provider, scratch, **options
                    )
                except NotImplementedError as error:
                    raise StudioError(
                        f"onnxruntime-genai's model builder does not support {ctx.model.info.architecture} "
                        f"({str(error).strip()[:160]})",
                        "use llm-ort-int4 (optimum's export quantized with MatMulNBits)",
                    ) from None
            if not (folder / MODEL_FILE).is_file():
                raise StudioError("the model builder wrote no model.onnx", "use llm-ort-int4 instead")

        folder, cached = ctx.cache.get_or_build(
            ctx.cache_key(step=STEP), build, step=STEP, model=ctx.model.info.name, recipe=ctx.recipe.name
        )
        return Artifact(folder / MODEL_FILE, artifact_size(folder), from_cache=cached)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        predictor: Predictor = load_predictor(ctx, artifact)
        return predictor
