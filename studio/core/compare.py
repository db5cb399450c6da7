"""The comparison run: every recipe on one model, each measured against the FP32 reference.

This is a plain function that reports through events and checks a cancel flag between steps, so the
CLI can call it directly and the GUI or a worker process can wrap it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import studio
from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.registry import get_spec
from studio.core.cache import ArtifactCache, library_versions
from studio.core.capability import assess
from studio.core.dataset import TextSet, label_indices
from studio.core.errors import Cancelled, StudioError
from studio.core.events import Event, Listener, ignore
from studio.core.hardware import HardwareInfo
from studio.core.inputs import Feeds, encode, length_buckets
from studio.core.measure import PeakRss, TimingPlan, accuracy, fidelity, latency_summary, time_calls, top_k
from studio.core.model import Model
from studio.core.recipe import Recipe
from studio.core.results import EvalInfo, Latency, RecipeResult, RunInput, RunResult, diagnose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    agreement_threshold: float = 0.90
    top_k: int = 5
    timing: TimingPlan = field(default_factory=TimingPlan)
    eval_batch_size: int = 16


def reference_recipe(model: Model) -> Recipe:
    """Torch FP32 for a PyTorch model; for an ONNX file, ONNX Runtime FP32 on the graph exactly as given."""
    if model.has_torch:
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


class _Run:
    """State of one comparison: the loaded reference, its outputs and its timings per shape."""

    def __init__(
        self,
        model: Model,
        data: TextSet,
        calibration: TextSet,
        cache: ArtifactCache,
        settings: RunSettings,
        listener: Listener,
        cancel: threading.Event,
    ) -> None:
        self.model = model
        self.data = data
        self.calibration = calibration
        self.cache = cache
        self.settings = settings
        self.emit = listener
        self.cancel = cancel
        self.gold = label_indices(data, model.info.labels)  # refuse mismatched labels before any work
        self.classification = model.info.task == "text-classification"
        self.reference_outputs: np.ndarray | None = None
        self.reference_predictor: Predictor | None = None
        self.reference_timings: dict[tuple[int, int, int], tuple[dict[str, float], float]] = {}

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def reporter(self, recipe: str) -> Callable[[str, int, int], None]:
        def report(stage: str, done: int, total: int) -> None:
            self.check_cancel()
            self.emit(Event(kind="progress", recipe=recipe, stage=stage, done=done, total=total))

        return report

    # -- measuring ------------------------------------------------------------------------------------
    def evaluate(self, predictor: Predictor, recipe: Recipe) -> np.ndarray:
        """Outputs for every evaluation text, in the file's order, batched by length."""
        tokenizer = self.model.tokenizer
        names = self.model.info.input_names
        outputs: list[np.ndarray | None] = [None] * len(self.data)
        done = 0
        for batch in length_buckets(
            tokenizer, self.data.texts, self.settings.eval_batch_size, recipe.seq_len
        ):
            self.check_cancel()
            feeds = encode(tokenizer, [self.data.texts[i] for i in batch], names, recipe.seq_len)
            raw = predictor(feeds)
            processed = self.model.postprocess(raw, feeds["attention_mask"])
            for row, index in enumerate(batch):
                outputs[index] = processed[row]
            done += len(batch)
            self.emit(
                Event(kind="progress", recipe=recipe.name, stage="evaluate", done=done, total=len(self.data))
            )
        return np.stack([o for o in outputs if o is not None])

    def timing_feeds(self, recipe: Recipe) -> Feeds:
        texts = [self.data.texts[i % len(self.data)] for i in range(recipe.batch_size)]
        return encode(
            self.model.tokenizer, texts, self.model.info.input_names, recipe.seq_len, pad_to_max=True
        )

    def time_predictor(self, predictor: Predictor, recipe: Recipe) -> tuple[dict[str, float], float]:
        report = self.reporter(recipe.name)
        seconds = time_calls(
            predictor,
            self.timing_feeds(recipe),
            self.settings.timing,
            self.check_cancel,
            lambda done, total: report("time", done, total),
        )
        return latency_summary(seconds, recipe.batch_size)

    def reference_timing(self, recipe: Recipe) -> tuple[dict[str, float], float] | None:
        """The reference's latency at `recipe`'s shape and threads, measured once per shape."""
        if self.reference_predictor is None:
            return None
        shape = (recipe.batch_size, recipe.seq_len, recipe.threads)
        if shape not in self.reference_timings:
            self.reference_timings[shape] = self.time_predictor(self.reference_predictor, recipe)
        return self.reference_timings[shape]

    # -- one recipe -----------------------------------------------------------------------------------
    def run_recipe(self, recipe: Recipe, hardware: HardwareInfo, is_reference: bool = False) -> RecipeResult:
        availability = assess(recipe, hardware)
        base = RecipeResult(
            recipe=recipe.name,
            backend=recipe.backend,
            precision=availability.precision,
            requested_precision=recipe.precision,
            mode=recipe.mode,
            device=recipe.device,
            status="ok",
            reference=is_reference,
            batch_size=recipe.batch_size,
            seq_len=recipe.seq_len,
            threads=recipe.threads,
            recipe_toml=recipe.to_toml(),
        )
        if not availability.available:
            return base.model_copy(update={"status": "unavailable", "reason": availability.reason})
        spec = get_spec(recipe.backend)
        if spec.needs_torch_model and not self.model.has_torch:
            return base.model_copy(
                update={
                    "status": "unavailable",
                    "reason": f"{spec.title} needs a PyTorch model; this is an ONNX file",
                }
            )
        notes = [availability.notice] if availability.notice else []
        ctx = BuildContext(
            model=self.model,
            recipe=recipe,
            cache=self.cache,
            precision=availability.precision,
            calibration_texts=self.calibration.texts,
            report=self.reporter(recipe.name),
            check_cancel=self.check_cancel,
            notes=notes,
        )
        seconds: dict[str, float] = {}
        self.emit(Event(kind="stage", recipe=recipe.name, stage="prepare"))
        with PeakRss() as rss:
            with _timed(seconds, "prepare"):
                artifact: Artifact = spec.load().prepare(ctx)
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
                predictor = spec.load().load(ctx, artifact)
            self.emit(Event(kind="stage", recipe=recipe.name, stage="evaluate"))
            with _timed(seconds, "evaluate"):
                outputs = self.evaluate(predictor, recipe)
            self.emit(Event(kind="stage", recipe=recipe.name, stage="time"))
            with _timed(seconds, "time"):
                latency, throughput = self.time_predictor(predictor, recipe)
        if not np.isfinite(outputs).all():
            notes.append("non-finite outputs")
        if is_reference:
            self.reference_outputs = outputs
            self.reference_predictor = predictor
            self.reference_timings[(recipe.batch_size, recipe.seq_len, recipe.threads)] = (
                latency,
                throughput,
            )
        reference_outputs = self.reference_outputs if self.reference_outputs is not None else outputs
        fid = fidelity(reference_outputs, outputs, self.classification)
        ref_timing = self.reference_timing(recipe)
        result = base.model_copy(
            update={
                "from_cache": artifact.from_cache,
                "notes": notes,
                "latency_ms": Latency(**latency),
                "throughput": throughput,
                "size_bytes": artifact.size_bytes,
                "peak_rss_bytes": rss.peak,
                "accuracy": accuracy(outputs, self.gold)
                if self.gold is not None and self.classification
                else None,
                "top1_agreement": fid.top1_agreement,
                "kl": fid.kl,
                "cosine": fid.cosine,
                "max_abs_diff": fid.max_abs_diff,
                "speedup_vs_reference": ref_timing[0]["p50"] / latency["p50"] if ref_timing else None,
                "topk": top_k(outputs, self.model.info.labels, self.settings.top_k)
                if self.classification
                else [],
                "seconds": seconds,
            }
        )
        return result


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = round(time.perf_counter() - start, 3)


