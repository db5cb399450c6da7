"""The comparison run on tiny models: every CPU backend end to end, the cache, and the correctness guard."""

import threading

import numpy as np
import pytest

from studio.backends.registry import REGISTRY
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings, compare
from studio.core.dataset import load_texts
from studio.core.events import Event
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.paths import cache_dir
from studio.core.recipe import builtin_recipes, parse_recipe, resolve_recipe
from tests.fakes.backends import EXPLODING, MISLABELLED
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=3, min_seconds=0.0, rounds=0))
CPU_RECIPES = [r for r in builtin_recipes("text-classification") if r.device == "cpu"]


@pytest.fixture(scope="module")
def hardware():
    return probe(FakeNvml.missing())


@pytest.fixture
def cache() -> ArtifactCache:
    return ArtifactCache(cache_dir() / "artifacts")


def _run(model_path, eval_file, calibration_file, recipes, hardware, cache, **kwargs):
    events: list[Event] = []
    run = compare(
        open_model(model_path),
        recipes,
        load_texts(eval_file),
        load_texts(calibration_file, label_column=None),
        hardware,
        cache,
        kwargs.pop("settings", FAST),
        events.append,
        **kwargs,
    )
    return run, events


def test_every_cpu_recipe_runs_and_is_measured(
    tiny_classifier, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    run, events = _run(tiny_classifier, tiny_eval, tiny_calibration, CPU_RECIPES, hardware, cache)
    by_name = {r.recipe: r for r in run.results}
    assert set(by_name) == {r.name for r in CPU_RECIPES}
    reference = run.results[0]
    assert reference.reference and reference.recipe == "torch-fp32"
    assert reference.top1_agreement == 1.0 and reference.max_abs_diff == 0.0
    for result in run.results:
        assert result.status == "ok", (result.recipe, result.reason)
        assert (
            result.latency_ms.p50 > 0
            and result.latency_ms.p50 <= result.latency_ms.p90 <= result.latency_ms.p99
        )
        assert result.throughput > 0 and result.size_bytes > 0 and result.peak_rss_bytes > 0
        assert 0 <= result.accuracy <= 1 and result.kl >= 0 and -1 <= result.cosine <= 1
        assert len(result.topk) == len(run.inputs) and len(result.topk[0]) == 3  # 3 labels: k capped
        assert abs(sum(p for _, p in result.topk[0]) - 1) < 1e-3
        assert result.speedup_vs_reference > 0
    # A trained tiny model keeps its decisions under INT8: the guard does not fire on honest results.
    assert by_name["ort-int8-dynamic"].top1_agreement >= 0.9
    assert by_name["ort-fp32"].top1_agreement == 1.0 and by_name["ort-fp32"].cosine > 0.9999
    assert by_name["ort-int8-dynamic"].size_bytes < by_name["ort-fp32"].size_bytes
    kinds = {e.kind for e in events}
    assert {"stage", "progress", "measurement", "result", "finished"} <= kinds
    timed = [e for e in events if e.kind == "measurement" and e.stage == "time"]
    assert len(timed) == len(run.results) and all(e.data["latency_ms"]["p50"] > 0 for e in timed)
    assert any(e.stage == "calibrate" and e.total == 24 for e in events)


def test_cached_rerun_skips_quantization_and_says_so(
    tiny_classifier, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    recipes = [r for r in CPU_RECIPES if r.name == "ort-int8-static-minmax"]
    first, _ = _run(tiny_classifier, tiny_eval, tiny_calibration, recipes, hardware, cache)
    second, events = _run(tiny_classifier, tiny_eval, tiny_calibration, recipes, hardware, cache)
    before, after = first.results[1], second.results[1]
    assert after.from_cache
    assert "quantization skipped: artifact taken from the cache" in after.notes
    assert not any(e.stage == "calibrate" for e in events)
    assert np.allclose([p for _, p in before.topk[0]], [p for _, p in after.topk[0]])
    # A different calibration method is a different artifact.
    entropy = parse_recipe(
        {**recipes[0].model_dump(), "name": "e", "calibration": {"method": "entropy", "samples": 16}}
    )
    third, _ = _run(tiny_classifier, tiny_eval, tiny_calibration, [entropy], hardware, cache)
    assert not third.results[1].from_cache


def test_mislabelled_backend_is_flagged_loudly(
    tiny_classifier, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    REGISTRY[MISLABELLED.name] = MISLABELLED
    try:
        recipe = parse_recipe({"name": "mislabelled", "backend": MISLABELLED.name, "precision": "fp32"})
        run, _ = _run(tiny_classifier, tiny_eval, tiny_calibration, [recipe], hardware, cache)
    finally:
        del REGISTRY[MISLABELLED.name]
    result = run.results[1]
    assert result.status == "ok" and result.top1_agreement < 0.5
    flag = next(f for f in result.flags if f.code == "low-agreement")
    assert flag.severity == "error"
    assert "treat this as a bug, not a result" in flag.message
    assert (
        "outputs are close to FP32 but the winning class differs: check the label mapping" in flag.message
        or ("mislabelled output" in flag.message)
    )


def test_a_failing_backend_does_not_stop_the_run(
    tiny_classifier, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    REGISTRY[EXPLODING.name] = EXPLODING
    try:
        boom = parse_recipe({"name": "boom", "backend": EXPLODING.name, "precision": "fp32"})
        ok = next(r for r in CPU_RECIPES if r.name == "ort-fp32")
        run, _ = _run(tiny_classifier, tiny_eval, tiny_calibration, [boom, ok], hardware, cache)
    finally:
        del REGISTRY[EXPLODING.name]
    statuses = {r.recipe: (r.status, r.reason) for r in run.results}
    assert statuses["boom"] == ("failed", "RuntimeError: kernel exploded")
    assert statuses["ort-fp32"][0] == "ok"


def test_unavailable_recipe_is_reported_not_run(
    tiny_classifier, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    cuda = next(r for r in builtin_recipes() if r.name == "ort-cuda-fp16")
    run, _ = _run(tiny_classifier, tiny_eval, tiny_calibration, [cuda], hardware, cache)
    result = run.results[1]
    assert result.status == "unavailable" and result.reason.startswith("needs an NVIDIA GPU")


def test_onnx_model_uses_ort_reference_and_refuses_torch(
    tiny_onnx, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    recipes = [r for r in CPU_RECIPES if r.name in ("torch-int8-dynamic", "ort-int8-dynamic")]
    run, _ = _run(tiny_onnx, tiny_eval, tiny_calibration, recipes, hardware, cache)
    by_name = {r.recipe: r for r in run.results}
    assert run.results[0].recipe == "ort-fp32-reference" and run.results[0].status == "ok"
    assert by_name["torch-int8-dynamic"].status == "unavailable"
    assert "needs a PyTorch model" in by_name["torch-int8-dynamic"].reason
    assert by_name["ort-int8-dynamic"].status == "ok" and by_name["ort-int8-dynamic"].top1_agreement >= 0.9


def test_feature_extraction_measures_embedding_fidelity(
    tiny_encoder, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    recipes = [r for r in CPU_RECIPES if r.name in ("ort-fp32", "ort-int8-dynamic")]
    events: list[Event] = []
    run = compare(
        open_model(tiny_encoder),
        recipes,
        load_texts(tiny_eval, label_column=None),
        load_texts(tiny_calibration, label_column=None),
        hardware,
        cache,
        FAST,
        events.append,
    )
    for result in run.results:
        assert result.status == "ok", result.reason
        assert result.top1_agreement is None and result.accuracy is None and result.topk == []
        assert result.cosine > 0.9
    assert run.results[1].cosine > 0.9999  # ORT FP32 reproduces torch's pooled embeddings


def test_cancel_stops_the_run_and_leaves_no_partial_artifact(
    tiny_classifier, tiny_eval, tiny_calibration, hardware, cache
) -> None:
    cancel = threading.Event()
    recipe = parse_recipe(
        {
            **next(r for r in CPU_RECIPES if r.name == "ort-int8-static-percentile").model_dump(),
            "name": "cancel-me",
            "calibration": {"method": "percentile", "samples": 23},
        }
    )

    def listener(event: Event) -> None:
        if event.stage == "calibrate" and event.done == 3:
            cancel.set()

    before = {p.name for p in cache.root.iterdir()}
    run = compare(
        open_model(tiny_classifier),
        [recipe],
        load_texts(tiny_eval),
        load_texts(tiny_calibration),
        hardware,
        cache,
        FAST,
        listener,
        cancel,
    )
    assert run.results[-1].status == "cancelled"
    after = {p.name for p in cache.root.iterdir()}
    assert not [name for name in after - before if name.startswith(".tmp")]
    assert all((cache.root / name / "entry.json").exists() for name in after - before)


def test_a_recipe_slower_than_fp32_is_flagged_with_its_likely_cause() -> None:
    from studio.core.compare import bare_result
    from studio.core.results import slower_flags

    def result(name: str, speedup: float, **update) -> object:
        base = bare_result(resolve_recipe(name), "ok", "")
        return base.model_copy(update={"speedup_vs_reference": speedup, **update})

    reference = result("torch-fp32", 1.0, reference=True)
    isa = result("torch-int8-dynamic", 0.05, notes=["expect slower than FP32 here: no AVX512-VNNI/AVX-VNNI/AMX-INT8 (...)"])
    (flag,) = slower_flags(isa, reference, 2)
    assert flag.code == "slower-than-fp32" and "0.05x" in flag.message and "AVX512-VNNI" in flag.message
    crowded = result("ort-fp32", 0.5, threads=8)
    assert "8 threads on 2 cores" in slower_flags(crowded, reference, 2)[0].message
    unfused = result("ort-int8-static-minmax", 0.8, notes=["graph fusion failed (x): used the unfused graph"])
    assert "not fused" in slower_flags(unfused, reference, 2)[0].message
    assert slower_flags(result("ort-int8-dynamic", 2.9), reference, 2) == []
    assert slower_flags(reference, reference, 2) == []


def test_a_broken_static_result_names_saturation_as_the_likely_cause() -> None:
    from studio.core.compare import bare_result
    from studio.core.results import diagnose

    broken = bare_result(resolve_recipe("ort-int8-static-minmax"), "ok", "").model_copy(
        update={"top1_agreement": 0.5, "cosine": 0.7}
    )
    flag = next(f for f in diagnose(broken, None, 0.9, 20) if f.code == "low-agreement")  # 20 labels: not chance
    assert flag.severity == "error" and "saturated an activation" in flag.message and "attention mask" in flag.message
