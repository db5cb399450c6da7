"""The run engine: worker processes, live samples, crash containment, cancel, history."""

import contextlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from studio.backends.registry import REGISTRY
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings
from studio.core.dataset import load_texts
from studio.core.engine import RunEngine
from studio.core.events import Event
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.paths import cache_dir
from studio.core.recipe import parse_recipe, resolve_recipe
from studio.core.store import RunStore
from tests.fakes import backends
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=3, min_seconds=0.0, rounds=0))
TEST_BACKENDS = tuple(f"tests.fakes.backends:{n}" for n in ("ABORTING", "MEMORY_HOG", "HANGING", "MISLABELLED"))


@pytest.fixture(autouse=True)
def test_backends():
    """The parent validates recipes against the catalogue; workers register them from the job."""
    specs = [backends.ABORTING, backends.MEMORY_HOG, backends.HANGING]
    for spec in specs:
        REGISTRY[spec.name] = spec
    yield
    for spec in specs:
        REGISTRY.pop(spec.name, None)


def _recipe(name: str, backend: str):
    return parse_recipe({"name": name, "backend": backend, "precision": "fp32"})


def _engine(tmp_path: Path, **kwargs) -> RunEngine:
    return RunEngine(ArtifactCache(cache_dir() / "artifacts"), RunStore(tmp_path / "history.sqlite"),
                     nvml=FakeNvml.missing(), test_backends=TEST_BACKENDS, **kwargs)


def _data(tiny_eval, tiny_calibration):
    return load_texts(tiny_eval), load_texts(tiny_calibration, label_column=None)


def test_workers_stream_events_samples_and_commit_history(tmp_path, tiny_classifier, tiny_eval, tiny_calibration):
    engine = _engine(tmp_path)
    events: list[Event] = []
    data, calibration = _data(tiny_eval, tiny_calibration)
    run = engine.run(str(tiny_classifier), [resolve_recipe("ort-int8-dynamic")], data, calibration, FAST, events.append,
                     hardware=probe(FakeNvml.missing()), request={"model": str(tiny_classifier)})
    assert [r.status for r in run.results] == ["ok", "ok"]
    samples = [e for e in events if e.kind == "sample"]
    assert samples and all(e.data["rss_bytes"] > 0 for e in samples)
    assert max(e.data["rss_bytes"] for e in samples) > 100 * 2**20  # a worker with torch loaded
    assert [e.data["t"] for e in samples if e.recipe == "torch-fp32"] == sorted(
        e.data["t"] for e in samples if e.recipe == "torch-fp32")
    assert {e.data["gpu_scope"] for e in samples} == {"none"}
    assert all(r.peak_rss_bytes >= max(e.data["rss_bytes"] for e in samples if e.recipe == r.recipe)
               for r in run.results)
    assert run.results[1].speedup_vs_reference > 0 and run.results[1].top1_agreement >= 0.9
    stored = engine.store.load(run.run_id)
    assert [r.recipe for r in stored.results] == ["torch-fp32", "ort-int8-dynamic"]
    assert stored.results[1].topk == run.results[1].topk
    assert engine.store.runs()[0].status == "finished"


def test_crashing_worker_is_contained(tmp_path, tiny_classifier, tiny_eval, tiny_calibration):
    engine = _engine(tmp_path)
    data, calibration = _data(tiny_eval, tiny_calibration)
    recipes = [_recipe("abort-me", "test-abort"), resolve_recipe("ort-fp32")]
    run = engine.run(str(tiny_classifier), recipes, data, calibration, FAST)
    by_name = {r.recipe: r for r in run.results}
    assert by_name["abort-me"].status == "failed"
    assert by_name["abort-me"].reason == f"worker crashed (signal {signal.SIGABRT.value}) during load of abort-me"
    assert by_name["ort-fp32"].status == "ok", "the queue goes on after a crash"


