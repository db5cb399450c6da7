"""The run engine: every recipe in its own worker process, with live resource samples, cancel and history.

A worker that aborts, segfaults or is killed for memory costs only its recipe: the engine reports
"worker crashed (signal N) during <stage> of <recipe>" and goes on with the queue. Each finished
recipe is committed to the history at once. Cancel asks the worker to stop (SIGTERM), kills it after
`grace` seconds, and removes whatever half-written cache entry it left. Plain Python, no Qt: the CLI
and the GUI both drive it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from studio.core.bundle import WORKER_FLAG
from studio.core.cache import ArtifactCache
from studio.core.capability import assess
from studio.core.compare import (
    RunSettings,
    at_shape,
    bare_result,
    check_data,
    finalise,
    plan_queue,
    run_header,
    shape_of,
)
from studio.core.dataset import TextSet, label_indices
from studio.core.events import Event, Listener, ignore
from studio.core.gpu_memory import GpuMemoryProbe
from studio.core.hardware import HardwareInfo, probe
from studio.core.launcher import LauncherGone, WorkerProcess, start_forked, warm_starts_possible
from studio.core.model import ModelInfo, open_model
from studio.core.paths import cache_dir, data_dir
from studio.core.recipe import Recipe
from studio.core.results import RecipeResult, RunResult, reference_flags
from studio.core.store import RunStore
from studio.core.worker import WorkerJob, load_topk, shape_key

log = logging.getLogger(__name__)
WORKER_NICENESS = 5


def default_store() -> RunStore:
    return RunStore(data_dir() / "history.sqlite")


def default_cache() -> ArtifactCache:
    return ArtifactCache(cache_dir() / "artifacts")


@dataclass
class _Peaks:
    rss: int = 0
    gpu: int | None = None
    gpu_scope: str = "none"
    samples: int = 0


@dataclass
class _WorkerOutcome:
    result: RecipeResult
    data: dict[str, Any] = field(default_factory=dict)


# Isolated mode: neither the caller's current directory (a folder named `studio` there would shadow the
# package) nor PYTHONPATH and friends decide what a worker imports; the installed package does.
ISOLATED = "-I"


def worker_command(job_file: Path) -> list[str]:
    """The worker, started below the window's priority (from its first instruction, imports included): on a
    machine with few cores the GUI still gets the CPU when it needs it, and a worker alone runs as fast."""
    if getattr(sys, "frozen", False):  # the installed bundle: its own binary is the interpreter
        command = [sys.executable, WORKER_FLAG, str(job_file)]
    else:
        command = [sys.executable, ISOLATED, "-m", "studio.core.worker", str(job_file)]
    return _below_window(command)


def launcher_command() -> list[str]:
    """The warm launcher (studio.core.launcher), below the window's priority like the workers it forks."""
    return _below_window([sys.executable, ISOLATED, "-m", "studio.core.launcher"])


def _below_window(command: list[str]) -> list[str]:
    """`command` under `nice` where there is one (Windows lowers priority through creationflags instead)."""
    nice = shutil.which("nice")
    return [nice, "-n", str(WORKER_NICENESS), *command] if nice and sys.platform != "win32" else command


def start_worker(job_file: Path, stderr_file: IO[str]) -> WorkerProcess:
    """A worker for `job_file`: forked by the warm launcher where it can, else a fresh interpreter."""
    if warm_starts_possible():
        try:
            return start_forked(launcher_command(), job_file, stderr_file)
        except (OSError, LauncherGone) as error:
            log.warning("no warm worker start (%s): starting the worker fresh", error)
    return subprocess.Popen(
        worker_command(job_file),
        creationflags=getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0),
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
        encoding="utf-8",
    )


