"""TensorRT engines built with the TensorRT Python API: FP16, INT8 (calibrated: MinMax or Entropy), FP8.

The engine is built from the plain FP32 ONNX export (TensorRT fuses the graph itself and does not know
ONNX Runtime's com.microsoft ops), with one optimization profile per input from the recipe: min 1 x 8,
opt batch_size x seq_len, max max(batch_size, 16) x seq_len, so evaluation batches and the timed shape
both fit. Engines are specific to a GPU and a TensorRT version, so both are part of the cache key.
Inputs and outputs are bound by tensor name, never by position.

TensorRT's wheels come only from NVIDIA's index: without them every recipe of this backend is reported
"needs tensorrt" by the capability check, and nothing here is imported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from studio.backends.base import Artifact, BuildContext, Feeds, Predictor, artifact_size
from studio.backends.onnx_graphs import exported_fp32
from studio.core.errors import StudioError
from studio.core.inputs import encode, pick

log = logging.getLogger(__name__)
ENGINE = "model.engine"
EVAL_BATCH = 16
MIN_SEQ = 8


def buffer_device() -> str:
    """Where I/O buffers live: the GPU. (Tests running the fake TensorRT on a CPU replace this.)"""
    return "cuda"


def profile_shapes(batch_size: int, seq_len: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """min / opt / max shapes of every (batch, sequence) input."""
    return (1, min(MIN_SEQ, seq_len)), (batch_size, seq_len), (max(batch_size, EVAL_BATCH), seq_len)


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    return {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
        trt.DataType.BOOL: torch.bool,
    }[dtype]


def _calibrator(trt: Any, method: str, batches: list[Feeds], cache_file: Path, report: Any) -> Any:
    """An INT8 calibrator over `batches` (one text each); MinMax and Entropy differ a lot on some models."""
    import torch

    base = {"minmax": trt.IInt8MinMaxCalibrator, "entropy": trt.IInt8EntropyCalibrator2}.get(method)
    if base is None:
        raise StudioError(f"TensorRT INT8 calibration has no '{method}' method", "use minmax or entropy")

    class Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.buffers: dict[str, Any] = {}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(batches):
                return None
            feeds = batches[self.index]
            self.index += 1
            report("calibrate", self.index, len(batches))
            pointers = []
            for name in names:
                if name not in feeds:
                    raise StudioError(f"the engine's input '{name}' is not one the tokenizer gives")
                self.buffers[name] = torch.from_numpy(feeds[name]).to(buffer_device())
                pointers.append(int(self.buffers[name].data_ptr()))
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.exists() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_file.write_bytes(bytes(cache))

    return Calibrator()


def build_engine(ctx: BuildContext, onnx_path: Path, target: Path) -> None:
    import tensorrt as trt

    recipe = ctx.recipe
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ctx.report("parse ONNX", 0, 1)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise StudioError(
            f"TensorRT cannot parse the model ({errors[:300]})", "check for unsupported operators"
        )
    config = builder.create_builder_config()
    if ctx.precision in ("fp16", "int8", "fp8"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers left out of INT8/FP8 fall back to FP16, not FP32
    if ctx.precision == "fp8":
        config.set_flag(trt.BuilderFlag.FP8)
    profile = builder.create_optimization_profile()
    low, opt, high = profile_shapes(recipe.batch_size, recipe.seq_len)
    input_names = [network.get_input(i).name for i in range(network.num_inputs)]
    for name in input_names:
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    if ctx.precision == "int8":
        assert recipe.calibration is not None
        config.set_flag(trt.BuilderFlag.INT8)
        texts, pairs = ctx.calibration_sample(recipe.calibration.samples)
        if not texts:
            raise StudioError(
                "TensorRT INT8 needs calibration texts and none were given", "pass --calibration FILE"
            )
        names = [n for n in ctx.model.info.input_names if n in input_names]
        batches = [
            encode(ctx.model.tokenizer, [t], names, recipe.seq_len, pad_to_max=True, pairs=pick(pairs, [i]))
            for i, t in enumerate(texts)
        ]
        config.int8_calibrator = _calibrator(
            trt, recipe.calibration.method, batches, target.with_name("calibration.cache"), ctx.report
        )
        config.set_calibration_profile(profile)
    ctx.report("build engine", 0, 1)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StudioError(
            f"TensorRT could not build a {ctx.precision.upper()} engine for this model",
            "see the worker log for TensorRT's reason; try FP16",
        )
    target.write_bytes(bytes(serialized))


class TensorRTPredictor:
    """Runs an engine: shapes set and buffers bound per tensor name; returns the named output."""

    def __init__(self, engine_bytes: bytes, output_name: str) -> None:
        import tensorrt as trt

        self.trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise StudioError(
                "TensorRT could not load the cached engine", "clear the cache: qstudio cache clear"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if output_name not in self.outputs:
            raise StudioError(
                f"the TensorRT engine has no output '{output_name}' (it has {', '.join(self.outputs)})",
                "rebuild the engine from a model exported with named outputs",
            )
        self.output_name = output_name

    def __call__(self, feeds: Feeds) -> np.ndarray:
        import torch

        device = buffer_device()
        keep = []
        for name in self.inputs:
            if name not in feeds:
                raise StudioError(f"the engine needs input '{name}' that the tokenizer does not give")
            array = feeds[name]
            if (
                array.shape[1] < MIN_SEQ
            ):  # below the profile's minimum: pad (masked out, so outputs are unchanged)
                array = np.pad(array, ((0, 0), (0, MIN_SEQ - array.shape[1])))
            dtype = _torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, int(tensor.data_ptr()))
            keep.append(tensor)
        results = {}
        for name in self.outputs:  # every output needs memory, even those the studio does not read
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = _torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
            results[name] = torch.empty(shape, dtype=dtype, device=device)
            self.context.set_tensor_address(name, int(results[name].data_ptr()))
        stream = torch.cuda.current_stream().cuda_stream if device == "cuda" else 0
        if not self.context.execute_async_v3(stream):
            raise StudioError("TensorRT failed to run the engine", "see the worker log")
        if device == "cuda":
            torch.cuda.synchronize()
        output: np.ndarray = results[self.output_name].float().cpu().numpy()
        return output


def gpu_identity(ctx: BuildContext) -> str:
    """What an engine is tied to: the GPU (name and compute capability) and the TensorRT version."""
    import tensorrt as trt

    from studio.core.hardware import probe_gpus

    gpus, _ = probe_gpus()
    gpu = f"{gpus[0].name} {gpus[0].cc_text}" if gpus else "unknown GPU"
    return f"{gpu} / TensorRT {trt.__version__}"


class TensorRTEngine:
    def prepare(self, ctx: BuildContext) -> Artifact:
        onnx_path = exported_fp32(ctx)  # TensorRT fuses for itself; ORT's fused ops would not parse
        if ctx.recipe.optimize_graph:
            ctx.notes.append("TensorRT fuses the graph itself: built from the plain ONNX export")
        calibration = ctx.calibration_digest(len(ctx.calibration_texts) if ctx.precision == "int8" else 0)
        key = ctx.cache_key(step="tensorrt", device=gpu_identity(ctx), calibration=calibration)
        folder, cached = ctx.cache.get_or_build(
            key,
            lambda folder: build_engine(ctx, onnx_path, folder / ENGINE),
            step="tensorrt",
            recipe=ctx.recipe.name,
        )
        return Artifact(folder / ENGINE, artifact_size(folder), from_cache=cached)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        assert artifact.path is not None
        return TensorRTPredictor(artifact.path.read_bytes(), ctx.model.info.output_name)
