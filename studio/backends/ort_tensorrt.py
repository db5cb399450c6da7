"""ONNX Runtime with its TensorRT execution provider: FP32, FP16, or INT8 from a calibrated QDQ graph.

TensorRT builds its engines inside ONNX Runtime; their cache lives in the studio's artifact cache
(one folder per model, recipe, GPU and library versions), so a second run starts from the engine.
The graph is the plain export (TensorRT does not know ONNX Runtime's fused com.microsoft ops); INT8 is
the static QDQ artifact of `ort-int8-static`, which TensorRT runs with explicit quantization.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from studio.backends.base import Artifact, BuildContext, Predictor, artifact_size
from studio.backends.onnx_graphs import OrtPredictor, exported_fp32, open_session
from studio.backends.tensorrt_engine import gpu_identity, profile_shapes
from studio.core.errors import StudioError

PROVIDER = "TensorrtExecutionProvider"


def _shape_option(names: list[str], shape: tuple[int, int]) -> str:
    return ",".join(f"{name}:{shape[0]}x{shape[1]}" for name in names)


def provider_options(ctx: BuildContext, engine_cache: Path) -> dict[str, Any]:
    """TensorRT EP options: engine and timing caches in the artifact cache, precision, shape profiles."""
    low, opt, high = profile_shapes(ctx.recipe.batch_size, ctx.recipe.seq_len)
    names = ctx.model.info.input_names
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(engine_cache),
        "trt_fp16_enable": ctx.precision in ("fp16", "int8"),
        "trt_int8_enable": ctx.precision == "int8",
        "trt_profile_min_shapes": _shape_option(names, low),
        "trt_profile_opt_shapes": _shape_option(names, opt),
        "trt_profile_max_shapes": _shape_option(names, high),
    }


class OrtTensorRT:
    def prepare(self, ctx: BuildContext) -> Artifact:
        if ctx.precision == "int8":
            from studio.backends.ort_static_int8 import OrtStaticInt8

            plain = ctx.recipe.model_copy(update={"optimize_graph": False})
            graph = OrtStaticInt8().prepare(dataclasses.replace(ctx, recipe=plain)).path
        else:
            graph = exported_fp32(ctx)
        assert graph is not None

        def mark(folder: Path) -> None:
            (folder / "README").write_text("TensorRT engine cache of ONNX Runtime's TensorRT EP\n")

        engines, cached = ctx.cache.get_or_build(
            ctx.cache_key(step="ort-tensorrt-engines", device=gpu_identity(ctx), graph=graph.parent.name),
            mark,
            step="ort-tensorrt-engines",
            recipe=ctx.recipe.name,
        )
        return Artifact(graph, artifact_size(graph), from_cache=cached, sidecar=engines)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        assert artifact.path is not None
        engines = artifact.sidecar or artifact.path.parent
        ctx.report("build or load TensorRT engine", 0, 1)
        session = open_session(
            artifact.path, "cuda", ctx.recipe.threads, providers=[(PROVIDER, provider_options(ctx, engines))]
        )
        if PROVIDER not in session.get_providers():
            raise StudioError(
                "ONNX Runtime did not enable its TensorRT execution provider",
                "install onnxruntime-gpu built with TensorRT and put TensorRT's libraries on the library path",
            )
        return OrtPredictor(session, ctx.model.info.output_name)
