import json

import pytest

from studio.backends.registry import REGISTRY, BackendSpec
from studio.core.capability import assess, capability_matrix
from studio.core.hardware import probe, probe_gpus
from studio.core.recipe import builtin_recipes, parse_recipe, resolve_recipe


def test_probe_without_gpu_says_why(fake_nvml) -> None:
    gpus, status = probe_gpus(fake_nvml())
    assert gpus == []
    assert status == "not available: no NVIDIA driver found (NVML library missing)"


def test_probe_reads_cards(fake_nvml) -> None:
    nvml = fake_nvml("t4", "h100")
    gpus, status = probe_gpus(nvml)
    assert status == "ok"
    assert [g.name for g in gpus] == ["Tesla T4", "NVIDIA H100 80GB HBM3"]
    assert gpus[1].compute_capability == (9, 0)
    assert gpus[1].memory_total_bytes == 80 * 2**30
    assert gpus[0].driver == "580.95.05"
    assert nvml.initialised == 0, "NVML must be shut down after probing"


def test_probe_reports_cpu_and_runtimes(fake_nvml) -> None:
    hw = probe(fake_nvml())
    assert hw.cpu.logical_cores >= 1
    assert hw.runtimes["onnxruntime"] or hw.runtimes["onnxruntime-gpu"]
    assert "CPUExecutionProvider" in hw.ort_providers
    assert hw.gpu_status.startswith("not available: ")


@pytest.fixture(scope="module")
def gpu_test_backend():
    """A catalogue entry standing in for the GPU backends, to exercise every precision rule."""
    spec = BackendSpec(
        "test-gpu",
        "test GPU backend",
        "tests.fakes.backends:Unused",
        "onnxruntime",
        ("cpu", "cuda"),
        ("fp32", "fp16", "bf16", "fp8", "fp4", "int8"),
        ("none", "dynamic", "static"),
    )
    REGISTRY[spec.name] = spec
    yield spec
    del REGISTRY[spec.name]


def _gpu_recipe(precision: str, mode: str = "none"):
    return parse_recipe(
        {
            "name": f"r-{precision}-{mode}",
            "backend": "test-gpu",
            "precision": precision,
            "mode": mode,
            "device": "cuda",
            **({"calibration": {"method": "minmax", "samples": 8}} if mode == "static" else {}),
        }
    )