def _failure(recipe: Recipe, status: str, reason: str) -> RecipeResult:
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
    """Run the reference and then every recipe; a recipe that fails is reported and the rest go on."""
    settings = settings or RunSettings()
    if not data.texts:
        raise StudioError(
            f"no evaluation texts in {data.source}", "pass an --eval file with at least one text"
        )
    run = _Run(model, data, calibration, cache, settings, listener, cancel or threading.Event())
    reference = reference_recipe(model)
    same_as_reference = {r.name for r in recipes if r.artifact_fields() == reference.artifact_fields()}
    # The reference runs at the first recipe's shape and threads, so the common case is timed once.
    if recipes:
        reference = reference.model_copy(
            update={
                "batch_size": recipes[0].batch_size,
                "seq_len": recipes[0].seq_len,
                "threads": recipes[0].threads,
            }
        )
    if same_as_reference:
        reference = next(r for r in recipes if r.name in same_as_reference)
    queue = [reference] + [r for r in recipes if r.name != reference.name]
    results: list[RecipeResult] = []
    labels = len(model.info.labels)
    for position, recipe in enumerate(queue):
        is_reference = position == 0
        listener(Event(kind="stage", recipe=recipe.name, stage="start", done=position, total=len(queue)))
        try:
            result = run.run_recipe(recipe, hardware, is_reference)
        except Cancelled:
            results.append(_failure(recipe, "cancelled", "cancelled by the user"))
            listener(Event(kind="warning", recipe=recipe.name, message="run cancelled"))
            break
        except StudioError as error:
            result = _failure(recipe, "failed", str(error))
        except MemoryError:
            result = _failure(
                recipe, "failed", "out of memory: close other programs or pick a smaller batch_size/seq_len"
            )
        except Exception as error:  # a backend bug must not lose the other recipes
            log.exception("recipe %s failed", recipe.name)
            result = _failure(
                recipe,
                "failed",
                f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}",
            )
        if is_reference and not result.ok:
            results.append(result)
            listener(
                Event(kind="error", recipe=recipe.name, message=f"the FP32 reference failed: {result.reason}")
            )
            break
        result.flags = diagnose(
            result, results[0] if results else result, settings.agreement_threshold, labels
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
        listener(
            Event(kind="result", recipe=recipe.name, data=result.model_dump(mode="json", exclude={"topk"}))
        )
    listener(Event(kind="finished", total=len(results)))
    return RunResult(
        studio_version=studio.__version__,
        libraries=library_versions(),
        model=model.info,
        hardware=hardware,
        evaluation=EvalInfo(
            source=data.source,
            count=len(data),
            labelled=run.gold is not None,
            calibration_source=calibration.source,
            calibration_count=len(calibration),
        ),
        agreement_threshold=settings.agreement_threshold,
        inputs=[
            RunInput(text=text, gold=data.labels[i] if data.labels is not None else None)
            for i, text in enumerate(data.texts)
        ],
        results=results,
    )
