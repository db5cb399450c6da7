"""The FP32 ONNX graphs every ONNX Runtime recipe starts from, and running ONNX files.

Two cached steps are shared by all ORT backends: the export (optimum's exporter, or the user's own
ONNX file) and, where the recipe asks for it, ONNX Runtime's transformer fusion (attention,
layer-norm, GELU). Fusing before quantizing matters: on the plain export, static INT8 also quantizes
the additive attention mask (about float32's minimum) and destroys the model.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from studio.backends.base import Artifact, BuildContext, Feeds, artifact_size
from studio.core.errors import StudioError

log = logging.getLogger(__name__)
MODEL_FILE = "model.onnx"


def exported_fp32(ctx: BuildContext) -> Path:
    """The model's FP32 ONNX file: the user's own, or optimum's export (cached)."""
    model = ctx.model
    if model.info.source == "onnx":
        return model.onnx_source()

    def build(folder: Path) -> None:
        ctx.report("export to ONNX", 0, 1)
        model.export_onnx(folder / MODEL_FILE)

    folder, _ = ctx.cache.get_or_build(
        ctx.cache.key(model=model.info.content_hash, step="export", opset=17, with_past=model.is_causal_lm),
        build,
        step="export",
        model=model.info.name,
    )
    exporter = folder / "exporter.txt"
    if exporter.is_file() and "torch.onnx" in (note := exporter.read_text(encoding="utf-8")):
        ctx.notes.append(note)  # optimum's export, the usual one, goes unsaid
    return folder / MODEL_FILE


def fusion_type(model_type: str) -> str | None:
    """ONNX Runtime's optimizer model type for a transformers family (optimum's own table), None where
    it has none; an ONNX file of unknown family is fused as BERT, the encoders' common form."""
    if model_type in ("", "onnx"):
        return "bert"
    from optimum.onnxruntime.utils import ORTConfigManager

    try:
        fuser: str = ORTConfigManager.get_model_ort_type(model_type)
    except KeyError:
        return None
    return fuser


def source_graph(ctx: BuildContext) -> Path:
    """The FP32 graph a recipe quantizes: fused when `optimize_graph` is set and fusion applies."""
    exported = exported_fp32(ctx)
    if not ctx.recipe.optimize_graph:
        return exported
    if ctx.model.is_causal_lm:  # the offline fuser's model types are encoders; ORT fuses at load time
        ctx.notes.append(
            "graph fusion skipped: offline fusion is for encoders; the LLM graph is used as exported"
        )
        return exported
    fuser = fusion_type(ctx.model.info.model_type)
    if fuser is None:
        ctx.notes.append(
            f"graph fusion skipped: ONNX Runtime's transformer optimizer has no model type for "
            f"'{ctx.model.info.model_type}'; the graph is used as exported"
        )
        return exported
    use_gpu = ctx.recipe.device == "cuda"

    def build(folder: Path) -> None:
        from onnxruntime.transformers.optimizer import optimize_model

        ctx.report("fuse graph", 0, 1)
        # opt_level 0: only the transformer fusions, no runtime-specific rewrites baked into the file.
        optimized = optimize_model(str(exported), model_type=fuser, opt_level=0, use_gpu=use_gpu)
        optimized.save_model_to_file(str(folder / MODEL_FILE))
        fused = optimized.get_fused_operator_statistics()
        (folder / "fusion.txt").write_text("\n".join(f"{op}: {n}" for op, n in sorted(fused.items()) if n))

    key = ctx.cache.key(model=ctx.model.info.content_hash, step="fuse", gpu=use_gpu, fuser=fuser)
    try:
        folder, _ = ctx.cache.get_or_build(key, build, step="fuse", model=ctx.model.info.name)
    except Exception as error:  # fusion is an optimisation: fall back to the plain graph, and say so
        log.warning("graph fusion failed: %s", error)
        ctx.notes.append(f"graph fusion failed ({str(error)[:120]}): used the unfused graph")
        return exported
    fused = (
        (folder / "fusion.txt").read_text(encoding="utf-8").splitlines()
        if (folder / "fusion.txt").is_file()
        else []
    )
    ctx.notes.append(
        f"graph fused with ONNX Runtime's '{fuser}' optimizer: {', '.join(fused)}"
        if fused
        else f"ONNX Runtime's '{fuser}' optimizer found nothing to fuse in this graph"
    )
    return folder / MODEL_FILE


def quantized_artifact(ctx: BuildContext, step: str, write: Any) -> Artifact:
    """Run `write(source, target)` once per cache key and return the cached artifact."""
    source = source_graph(ctx)

    def build(folder: Path) -> None:
        write(source, folder / MODEL_FILE)
        for leftover in folder.glob("*-inferred.onnx"):
            leftover.unlink()

    folder, cached = ctx.cache.get_or_build(
        ctx.cache_key(step=step, source=source.parent.name),
        build,
        step=step,
        model=ctx.model.info.name,
        recipe=ctx.recipe.name,
    )
    return Artifact(folder / MODEL_FILE, artifact_size(folder), from_cache=cached)