def _hw(fake_nvml, card: str | None):
    hw = probe(fake_nvml(card) if card else fake_nvml())
    return hw.model_copy(update={"ort_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]})


# (card, precision) -> expected: "ok", "fp32" (falls back), or a fragment of the refusal
MATRIX = {
    None: {
        "fp16": "needs an NVIDIA GPU; none found",
        "bf16": "needs an NVIDIA GPU",
        "fp8": "needs an NVIDIA GPU",
    },
    "gtx1060": {
        "fp32": "ok",
        "fp16": "fp32",
        "bf16": "BF16 needs compute capability >= 8.0; this NVIDIA GeForce GTX 1060 6GB has 6.1",
        "fp8": "FP8 needs compute capability >= 8.9",
        "fp4": "FP4 needs compute capability >= 10.0",
    },
    "t4": {
        "fp16": "ok",
        "bf16": "BF16 needs compute capability >= 8.0; this Tesla T4 has 7.5",
        "fp8": "FP8 needs",
    },
    "a100": {
        "fp16": "ok",
        "bf16": "ok",
        "fp8": "FP8 needs compute capability >= 8.9; this NVIDIA A100-SXM4-80GB has 8.0",
    },
    "l4": {"bf16": "ok", "fp8": "ok", "fp4": "FP4 needs compute capability >= 10.0; this NVIDIA L4 has 8.9"},
    "h100": {
        "fp16": "ok",
        "bf16": "ok",
        "fp8": "ok",
        "fp4": "FP4 needs compute capability >= 10.0; this NVIDIA H100 80GB HBM3 has 9.0",
    },
    "b200": {"fp16": "ok", "bf16": "ok", "fp8": "ok", "fp4": "ok"},
}


@pytest.mark.parametrize("card", list(MATRIX))
def test_precision_rules_per_card(fake_nvml, gpu_test_backend, card) -> None:
    hw = _hw(fake_nvml, card)
    for precision, expected in MATRIX[card].items():
        result = assess(_gpu_recipe(precision), hw)
        if expected == "ok":
            assert result.available and result.precision == precision and not result.notice, (
                card,
                precision,
                result,
            )
        elif expected == "fp32":
            assert result.available and result.precision == "fp32"
            assert result.notice == (
                "FP16 needs compute capability >= 7.0; this NVIDIA GeForce GTX 1060 6GB has 6.1: "
                "FP32 will run instead"
            )
        else:
            assert not result.available and expected in result.reason, (card, precision, result.reason)


@pytest.mark.parametrize("card", ["t4", "h100", "b200"])
def test_no_dynamic_int8_on_nvidia_gpus(fake_nvml, gpu_test_backend, card) -> None:
    result = assess(_gpu_recipe("int8", "dynamic"), _hw(fake_nvml, card))
    assert not result.available
    assert "no dynamic INT8" in result.reason
    assert assess(_gpu_recipe("int8", "static"), _hw(fake_nvml, card)).available


def test_cuda_recipe_needs_onnxruntime_gpu(fake_nvml) -> None:
    hw = probe(fake_nvml("h100")).model_copy(update={"ort_providers": ["CPUExecutionProvider"]})
    result = assess(resolve_recipe("ort-cuda-fp16"), hw)
    assert not result.available and "install onnxruntime-gpu" in result.reason


def test_every_builtin_gets_an_answer_without_gpu(fake_nvml) -> None:
    recipes = builtin_recipes()
    matrix = capability_matrix(recipes, probe(fake_nvml()))
    assert len(matrix) == len(recipes)
    for recipe, availability in zip(recipes, matrix, strict=True):
        if recipe.device == "cuda":
            assert not availability.available and availability.reason.startswith("needs an NVIDIA GPU")
        else:
            assert availability.available, availability.reason


def test_missing_runtime_is_reported(fake_nvml) -> None:
    hw = probe(fake_nvml())
    hw = hw.model_copy(update={"runtimes": {**hw.runtimes, "torchao": None}})
    result = assess(resolve_recipe("torch-int8-dynamic"), hw)
    assert not result.available and result.reason.startswith("needs torchao, which is not installed")


def test_both_onnxruntime_packages_are_a_warning(fake_nvml, monkeypatch):
    from studio.core import hardware

    real = hardware._installed_runtimes
    monkeypatch.setattr(hardware, "_installed_runtimes", lambda: {**real(), "onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"})
    hw = probe(fake_nvml())
    assert any("both onnxruntime and onnxruntime-gpu are installed" in w for w in hw.warnings)


AVX2_ONLY = ["avx2", "fma"]
VNNI_AVX512 = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
ARM_OLD = ["asimd"]
ARM_NEW = ["asimd", "asimddp", "i8mm", "bf16"]


def _with_flags(hw, flags):
    return hw.model_copy(update={"cpu": hw.cpu.model_copy(update={"flags": flags})})


@pytest.mark.parametrize(
    ("recipe", "flags", "expected"),
    [
        ("torch-int8-dynamic", AVX2_ONLY, "expect slower than FP32 here: no AVX512-VNNI/AVX-VNNI/AMX-INT8"),
        ("torch-int8-dynamic", VNNI_AVX512, ""),
        ("torch-int8-dynamic", ARM_OLD, "expect slower than FP32 here: no dot-product/i8mm"),
        ("torch-int8-dynamic", ARM_NEW, ""),
        ("ort-int8-static-minmax", AVX2_ONLY, "expect slower than FP32 here"),
        ("ort-int8-static-minmax", VNNI_AVX512, ""),
        ("ort-int8-dynamic", AVX2_ONLY, "expect less gain here"),
        ("ort-int8-dynamic", VNNI_AVX512, ""),
        ("llm-torch-bf16", AVX2_ONLY, "expect slower than FP32 here: no AVX512-BF16/AMX-BF16"),
        ("llm-torch-bf16", VNNI_AVX512, ""),
        ("llm-torch-bf16", ARM_NEW, ""),
        ("llm-torchao-int8-weight-only", VNNI_AVX512, "expect no speed-up on a CPU"),
        ("ort-fp32", AVX2_ONLY, ""),
    ],
)
def test_cpu_instruction_sets_mark_recipes_before_they_run(fake_nvml, recipe, flags, expected) -> None:
    availability = assess(resolve_recipe(recipe), _with_flags(probe(fake_nvml()), flags))
    assert availability.available, availability.reason
    assert availability.notice.startswith(expected) if expected else availability.notice == ""
    if expected:
        assert expected in availability.status_text


def test_dynamic_int8_follows_optimums_presets() -> None:
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from studio.core.isa import dynamic_int8_settings

    for flags, name in ((AVX2_ONLY, "avx2"), (["avx2", "avx512f"], "avx512"), (VNNI_AVX512, "avx512_vnni"), (ARM_NEW, "arm64")):
        ours = dynamic_int8_settings(flags)
        theirs = getattr(AutoQuantizationConfig, name)(is_static=False, per_channel=True)
        assert ours["preset"] == name
        assert ours["weight_type"] == theirs.weights_dtype.name and ours["reduce_range"] == theirs.reduce_range


def test_recipes_command_marks_slow_recipes_on_an_avx2_cpu(monkeypatch, capsys) -> None:
    from studio.cli import main as cli
    from studio.core import hardware

    real = hardware._read_cpu
    monkeypatch.setattr(hardware, "_read_cpu", lambda: real().model_copy(update={"flags": AVX2_ONLY}))
    assert cli.main(["recipes", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["torch-int8-dynamic"]["available"] and rows["torch-int8-dynamic"]["notice"].startswith("expect slower")
