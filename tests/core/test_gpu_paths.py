"""GPU code paths without a GPU: gating from a fake NVML, fallback, free-VRAM refusal, NVML memory readings,
and what the GPU backends say on a machine whose torch has no CUDA."""

import os

import pytest

from studio.core.cache import ArtifactCache
from studio.core.capability import assess
from studio.core.compare import RunSettings, compare
from studio.core.dataset import load_texts
from studio.core.gpu_memory import GpuMemoryProbe
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.paths import cache_dir
from studio.core.recipe import resolve_recipe
from studio.core.results import diagnose
from tests.fakes.nvml import CARDS, Card, FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=2, min_seconds=0.0, rounds=0))


def test_nvml_memory_is_per_process_where_the_driver_reports_it():
    card = Card("NVIDIA L4", (8, 9), 24, used_gib=1.0, processes={os.getpid(): 3 * 2**30})
    probe_ = GpuMemoryProbe(FakeNvml([card]))
    reading = probe_.read(os.getpid())
    assert (reading.bytes, reading.scope) == (3 * 2**30, "process")
    other = probe_.read(999_999)
    assert other.scope == "device" and other.bytes == 4 * 2**30  # 1 GiB used + the other process's 3 GiB
    assert "device-wide" in other.note
    probe_.close()


def test_nvml_absent_reads_none():
    reading = GpuMemoryProbe(FakeNvml.missing()).read(os.getpid())
    assert reading.bytes is None and reading.scope == "none" and reading.note.startswith("not available")


def test_not_enough_free_vram_is_refused_before_loading(tiny_classifier):
    model = open_model(tiny_classifier).info
    full = Card("Tesla T4", (7, 5), 15, used_gib=14.99)
    hw = probe(FakeNvml([full])).model_copy(update={"ort_providers": ["CUDAExecutionProvider"]})
    result = assess(resolve_recipe("torch-cuda-fp16"), hw, model)
    assert not result.available
    assert result.reason.startswith(f"not enough free GPU memory: {model.name} needs about")
    assert "this Tesla T4 has 0.0 GiB free" in result.reason
    roomy = probe(FakeNvml.with_cards("t4"))
    assert assess(resolve_recipe("torch-cuda-fp16"), roomy, model).available


@pytest.mark.parametrize(("card", "precision", "expected"), [("gtx1060", "fp32", "fallback"), ("a100", "bf16", None)])
def test_torch_cuda_on_a_cpu_only_torch_fails_clearly(tiny_classifier, tiny_eval, tiny_calibration, card, precision,
                                                       expected):
    """The fake card says the GPU exists; this torch is a CPU build: the recipe fails with what to do."""
    recipe = resolve_recipe("torch-cuda-fp16" if card == "gtx1060" else "torch-cuda-bf16")
    hw = probe(FakeNvml.with_cards(card))
    run = compare(open_model(tiny_classifier), [recipe], load_texts(tiny_eval),
                  load_texts(tiny_calibration, label_column=None), hw, ArtifactCache(cache_dir() / "artifacts"), FAST)
    result = run.results[1]
    assert result.status == "failed"
    assert result.reason.startswith("this PyTorch has no CUDA")
    assert result.precision == precision  # the FP16 recipe runs as FP32 on a GTX 1060, and says so
    if expected == "fallback":
        assert result.requested_precision == "fp16"
        flags = diagnose(result.model_copy(update={"notes": ["FP16 needs compute capability >= 7.0 ..."]}),
                         run.results[0], 0.9, 3)
        assert any(f.code == "fallback" and "ran in FP32 instead of FP16" in f.message for f in flags)


def test_every_card_gets_an_answer_for_every_builtin(tiny_classifier):
    from studio.core.recipe import builtin_recipes

    model = open_model(tiny_classifier).info
    for name in CARDS:
        hw = probe(FakeNvml.with_cards(name))
        for recipe in builtin_recipes():
            availability = assess(recipe, hw, model)
            assert availability.available or availability.reason, (name, recipe.name)


def test_every_backend_module_imports_without_a_gpu():
    import importlib

    from studio.backends.registry import REGISTRY

    for spec in REGISTRY.values():
        module, _, name = spec.target.partition(":")
        assert hasattr(importlib.import_module(module), name), spec.target
