"""Exporting a TensorRT recipe, built against the fake TensorRT API: the engine travels with the ONNX graph
it was built from, and on a machine without TensorRT `verify` says so instead of passing or crashing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from studio.backends import tensorrt_engine
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings, compare
from studio.core.dataset import load_texts
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.recipe import resolve_recipe
from studio.core.store import RunStore
from studio.deploy.export import export_recipe
from tests.fakes import tensorrt as fake_trt
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=2, min_seconds=0.0, rounds=0))


def test_tensorrt_export_carries_engine_and_source_and_verify_names_the_missing_runtime(
    monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, tiny_eval: Path, tiny_calibration: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    monkeypatch.setattr(tensorrt_engine, "buffer_device", lambda: "cpu")
    monkeypatch.setattr(tensorrt_engine, "gpu_identity", lambda ctx: "NVIDIA H100 80GB HBM3 9.0 / TensorRT fake")
    hardware = probe(FakeNvml.with_cards("h100"))
    hardware = hardware.model_copy(update={"runtimes": {**hardware.runtimes, "tensorrt": fake_trt.__version__}})
    cache = ArtifactCache(tmp_path / "cache")
    run = compare(open_model(tiny_classifier), [resolve_recipe("tensorrt-fp16")], load_texts(tiny_eval),
                  load_texts(tiny_calibration, label_column=None), hardware, cache, FAST)
    assert run.results[-1].status == "ok", run.results[-1].reason
    store = RunStore(tmp_path / "history.sqlite")
    request = {"model": str(tiny_classifier), "eval": str(tiny_eval), "calibration": str(tiny_calibration),
               "settings": FAST.model_dump(mode="json")}
    run_id = store.begin_run(run, request)
    for position, result in enumerate(run.results):
        store.add_result(run_id, position, result)
    store.finish_run(run_id, "finished")

    target = tmp_path / "trt"
    evidence = export_recipe(run_id, "tensorrt-fp16", target, store=store, cache=cache)

    contract = evidence.contract
    assert contract.runtime == "tensorrt" and contract.device == "cuda"
    assert contract.artifact == "model.engine" and contract.onnx_source == "model.onnx"
    engine = json.loads((target / "model.engine").read_bytes())  # the fake's engine records its build
    assert engine["flags"] == ["FP16"]
    assert [spec.name for spec in contract.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert contract.opset == {"ai.onnx": 17}
    assert evidence.hardware["gpus"][0]["name"].startswith("NVIDIA H100")
    checks = {check.name: check for check in evidence.checks}
    assert checks["artifact-present"].passed and checks["measured-ok"].passed
    loadable = checks["artifact-loadable"]
    assert not loadable.passed and "No module named 'tensorrt'" in loadable.detail
    assert "install numpy, tokenizers and tensorrt, torch" in loadable.detail
    assert not evidence.ready_for_local_trial.ready
    assert "README.md" in evidence.files and "TensorRT" in (target / "README.md").read_text()
