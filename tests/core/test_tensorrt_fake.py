"""The TensorRT backend against a faithful fake of the TensorRT Python API (tests/fakes/tensorrt.py):
profiles from the recipe, precision flags, INT8 calibration through raw pointers, binding by name,
the engine cache keyed by GPU and TensorRT version, and gating by compute capability."""

import json
import sys

import pytest

from studio.backends import tensorrt_engine
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


@pytest.fixture
def trt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    monkeypatch.setattr(tensorrt_engine, "buffer_device", lambda: "cpu")
    monkeypatch.setattr(tensorrt_engine, "gpu_identity", lambda ctx: "NVIDIA H100 80GB HBM3 9.0 / TensorRT fake")
    fake_trt.log.clear()
    return fake_trt


def _hardware(card: str = "h100"):
    hw = probe(FakeNvml.with_cards(card))
    return hw.model_copy(update={"runtimes": {**hw.runtimes, "tensorrt": fake_trt.__version__}})


def _run(tiny_classifier, tiny_eval, tiny_calibration, recipes, cache):
    return compare(open_model(tiny_classifier), recipes, load_texts(tiny_eval),
                   load_texts(tiny_calibration, label_column=None), _hardware(), cache, FAST)


def _engine(cache: ArtifactCache, recipe: str) -> dict:
    entry = next(e for e in cache.entries() if e.meta.get("recipe") == recipe and e.meta.get("step") == "tensorrt")
    return json.loads((entry.path / "model.engine").read_bytes())


def test_fp16_and_int8_engines_run_and_agree(trt, tiny_classifier, tiny_eval, tiny_calibration, tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    recipes = [resolve_recipe("tensorrt-fp16"), resolve_recipe("tensorrt-int8-entropy")]
    run = _run(tiny_classifier, tiny_eval, tiny_calibration, recipes, cache)
    for result in run.results[1:]:
        assert result.status == "ok", result.reason
        assert result.top1_agreement == 1.0, "outputs must be bound by name (the fake lists an extra output first)"
        assert result.cosine > 0.999
        assert "TensorRT fuses the graph itself" not in " ".join(result.notes)  # the recipes ask for no ORT fusion
    fp16 = _engine(cache, "tensorrt-fp16")
    assert fp16["flags"] == ["FP16"]
    assert fp16["profile"] == {name: [[1, 8], [1, 128], [16, 128]] for name in ("input_ids", "attention_mask", "token_type_ids")}
    int8 = _engine(cache, "tensorrt-int8-entropy")
    assert int8["flags"] == ["FP16", "INT8"] and int8["calibrator"] == "entropy"
    assert int8["calibrated_batches"] == 24  # every calibration text, held apart from evaluation
    assert any(e.meta.get("recipe") == "tensorrt-int8-entropy" for e in cache.entries())


def test_profiles_follow_the_recipe_and_minmax_is_selectable(trt, tiny_classifier, tiny_eval, tiny_calibration, tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    recipe = parse_recipe({**resolve_recipe("tensorrt-int8-minmax").model_dump(), "batch_size": 32, "seq_len": 64,
                           "calibration": {"method": "minmax", "samples": 5}})
    run = _run(tiny_classifier, tiny_eval, tiny_calibration, [recipe], cache)
    assert run.results[1].status == "ok", run.results[1].reason
    engine = _engine(cache, recipe.name)
    assert engine["profile"]["input_ids"] == [[1, 8], [32, 64], [32, 64]]
    assert engine["calibrator"] == "minmax" and engine["calibrated_batches"] == 5


def test_engine_cache_is_reused_and_tied_to_the_gpu(trt, tiny_classifier, tiny_eval, tiny_calibration, tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path / "cache")
    recipe = resolve_recipe("tensorrt-fp16")
    _run(tiny_classifier, tiny_eval, tiny_calibration, [recipe], cache)
    again = _run(tiny_classifier, tiny_eval, tiny_calibration, [recipe], cache)
    assert again.results[1].from_cache
    monkeypatch.setattr(tensorrt_engine, "gpu_identity", lambda ctx: "NVIDIA L4 8.9 / TensorRT fake")
    other_gpu = _run(tiny_classifier, tiny_eval, tiny_calibration, [recipe], cache)
    assert not other_gpu.results[1].from_cache, "an engine built for one GPU must not be reused on another"


def test_unparseable_model_is_a_clear_failure(trt, tiny_classifier, tiny_eval, tiny_calibration, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_trt, "KNOWN_DOMAINS", ("nothing",))
    run = _run(tiny_classifier, tiny_eval, tiny_calibration, [resolve_recipe("tensorrt-fp16")], ArtifactCache(tmp_path / "c"))
    result = run.results[1]
    assert result.status == "failed" and result.reason.startswith("TensorRT cannot parse the model (No importer registered")


@pytest.mark.parametrize(("card", "available"), [("a100", False), ("l4", True), ("h100", True)])
def test_fp8_needs_compute_capability_89(card, available):
    result = assess(resolve_recipe("tensorrt-fp8"), _hardware(card))
    assert result.available is available
    if not available:
        assert result.reason == "FP8 needs compute capability >= 8.9; this NVIDIA A100-SXM4-80GB has 8.0"


def test_without_tensorrt_every_trt_recipe_says_why():
    hw = probe(FakeNvml.with_cards("h100"))
    hw = hw.model_copy(update={"runtimes": {**hw.runtimes, "tensorrt": None}})
    for name in ("tensorrt-fp16", "tensorrt-int8-minmax", "tensorrt-fp8"):
        result = assess(resolve_recipe(name), hw)
        assert not result.available and result.reason.startswith("needs tensorrt, which is not installed")
        assert "NVIDIA's package index" in result.reason
