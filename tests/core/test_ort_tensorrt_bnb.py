"""ONNX Runtime's TensorRT EP and bitsandbytes without a GPU: options, gating, and clear failures."""

import sys

from studio.backends import tensorrt_engine
from studio.backends.base import BuildContext
from studio.backends.ort_tensorrt import provider_options
from studio.core.cache import ArtifactCache
from studio.core.capability import assess
from studio.core.compare import RunSettings, compare
from studio.core.dataset import load_texts
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.recipe import parse_recipe, resolve_recipe
from tests.fakes import tensorrt as fake_trt
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=2, min_seconds=0.0, rounds=0))


def test_tensorrt_ep_options_come_from_the_recipe(tiny_classifier, tmp_path):
    recipe = parse_recipe({**resolve_recipe("ort-tensorrt-int8").model_dump(), "batch_size": 4, "seq_len": 96})
    ctx = BuildContext(open_model(tiny_classifier), recipe, ArtifactCache(tmp_path), "int8")
    options = provider_options(ctx, tmp_path / "engines")
    assert options["trt_engine_cache_enable"] and options["trt_engine_cache_path"] == str(tmp_path / "engines")
    assert options["trt_int8_enable"] and options["trt_fp16_enable"]
    assert options["trt_profile_opt_shapes"] == "input_ids:4x96,attention_mask:4x96,token_type_ids:4x96"
    assert options["trt_profile_min_shapes"] == "input_ids:1x8,attention_mask:1x8,token_type_ids:1x8"
    assert options["trt_profile_max_shapes"] == "input_ids:16x96,attention_mask:16x96,token_type_ids:16x96"


def test_tensorrt_ep_needs_its_provider(tiny_classifier):
    hw = probe(FakeNvml.with_cards("l4"))
    cuda_only = hw.model_copy(update={"ort_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]})
    result = assess(resolve_recipe("ort-tensorrt-fp16"), cuda_only)
    assert not result.available
    assert result.reason.startswith("needs ONNX Runtime's TensorrtExecutionProvider, which this onnxruntime lacks")
    with_trt = cuda_only.model_copy(update={"ort_providers": ["TensorrtExecutionProvider", *cuda_only.ort_providers]})
    assert assess(resolve_recipe("ort-tensorrt-fp16"), with_trt).available


def test_tensorrt_ep_on_a_cpu_onnxruntime_fails_clearly(tiny_classifier, tiny_eval, tiny_calibration, tmp_path,
                                                        monkeypatch):
    """The machine claims a GPU and the provider, but this onnxruntime is the CPU build: say so."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    monkeypatch.setattr(tensorrt_engine, "gpu_identity", lambda ctx: "fake GPU")
    hw = probe(FakeNvml.with_cards("l4"))
    hw = hw.model_copy(update={"ort_providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]})
    run = compare(open_model(tiny_classifier), [resolve_recipe("ort-tensorrt-fp16")], load_texts(tiny_eval),
                  load_texts(tiny_calibration, label_column=None), hw, ArtifactCache(tmp_path / "c"), FAST)
    result = run.results[1]
    assert result.status == "failed"
    assert result.reason.startswith(("ONNX Runtime did not enable CUDA", "ONNX Runtime did not enable its TensorRT"))


def test_bitsandbytes_gating_and_cpu_torch(tiny_classifier, tiny_eval, tiny_calibration, tmp_path):
    hw = probe(FakeNvml.with_cards("a100"))
    without = hw.model_copy(update={"runtimes": {**hw.runtimes, "bitsandbytes": None}})
    result = assess(resolve_recipe("bnb-nf4"), without)
    assert not result.available and result.reason.startswith("needs bitsandbytes, which is not installed")
    with_bnb = hw.model_copy(update={"runtimes": {**hw.runtimes, "bitsandbytes": "0.50.0"}})
    assert assess(resolve_recipe("bnb-llm-int8"), with_bnb).available
    run = compare(open_model(tiny_classifier), [resolve_recipe("bnb-nf4")], load_texts(tiny_eval),
                  load_texts(tiny_calibration, label_column=None), with_bnb, ArtifactCache(tmp_path / "c"), FAST)
    assert run.results[1].status == "failed" and run.results[1].reason.startswith("this PyTorch has no CUDA")
    assert assess(resolve_recipe("bnb-nf4"), probe(FakeNvml.missing())).reason.startswith("needs an NVIDIA GPU")
