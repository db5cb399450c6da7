"""Putting a recipe's artifact into an export folder, in the form its runtime loads without the studio.

ONNX Runtime recipes ship their quantized ONNX file; torch recipes ship a `torch.export` program
(`model.pt2`: graph and weights in one file, loaded with `torch.export.load`, so the deployer needs no
model code); TensorRT ships the engine with the ONNX graph it was built from, because an engine only
runs on the GPU and TensorRT version that built it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.backends.torch_runtime import named_output
from studio.core.artifact import Artifact, Backend, BuildContext, Predictor
from studio.core.catalogue import BackendSpec
from studio.core.compare import describe_failure
from studio.core.errors import StudioError
from studio.core.inputs import encode
from studio.deploy.contract import BATCH, SEQUENCE, dynamic_axes, onnx_interface, token_inputs
from studio.deploy.evidence import Runtime, TensorSpec

ONNX_FILE, PROGRAM_FILE, ENGINE_FILE = "model.onnx", "model.pt2", "model.engine"


@dataclass
class Packed:
    """What the export folder now holds, for the contract."""

    runtime: Runtime
    runtime_packages: list[str]
    artifact: str
    format: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int] | None = None
    onnx_source: str | None = None
    device: str = "cpu"
    providers: list[str] = field(default_factory=list)
    studio_predictor: Callable[[], Predictor] | None = None  # the studio's own way of running it

    @property
    def dynamic_axes(self) -> dict[str, dict[str, str]]:
        return dynamic_axes(self.inputs + self.outputs)


def _copy_onnx(source: Path, target: Path) -> None:
    """The graph and any external-data files next to it (`model.onnx.data` and the like)."""
    shutil.copyfile(source, target)
    for extra in source.parent.glob(source.name + "?*"):
        shutil.copyfile(extra, target.parent / extra.name)


def _prepared_file(ctx: BuildContext, spec: BackendSpec) -> tuple[Backend, Artifact, Path]:
    """The backend, its artifact (from the cache when there) and the artifact's file."""
    backend = spec.load()
    artifact = backend.prepare(ctx)
    if artifact.path is None:
        raise StudioError(f"{spec.title} produced no model file", "export another recipe")
    return backend, artifact, artifact.path


def pack_onnxruntime(ctx: BuildContext, spec: BackendSpec, folder: Path) -> Packed:
    backend, artifact, path = _prepared_file(ctx, spec)
    _copy_onnx(path, folder / ONNX_FILE)
    inputs, outputs, opset = onnx_interface(folder / ONNX_FILE)
    providers = ["CPUExecutionProvider"]
    if ctx.recipe.device == "cuda":
        providers = list(dict.fromkeys([spec.ort_provider, "CUDAExecutionProvider", "CPUExecutionProvider"]))
    package = "onnxruntime-gpu" if ctx.recipe.device == "cuda" else "onnxruntime"
    return Packed(
        "onnxruntime",
        [package],
        ONNX_FILE,
        "ONNX",
        inputs,
        outputs,
        opset,
        providers=providers,
        studio_predictor=lambda: backend.load(ctx, artifact),
    )


def primary_output(module: Any, output_name: str) -> Any:
    """`module` wrapped so the exported program returns one tensor: the model's named output.

    The inputs are named parameters (not **kwargs): torch.export binds dynamic shapes by argument name.
    """
    import torch

    class PrimaryOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            result: torch.Tensor = named_output(self.model(**inputs), output_name)
            return result

    return PrimaryOutput().eval()