def test_out_of_memory_worker_is_contained(tmp_path, tiny_classifier, tiny_eval, tiny_calibration):
    engine = _engine(tmp_path)
    data, calibration = _data(tiny_eval, tiny_calibration)
    run = engine.run(str(tiny_classifier), [_recipe("hog", "test-memory-hog"), resolve_recipe("ort-fp32")],
                     data, calibration, FAST)
    hog = next(r for r in run.results if r.recipe == "hog")
    assert hog.status == "failed"
    assert hog.reason.startswith(("out of memory", "worker crashed (signal")), hog.reason
    assert next(r for r in run.results if r.recipe == "ort-fp32").status == "ok"


def _worker_pid() -> int:
    """The running worker: forked by the launcher (named qstudio-worker) or started fresh."""
    return next(p.pid for p in psutil.Process().children(recursive=True)
                if p.name() == "qstudio-worker" or "studio.core.worker" in " ".join(p.cmdline()))


def test_cancel_kills_a_stuck_worker_within_two_seconds(tmp_path, tiny_classifier, tiny_eval, tiny_calibration):
    engine = _engine(tmp_path)
    data, calibration = _data(tiny_eval, tiny_calibration)
    seen: dict[str, float | int] = {}

    def listen(event: Event) -> None:
        if event.recipe == "hang" and event.stage == "quantize" and "cancelled_at" not in seen:
            seen["pid"] = _worker_pid()
            seen["cancelled_at"] = time.monotonic()
            engine.cancel()
        if event.kind == "result" and event.recipe == "hang":
            seen["result_at"] = time.monotonic()

    before = set(os.listdir(engine.cache.root))
    run = engine.run(str(tiny_classifier), [_recipe("hang", "test-hang"), resolve_recipe("ort-fp32")], data,
                     calibration, FAST, listen)
    assert seen["result_at"] - seen["cancelled_at"] < 2.0
    hang = next(r for r in run.results if r.recipe == "hang")
    assert hang.status == "cancelled" and hang.reason == "cancelled during quantize"
    assert "ort-fp32" not in {r.recipe for r in run.results}, "the rest of the queue is skipped"
    assert not psutil.pid_exists(seen["pid"]) or psutil.Process(seen["pid"]).status() == psutil.STATUS_ZOMBIE
    leftovers = [name for name in set(os.listdir(engine.cache.root)) - before if name.startswith(".tmp")]
    assert leftovers == [], "no half-written artifact may stay in the cache"
    assert engine.store.runs()[0].status == "cancelled"


