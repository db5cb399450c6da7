"""What the CPU's instruction sets mean for quantized kernels: which recipes gain, which run slower than
FP32, and which of optimum's ONNX Runtime presets fits (avx2, avx512, avx512_vnni, arm64).

The rules come from measurements (benchmarks/README.md, ../shared/NOTES.md): on an AVX2-only EPYC,
torchao's dynamic INT8 took 18x FP32's time and static QDQ INT8 was slower than FP32, while ORT dynamic
INT8 still gained 2.0x (3.0x with AVX512-VNNI); BF16 without AVX512-BF16/AMX is emulated.
"""

from __future__ import annotations

from typing import Any

VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16 = ("avx512_bf16", "amx_bf16")
ARM_INT8 = ("asimddp", "i8mm")  # dot-product and int8 matrix multiply (Armv8.2+, Armv8.6+)
ARM_BF16 = ("bf16",)


def is_arm(flags: list[str]) -> bool:
    return "asimd" in flags or any(flag in flags for flag in ARM_INT8)


def has_int8_dot(flags: list[str]) -> bool:
    """Whether the CPU has integer dot-product instructions (what makes INT8 matmuls fast)."""
    return any(flag in flags for flag in (*VNNI, *ARM_INT8))


def preset(flags: list[str]) -> str:
    """optimum-onnx's AutoQuantizationConfig preset for this CPU."""
    if is_arm(flags):
        return "arm64"
    if "avx512_vnni" in flags or "amx_int8" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def dynamic_int8_settings(flags: list[str]) -> dict[str, Any]:
    """ONNX Runtime dynamic INT8 as optimum's preset for this CPU sets it: u8 weights on AVX2 (its
    u8u8 kernel avoids the s8 saturation of vpmaddubsw), s8 weights elsewhere; activations u8."""
    name = preset(flags)
    return {"preset": name, "weight_type": "QUInt8" if name == "avx2" else "QInt8", "reduce_range": False}


def _missing(names: tuple[str, ...]) -> str:
    shown = {"avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8", "avx512_bf16": "AVX512-BF16",
             "amx_bf16": "AMX-BF16", "asimddp": "dot-product", "i8mm": "i8mm", "bf16": "BF16"}  # fmt: skip
    return "/".join(shown.get(n, n) for n in names)


SLOWER_HERE = "expect slower than FP32 here"  # how a notice starts when FP32 is likely faster on this CPU
NO_SPEEDUP = "expect no speed-up"


def likely_slower(notice: str) -> bool:
    """Whether a recipe's CPU notice expects it to run no faster than FP32 on this machine."""
    return notice.startswith((SLOWER_HERE, NO_SPEEDUP))


def cpu_notice(backend: str, precision: str, mode: str, flags: list[str]) -> str:
    """What to expect from a CPU recipe on a CPU with `flags`: "" when nothing needs saying."""
    arm = is_arm(flags)
    int8_units = ARM_INT8 if arm else VNNI
    if precision == "int8" and mode == "dynamic" and backend.startswith("torch") and not has_int8_dot(flags):
        return (
            f"{SLOWER_HERE}: no {_missing(int8_units)} (torchao's dynamic INT8 took 18x FP32's "
            "time on an AVX2-only CPU)"
        )
    if precision == "int8" and mode == "static" and not has_int8_dot(flags):
        return (
            f"{SLOWER_HERE}: no {_missing(int8_units)} (static QDQ INT8 measured slower than FP32 "
            "on an AVX2-only CPU)"
        )
    if precision == "int8" and mode == "dynamic" and not has_int8_dot(flags):
        return f"expect less gain here: no {_missing(int8_units)} (ORT dynamic INT8: 2.0x on AVX2, 3.0x with VNNI)"
    if precision == "int8" and mode == "weight-only" and backend.startswith("torch"):
        return (
            f"{NO_SPEEDUP} on a CPU: torchao's INT8 weight-only converts its weights to float on every call "
            "in eager mode (0.85x FP32 measured on an AMX CPU)"
        )
    if precision == "bf16" and not any(flag in flags for flag in (ARM_BF16 if arm else BF16)):
        return f"{SLOWER_HERE}: no {_missing(ARM_BF16 if arm else BF16)}; BF16 is emulated"
    return ""
