"""The comparison run: every recipe on one model, each measured against the FP32 reference.

`RecipeRunner.run_recipe` does one recipe: prepare (quantize or take from the cache), load, evaluate
every text, time it, and measure fidelity to the reference outputs. It reports through events and
checks a cancel flag between steps. `compare` strings recipes together in this process; the run
engine (`studio.core.engine`) runs each one in a worker process instead, with the same code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import studio
from studio.core.artifact import Artifact, BuildContext
from studio.core.cache import ArtifactCache, library_versions
from studio.core.capability import assess
from studio.core.catalogue import BackendSpec, get_spec
from studio.core.dataset import TextSet
from studio.core.errors import Cancelled, StudioError
from studio.core.events import Event, Listener, ignore
from studio.core.hardware import HardwareInfo
from studio.core.kinds import Measurer, kind_of
from studio.core.kinds.base import Timing
from studio.core.measure import PeakRss
from studio.core.model import Model, ModelInfo
from studio.core.recipe import Recipe
from studio.core.results import EvalInfo, RecipeResult, RunResult, slower_flags, timing_flags
from studio.core.settings import RunSettings

log = logging.getLogger(__name__)

Shape = tuple[int, int, int]  # batch size, sequence length, threads


def shape_of(recipe: Recipe) -> Shape:
    return (recipe.batch_size, recipe.seq_len, recipe.threads)


def at_shape(recipe: Recipe, shape: Shape) -> Recipe:
    """`recipe` timed at another batch size, sequence length and thread count (the reference, mostly)."""
    batch, seq_len, threads = shape
    return recipe.model_copy(update={"batch_size": batch, "seq_len": seq_len, "threads": threads})


def reference_recipe(model: ModelInfo) -> Recipe:
    """Torch FP32 for a PyTorch model; for an ONNX file, ONNX Runtime FP32 on the graph exactly as given."""
    if model.task == "text-generation":
        return Recipe(
            name="llm-torch-fp32",
            description="PyTorch FP32 (reference; a GGUF file's weights dequantized)",
            backend="torch-fp32",
            precision="fp32",
            seq_len=256,
            tasks=("text-generation",),
        )
    if model.source != "onnx":
        return Recipe(
            name="torch-fp32", description="PyTorch FP32 (reference)", backend="torch-fp32", precision="fp32"
        )
    return Recipe(
        name="ort-fp32-reference",
        description="ONNX Runtime FP32 on the file as given (reference)",
        backend="ort-fp32",
        precision="fp32",
        optimize_graph=False,
    )


def plan_queue(model: ModelInfo, recipes: list[Recipe]) -> list[Recipe]:
    """The reference first (a requested recipe that is the reference stands in for it), then the rest."""
    reference = reference_recipe(model)
    same = [r for r in recipes if r.artifact_fields() == reference.artifact_fields()]
    if same:
        reference = same[0]
    elif recipes:  # time the reference at the first recipe's shape, the common case
        reference = at_shape(reference, shape_of(recipes[0]))
    return [reference] + [r for r in recipes if r.name != reference.name]


def bare_result(recipe: Recipe, status: str, reason: str) -> RecipeResult:
    """A result without measurements: unavailable, failed, cancelled, or a placeholder."""
    return RecipeResult(
        recipe=recipe.name,
        backend=recipe.backend,
        precision=recipe.precision,
        requested_precision=recipe.precision,
        mode=recipe.mode,
        device=recipe.device,
        status=status,
        reason=reason,
        batch_size=recipe.batch_size,
        seq_len=recipe.seq_len,
        threads=recipe.threads,
        recipe_toml=recipe.to_toml(),
    )


def describe_failure(error: BaseException) -> str:
    """One line for an unexpected error: a backend bug must not hide behind a traceback."""
    if isinstance(error, StudioError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory: close other programs or pick a smaller batch_size/seq_len"
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


class RecipeRunner:
    """Runs recipes on one model and data set; holds the reference's outputs and timings per shape.

    What evaluating and timing mean comes from the model's kind (`studio.core.kinds`); this class only
    strings the steps together, reports them and keeps what the reference leaves for the others.
    """

    def __init__(
        self,
        model: Model,
        data: TextSet,
        calibration: TextSet,
        cache: ArtifactCache,
        settings: RunSettings,
        listener: Listener = ignore,
        cancel: threading.Event | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.calibration = calibration
        self.cache = cache
        self.settings = settings
        self.emit = listener
        self.cancel = cancel or threading.Event()
        self.kind = kind_of(model.info.task)
        # Builds the kind's view of the data now: mismatched labels are refused before any work.
        self.measurer: Measurer = self.kind.measurer(
            model, data, settings, self.reporter(""), self.check_cancel
        )
        self.reference_outputs: Any = None
        self.reference_predictor: Any = None
        self.reference_timings: dict[Shape, Timing] = {}

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def reporter(self, recipe: str) -> Callable[[str, int, int], None]:
        def report(stage: str, done: int, total: int) -> None:
            self.check_cancel()
            self.emit(Event(kind="progress", recipe=recipe, stage=stage, done=done, total=total))

        return report

    def time_predictor(self, predictor: Any, recipe: Recipe, name: str) -> Timing:
        self.measurer.report = self.reporter(name)
        return self.measurer.time(predictor, recipe, name)

    def reference_timing(self, recipe: Recipe) -> Timing | None:
        """The reference's timing at `recipe`'s shape, measured once (when the reference is loaded here)."""
        shape = shape_of(recipe)
        if shape not in self.reference_timings and self.reference_predictor is not None:
            self.reference_timings[shape] = self.time_predictor(self.reference_predictor, recipe, "reference")
        return self.reference_timings.get(shape)

    # -- one recipe -----------------------------------------------------------------------------------
    def run_recipe(
        self, recipe: Recipe, hardware: HardwareInfo, is_reference: bool = False
    ) -> tuple[RecipeResult, Any]:
        """Measure `recipe`; returns its result and its outputs (None when it did not run)."""
        availability = assess(recipe, hardware, self.model.info)
        base = bare_result(recipe, "ok", "").model_copy(
            update={"precision": availability.precision, "reference": is_reference}
        )
        if not availability.available:
            return base.model_copy(update={"status": "unavailable", "reason": availability.reason}), None
        spec = get_spec(recipe.backend)
        if spec.needs_torch_model and not self.model.has_torch:
            reason = f"{spec.title} needs a PyTorch model; this is an ONNX file"
            return base.model_copy(update={"status": "unavailable", "reason": reason}), None
        notes = [availability.notice] if availability.notice else []
        ctx = BuildContext(
            model=self.model,
            recipe=recipe,
            cache=self.cache,
            precision=availability.precision,
            calibration_texts=self.calibration.texts,
            calibration_pairs=self.calibration.pairs,
            report=self.reporter(recipe.name),
            check_cancel=self.check_cancel,
            notes=notes,
        )
        try:
            return self._measure(recipe, spec, ctx, base, notes, is_reference)
        except Cancelled:
            raise
        except Exception as error:  # the result keeps what ran (precision after fallback) and the notes
            log.debug("recipe %s failed", recipe.name, exc_info=True)
            return base.model_copy(
                update={"status": "failed", "reason": describe_failure(error), "notes": notes}
            ), None

    def _measure(
        self,
        recipe: Recipe,
        spec: BackendSpec,
        ctx: BuildContext,
        base: RecipeResult,
        notes: list[str],
        is_reference: bool,
    ) -> tuple[RecipeResult, Any]:
        backend = spec.load()
        seconds: dict[str, float] = {}
        self.measurer.report = self.reporter(recipe.name)
        with PeakRss() as rss:
            self.emit(Event(kind="stage", recipe=recipe.name, stage="prepare"))
            with _timed(seconds, "prepare"):
                artifact: Artifact = backend.prepare(ctx)
            if artifact.from_cache:
                notes.append("quantization skipped: artifact taken from the cache")
                self.emit(
                    Event(
                        kind="warning",
                        recipe=recipe.name,
                        message=f"{recipe.name}: cached artifact used, quantization skipped",
                    )
                )
            notes.extend(artifact.notes)
            self.emit(Event(kind="stage", recipe=recipe.name, stage="load"))
            with _timed(seconds, "load"):
                predictor = backend.load(ctx, artifact)
            self.emit(Event(kind="stage", recipe=recipe.name, stage="evaluate"))
            with _timed(seconds, "evaluate"):
                evaluation = self.measurer.evaluate(
                    predictor, recipe, None if is_reference else self.reference_outputs
                )
            self.emit(
                Event(
                    kind="measurement",
                    recipe=recipe.name,
                    stage="evaluate",
                    data={"inputs": len(self.data), "seconds": seconds["evaluate"]},
                )
            )
            self.emit(Event(kind="stage", recipe=recipe.name, stage="time"))
            with _timed(seconds, "time"):
                timing = self.time_predictor(predictor, recipe, recipe.name)
        self.emit(
            Event(
                kind="measurement",
                recipe=recipe.name,
                stage="time",
                data={**timing, "peak_rss_bytes": rss.peak},
            )
        )
        notes.extend(evaluation.notes)
        if is_reference:
            self.reference_outputs = evaluation.outputs
            self.reference_predictor = predictor
            self.reference_timings[shape_of(recipe)] = timing
        speed = self.measurer.speed_fields(timing, self.reference_timing(recipe))
        parameters = self.model.info.parameters
        result = RecipeResult.model_validate(
            {
                **base.model_dump(),
                **evaluation.fields,
                **speed,
                "from_cache": artifact.from_cache,
                "notes": notes,
                "size_bytes": artifact.size_bytes,
                "bytes_per_parameter": artifact.size_bytes / parameters if parameters else None,
                "peak_rss_bytes": rss.peak,
                "seconds": seconds,
            }
        )
        return result, evaluation.outputs


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = round(time.perf_counter() - start, 3)


def run_header(
    model: Model, data: TextSet, calibration: TextSet, hardware: HardwareInfo, settings: RunSettings
) -> RunResult:
    """A run with no results yet: what the history stores before the first recipe finishes."""
    return RunResult(
        studio_version=studio.__version__,
        libraries=library_versions(),
        model=model.info,
        hardware=hardware,
        evaluation=EvalInfo(
            source=data.source,
            count=len(data),
            labelled=data.labels is not None and bool(model.info.labels),
            pairs=data.pairs is not None,
            calibration_source=calibration.source,
            calibration_count=len(calibration),
            prompts_source=data.prompts_source
            or ("first sentences of the evaluation passages" if model.is_causal_lm else ""),
        ),
        agreement_threshold=settings.agreement_threshold,
        inputs=kind_of(model.info.task).run_inputs(data, settings),
        results=[],
    )


def finalise(result: RecipeResult, run: RunResult, settings: RunSettings) -> RecipeResult:
    """Attach what compares a result with the reference (the run's first result): flags, ΔPPL."""
    reference = run.results[0] if run.results else result
    if result.perplexity is not None and reference.perplexity is not None:
        result.perplexity_delta = result.perplexity - reference.perplexity
    result.flags = (
        kind_of(run.model.task).flags(result, reference, settings.agreement_threshold, len(run.model.labels))
        + slower_flags(result, reference, run.hardware.cpu.logical_cores)
        + timing_flags(result)
    )
    return result


def check_data(data: TextSet, model: ModelInfo | None = None) -> None:
    kind_of(model.task if model is not None else "text-classification").check_data(data)


def compare(
    model: Model,
    recipes: list[Recipe],
    data: TextSet,
    calibration: TextSet,
    hardware: HardwareInfo,
    cache: ArtifactCache,
    settings: RunSettings | None = None,
    listener: Listener = ignore,
    cancel: threading.Event | None = None,
    on_result: Callable[[RecipeResult], None] | None = None,
) -> RunResult:
    """Run the reference and then every recipe in this process; a failing recipe is reported, the rest go on."""
    settings = settings or RunSettings()
    check_data(data, model.info)
    runner = RecipeRunner(model, data, calibration, cache, settings, listener, cancel)
    run = run_header(model, data, calibration, hardware, settings)
    queue = plan_queue(model.info, recipes)
    for position, recipe in enumerate(queue):
        listener(Event(kind="stage", recipe=recipe.name, stage="start", done=position, total=len(queue)))
        try:
            result, _ = runner.run_recipe(recipe, hardware, is_reference=position == 0)
        except Cancelled:
            run.results.append(bare_result(recipe, "cancelled", "cancelled by the user"))
            listener(Event(kind="warning", recipe=recipe.name, message="run cancelled"))
            break
        except Exception as error:  # a backend bug must not lose the other recipes
            log.debug("recipe %s failed", recipe.name, exc_info=True)
            result = bare_result(recipe, "failed", describe_failure(error))
        run.results.append(finalise(result, run, settings))
        if on_result is not None:
            on_result(result)
        listener(
            Event(kind="result", recipe=recipe.name, data=result.model_dump(mode="json", exclude={"topk"}))
        )
        if position == 0 and not result.ok:
            listener(
                Event(kind="error", recipe=recipe.name, message=f"the FP32 reference failed: {result.reason}")
            )
            break
    listener(Event(kind="finished", total=len(run.results)))
    return run
