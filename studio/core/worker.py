"""The worker process: runs one recipe and streams its events to the parent, one JSON object per line.

Forked by the warm launcher (studio.core.launcher) or started as `python -m studio.core.worker JOB.json`
by the run engine. Its real stdout is kept for the
event stream and fd 1 is pointed at stderr, so whatever a library prints cannot corrupt the stream.
SIGTERM asks it to stop at the next step; the engine kills it if that takes too long.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import BaseModel

from studio.core.compare import (
    RecipeRunner,
    RunSettings,
    Shape,
    at_shape,
    bare_result,
    check_data,
    describe_failure,
)
from studio.core.dataset import TextSet
from studio.core.errors import Cancelled
from studio.core.events import Event
from studio.core.hardware import HardwareInfo
from studio.core.recipe import Recipe

log = logging.getLogger(__name__)


class WorkerJob(BaseModel):
    """Everything one worker needs; written by the engine as JSON."""

    model: str
    recipe: Recipe
    is_reference: bool
    data: TextSet  # evaluation texts (pairs, labels, prompts); for `predict`, the typed texts
    calibration: TextSet
    settings: RunSettings
    hardware: HardwareInfo
    cache_root: str
    run_dir: str
    reference_outputs: str | None = None  # the reference's outputs, as its model kind writes them
    reference_timings: dict[str, dict[str, Any]] = {}  # "b,s,t" -> the kind's timing at that shape
    extra_shapes: list[Shape] = []  # the reference also times these, for the other recipes' speed-up
    memory_limit_bytes: int | None = None
    predict: list[Recipe] = []  # when set: only predict `data`'s texts with these recipes (no measuring)
    # When set: only time these (key -> recipe at its shape) in interleaved rounds; `speed_of` names, per
    # recipe key, the reference key its speed-up is taken against.
    timing: dict[str, Recipe] = {}
    speed_of: dict[str, str] = {}
    test_backends: list[str] = []  # "module:SPEC" entries registered before running (tests only)
    import_paths: list[str] = []  # folders that hold those modules (the worker runs isolated from cwd)


def shape_key(shape: Shape) -> str:
    return ",".join(str(x) for x in shape)


class EventWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = event.model_dump_json()
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def _limit_memory(limit: int | None) -> None:
    if not limit:
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError) as error:  # not on Windows; never fatal
        log.warning("cannot limit the worker's memory: %s", error)


def _register_test_backends(entries: list[str], paths: list[str]) -> None:
    import importlib

    from studio.core.catalogue import register

    sys.path.extend(p for p in paths if p not in sys.path)
    for entry in entries:
        module, _, name = entry.partition(":")
        register(getattr(importlib.import_module(module), name))


def save_topk(path: Path, topk: list[list[tuple[str, float]]]) -> str:
    labels = sorted({label for row in topk for label, _ in row})
    index = {label: i for i, label in enumerate(labels)}
    np.savez(
        path,
        labels=np.array(labels),
        indices=np.array([[index[label] for label, _ in row] for row in topk], dtype=np.int32),
        probabilities=np.array([[p for _, p in row] for row in topk], dtype=np.float64),
    )
    return str(path)


def load_topk(path: str) -> list[list[tuple[str, float]]]:
    """Rebuilt in plain Python loops, which let other threads (the GUI's) run between iterations."""
    with np.load(path) as data:
        labels = [str(label) for label in data["labels"]]
        indices = data["indices"].tolist()
        probabilities = data["probabilities"].tolist()
    return [
        [(labels[j], p) for j, p in zip(row, probs, strict=True)]
        for row, probs in zip(indices, probabilities, strict=True)
    ]


def run_job(job: WorkerJob, emit: Any, cancel: threading.Event) -> None:
    from studio.core.cache import ArtifactCache
    from studio.core.model import open_model

    model = open_model(job.model)
    if job.predict:
        from studio.core.predict import predict_texts

        predictions = predict_texts(
            model,
            job.predict,
            job.data,
            job.hardware,
            ArtifactCache(Path(job.cache_root)),
            job.settings,
            job.calibration,
        )
        placeholder = bare_result(job.recipe, "ok", "").model_dump(mode="json")
        emit(
            Event(
                kind="result",
                recipe=job.recipe.name,
                data={"predictions": predictions, "result": placeholder},
            )
        )
        return
    if job.timing:
        emit(Event(kind="result", recipe=job.recipe.name, data=time_in_rounds(job, model, emit, cancel)))
        return
    check_data(job.data, model.info)
    runner = RecipeRunner(
        model, job.data, job.calibration, ArtifactCache(Path(job.cache_root)), job.settings, emit, cancel
    )
    if job.reference_outputs:
        runner.reference_outputs = runner.measurer.load_outputs(job.reference_outputs)
    for key, timing in job.reference_timings.items():
        batch, seq_len, threads = (int(x) for x in key.split(","))
        runner.reference_timings[(batch, seq_len, threads)] = timing
    result, outputs = runner.run_recipe(job.recipe, job.hardware, job.is_reference)
    data_out: dict[str, Any] = {"result": result.model_dump(mode="json", exclude={"topk"})}
    if (
        result.topk
    ):  # a thousand inputs' top-k would make a large line for the parent to parse: a file instead
        data_out["topk_file"] = save_topk(Path(job.run_dir) / f"topk-{job.recipe.name}.npz", result.topk)
    if job.is_reference and outputs is not None:
        path = runner.measurer.save_outputs(outputs, Path(job.run_dir) / "reference_outputs")
        for shape in job.extra_shapes:
            runner.reference_timing(at_shape(job.recipe, shape))
        data_out["reference_outputs"] = path
        data_out["reference_timings"] = {shape_key(s): t for s, t in runner.reference_timings.items()}
    emit(Event(kind="result", recipe=job.recipe.name, data=data_out))


def time_in_rounds(job: WorkerJob, model: Any, emit: Any, cancel: threading.Event) -> dict[str, Any]:
    """The interleaved timing of `job.timing`: per recipe its speed fields (median over the rounds) and the
    rounds' spread, and per round the share of the CPUs other processes used."""
    from studio.core.cache import ArtifactCache
    from studio.core.kinds import kind_of
    from studio.core.loading import load_predictor
    from studio.core.rounds import Entry, combined_speed, interleave, round_settings, spread

    def check_cancel() -> None:
        if cancel.is_set():
            raise Cancelled()

    def report(done: int, total: int) -> None:
        check_cancel()
        emit(
            Event(kind="progress", recipe=job.recipe.name, stage="interleaved timing", done=done, total=total)
        )

    cache = ArtifactCache(Path(job.cache_root))
    entries = []
    for key, recipe in job.timing.items():
        report(0, job.settings.timing.rounds)
        predictor = load_predictor(model, recipe, job.hardware, cache, job.calibration)
        entries.append(Entry(key, recipe, predictor))
    measurer = kind_of(model.info.task).measurer(
        model, job.data, round_settings(job.settings), check_cancel=check_cancel
    )
    rounds = interleave(measurer, entries, job.settings.timing.rounds, report)
    speeds = {
        key: {
            "fields": combined_speed(measurer, rounds.timings[key], rounds.timings[reference]),
            "spread": spread(rounds.timings[key]),
        }
        for key, reference in job.speed_of.items()
    }
    placeholder = bare_result(job.recipe, "ok", "").model_dump(mode="json")
    return {"speeds": speeds, "load": rounds.load, "rounds": len(rounds.load), "result": placeholder}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    emit = EventWriter(events)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from studio.core.quiet import quiet_torch_imports

    quiet_torch_imports()
    raw = json.loads(Path(argv[0]).read_text())
    # before the recipe is validated against them
    _register_test_backends(raw.get("test_backends", []), raw.get("import_paths", []))
    job = WorkerJob.model_validate(raw)
    _limit_memory(job.memory_limit_bytes)
    try:
        run_job(job, emit, cancel)
    except Cancelled:
        emit(
            Event(
                kind="error",
                recipe=job.recipe.name,
                message="cancelled",
                data={
                    "result": bare_result(job.recipe, "cancelled", "cancelled by the user").model_dump(
                        mode="json"
                    )
                },
            )
        )
    except BaseException as error:  # reported as this recipe's failure; the parent goes on
        log.debug("worker failed", exc_info=True)
        reason = describe_failure(error)
        emit(
            Event(
                kind="error",
                recipe=job.recipe.name,
                message=reason,
                data={"result": bare_result(job.recipe, "failed", reason).model_dump(mode="json")},
            )
        )
    emit(Event(kind="finished", recipe=job.recipe.name))
    events.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
