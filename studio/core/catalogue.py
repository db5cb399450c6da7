"""The catalogue of backends: what each can do, declared without importing its runtime.

It belongs to the core: listing recipes, greying out what this machine cannot run and validating a
recipe file all read it, and the core runs a backend through its `target` without importing the
backends' package; the backend's module (and torch, onnxruntime, tensorrt ...) is imported only to run it.
Third parties add backends through the `quantization_studio.backends` entry-point group, whose objects
are `BackendSpec`s.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.errors import StudioError
from studio.core.types import Device, Mode, Precision, Task

if TYPE_CHECKING:
    from studio.core.artifact import Backend

log = logging.getLogger(__name__)
ALL_TASKS: tuple[Task, ...] = ("text-classification", "feature-extraction", "text-generation")
TEXT_TASKS: tuple[Task, ...] = ("text-classification", "feature-extraction")


@dataclass(frozen=True)
class BackendSpec:
    """What a backend declares up front."""

    name: str
    title: str
    target: str  # "module:Class"
    runtime: str  # the importable package it needs
    devices: tuple[Device, ...]
    precisions: tuple[Precision, ...]
    modes: tuple[Mode, ...]
    needs_torch_model: bool = False
    ort_provider: str = "CUDAExecutionProvider"  # what an ONNX Runtime backend needs on a GPU
    tasks: tuple[Task, ...] = ALL_TASKS  # the model kinds it can run
    model_types: tuple[str, ...] = ()  # transformers model types it can build from; empty: any

    @property
    def from_onnx(self) -> bool:
        """Whether it builds from the model's ONNX export (ONNX Runtime and TensorRT backends)."""
        return self.runtime in ("onnxruntime", "tensorrt")

    def load(self) -> Backend:
        module_name, _, class_name = self.target.partition(":")
        backend_class = getattr(importlib.import_module(module_name), class_name)
        backend: Backend = backend_class()
        return backend


_BUILTIN = (
    BackendSpec(
        "torch-fp32",
        "PyTorch FP32 (reference)",
        "studio.backends.torch_fp32:TorchFp32",
        "torch",
        ("cpu",),
        ("fp32",),
        ("none",),
        needs_torch_model=True,
    ),
    BackendSpec(
        "torch-int8-dynamic",
        "PyTorch dynamic INT8 (torchao)",
        "studio.backends.torch_dynamic_int8:TorchDynamicInt8",
        "torchao",
        ("cpu",),
        ("int8",),
        ("dynamic",),
        needs_torch_model=True,
    ),
    BackendSpec(
        "torch-bf16",
        "PyTorch BF16 on the CPU",
        "studio.backends.torch_bf16:TorchBf16",
        "torch",
        ("cpu",),
        ("bf16",),
        ("none",),
        needs_torch_model=True,
    ),
    BackendSpec(
        "torch-int8-weight-only",
        "PyTorch INT8 weight-only (torchao)",
        "studio.backends.torch_weight_only_int8:TorchWeightOnlyInt8",
        "torchao",
        ("cpu",),
        ("int8",),
        ("weight-only",),
        needs_torch_model=True,
    ),
    BackendSpec(
        "tensorrt",
        "TensorRT engine (Python API)",
        "studio.backends.tensorrt_engine:TensorRTEngine",
        "tensorrt",
        ("cuda",),
        ("fp16", "int8", "fp8"),
        ("none", "static"),
        tasks=TEXT_TASKS,
    ),
    BackendSpec(
        "ort-tensorrt",
        "ONNX Runtime TensorRT EP",
        "studio.backends.ort_tensorrt:OrtTensorRT",
        "onnxruntime",
        ("cuda",),
        ("fp32", "fp16", "int8"),
        ("none", "static"),
        ort_provider="TensorrtExecutionProvider",
        tasks=TEXT_TASKS,
    ),
    BackendSpec(
        "bitsandbytes",
        "bitsandbytes LLM.int8 / NF4 (transformers)",
        "studio.backends.bnb:BitsAndBytes",
        "bitsandbytes",
        ("cuda",),
        ("int8", "int4"),
        ("weight-only",),
        needs_torch_model=True,
    ),
    BackendSpec(
        "torch-cuda",
        "PyTorch on CUDA (FP32/FP16/BF16)",
        "studio.backends.torch_cuda:TorchCuda",
        "torch",
        ("cuda",),
        ("fp32", "fp16", "bf16"),
        ("none",),
        needs_torch_model=True,
    ),
    BackendSpec(
        "ort-fp32",
        "ONNX Runtime FP32",
        "studio.backends.ort_fp32:OrtFp32",
        "onnxruntime",
        ("cpu", "cuda"),
        ("fp32",),
        ("none",),
    ),
    BackendSpec(
        "ort-int8-dynamic",
        "ONNX Runtime dynamic INT8",
        "studio.backends.ort_dynamic_int8:OrtDynamicInt8",
        "onnxruntime",
        ("cpu", "cuda"),
        ("int8",),
        ("dynamic",),
    ),
    BackendSpec(
        "ort-int8-static",
        "ONNX Runtime static INT8 (QDQ, calibrated)",
        "studio.backends.ort_static_int8:OrtStaticInt8",
        "onnxruntime",
        ("cpu", "cuda"),
        ("int8",),
        ("static",),
        tasks=TEXT_TASKS,
    ),
    BackendSpec(
        "ort-int4",
        "ONNX Runtime INT4 weight-only (MatMulNBits)",
        "studio.backends.ort_int4:OrtInt4",
        "onnxruntime",
        ("cpu", "cuda"),
        ("int4",),
        ("weight-only",),
    ),
    BackendSpec(
        "ort-genai-int4",
        "ONNX Runtime INT4 (onnxruntime-genai model builder)",
        "studio.backends.ort_genai_int4:OrtGenaiInt4",
        "onnxruntime_genai",
        ("cpu", "cuda"),
        ("int4",),
        ("weight-only",),
        needs_torch_model=True,  # it builds from the Hugging Face weights, not from an ONNX file
        tasks=("text-generation",),
        # What onnxruntime-genai 0.14.1's builder has a writer for (its builder.py, by architecture).
        model_types=(
            "llama",
            "mistral",
            "qwen2",
            "qwen3",
            "phi",
            "phi3",
            "gemma",
            "gemma2",
            "gemma3",
            "granite",
            "olmo",
            "nemotron",
            "internlm2",
            "lfm2",
            "smollm3",
            "chatglm",
            "gpt_oss",
        ),
    ),
    BackendSpec(
        "ort-fp16",
        "ONNX Runtime FP16",
        "studio.backends.ort_fp16:OrtFp16",
        "onnxruntime",
        ("cpu", "cuda"),
        ("fp16",),
        ("none",),
    ),
)

REGISTRY: dict[str, BackendSpec] = {spec.name: spec for spec in _BUILTIN}


def register(spec: BackendSpec) -> BackendSpec:
    """Add a backend to the catalogue (also usable as a plain call from a plugin)."""
    REGISTRY[spec.name] = spec
    return spec


def _load_plugins() -> None:
    for entry in importlib.metadata.entry_points(group="quantization_studio.backends"):
        try:
            spec = entry.load()
        except Exception as exc:  # a broken plugin must not take the studio down
            log.warning("backend plugin %s failed to load: %s", entry.name, exc)
            continue
        if isinstance(spec, BackendSpec):
            register(spec)


_load_plugins()


def get_spec(name: str) -> BackendSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise StudioError(f"unknown backend '{name}'", f"use one of: {', '.join(sorted(REGISTRY))}") from None
