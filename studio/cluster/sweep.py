"""The sweep's driver: plan models x recipes onto node types, submit Ray tasks, commit each result at once.

One history run per (model, node type): its header holds that node type's hardware and its reference is
timed there, so every speed-up is against FP32 on the same kind of node, and `qstudio show`, `report` and
`export` work on a swept run as on a local one. `sweep.json` in the sweep's folder says which runs belong
to it; `--resume` re-submits only the recipes whose results the history does not hold.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel

from studio.cluster.nodes import NodeProbe, NodeType, group, place
from studio.cluster.shipping import digest, import_entry, pack_model
from studio.cluster.tasks import probe_node, run_recipe
from studio.core.cache import ArtifactCache
from studio.core.compare import (
    at_shape,
    bare_result,
    describe_failure,
    finalise,
    plan_queue,
    run_header,
    shape_of,
)
from studio.core.dataset import request_data
from studio.core.errors import StudioError
from studio.core.hardware import HardwareInfo
from studio.core.model import DEMOS, open_model
from studio.core.recipe import Recipe, builtin_recipes, parse_recipe
from studio.core.results import RecipeResult, RunResult
from studio.core.settings import RunSettings
from studio.core.store import RunStore
from studio.core.worker import WorkerJob, shape_key

log = logging.getLogger(__name__)
STATE_FILE = "sweep.json"
FINAL = ("ok", "failed", "unavailable")  # a result the history holds for good; the rest are re-run


class SweepRun(BaseModel):
    """One history run of the sweep: a model on one node type, its recipes in queue order (reference first)."""

    run_id: int
    model: str
    node_type: str  # the type's signature
    node_type_name: str
    recipes: list[str]  # TOML texts


class SweepState(BaseModel):
    sweep_id: int = 0  # the first run's id: what `--resume` and `report` take
    models: list[str]
    recipes: list[str]  # TOML texts, as requested; empty: every built-in recipe for each model's kind
    request: dict[str, Any]  # data options and settings, as `qstudio run` records them
    runs: list[SweepRun] = []
    status: str = "running"

    def save(self, folder: Path) -> None:
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(folder / STATE_FILE)

    @classmethod
    def load(cls, folder: Path) -> SweepState:
        return cls.model_validate_json((folder / STATE_FILE).read_text(encoding="utf-8"))


@dataclass
class TaskView:
    """What the progress display shows of one task."""

    key: str
    model: str
    recipe: str
    node_type: str
    state: str = "queued"  # queued, running, done, failed, unavailable, cancelled, lost (no node left)
    node: str = ""
    node_id: str = ""
    stage: str = ""
    reason: str = ""


@dataclass
class ClusterOptions:
    address: str | None = None  # None: a local Ray instance on this machine; "auto"; "ray://host:10001"
    shared_paths: bool = False  # model paths are the same on every node: nothing is shipped
    node_cache: str | None = None  # where nodes keep artifacts (default: the caller's cache on its machine)
    fetch_limit: int = 8 * 2**30  # artifacts up to this size come back to the caller's cache
    gpus_per_task: float = 1.0  # what a CUDA task asks Ray for: 0.5 lets two share a GPU
    test_nvml: str | None = None  # tests only: "module:function" giving each node its fake NVML
    test_backends: tuple[str, ...] = ()
    local_cpus: int | None = None  # the local instance's CPUs (default: all)


@dataclass
class _Model:
    ref: str
    model: Any  # studio.core.model.Model
    data: Any
    calibration: Any
    blob: Any = None  # the model's files in the object store, when shipped
    digest: str = ""


@dataclass
class _Pending:
    task: TaskView
    run: SweepRun
    position: int
    reference: bool


@dataclass
class _Run:
    state: SweepRun
    header: RunResult
    reference: RecipeResult | None = None
    reference_ref: Any = None  # the reference task's reply (an ObjectRef), what its recipes wait on
    open_tasks: int = 0


def connect(options: ClusterOptions) -> str:
    """Join the cluster the user named, or start a local Ray instance; returns where it runs."""
    if ray.is_initialized():
        return options.address or "a local Ray instance"
    if options.address and options.address != "auto":
        _check_reachable(options.address)
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if options.address:
            ray.init(address=options.address, **kwargs)
        else:
            # "local": a new instance of our own, never a cluster some other program left running here
            ray.init(address="local", num_cpus=options.local_cpus, include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = (
            f"join the Ray cluster at {options.address}" if options.address else "start a local Ray instance"
        )
        raise StudioError(
            f"cannot {where}: {str(error).strip().splitlines()[0][:300]}",
            "check the address and `ray status` on the head node; `ray start --head` starts a cluster",
        ) from error
    return options.address or "a local Ray instance"


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Ray retries an address that does not answer for minutes: say at once when nothing listens there."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise StudioError(
            f"'{address}' is not a Ray address", "give HOST:PORT (6379), ray://HOST:10001 or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise StudioError(
            f"nothing answers at {address} ({error})",
            "start the head with `ray start --head`, or check the address and the firewall",
        ) from error


def probe_nodes(options: ClusterOptions, import_paths: list[str]) -> list[NodeType]:
    """Every live node's capability probe (a task pinned to it), grouped into node types."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    replies = ray.get(
        [
            probe_node.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(options.test_nvml, import_paths)
            for n in nodes
        ]
    )
    probes = [
        NodeProbe(
            reply["node_id"],
            reply["host"],
            float(node["Resources"].get("CPU", 0)),
            float(node["Resources"].get("GPU", 0)),
            HardwareInfo.model_validate(reply["hardware"]),
        )
        for node, reply in zip(nodes, replies, strict=True)
    ]
    return group(probes)