def copy_model(source: Path, target: Path) -> None:
    """The graph and any external-data file beside it (exports over 2 GB keep their weights apart)."""
    shutil.copyfile(source, target)
    for data in source.parent.glob(source.name + "_data"):
        shutil.copyfile(data, target.parent / data.name)


def save_graph(model: Any, target: Path) -> None:
    """Save an onnx ModelProto, weights in an external file when they would pass protobuf's 2 GB limit."""
    import onnx

    large = model.ByteSize() > 2**31 - 2**26 if hasattr(model, "ByteSize") else False
    onnx.save_model(
        model, str(target), save_as_external_data=large, location=target.name + "_data" if large else None
    )


def lm_head_nodes(path: Path) -> list[str]:
    """Names of the nodes that compute a causal LM's output projection (left in float by default)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if "lm_head" in node.name and node.op_type in ("MatMul", "Gemm")]


PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def open_session(path: Path, device: str, threads: int, providers: list[Any] | None = None) -> Any:
    """An InferenceSession with the recipe's threads; a model ORT cannot run becomes a StudioError.

    `providers` go before the device's defaults (CUDA, then CPU), e.g. the TensorRT EP with its options.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=[*(providers or []), *PROVIDERS[device]])
    except Exception as error:
        text = str(error)
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        unsupported = (
            "NOT_IMPLEMENTED",
            "Could not find an implementation",
            "No Op registered",
            "is not a registered",
        )
        if any(marker in text for marker in unsupported):
            raise StudioError(
                f"ONNX Runtime cannot run {path.name}: an operator is not supported ({first[:220]})",
                "re-export with a supported opset, or leave that operator out with exclude_ops",
            ) from None
        raise StudioError(
            f"ONNX Runtime cannot load {path.name} ({first[:220]})", "check the model file"
        ) from None
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise StudioError(
            "ONNX Runtime did not enable CUDA for this session", "install onnxruntime-gpu matching your CUDA"
        )
    return session


class OrtPredictor:
    """Runs a session, binding inputs and the output by name."""

    def __init__(self, session: Any, output_name: str) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if output_name not in outputs:
            raise StudioError(
                f"the ONNX graph has no output '{output_name}' (it has {', '.join(outputs)})",
                "re-export the model with named outputs (logits or last_hidden_state)",
            )
        self.output_name = output_name

    def __call__(self, feeds: Feeds) -> np.ndarray:
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise StudioError(
                f"the model needs input(s) {', '.join(missing)} that the tokenizer does not give"
            )
        result: np.ndarray = self.session.run([self.output_name], {n: feeds[n] for n in self.input_names})[0]
        return result


def load_predictor(ctx: BuildContext, artifact: Artifact) -> Any:
    """An OrtPredictor, or for a causal LM the KV-cache runner (`ort_lm.OrtCausalLM`)."""
    assert artifact.path is not None
    session = open_session(artifact.path, ctx.recipe.device, ctx.recipe.threads)
    if ctx.model.is_causal_lm:
        from studio.backends.ort_lm import OrtCausalLM

        try:
            return OrtCausalLM(session)
        except ValueError as error:
            raise StudioError(
                f"{artifact.path.name} cannot be run as a causal LM ({error})",
                "export it with optimum's text-generation-with-past task",
            ) from None
    return OrtPredictor(session, ctx.model.info.output_name)


def op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


# Inputs that hold indices, shapes or counts: a value computed for them must stay exact.
_INDEX_INPUTS = {
    "Gather": (1,),
    "GatherElements": (1,),
    "GatherND": (1,),
    "ScatterElements": (1,),
    "OneHot": (0, 1),
    "Slice": (1, 2, 3, 4),
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Range": (0, 1, 2),
    "ConstantOfShape": (0,),
    "TopK": (1,),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
}
_INTEGER_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}  # onnx.TensorProto uint8 .. int64


def index_path_nodes(path: Path, ops: Collection[str]) -> list[str]:
    """Nodes whose outputs flow into an index, shape or integer cast (relative-position buckets,
    position ids): quantizing them moves an index, so they stay in float.

    Walks back from every index input and every cast to an integer type; a Shape or Size node ends the
    walk (its output does not depend on the values before it)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {output: node for node in graph.node for output in node.output}
    stack: list[str] = []
    for node in graph.node:
        stack += [node.input[i] for i in _INDEX_INPUTS.get(node.op_type, ()) if i < len(node.input)]
        if node.op_type == "Cast" and any(a.name == "to" and a.i in _INTEGER_TYPES for a in node.attribute):
            stack.append(node.input[0])
    seen: set[str] = set()
    on_path: dict[str, None] = {}
    while stack:
        tensor = stack.pop()
        if not tensor or tensor in seen:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None:
            continue
        if node.op_type in ops:
            on_path[node.name] = None
        if node.op_type not in ("Shape", "Size"):
            stack.extend(node.input)
    return list(on_path)