def cli_command(*args: str) -> list[str]:
    """`qstudio ARGS` as a child process: through the bundle's binary when frozen, else this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, ISOLATED, "-m", "studio.cli.main", *args]


class ResourceSampler:
    """Samples a worker's RSS (with its children) and GPU memory every `interval` seconds."""

    def __init__(self, pid: int, recipe: str, emit: Listener, gpu: GpuMemoryProbe, interval: float) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.recipe = recipe
        self.emit = emit
        self.gpu = gpu
        self.interval = interval
        self.peaks = _Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{pid}", daemon=True)
        self._started = time.monotonic()
        self._children: list[Any] = []
        self._children_at = self._started

    def _rss(self) -> int:
        """The worker's RSS plus its children's (looked up every 2 s: scanning /proc is not free)."""
        now = time.monotonic()
        if now - self._children_at > 2.0:
            self._children_at = now
            with contextlib.suppress(Exception):
                self._children = self.process.children(recursive=True)
        total = self.process.memory_info().rss
        for child in self._children:
            with contextlib.suppress(Exception):
                total += child.memory_info().rss
        return int(total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = self._rss()
            except Exception:  # the worker is gone
                return
            if rss == 0:  # exited, not yet reaped (a zombie has no memory): not a reading
                continue
            reading = self.gpu.read(self.process.pid)
            self.peaks.rss = max(self.peaks.rss, rss)
            self.peaks.samples += 1
            if reading.bytes is not None:
                self.peaks.gpu = max(self.peaks.gpu or 0, reading.bytes)
                self.peaks.gpu_scope = reading.scope
            self.emit(
                Event(
                    kind="sample",
                    recipe=self.recipe,
                    data={
                        "t": round(time.monotonic() - self._started, 3),
                        "rss_bytes": rss,
                        "gpu_bytes": reading.bytes,
                        "gpu_scope": reading.scope,
                    },
                )
            )

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class RunEngine:
    """Runs a queue of recipes on one model, one worker process per recipe."""

    def __init__(
        self,
        cache: ArtifactCache | None = None,
        store: RunStore | None = None,
        sample_interval: float = 0.1,
        grace: float = 1.5,
        nvml: Any = None,
        memory_limit_bytes: int | None = None,
        test_backends: tuple[str, ...] = (),
    ) -> None:
        self.cache = cache or default_cache()
        self.store = store
        self.sample_interval = sample_interval
        self.grace = grace
        self.nvml = nvml
        self.memory_limit_bytes = memory_limit_bytes
        self.test_backends = list(test_backends)
        self.import_paths = _module_roots(self.test_backends)
        self.cancel_event = threading.Event()
        self.finish_event = threading.Event()
        self._skipped: set[str] = set()
        self.run_id: int | None = None

    def cancel(self) -> None:
        """Stop the recipe in flight (within `grace` seconds) and skip the rest of the queue."""
        self.cancel_event.set()

    def finish_early(self) -> None:
        """Run no further recipe after the one in flight, but time the finished ones in rounds (a budget)."""
        self.finish_event.set()

    def cancel_recipe(self, name: str) -> None:
        """Stop or skip one recipe; the rest of the queue goes on."""
        self._skipped.add(name)

    def _should_stop(self, name: str) -> bool:
        return self.cancel_event.is_set() or name in self._skipped

    # -- one worker -----------------------------------------------------------------------------------
    def _stream(self, process: WorkerProcess) -> Iterator[Event | None]:
        """Events from the worker's stdout; None every 100 ms of silence, so cancel stays responsive."""
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="worker-events", daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                yield None
                continue
            if line is None:
                return
            try:
                yield Event.model_validate_json(line)
            except ValueError:
                log.debug("worker printed a non-event line: %s", line.rstrip())

    def _stop_worker(self, process: WorkerProcess) -> None:
        if process.poll() is not None:
            return
        process.terminate()  # SIGTERM: the worker stops at its next step
        try:
            process.wait(self.grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _remove_partial_entries(self, pid: int) -> None:
        for leftover in self.cache.root.glob(f".tmp-{pid}-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def run_worker(self, job: WorkerJob, listener: Listener, gpu: GpuMemoryProbe) -> _WorkerOutcome:
        run_dir = Path(job.run_dir)
        job_file = run_dir / f"job-{job.recipe.name}.json"
        job_file.write_text(job.model_dump_json())
        stderr_file = (run_dir / f"worker-{job.recipe.name}.log").open("w")
        process = start_worker(job_file, stderr_file)
        stage = "start"
        outcome: _WorkerOutcome | None = None
        cancelled = False
        # The timing rounds' worker holds every recipe: its memory is its own curve, not the reference's.
        label = "interleaved timing" if job.timing else job.recipe.name
        with ResourceSampler(process.pid, label, listener, gpu, self.sample_interval) as sampler:
            for event in self._stream(process):
                if self._should_stop(job.recipe.name) and not cancelled:
                    cancelled = True
                    threading.Thread(target=self._stop_worker, args=(process,), daemon=True).start()
                if event is None:
                    continue
                if event.kind in ("stage", "progress") and event.stage:
                    stage = event.stage
                if event.kind in ("result", "error") and event.data and "result" in event.data:
                    result = RecipeResult.model_validate(event.data["result"])
                    if event.data.get("topk_file"):
                        result.topk = load_topk(event.data["topk_file"])
                    outcome = _WorkerOutcome(result, event.data)
                    continue
                if event.kind != "finished":
                    listener(event)
            returncode = process.wait()
        stderr_file.close()
        self._remove_partial_entries(process.pid)
        if cancelled and (outcome is None or outcome.result.status != "ok"):
            return _WorkerOutcome(bare_result(job.recipe, "cancelled", f"cancelled during {stage}"))
        if outcome is None:
            if returncode < 0:
                reason = f"worker crashed (signal {-returncode}) during {stage} of {job.recipe.name}"
            else:
                tail = (
                    (run_dir / f"worker-{job.recipe.name}.log")
                    .read_text(errors="replace")
                    .strip()
                    .splitlines()
                )
                reason = f"worker exited with status {returncode} during {stage} of {job.recipe.name}" + (
                    f": {tail[-1][:200]}" if tail else ""
                )
            return _WorkerOutcome(bare_result(job.recipe, "failed", reason))
        result = outcome.result
        result.peak_rss_bytes = max(result.peak_rss_bytes or 0, sampler.peaks.rss) or None
        result.peak_gpu_bytes = sampler.peaks.gpu
        result.gpu_memory_scope = sampler.peaks.gpu_scope
        return outcome

    def predict(
        self,
        model_ref: str,
        recipes: list[Recipe],
        typed: TextSet,
        top_k: int = 5,
        hardware: HardwareInfo | None = None,
        calibration: TextSet | None = None,
    ) -> dict[str, Any]:
        """Top-k of the `typed` texts (with their pairs) on each recipe's artifact, in one worker process.

        Given the run's `calibration` texts, a static recipe finds the artifact the run built in the cache.
        """
        hardware = hardware or probe(self.nvml)
        with tempfile.TemporaryDirectory(prefix="qstudio-predict-") as run_dir:
            job = WorkerJob(
                model=model_ref,
                recipe=recipes[0],
                is_reference=False,
                data=typed,
                calibration=calibration or typed,
                settings=RunSettings(top_k=top_k),
                hardware=hardware,
                cache_root=str(self.cache.root),
                run_dir=run_dir,
                predict=recipes,
                test_backends=self.test_backends,
                import_paths=self.import_paths,
            )
            outcome = self.run_worker(job, ignore, GpuMemoryProbe(self.nvml))
        predictions: dict[str, Any] = dict(outcome.data.get("predictions", {}))
        return predictions or {
            r.name: {"error": outcome.result.reason or "prediction failed"} for r in recipes
        }

    # -- a whole queue --------------------------------------------------------------------------------
    def run(
        self,
        model_ref: str,
        recipes: list[Recipe],
        data: TextSet,
        calibration: TextSet,
        settings: RunSettings | None = None,
        listener: Listener = ignore,
        hardware: HardwareInfo | None = None,
        request: dict[str, Any] | None = None,
    ) -> RunResult:
        settings = settings or RunSettings()
        self.finish_event.clear()
        model = open_model(model_ref)  # bad input fails here, before any worker starts
        check_data(data, model.info)
        label_indices(data, model.info.labels)
        hardware = hardware or probe(self.nvml)
        run = run_header(model, data, calibration, hardware, settings)
        if self.store is not None:
            self.run_id = self.store.begin_run(run, request or {})
            run.run_id = self.run_id
        queue_ = plan_queue(model.info, recipes)
        status = "finished"
        gpu = GpuMemoryProbe(self.nvml)
        try:
            with tempfile.TemporaryDirectory(prefix="qstudio-run-") as run_dir:
                queue_context = _Queue(
                    model_ref,
                    model.info,
                    data,
                    calibration,
                    settings,
                    hardware,
                    run_dir,
                    sorted({shape_of(r) for r in queue_} - {shape_of(queue_[0])}),
                    listener,
                    gpu,
                )
                for position, recipe in enumerate(queue_):
                    if self.cancel_event.is_set():
                        status = "cancelled"
                        break
                    listener(
                        Event(
                            kind="stage", recipe=recipe.name, stage="start", done=position, total=len(queue_)
                        )
                    )
                    if recipe.name in self._skipped and position > 0:
                        result = bare_result(recipe, "cancelled", "cancelled before it started")
                    else:
                        result = self._run_one(queue_context, recipe, position)
                    run.results.append(finalise(result, run, settings))
                    if self.store is not None and self.run_id is not None:
                        self.store.add_result(self.run_id, position, result)
                    listener(
                        Event(
                            kind="result",
                            recipe=recipe.name,
                            data=result.model_dump(mode="json", exclude={"topk"}),
                        )
                    )
                    if result.status == "cancelled" and self.cancel_event.is_set():
                        status = "cancelled"
                        break
                    if position == 0 and not result.ok:
                        message = f"the FP32 reference failed: {result.reason}"
                        listener(Event(kind="error", recipe=recipe.name, message=message))
                        status = "failed"
                        break
                    if self.finish_event.is_set():  # the rest of the queue is skipped, the rounds still run
                        break
                if status == "finished" and not self.cancel_event.is_set():
                    self._interleave(queue_context, queue_, run)
        finally:
            gpu.close()
            if self.store is not None and self.run_id is not None:
                self.store.finish_run(self.run_id, status)
        listener(Event(kind="finished", total=len(run.results), message=status))
        return run

    def _run_one(self, queue_: _Queue, recipe: Recipe, position: int) -> RecipeResult:
        availability = assess(recipe, queue_.hardware, queue_.model)
        if not availability.available:  # no worker needed to say so
            result = bare_result(recipe, "unavailable", availability.reason)
            result.reference = position == 0
            return result
        job = self._job(
            queue_,
            recipe,
            is_reference=position == 0,
            reference_outputs=queue_.reference.get("reference_outputs"),
            reference_timings=queue_.reference.get("reference_timings", {}),
            extra_shapes=queue_.shapes if position == 0 else [],
        )
        outcome = self.run_worker(job, queue_.listener, queue_.gpu)
        if position == 0 and outcome.result.ok:
            queue_.reference["reference_outputs"] = outcome.data.get("reference_outputs")
            queue_.reference["reference_timings"] = outcome.data.get("reference_timings", {})
        return outcome.result

    def _job(self, queue_: _Queue, recipe: Recipe, **fields: Any) -> WorkerJob:
        """A worker job on this run's model, data, settings and cache; `fields` say what it does."""
        return WorkerJob(
            model=queue_.model_ref,
            recipe=recipe,
            data=queue_.data,
            calibration=queue_.calibration,
            settings=queue_.settings,
            hardware=queue_.hardware,
            cache_root=str(self.cache.root),
            run_dir=queue_.run_dir,
            memory_limit_bytes=self.memory_limit_bytes,
            test_backends=self.test_backends,
            import_paths=self.import_paths,
            **fields,
        )

    # -- interleaved timing ---------------------------------------------------------------------------
    def _interleave(self, queue_: _Queue, recipes: list[Recipe], run: RunResult) -> None:
        """Time the reference and every measured recipe again in interleaved rounds (one worker), and
        replace each one's speed figures with the rounds' (committed and re-emitted as results).

        When the rounds fail, each recipe keeps its own worker's timing and the run says so."""
        rounds = queue_.settings.timing.rounds
        reference = recipes[0]
        measured = [
            recipe
            for recipe, result in zip(recipes[1:], run.results[1:], strict=False)
            if result.ok and result.latency_ms is not None
        ]
        if rounds < 2 or not measured or not run.results[0].ok:
            return
        timing = {reference.name: reference}
        speed_of = {reference.name: reference.name}
        for recipe in measured:
            shaped = at_shape(reference, shape_of(recipe))
            key = (
                reference.name
                if shape_of(shaped) == shape_of(reference)
                else f"{reference.name}@{shape_key(shape_of(shaped))}"
            )
            timing.setdefault(key, shaped)
            timing[recipe.name] = recipe
            speed_of[recipe.name] = key
        job = self._job(queue_, reference, is_reference=False, timing=timing, speed_of=speed_of)
        queue_.listener(Event(kind="stage", recipe=reference.name, stage="interleaved timing"))
        outcome = self.run_worker(job, queue_.listener, queue_.gpu)
        speeds = outcome.data.get("speeds")
        if not outcome.result.ok or not speeds:
            reason = outcome.result.reason or "no figures came back"
            message = f"interleaved timing failed ({reason}): each recipe keeps its own worker's timing"
            queue_.listener(Event(kind="warning", message=message))
            return
        load = outcome.data.get("load") or []
        share = round(sum(load) / len(load), 3) if load else None
        for position, result in enumerate(run.results):
            if result.recipe not in speeds:
                continue
            speed = speeds[result.recipe]
            retimed = RecipeResult.model_validate(
                {
                    **result.model_dump(),
                    **{k: v for k, v in speed["fields"].items() if v is not None},
                    "timing_rounds": outcome.data.get("rounds"),
                    "latency_spread": speed["spread"],
                    "others_cpu_share": share,
                    "notes": [
                        *result.notes,
                        f"speed: median of {len(load)} interleaved rounds with the reference"
                        + (
                            f" (rounds differ by {speed['spread']:.0%})"
                            if speed["spread"] is not None
                            else ""
                        ),
                    ],
                }
            )
            run.results[position] = retimed
        for position, result in enumerate(run.results):
            result = finalise(result, run, queue_.settings)
            if position == 0:
                result.flags += reference_flags(run.results)
            run.results[position] = result
            if result.recipe not in speeds:
                continue
            if self.store is not None and self.run_id is not None:
                self.store.add_result(self.run_id, position, result)
            queue_.listener(
                Event(
                    kind="result", recipe=result.recipe, data=result.model_dump(mode="json", exclude={"topk"})
                )
            )


def _module_roots(entries: list[str]) -> list[str]:
    """The folders an isolated worker needs on its path to import the "module:SPEC" entries named."""
    import importlib.util

    roots = []
    for entry in entries:
        top = entry.partition(":")[0].split(".")[0]
        spec = importlib.util.find_spec(top)
        locations = list(spec.submodule_search_locations or []) if spec else []
        origin = (
            Path(locations[0]).parent
            if locations
            else Path(spec.origin).parent
            if spec and spec.origin
            else None
        )
        if origin is not None and str(origin) not in roots:
            roots.append(str(origin))
    return roots


@dataclass
class _Queue:
    """What every recipe of one run shares; the reference's outputs and timings fill in after it runs."""

    model_ref: str
    model: ModelInfo
    data: TextSet
    calibration: TextSet
    settings: RunSettings
    hardware: HardwareInfo
    run_dir: str
    shapes: list[tuple[int, int, int]]
    listener: Listener
    gpu: GpuMemoryProbe
    reference: dict[str, Any] = field(default_factory=dict)


__all__ = ["RunEngine", "default_cache", "default_store", "shape_key"]