def test_kill_9_mid_run_keeps_finished_recipes(tmp_path, tiny_classifier, tiny_eval):
    """kill -9 the studio while a run goes: recipes already finished stay, the database stays intact."""
    home = tmp_path / "home"
    env = {**os.environ, "QSTUDIO_HOME": str(home)}
    command = [sys.executable, "-m", "studio.cli.main", "run", "--model", str(tiny_classifier), "--eval",
               str(tiny_eval), "--quiet", "--iterations", "200", "--seconds", "3", "--recipe", "ort-fp32",
               "--recipe", "ort-int8-dynamic", "--recipe", "ort-fp16"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    database = home / "data" / "history.sqlite"
    deadline = time.monotonic() + 240
    finished = 0
    while time.monotonic() < deadline and finished < 2:
        if database.exists():
            with sqlite3.connect(database, timeout=5) as db, contextlib.suppress(sqlite3.OperationalError):
                # the file exists a moment before its tables do
                finished = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        time.sleep(0.2)
    assert finished >= 2, "the run did not get far enough to test"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    store = RunStore(database)
    assert store.integrity() == "ok"
    summary = store.runs()[0]
    assert summary.status == "interrupted"
    run = store.load(summary.id)
    assert len(run.results) >= 2 and all(r.status == "ok" for r in run.results)
    assert run.results[0].reference and run.results[0].topk


def _write_runs(path: str, worker: int, count: int) -> None:
    from studio.core.results import RecipeResult, RunResult

    store = RunStore(Path(path))
    header = RunResult.model_validate_json(Path(path).with_suffix(".header.json").read_text())
    run_id = store.begin_run(header, {"worker": worker})
    for position in range(count):
        store.add_result(run_id, position, RecipeResult(
            recipe=f"r{worker}-{position}", backend="ort-fp32", precision="fp32", requested_precision="fp32",
            mode="none", device="cpu", status="ok", batch_size=1, seq_len=8, threads=1,
            topk=[[("a", 0.5), ("b", 0.25)]] * 50))
    store.finish_run(run_id, "finished")


def test_two_processes_write_the_same_history(tmp_path, tiny_classifier):
    from studio.core.compare import run_header
    from studio.core.dataset import TextSet
    from studio.core.model import open_model

    path = tmp_path / "shared.sqlite"
    RunStore(path)
    header = run_header(open_model(tiny_classifier), TextSet(["x"], None, "s"), TextSet([], None, "c"),
                        probe(FakeNvml.missing()), FAST)
    path.with_suffix(".header.json").write_text(header.model_dump_json())
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_runs, args=(str(path), i, 60)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    store = RunStore(path)
    assert store.integrity() == "ok"
    runs = store.runs()
    assert len(runs) == 2 and all(r.recipes == 60 and r.status == "finished" for r in runs)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_evicts_least_recently_used(tmp_path):
    cache = ArtifactCache(tmp_path / "cache", cap_bytes=2500)

    def writer(size: int):
        return lambda folder: (folder / "blob").write_bytes(b"x" * size)

    cache.get_or_build("a", writer(1000))
    cache.get_or_build("b", writer(1000))
    time.sleep(0.01)
    assert cache.lookup("a") is not None  # a is now more recently used than b
    cache.get_or_build("c", writer(1000))
    keys = {e.key for e in cache.entries()}
    assert keys == {"a", "c"}, keys
    assert cache.total_bytes() <= 2500 + 1000  # entry.json adds a little
    _, cached = cache.get_or_build("a", writer(1000))
    assert cached


def test_cancel_one_recipe_and_the_queue_goes_on(tmp_path, tiny_classifier, tiny_eval, tiny_calibration):
    engine = _engine(tmp_path)
    data, calibration = _data(tiny_eval, tiny_calibration)

    def listen(event: Event) -> None:
        if event.recipe == "hang" and event.stage == "quantize":
            engine.cancel_recipe("hang")

    engine.cancel_recipe("skip-me")  # not started yet: skipped when its turn comes
    recipes = [_recipe("hang", "test-hang"), parse_recipe({"name": "skip-me", "backend": "ort-fp32", "precision": "fp32"}),
               resolve_recipe("ort-fp32")]
    run = engine.run(str(tiny_classifier), recipes, data, calibration, FAST, listen)
    statuses = {r.recipe: (r.status, r.reason) for r in run.results}
    assert statuses["hang"] == ("cancelled", "cancelled during quantize")
    assert statuses["skip-me"] == ("cancelled", "cancelled before it started")
    assert statuses["ort-fp32"][0] == "ok"
    assert engine.store.runs()[0].status == "finished"


def test_workers_do_not_import_a_studio_folder_where_the_user_stands(
    tiny_classifier, tiny_eval, tmp_path, monkeypatch
) -> None:
    """A folder named `studio` in the current directory (or on PYTHONPATH) must not shadow the package."""
    shadow = tmp_path / "home"
    (shadow / "studio" / "core").mkdir(parents=True)
    (shadow / "studio" / "__init__.py").write_text("# somebody's own project, not Quantization Studio\n")
    (shadow / "studio" / "core" / "__init__.py").write_text("")
    monkeypatch.chdir(shadow)
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    data = load_texts(tiny_eval)
    run = _engine(tmp_path).run(str(tiny_classifier), [resolve_recipe("ort-fp32")], data, data, FAST)
    assert [r.status for r in run.results] == ["ok", "ok"], [r.reason for r in run.results]
