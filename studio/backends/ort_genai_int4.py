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
import json
import tempfile
from pathlib import Path

from studio.backends.base import Artifact, BuildContext, Predictor, artifact_size
from studio.backends.onnx_graphs import MODEL_FILE, load_predictor
from studio.core.errors import StudioError

STEP = "genai-int4"


def _tied_embeddings(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "config.json").read_text()).get("tie_word_embeddings", False))
    except (OSError, ValueError):
        return False


def build_options(ctx: BuildContext) -> tuple[list[str], str]:
    """The builder's key=value options for the recipe's INT4 knobs, and a note for the user (or "")."""
    options = [
        f"int4_block_size={ctx.recipe.block_size}",
        f"int4_is_symmetric={str(ctx.recipe.symmetric).lower()}",
    ]
    if ctx.recipe.accuracy_level is not None:
        options.append(f"int4_accuracy_level={ctx.recipe.accuracy_level}")
    note = ""
    if not ctx.recipe.quantize_lm_head:
        if _tied_embeddings(ctx.model.weights_folder):
            # Excluding a tied lm_head makes this builder reference a weight it never writes (an invalid
            # graph); its "rtn_last" keeps lm_head at INT8 instead, the closest it gets to float.
            options.append("int4_algo_config=rtn_last")
            note = "lm_head is tied to the embedding: the builder keeps it in INT8 (rtn_last), not float"
        else:
            options.append("int4_nodes_to_exclude=/lm_head/MatMul")
    return options, note


class OrtGenaiInt4:
    def prepare(self, ctx: BuildContext) -> Artifact:
        choices, note = build_options(ctx)
        if note:
            ctx.notes.append(note)

        def build(folder: Path) -> None:
            from onnxruntime_genai.models.builder import create_model, parse_extra_options

            ctx.report("build the INT4 graph (onnxruntime-genai model builder)", 0, 1)
            provider = "cuda" if ctx.recipe.device == "cuda" else "cpu"
            options = parse_extra_options(choices, provider)
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
            ctx.cache_key(step=STEP, options=choices),
            build,
            step=STEP,
            model=ctx.model.info.name,
            recipe=ctx.recipe.name,
        )
        return Artifact(folder / MODEL_FILE, artifact_size(folder), from_cache=cached)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        predictor: Predictor = load_predictor(ctx, artifact)
        return predictor
