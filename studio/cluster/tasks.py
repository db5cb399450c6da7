"""The Ray tasks: a node's capability probe, and one recipe run by the studio's own worker process.

`run_recipe` hands the job to `RunEngine.run_worker`, exactly as a local run does (a worker process per
recipe, its events, memory samples and crash reports), on whatever node Ray picked. Failures of the recipe
are results; only a node's death makes Ray retry the task elsewhere.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray

from studio.cluster.shipping import pack, unpack, used_entries

# A task's stage events reach the driver at most this often (the queue is an actor call per event).
EVENT_INTERVAL = 0.5


def _node() -> tuple[str, str]:
    node_id = ray.get_runtime_context().get_node_id()
    return node_id, f"{socket.gethostname()} ({node_id[:8]})"


def _setup(test_backends: list[str], import_paths: list[str]) -> None:
    from studio.core.quiet import quiet_torch_imports
    from studio.core.worker import _register_test_backends

    quiet_torch_imports()
    _register_test_backends(test_backends, import_paths)


@ray.remote(num_cpus=0, max_retries=3)
def probe_node(test_nvml: str | None, import_paths: list[str]) -> dict[str, Any]:
    """This node's hardware (as `qstudio probe` reads it) and its host name."""
    import importlib
    import sys

    from studio.core.hardware import probe

    nvml = None
    if test_nvml:  # tests only: "module:function" giving this node's fake NVML
        sys.path.extend(p for p in import_paths if p not in sys.path)
        module, _, name = test_nvml.partition(":")
        nvml = getattr(importlib.import_module(module), name)()
    node_id, _ = _node()
    return {"node_id": node_id, "host": socket.gethostname(), "hardware": probe(nvml).model_dump(mode="json")}


def _cache_root(spec: dict[str, Any]) -> Path:
    from studio.core.engine import default_cache

    if spec.get("node_cache"):
        return Path(spec["node_cache"])
    if socket.gethostname() == spec["driver_host"]:  # a node on the caller's machine shares its cache
        return Path(spec["driver_cache"])
    return default_cache().root


@ray.remote(max_retries=3)
def run_recipe(
    spec: dict[str, Any], model_blob: bytes | None, reference: dict[str, Any] | None, events: Any
) -> dict[str, Any]:
    """One recipe of one model on this node: the worker's result, plus what the caller needs back (the
    reference's outputs and timings; the artifact when this node does not share the caller's cache)."""
    from studio.core.cache import ArtifactCache
    from studio.core.compare import bare_result
    from studio.core.engine import RunEngine
    from studio.core.events import Event
    from studio.core.gpu_memory import GpuMemoryProbe
    from studio.core.worker import WorkerJob

    node_id, node = _node()
    last = [0.0]

    def say(kind: str, **data: Any) -> None:
        with contextlib.suppress(Exception):  # progress is best effort; the result is what counts
            events.put_nowait({"task": spec["key"], "kind": kind, "node": node, "node_id": node_id, **data})

    def listen(event: Event) -> None:
        now = time.monotonic()
        if event.kind in ("stage", "progress") and event.stage and now - last[0] > EVENT_INTERVAL:
            last[0] = now
            say("stage", stage=event.stage, done=event.done, total=event.total)

    say("running")
    _setup(spec["test_backends"], spec["import_paths"])
    job = WorkerJob.model_validate(spec["job"])
    if reference is not None and reference["result"]["status"] != "ok":
        reason = f"the FP32 reference on this node type failed: {reference['result'].get('reason', '')}"
        return {"result": bare_result(job.recipe, "failed", reason).model_dump(mode="json"), "node": node}
    cache = ArtifactCache(_cache_root(spec))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="qstudio-task-") as run_dir:
        fields: dict[str, Any] = {"cache_root": str(cache.root), "run_dir": run_dir}
        if model_blob is not None:  # shipped through the object store: unpacked once per node and content
            root = unpack(model_blob, cache.root.parent / "sweep-models" / spec["model_digest"])
            fields["model"] = str(root / spec["model_file"] if spec.get("model_file") else root)
        if reference is not None:
            outputs = Path(run_dir) / reference["outputs_name"]
            outputs.write_bytes(reference["outputs_blob"])
            fields["reference_outputs"] = str(outputs)
            fields["reference_timings"] = reference["reference_timings"]
        job = job.model_copy(update=fields)
        engine = RunEngine(cache=cache, test_backends=tuple(spec["test_backends"]))
        outcome: list[Any] = []
        worker = threading.Thread(
            target=lambda: outcome.append(engine.run_worker(job, listen, GpuMemoryProbe(None))), daemon=True
        )
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:  # ray.cancel: stop the worker process, as a local cancel does
            engine.cancel()
            worker.join()
        result = outcome[0].result if outcome else bare_result(job.recipe, "cancelled", "cancelled")
        data = outcome[0].data if outcome else {}
        reply: dict[str, Any] = {"node": node, "node_id": node_id, "artifacts": {}, "notes": []}
        if job.is_reference and data.get("reference_outputs"):
            path = Path(data["reference_outputs"])
            reply |= {
                "outputs_name": path.name,
                "outputs_blob": path.read_bytes(),
                "reference_timings": data.get("reference_timings", {}),
            }
        if str(cache.root) != spec["driver_cache"] and result.ok:
            for entry in used_entries(cache, started):
                size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
                if size <= spec["fetch_limit"]:
                    reply["artifacts"][entry.name] = pack(entry)
                else:
                    result.notes.append(f"artifact stays on {node} in {entry} ({size / 2**30:.1f} GiB)")
    result.node = node
    reply["result"] = result.model_dump(mode="json")
    return reply
