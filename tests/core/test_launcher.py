"""Warm worker starts: the launcher forks each recipe's worker; the worker still behaves as a fresh one."""

import json
import os
import signal

import psutil
import pytest

from studio.backends.registry import REGISTRY
from studio.core import launcher
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings
from studio.core.dataset import load_texts
from studio.core.engine import RunEngine
from studio.core.measure import TimingPlan
from studio.core.paths import cache_dir
from studio.core.recipe import parse_recipe
from studio.core.store import RunStore
from tests.fakes import backends
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=3, min_seconds=0.0, rounds=0))

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="warm starts fork (POSIX)")


@pytest.fixture(autouse=True)
def introspecting():
    REGISTRY[backends.INTROSPECTING.name] = backends.INTROSPECTING
    yield
    REGISTRY.pop(backends.INTROSPECTING.name, None)


def _run(tmp_path, tiny_classifier, tiny_eval, names):
    engine = RunEngine(ArtifactCache(cache_dir() / "artifacts"), RunStore(tmp_path / "history.sqlite"),
                       nvml=FakeNvml.missing(), test_backends=("tests.fakes.backends:INTROSPECTING",))
    data = load_texts(tiny_eval)
    recipes = [parse_recipe({"name": n, "backend": "test-introspect", "precision": "fp32"}) for n in names]
    run = engine.run(str(tiny_classifier), recipes, data, data, FAST)
    assert all(r.status == "ok" for r in run.results), [r.reason for r in run.results]
    probe = tmp_path / "probe.jsonl"
    seen = [json.loads(line) for line in probe.read_text().splitlines()]
    probe.unlink()
    return seen


def test_workers_are_forked_by_one_launcher_in_the_engines_directory_and_environment(
    tmp_path, tiny_classifier, tiny_eval, monkeypatch
):
    where = tmp_path / "somewhere"
    where.mkdir()
    monkeypatch.chdir(where)
    monkeypatch.setenv("QSTUDIO_TEST_PROBE", str(tmp_path / "probe.jsonl"))
    monkeypatch.setenv("QSTUDIO_TEST_MARK", "first")
    first = _run(tmp_path, tiny_classifier, tiny_eval, ["probe-a", "probe-b"])
    assert [s["recipe"] for s in first] == ["probe-a", "probe-b"]
    assert len({s["pid"] for s in first}) == 2, "a process per recipe"
    parents = {s["ppid"] for s in first}
    assert len(parents) == 1 and parents != {os.getpid()}, "forked by the launcher, not started by the engine"
    assert "studio.core.launcher" in " ".join(psutil.Process(parents.pop()).cmdline())
    assert all(s["cwd"] == str(where) and s["mark"] == "first" for s in first)
    assert all(s["nice"] >= os.nice(0) + 5 for s in first), "workers run below the engine's priority"

    monkeypatch.setenv("QSTUDIO_TEST_MARK", "second")  # the environment of the moment, not the launcher's
    second = _run(tmp_path, tiny_classifier, tiny_eval, ["probe-c"])
    assert second[0]["ppid"] == first[0]["ppid"], "the next run reuses the warm launcher"
    assert second[0]["mark"] == "second"


def test_a_killed_launcher_is_replaced_and_fresh_starts_remain(tmp_path, tiny_classifier, tiny_eval, monkeypatch):
    monkeypatch.setenv("QSTUDIO_TEST_PROBE", str(tmp_path / "probe.jsonl"))
    before = _run(tmp_path, tiny_classifier, tiny_eval, ["probe-a"])[0]["ppid"]
    os.kill(before, signal.SIGKILL)
    psutil.Process(before).wait(10)
    after = _run(tmp_path, tiny_classifier, tiny_eval, ["probe-b"])[0]["ppid"]
    assert after != before and "studio.core.launcher" in " ".join(psutil.Process(after).cmdline())

    monkeypatch.setenv(launcher.START_VARIABLE, "fresh")
    fresh = _run(tmp_path, tiny_classifier, tiny_eval, ["probe-c"])[0]
    assert fresh["ppid"] == os.getpid(), "started by the engine itself (nice execs the interpreter)"