class Sweep:
    """Runs (or resumes) a sweep; `cancel()` from another thread cancels the Ray tasks in flight."""

    def __init__(
        self,
        state: SweepState,
        folder: Path,
        store: RunStore,
        cache: ArtifactCache,
        options: ClusterOptions,
        on_task: Callable[[TaskView], None] = lambda _: None,
        on_message: Callable[[str], None] = lambda _: None,
    ) -> None:
        from studio.core.engine import _module_roots

        self.state = state
        self.folder = folder
        self.store = store
        self.cache = cache
        self.options = options
        self.on_task = on_task
        self.on_message = on_message
        self.import_paths = _module_roots(list(options.test_backends))
        self.tasks: dict[str, TaskView] = {}
        self.submitted: list[str] = []  # task keys submitted by this call (what a resume re-ran)
        self._cancel = threading.Event()
        self._pending: dict[Any, _Pending] = {}
        self._runs: dict[int, _Run] = {}
        self.types: list[NodeType] = []

    def cancel(self) -> None:
        self._cancel.set()

    # -- planning ---------------------------------------------------------------------------------------
    def _settings(self) -> RunSettings:
        settings = RunSettings.model_validate(self.state.request["settings"])
        # Interleaved rounds need every artifact on one node: a sweep's speed-ups are each task's own
        # timing against the reference timed on the same node type.
        return settings.model_copy(update={"timing": settings.timing.model_copy(update={"rounds": 0})})

    def _open(self, ref: str) -> _Model:
        model = open_model(ref)
        request = {**self.state.request, "model": ref, "task": model.info.task}
        data, calibration = request_data(request, self.on_message)
        if model.info.source in DEMOS or self.options.shared_paths:
            return _Model(ref, model, data, calibration)
        packed = pack_model(Path(ref))
        return _Model(ref, model, data, calibration, ray.put(packed), digest(packed))

    def _plan(self, model: _Model, recipes: list[Recipe]) -> None:
        """Place the model's recipes on node types and record one history run per type used."""
        queue_ = plan_queue(model.model.info, recipes)
        placed: dict[str, list[Recipe]] = {}
        unavailable: list[tuple[Recipe, str]] = []
        for recipe in queue_[1:]:
            node_type, reason = place(recipe, model.model.info, self.types)
            if node_type is None:
                unavailable.append((recipe, reason))
            else:
                placed.setdefault(node_type.signature, []).append(recipe)
        if not placed and self.types:
            placed[self.types[0].signature] = []
        for node_type in self.types:
            if node_type.signature not in placed:
                continue
            mine = [_threads(r, node_type) for r in placed[node_type.signature]]
            reference = _threads(queue_[0], node_type)
            if mine and shape_of(reference) != shape_of(mine[0]):
                reference = at_shape(reference, shape_of(mine[0]))
            header = run_header(
                model.model, model.data, model.calibration, node_type.hardware, self._settings()
            )
            request = {
                **self.state.request,
                "model": model.ref,
                "task": model.model.info.task,
                "recipes": [r.to_toml() for r in [reference, *mine]],
                "sweep": self.state.sweep_id or None,
                "node_type": node_type.name,
            }
            run_id = self.store.begin_run(header, request)
            if not self.state.sweep_id:
                self.state.sweep_id = run_id
            run = SweepRun(
                run_id=run_id,
                model=model.ref,
                node_type=node_type.signature,
                node_type_name=node_type.name,
                recipes=[r.to_toml() for r in [reference, *mine]],
            )
            self.state.runs.append(run)
            for recipe, reason in unavailable:  # greyed with the reason, recorded in the first run
                result = bare_result(recipe, "unavailable", reason)
                run.recipes.append(recipe.to_toml())
                self.store.add_result(run_id, len(run.recipes) - 1, result)
                view = self._view(run, recipe.name)
                view.state, view.reason = "unavailable", reason
                self.on_task(view)
            unavailable = []
        self.state.save(self.folder)

    def _view(self, run: SweepRun, recipe: str) -> TaskView:
        key = f"{run.run_id}/{recipe}"
        view = self.tasks.setdefault(
            key, TaskView(key, Path(run.model).name or run.model, recipe, run.node_type_name)
        )
        return view

    # -- submitting -------------------------------------------------------------------------------------
    def _spec(self, model: _Model, run: SweepRun, job: WorkerJob, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "model_digest": model.digest,
            "model_file": None if Path(run.model).is_dir() else Path(run.model).name,
            "job": job.model_dump(mode="json"),
            "driver_host": socket.gethostname(),
            "driver_cache": str(self.cache.root),
            "node_cache": self.options.node_cache,
            "fetch_limit": self.options.fetch_limit,
            "test_backends": list(self.options.test_backends),
            "import_paths": self.import_paths,
        }

    def _submit(self, model: _Model, run: SweepRun, events: Any) -> None:
        node_type = next((t for t in self.types if t.signature == run.node_type), None)
        if node_type is None:
            raise StudioError(
                f"run {run.run_id} of the sweep ran on a kind of node ({run.node_type_name}) the cluster "
                "no longer has",
                "start a node of that kind, or sweep that model again",
            )
        recipes = [parse_recipe(tomllib.loads(text), "sweep") for text in run.recipes]
        recorded = self.store.load(run.run_id)
        done = {r.recipe: r for r in recorded.results if r.status in FINAL}
        state = _Run(run, recorded)
        self._runs[run.run_id] = state
        # Only this type's nodes (Ray's node-id label): a retry after a node dies stays on the type.
        selector = {"ray.io/node-id": f"in({','.join(node_type.node_ids)})"}
        settings = self._settings()
        saved = self._saved_reference(run)
        reference = recipes[0]
        if reference.name in done and done[reference.name].ok and saved is not None:
            state.reference = done[reference.name]
            state.reference_ref = ray.put({**saved, "result": state.reference.model_dump(mode="json")})
        for position, recipe in enumerate(recipes):
            is_reference = position == 0
            if recipe.name in done and not (is_reference and state.reference_ref is None):
                continue
            view = self._view(run, recipe.name)
            view.state, view.node, view.stage = "queued", "", ""
            job = WorkerJob(
                model=model.ref,
                recipe=recipe,
                is_reference=is_reference,
                data=model.data,
                calibration=model.calibration,
                settings=settings,
                hardware=node_type.hardware,
                cache_root="",
                run_dir="",
                extra_shapes=sorted({shape_of(r) for r in recipes[1:]} - {shape_of(reference)})
                if is_reference
                else [],
                test_backends=list(self.options.test_backends),
                import_paths=self.import_paths,
            )
            resources: dict[str, Any] = {"num_cpus": max(1, recipe.threads or node_type.cpus)}
            if recipe.device == "cuda":
                resources["num_gpus"] = self.options.gpus_per_task
            ref = run_recipe.options(label_selector=selector, **resources).remote(
                self._spec(model, run, job, view.key),
                model.blob,
                None if is_reference else state.reference_ref,
                events,
            )
            if is_reference:
                state.reference_ref = ref
            self._pending[ref] = _Pending(view, run, position, is_reference)
            state.open_tasks += 1
            self.submitted.append(view.key)
            self.on_task(view)

    def _saved_reference(self, run: SweepRun) -> dict[str, Any] | None:
        meta = self.folder / f"reference-{run.run_id}.json"
        if not meta.is_file():
            return None
        saved = json.loads(meta.read_text())
        blob = self.folder / f"reference-{run.run_id}-{saved['outputs_name']}"
        if not blob.is_file():
            return None
        return {**saved, "outputs_blob": blob.read_bytes()}

    # -- results ----------------------------------------------------------------------------------------
    def _finish(self, pending: _Pending, reply: dict[str, Any] | None, error: str = "") -> None:
        run = self._runs[pending.run.run_id]
        run.open_tasks -= 1
        view = pending.task
        if reply is None:
            result = bare_result(
                parse_recipe(tomllib.loads(pending.run.recipes[pending.position]), "sweep"), "failed", error
            )
        else:
            result = RecipeResult.model_validate(reply["result"])
            for key, blob in reply.get("artifacts", {}).items():
                import_entry(self.cache, key, blob)
        result.reference = pending.reference
        if pending.reference:
            run.reference = result
            if reply is not None and reply.get("outputs_blob") is not None:
                name = reply["outputs_name"]
                (self.folder / f"reference-{pending.run.run_id}-{name}").write_bytes(reply["outputs_blob"])
                (self.folder / f"reference-{pending.run.run_id}.json").write_text(
                    json.dumps({"outputs_name": name, "reference_timings": reply["reference_timings"]})
                )
        if result.status == "cancelled":  # not committed: a resume runs it again
            view.state = "cancelled"
            self.on_task(view)
            return
        header = run.header.model_copy(update={"results": [run.reference or result]})
        result = finalise(result, header, self._settings())
        self.store.add_result(pending.run.run_id, pending.position, result)
        view.state = "done" if result.ok else result.status
        view.reason, view.node = result.reason, result.node or view.node
        self.on_task(view)
        if run.open_tasks == 0:
            self.store.finish_run(pending.run.run_id, "finished")

    def _drain(self, events: Any) -> None:
        try:
            items = events.get_nowait_batch(events.qsize())
        except Exception:  # the queue actor is gone with the cluster: progress only
            return
        for item in items:
            view = self.tasks.get(item.get("task", ""))
            if view is None or view.state not in ("queued", "running"):
                continue
            view.state, view.node = "running", item.get("node", view.node)
            view.node_id = item.get("node_id", view.node_id)
            view.stage = item.get("stage", view.stage)
            self.on_task(view)

    def _lose(self, pending: _Pending, reason: str) -> None:
        """A task Ray could not finish (its node type has no node left, its objects were lost): not
        committed, so a resume submits it again."""
        pending.task.state, pending.task.reason = "lost", reason
        self.on_task(pending.task)

    def run(self) -> SweepState:
        from ray.util.queue import Queue

        where = connect(self.options)
        self.types = probe_nodes(self.options, self.import_paths)
        self.on_message(
            f"cluster: {where}; node types: "
            + "; ".join(f"{t.name} ({len(t.node_ids)} node(s), {t.cpus} CPU each)" for t in self.types)
        )
        events = Queue(actor_options={"num_cpus": 0})
        recipes = [parse_recipe(tomllib.loads(text), "sweep") for text in self.state.recipes]
        planned = {run.model for run in self.state.runs}
        for ref in self.state.models:
            model = self._open(ref)
            if ref not in planned:
                self._plan(model, recipes or builtin_recipes(model.model.info.task))
            for run in self.state.runs:
                if run.model == ref:
                    self._submit(model, run, events)
        self.state.status = "running"
        self.state.save(self.folder)
        cancelled, lost = False, 0
        while self._pending:
            if self._cancel.is_set() and not cancelled:
                cancelled = True
                for task_ref in self._pending:
                    ray.cancel(task_ref)
            ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=0.2)
            self._drain(events)
            for task_ref in ready:
                pending = self._pending.pop(task_ref)
                try:
                    self._finish(pending, ray.get(task_ref))
                except ray.exceptions.RayError as error:
                    if cancelled:
                        pending.task.state = "cancelled"
                        self.on_task(pending.task)
                    elif isinstance(error, ray.exceptions.RayTaskError):  # our task raised: a result
                        cause = getattr(error, "cause", None) or error
                        self._finish(pending, None, f"the Ray task failed: {describe_failure(cause)}")
                    else:  # no node of its type left, retries exhausted, objects lost: the cluster's doing
                        lost += 1
                        name = pending.run.node_type_name
                        first = str(error).strip().splitlines()[0][:160]
                        self._lose(
                            pending, f"{first} (node type {name}): start a node of that kind and resume"
                        )
        self.state.status = "cancelled" if cancelled else "incomplete" if lost else "finished"
        for run in self.state.runs:
            self.store.finish_run(run.run_id, self.state.status)
        self.state.save(self.folder)
        return self.state


def _threads(recipe: Recipe, node_type: NodeType) -> Recipe:
    """A recipe left at the runtime's default thread count uses the CPUs its task was granted."""
    return recipe if recipe.threads else recipe.model_copy(update={"threads": node_type.cpus})


__all__ = ["ClusterOptions", "Sweep", "SweepState", "TaskView", "shape_key"]
