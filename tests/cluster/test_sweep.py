"""Sweeps through a real Ray cluster on this machine: two CPU nodes of one type and a node with a fake GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from studio.cluster.sweep import ClusterOptions, Sweep, SweepState, TaskView  # noqa: E402
from studio.core.cache import ArtifactCache  # noqa: E402
from studio.core.catalogue import register  # noqa: E402
from studio.core.engine import default_store  # noqa: E402
from studio.core.paths import cache_dir  # noqa: E402
from studio.core.recipe import resolve_recipe  # noqa: E402
from tests.fakes.backends import FAKE_CUDA  # noqa: E402
from tests.fakes.cluster import start_cluster  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray-cluster")
FAKE_CUDA_RECIPE = """name = "fake-cuda-fp16"
description = "test: a CUDA recipe that runs on the CPU"
backend = "test-fake-cuda"
precision = "fp16"
device = "cuda"
"""


@pytest.fixture(scope="module")
def cluster():
    register(FAKE_CUDA)
    local = start_cluster()
    ray.init(address=local.address, logging_level="WARNING", log_to_driver=False)
    yield local
    ray.shutdown()
    local.shutdown()


def _state(models: list[Path], recipes: list[str], tiny_eval: Path, tmp_path: Path) -> SweepState:
    cuda = tmp_path / "fake-cuda.toml"
    cuda.write_text(FAKE_CUDA_RECIPE)
    texts = [resolve_recipe(str(cuda) if r == "fake-cuda" else r).to_toml() for r in recipes]
    settings = {"timing": {"warmup": 1, "min_iterations": 3, "min_seconds": 0.1, "rounds": 0}}
    request = {"eval": str(tiny_eval), "text_column": "text", "label_column": "label", "settings": settings}
    return SweepState(models=[str(m) for m in models], recipes=texts, request=request)


def _options(tmp_path: Path) -> ClusterOptions:
    # The nodes keep artifacts in their own cache, as on other machines: what an export needs comes back.
    return ClusterOptions(
        node_cache=str(tmp_path / "node-cache"),
        test_nvml="tests.fakes.cluster:node_nvml",
        test_backends=("tests.fakes.backends:FAKE_CUDA",),
        gpus_per_task=0.5,  # the GPU node's one GPU: two CUDA tasks at once
    )


def test_sweep_places_recipes_survives_a_lost_node_and_exports(cluster, tiny_classifier, tiny_onnx, tiny_eval, tmp_path):
    """A CPU node killed mid-task costs that task a retry on the other CPU node; the only GPU node killed
    leaves its tasks waiting for none: they are reported lost, and a resume runs them on a new GPU node."""
    from studio.cli.main import main
    from tests.fakes.cluster import GPU_ENV

    state = _state([tiny_classifier, tiny_onnx], ["ort-fp32", "ort-int8-dynamic", "fake-cuda"], tiny_eval, tmp_path)
    cpu_ids = {node.node_id for node in cluster.cpu_nodes}
    killed: dict[str, str] = {}
    states: dict[str, str] = {}

    def on_task(view: TaskView) -> None:
        states[view.key] = view.state
        if view.state != "running" or view.node_id in killed.values():
            return
        if view.node_id in cpu_ids and "cpu" not in killed:  # mid-task: its worker imports or measures
            killed["cpu"], killed["cpu-task"] = view.node_id, view.key
            cluster.remove_node(next(n for n in cluster.cpu_nodes if n.node_id == view.node_id))
        elif view.node_id == cluster.gpu_node.node_id and "gpu" not in killed:
            killed["gpu"] = view.node_id
            cluster.remove_node(cluster.gpu_node)

    folder = tmp_path / "sweep"
    folder.mkdir()
    cache = ArtifactCache(cache_dir() / "artifacts")
    sweep = Sweep(state, folder, default_store(), cache, _options(tmp_path), on_task)
    sweep.run()
    assert "cpu" in killed and "gpu" in killed, killed
    assert state.status == "incomplete", (states, [(r.recipe, r.status, r.reason[:150], r.node) for run in state.runs for r in default_store().load(run.run_id).results])
    lost = sorted(key for key, value in states.items() if value == "lost")
    gpu_runs = {run.run_id for run in state.runs if "H100" in run.node_type_name}
    assert len(gpu_runs) == 2 and lost and {int(key.split("/")[0]) for key in lost} == gpu_runs
    assert all(value == "done" for key, value in states.items() if int(key.split("/")[0]) not in gpu_runs)

    cluster.gpu_node = cluster.add_node(num_cpus=1, num_gpus=1, env_vars={GPU_ENV: "h100"})
    cluster.wait_for_nodes()
    again = Sweep(SweepState.load(folder), folder, default_store(), cache, _options(tmp_path))
    state = again.run()
    assert state.status == "finished"
    assert {int(key.split("/")[0]) for key in again.submitted} == gpu_runs  # the GPU node type's tasks only
    assert len(state.runs) == 4  # each model on the CPU node type and on the GPU node type
    results = {}
    for run in state.runs:
        recorded = default_store().load(run.run_id)
        assert bool(recorded.hardware.gpus) == ("H100" in run.node_type_name)  # the node type's own probe
        assert recorded.results[0].reference  # each node type times its own reference
        for result in recorded.results:
            assert result.ok, (run.node_type_name, result.recipe, result.reason)
            if not result.reference:
                results[(run.model, result.recipe)] = (run, result)
    gpu_id = cluster.gpu_node.node_id[:8]
    for model in state.models:
        run, cuda = results[(model, "fake-cuda-fp16")]
        assert gpu_id in cuda.node and run.node_type_name.startswith("1x NVIDIA H100")
        assert cuda.speedup_vs_reference is not None  # against the reference timed on the GPU node type
    cpu_results = [r for (_, name), (_, r) in results.items() if name != "fake-cuda-fp16"]
    assert len(cpu_results) == 4
    assert all(gpu_id not in r.node and r.speedup_vs_reference is not None for r in cpu_results), (gpu_id, killed, [(r.recipe, r.node) for r in cpu_results])
    retried = next(
        r for run in state.runs for r in default_store().load(run.run_id).results
        if killed["cpu-task"] == f"{run.run_id}/{r.recipe}"
    )  # fmt: skip
    assert killed["cpu"][:8] not in retried.node  # retried on the CPU node that is left

    # A swept result exports from this machine's cache: its artifact came back from the node's cache.
    run, _ = results[(str(tiny_classifier), "ort-int8-dynamic")]
    assert main(["export", str(run.run_id), "ort-int8-dynamic", "--to", str(tmp_path / "export")]) == 0
    assert any((tmp_path / "export").iterdir())


def test_a_cancelled_sweep_resumes_only_what_is_missing(cluster, tiny_classifier, tiny_eval, tmp_path, capsys):
    from studio.cli.main import main
    from studio.core.paths import data_dir

    state = _state([tiny_classifier], ["ort-fp32", "ort-int8-dynamic"], tiny_eval, tmp_path)
    # Each recipe times for two seconds: the cancel sent when the reference is done reaches them while they
    # run, however slowly this driver is scheduled on a loaded machine (a 0.1 s timing let one finish first).
    state.request["settings"]["timing"]["min_seconds"] = 2.0
    folder = data_dir() / "sweeps" / "cancelled"
    folder.mkdir(parents=True)

    def on_task(view: TaskView) -> None:
        if view.state == "done":  # the reference: cancel the recipes queued behind it
            sweep.cancel()

    sweep = Sweep(state, folder, default_store(), ArtifactCache(cache_dir() / "artifacts"), _options(tmp_path), on_task)
    sweep.run()
    assert state.status == "cancelled"
    [run] = state.runs
    before = default_store().load(run.run_id).results
    finished = [r.recipe for r in before if r.ok]
    assert finished[0] == "torch-fp32" and len(finished) < 3, finished  # the reference and not every recipe
    missing = {"ort-fp32", "ort-int8-dynamic"} - set(finished)

    capsys.readouterr()
    assert main(["sweep", "--resume", str(run.run_id), "--json", str(tmp_path / "sweep.json")]) == 0
    printed = capsys.readouterr().err
    assert printed.count(": queued") == len(missing)  # the missing ones only
    assert all(f"{name}: queued" in printed for name in missing) and "torch-fp32: queued" not in printed
    after = default_store().load(run.run_id).results
    assert [r.recipe for r in after] == ["torch-fp32", "ort-fp32", "ort-int8-dynamic"]
    assert all(r.ok for r in after) and after[0].model_dump() == before[0].model_dump()
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert {row["recipe"] for row in report["results"]} == {"torch-fp32", "ort-fp32", "ort-int8-dynamic"}
    html = (folder / "report.html").read_text()
    assert "models × recipes" in html and "ort-int8-dynamic" in html
