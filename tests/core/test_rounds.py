"""Interleaved timing rounds: speed-ups taken within a round, the spread, and a busy machine noticed."""

import os
import subprocess
import sys

from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings
from studio.core.dataset import load_texts
from studio.core.engine import RunEngine
from studio.core.events import Event
from studio.core.measure import TimingPlan
from studio.core.paths import cache_dir
from studio.core.recipe import resolve_recipe
from studio.core.results import RecipeResult, reference_flags, timing_flags
from studio.core.rounds import OtherLoad, median_fields, round_settings, spread
from studio.core.store import RunStore
from tests.fakes.nvml import FakeNvml


def _timing(p50: float) -> dict:
    return {"latency_ms": {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.2, "mean": p50}, "throughput": 1000 / p50}


def test_median_over_rounds_and_spread():
    rows = [_timing(10.0), _timing(12.0), _timing(30.0)]
    combined = median_fields(rows)
    assert combined["latency_ms"]["p50"] == 12.0 and combined["throughput"] == 1000 / 12.0
    assert spread(rows) == (30.0 - 10.0) / 12.0
    assert spread(rows[:1]) is None
    assert median_fields([{"x": 1.0, "y": None}, {"x": 3.0, "y": 2.0}]) == {"x": 2.0, "y": None}


def test_rounds_share_the_plan():
    settings = RunSettings(timing=TimingPlan(warmup=6, min_iterations=20, min_seconds=3.0, rounds=3), decode_rounds=3)
    per_round = round_settings(settings).timing
    assert (per_round.warmup, per_round.min_iterations, per_round.min_seconds) == (6, 7, 1.0)
    assert round_settings(settings).decode_rounds == 1


def _result(name: str, **fields) -> RecipeResult:
    base = dict(recipe=name, backend="ort-fp32", precision="fp32", requested_precision="fp32", mode="none",
                device="cpu", status="ok", batch_size=1, seq_len=128, threads=1)
    return RecipeResult(**{**base, **fields})


def test_noisy_busy_and_slow_reference_flags():
    codes = [f.code for f in timing_flags(_result("a", latency_spread=0.25, others_cpu_share=0.6))]
    assert codes == ["noisy-timing", "busy-machine"]
    assert timing_flags(_result("b", latency_spread=0.05, others_cpu_share=0.02)) == []
    reference = _result("torch-fp32", reference=True, backend="torch-fp32", speedup_vs_reference=1.0)
    starved = [reference, _result("ort-fp32", speedup_vs_reference=8.0)]
    assert [f.code for f in reference_flags(starved)] == ["slow-reference"]
    assert reference_flags([reference, _result("ort-fp32", speedup_vs_reference=1.3)]) == []


def test_other_processes_cpu_is_measured():
    """Busy loops on half the CPUs while a block sleeps: the block sees about half the machine taken."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(1, (os.cpu_count() or 2) // 2))]
    try:
        import time

        time.sleep(0.3)  # let them start spinning before measuring (not a wait for a result)
        with OtherLoad() as load:
            time.sleep(1.0)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert load.share > 0.3


def test_a_run_times_its_recipes_in_interleaved_rounds(tmp_path, tiny_classifier, tiny_eval, tiny_calibration):
    store = RunStore(tmp_path / "history.sqlite")
    engine = RunEngine(ArtifactCache(cache_dir() / "artifacts"), store, nvml=FakeNvml.missing())
    events: list[Event] = []
    settings = RunSettings(timing=TimingPlan(warmup=1, min_iterations=4, min_seconds=0.0, rounds=3))
    recipes = [resolve_recipe("ort-fp32"), resolve_recipe("ort-int8-dynamic")]
    run = engine.run(str(tiny_classifier), recipes, load_texts(tiny_eval),
                     load_texts(tiny_calibration, label_column=None), settings, events.append)
    assert [r.recipe for r in run.results] == ["torch-fp32", "ort-fp32", "ort-int8-dynamic"]
    for result in run.results:
        assert result.ok and result.timing_rounds == 3, result
        assert result.latency_spread is not None and result.others_cpu_share is not None
        assert any("interleaved rounds" in n for n in result.notes)
    assert run.results[0].speedup_vs_reference == 1.0
    assert any(e.kind == "progress" and e.stage == "interleaved timing" for e in events)
    retimed = [e for e in events if e.kind == "result" and e.data and e.data.get("timing_rounds")]
    assert sorted(e.recipe for e in retimed) == sorted(r.recipe for r in run.results)
    stored = store.load(engine.run_id)
    assert [r.timing_rounds for r in stored.results] == [3, 3, 3]
    assert [r.latency_ms for r in stored.results] == [r.latency_ms for r in run.results]

