"""Which recipes this machine can run, and why not.

On the CPU, the instruction sets decide (`studio.core.isa`): a recipe whose kernels need what the CPU
lacks is marked "expect slower than FP32 here: no ..." before it runs. On NVIDIA GPUs the rules follow
what the hardware supports: FP16 needs compute capability 7.0 (below it FP32 runs
instead, and the user is told), BF16 8.0, FP8 8.9, FP4 10.0, and there is no dynamic INT8 on NVIDIA
GPUs (INT8 there is static: calibrated QDQ, or TensorRT). Every recipe gets an answer with a reason a
person can act on; nothing is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.catalogue import BackendSpec, get_spec
from studio.core.hardware import HardwareInfo
from studio.core.isa import cpu_notice
from studio.core.model import ModelInfo
from studio.core.onnx_export import remembered_failure
from studio.core.recipe import Recipe
from studio.core.types import Precision

# Minimum compute capability per precision on NVIDIA GPUs.
MIN_CC: dict[str, tuple[int, int]] = {"fp16": (7, 0), "bf16": (8, 0), "fp8": (8, 9), "fp4": (10, 0)}

# Where a runtime comes from, for the remedy in the message.
INSTALL_HINT = {
    "torch": "pip install torch",
    "torchao": "pip install torchao",
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu on an NVIDIA machine)",
    "tensorrt": "pip install 'quantization-studio[gpu]' (TensorRT's wheels come from NVIDIA's package index)",
    "bitsandbytes": "pip install 'quantization-studio[gpu]'",
    "onnxruntime_genai": "pip install 'quantization-studio[genai]' (onnxruntime-genai 0.14.1: later builders "
    "need transformers 5)",
}


@dataclass(frozen=True)
class Availability:
    """Whether a recipe can run here; `notice` explains a fallback that still runs."""

    recipe: str
    available: bool
    reason: str = ""
    precision: Precision = "fp32"  # what will actually run
    notice: str = ""

    @property
    def status_text(self) -> str:
        if not self.available:
            return f"not available: {self.reason}"
        return self.notice or "available"


def _cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


# Bytes per weight, for the free-VRAM check; a CUDA context and activations come on top.
WEIGHT_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "fp8": 1.0, "int4": 0.5, "fp4": 0.5}
CUDA_OVERHEAD_BYTES = 600 * 2**20


def gpu_memory_needed(parameters: int, precision: str) -> int:
    """A deliberately generous estimate: weights at `precision`, plus an FP32 copy while converting, plus
    the CUDA context."""
    return int(parameters * (WEIGHT_BYTES.get(precision, 4.0) + 4.0) + CUDA_OVERHEAD_BYTES)


def assess(recipe: Recipe, hardware: HardwareInfo, model: ModelInfo | None = None) -> Availability:
    """Decide whether `recipe` runs on `hardware` (and fits its free GPU memory, given the model)."""
    spec = get_spec(recipe.backend)

    def no(reason: str) -> Availability:
        return Availability(recipe.name, False, reason, recipe.precision)

    if model is not None:
        refusal = _model_refusal(recipe, spec, hardware, model)
        if refusal:
            return no(refusal)
    if recipe.device == "cuda" and not hardware.gpus:
        return no(f"needs an NVIDIA GPU; none found ({hardware.gpu_status.removeprefix('not available: ')})")
    if not hardware.has_runtime(spec.runtime):
        return no(
            f"needs {spec.runtime}, which is not installed; {INSTALL_HINT.get(spec.runtime, '')}".rstrip("; ")
        )
    if recipe.device == "cpu":
        notice = cpu_notice(recipe.backend, recipe.precision, recipe.mode, hardware.cpu.flags)
        return Availability(recipe.name, True, precision=recipe.precision, notice=notice)
    gpu = hardware.gpus[0]
    if spec.runtime.startswith("onnxruntime") and spec.ort_provider not in hardware.ort_providers:
        return no(
            f"needs ONNX Runtime's {spec.ort_provider}, which this onnxruntime lacks: "
            + (
                "install onnxruntime-gpu instead of onnxruntime"
                if spec.ort_provider == "CUDAExecutionProvider"
                else "install onnxruntime-gpu and NVIDIA's TensorRT libraries"
            )
        )
    if recipe.precision == "int8" and recipe.mode == "dynamic":
        return no("NVIDIA GPUs have no dynamic INT8: use static INT8 (calibrated QDQ) or TensorRT")
    needed = MIN_CC.get(recipe.precision)
    if needed is not None and gpu.compute_capability < needed:
        have = f"this {gpu.name} has {gpu.cc_text}"
        if recipe.precision == "fp16":
            return Availability(
                recipe.name,
                True,
                precision="fp32",
                notice=f"FP16 needs compute capability >= {_cc(needed)}; {have}: FP32 will run instead",
            )
        return no(f"{recipe.precision.upper()} needs compute capability >= {_cc(needed)}; {have}")
    if model is not None:
        need = gpu_memory_needed(model.parameters, recipe.precision)
        if gpu.memory_free_bytes < need:
            return no(
                f"not enough free GPU memory: {model.name} needs about {need / 2**30:.1f} GiB, this {gpu.name} has "
                f"{gpu.memory_free_bytes / 2**30:.1f} GiB free; close other GPU programs or pick a smaller model"
            )
    return Availability(recipe.name, True, precision=recipe.precision)


KIND_NAMES = {
    "text-classification": "text classifiers",
    "feature-extraction": "encoders",
    "text-generation": "causal language models",
}
CPU_OVERHEAD_BYTES = 512 * 2**20


def cpu_memory_needed(parameters: int) -> int:
    """FP32 weights twice (loaded, and the copy a quantizer or exporter makes) plus the runtime."""
    return int(parameters * 8 + CPU_OVERHEAD_BYTES)


def _model_refusal(recipe: Recipe, spec: BackendSpec, hardware: HardwareInfo, model: ModelInfo) -> str:
    """Why `recipe` cannot run on `model` whatever the machine (kind, context length), or on this RAM."""
    kind = KIND_NAMES.get(model.task, model.task)
    if model.task not in spec.tasks:
        return f"{spec.title} does not run {kind}; pick another backend"
    if spec.model_types and model.model_type not in spec.model_types:
        return f"{spec.title} cannot build '{model.model_type}' models (it builds: {', '.join(spec.model_types)})"
    if spec.from_onnx and model.source not in ("onnx", "demo"):
        failure = remembered_failure(model.content_hash)
        if failure:
            return f"{failure}; the torch recipes still run"
    if not recipe.suits(model.task):
        meant = " and ".join(KIND_NAMES.get(t, t) for t in recipe.tasks)
        return f"written for {meant}, and {model.name} is one of the {kind}"
    if model.task == "text-generation" and model.context_length and recipe.seq_len > model.context_length:
        return (
            f"seq_len {recipe.seq_len} is above {model.name}'s context length of {model.context_length} tokens; "
            f"set seq_len <= {model.context_length}"
        )
    available = hardware.cpu.memory_available_bytes
    need = cpu_memory_needed(model.parameters)
    if recipe.device == "cpu" and available and need > available:
        return (
            f"not enough free memory: {model.name} needs about {need / 2**30:.1f} GiB, this machine has "
            f"{available / 2**30:.1f} GiB available; close other programs or pick a smaller model"
        )
    return ""


def capability_matrix(recipes: list[Recipe], hardware: HardwareInfo) -> list[Availability]:
    return [assess(recipe, hardware) for recipe in recipes]