def pack_torch(ctx: BuildContext, spec: BackendSpec, folder: Path, texts: list[str]) -> Packed:
    """Capture the recipe's module, as the studio measured it, with `torch.export` (batch and length dynamic)."""
    import torch

    backend = spec.load()
    predictor: Any = backend.load(ctx, backend.prepare(ctx))
    module = getattr(predictor, "module", None)
    if module is None:
        raise StudioError(f"{spec.title} keeps no torch module to export", "export another recipe")
    info = ctx.model.info
    device = getattr(predictor, "device", "cpu")
    ctx.report("capture with torch.export", 0, 1)
    feeds = encode(ctx.model.tokenizer, texts[:2] * (2 if len(texts) < 2 else 1), info.input_names, 64)
    example = {name: torch.from_numpy(array).to(device) for name, array in feeds.items()}
    max_length = int(getattr(getattr(module, "config", None), "max_position_embeddings", 512) or 512)
    batch = torch.export.Dim(BATCH, min=1, max=4096)
    sequence = torch.export.Dim(SEQUENCE, min=2, max=max_length)
    try:
        program = torch.export.export(
            primary_output(module, info.output_name),
            (),
            kwargs=example,
            dynamic_shapes={name: {0: batch, 1: sequence} for name in example},
            strict=False,
        )
        torch.export.save(program, str(folder / PROGRAM_FILE))
        with torch.inference_mode():
            probe = program.module()(**example)
    except Exception as error:
        raise StudioError(
            f"torch.export cannot capture {ctx.recipe.name} ({describe_failure(error)})",
            "export an ONNX Runtime recipe of this model instead",
        ) from None
    packages = ["torch", "torchao"] if spec.runtime == "torchao" else ["torch"]
    dtype = str(probe.dtype).removeprefix("torch.")
    shape: list[str | int] = [BATCH, SEQUENCE] if probe.dim() == 3 else [BATCH]
    outputs = [TensorSpec(name=info.output_name, dtype=dtype, shape=[*shape, int(probe.shape[-1])])]
    fmt = f"torch.export program (.pt2, torch {torch.__version__.split('+')[0]})"
    return Packed(
        "torch",
        packages,
        PROGRAM_FILE,
        fmt,
        token_inputs(info.input_names),
        outputs,
        device=str(device),
        studio_predictor=lambda: predictor,
    )


def pack_tensorrt(ctx: BuildContext, spec: BackendSpec, folder: Path) -> Packed:
    from studio.backends.onnx_graphs import exported_fp32

    backend, artifact, path = _prepared_file(ctx, spec)
    shutil.copyfile(path, folder / ENGINE_FILE)
    _copy_onnx(exported_fp32(ctx), folder / ONNX_FILE)
    inputs, outputs, opset = onnx_interface(folder / ONNX_FILE)
    return Packed(
        "tensorrt",
        ["tensorrt", "torch"],
        ENGINE_FILE,
        "TensorRT engine (serialized; for the GPU and TensorRT version that built it)",
        inputs,
        outputs,
        opset,
        onnx_source=ONNX_FILE,
        device="cuda",
        studio_predictor=lambda: backend.load(ctx, artifact),
    )


def pack(ctx: BuildContext, spec: BackendSpec, folder: Path, texts: list[str]) -> Packed:
    """Write the artifact of `ctx.recipe` into `folder` in its deployable form."""
    if spec.runtime in ("onnxruntime", "onnxruntime_genai"):  # the builder's graph runs on plain ORT
        return pack_onnxruntime(ctx, spec, folder)
    if ctx.model.is_causal_lm:
        raise StudioError(
            f"exporting {spec.title} recipes of causal language models is not supported yet (a torch.export "
            "program would need the KV cache captured with it)",
            "export one of the ONNX Runtime LLM recipes (llm-ort-fp32, llm-ort-int4, llm-ort-int8-dynamic)",
        )
    if spec.runtime == "tensorrt":
        return pack_tensorrt(ctx, spec, folder)
    if spec.needs_torch_model and spec.runtime in ("torch", "torchao"):
        return pack_torch(ctx, spec, folder, texts)
    raise StudioError(
        f"exporting {spec.title} recipes is not supported",
        "bitsandbytes quantizes as the weights load: deploy the FP32 model with the same BitsAndBytesConfig, "
        "or export an ONNX Runtime or torch recipe",
    )
