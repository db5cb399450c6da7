"""Measurements: latency after warm-up, peak memory, task accuracy and fidelity to the FP32 reference."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from studio.core.inputs import Feeds


class TimingPlan(BaseModel):
    """How long to time a predictor: warm-up calls, then at least `min_iterations` and `min_seconds`."""

    model_config = ConfigDict(frozen=True)

    warmup: int = 5
    min_iterations: int = 20
    min_seconds: float = 2.0
    max_iterations: int = 1000
    # After every recipe was evaluated, the reference and the recipes are timed again in this many
    # interleaved rounds (`studio.core.rounds`); 0 or 1: each recipe keeps its own worker's timing.
    rounds: int = Field(3, ge=0, le=20)


def time_calls(
    predict: Callable[[Feeds], object],
    feeds: Feeds,
    plan: TimingPlan,
    check_cancel: Callable[[], None] = lambda: None,
    report: Callable[[int, int], None] = lambda done, total: None,
) -> np.ndarray:
    """Wall-clock seconds of each timed call, after `plan.warmup` untimed ones."""
    for _ in range(plan.warmup):
        check_cancel()
        predict(feeds)
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < plan.max_iterations:
        check_cancel()
        begin = time.perf_counter()
        predict(feeds)
        samples.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - started
        if len(samples) >= plan.min_iterations and elapsed >= plan.min_seconds:
            break
        if len(samples) % 5 == 0:
            report(len(samples), plan.min_iterations)
    return np.asarray(samples)


def latency_summary(seconds: np.ndarray, batch_size: int) -> tuple[dict[str, float], float]:
    """Percentiles in milliseconds and throughput in inputs per second."""
    ms = seconds * 1000.0
    percentiles = {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
    }
    return percentiles, float(batch_size / seconds.mean())


class PeakRss:
    """Samples this process's resident memory every `interval` seconds and keeps the peak."""

    def __init__(self, interval: float = 0.05, on_sample: Callable[[int], None] | None = None) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._on_sample = on_sample
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self._process.memory_info().rss
            self.peak = max(self.peak, rss)
            if self._on_sample is not None:
                self._on_sample(rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return result


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    denom = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    result: np.ndarray = (a * b).sum(axis=-1) / np.clip(denom, 1e-12, None)
    return result


@dataclass(frozen=True)
class Fidelity:
    """How closely a backend reproduces the FP32 reference on the same inputs."""

    top1_agreement: float | None
    kl: float | None
    cosine: float
    max_abs_diff: float
    finite: bool


def fidelity(reference: np.ndarray, outputs: np.ndarray, classification: bool) -> Fidelity:
    """Agreement and KL(reference || backend) over softmax for classifiers; cosine and max |diff| for both."""
    finite = bool(np.isfinite(outputs).all())
    safe = np.nan_to_num(outputs, nan=0.0, posinf=1e30, neginf=-1e30)
    cosine = float(_cosine(reference, safe).mean())
    max_abs = float(np.abs(reference - safe).max()) if finite else float("inf")
    if not classification:
        return Fidelity(None, None, cosine, max_abs, finite)
    agreement = float((reference.argmax(-1) == safe.argmax(-1)).mean())
    p, q = softmax(reference.astype(np.float64)), softmax(safe.astype(np.float64))
    kl = float((p * (np.log(np.clip(p, 1e-12, None)) - np.log(np.clip(q, 1e-12, None)))).sum(-1).mean())
    return Fidelity(agreement, kl, cosine, max_abs, finite)


def accuracy(outputs: np.ndarray, gold: np.ndarray) -> float:
    return float((outputs.argmax(-1) == gold).mean())


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[list[tuple[str, float]]]:
    """Per input, the k most probable labels with their probabilities."""
    probabilities = softmax(logits.astype(np.float64))
    k = min(k, probabilities.shape[-1])
    order = np.argsort(-probabilities, axis=-1)[:, :k]
    return [
        [(labels[j], round(float(row[j]), 6)) for j in idx]
        for row, idx in zip(probabilities, order, strict=True)
    ]
