"""Text classifiers and plain encoders: one text in, logits or a pooled embedding out.

Both are evaluated the same way (every text, batched by length, outputs in the file's order) and timed
at the recipe's batch size and padded sequence length; they differ in what fidelity means (softmax
agreement and KL for labels, cosine for embeddings) and in having task accuracy and top-k labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from studio.core.dataset import label_indices
from studio.core.inputs import Feeds, encode, length_buckets, pick
from studio.core.kinds.base import Column, Evaluation, Measurer, ModelKind, Timing
from studio.core.measure import accuracy, fidelity, latency_summary, time_calls, top_k
from studio.core.results import RecipeResult
from studio.core.types import Task
from studio.core.units import human_bytes


class TextMeasurer(Measurer):
    classification: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gold = label_indices(self.data, self.model.info.labels)  # refuse mismatched labels up front

    def outputs(self, predictor: Any, recipe: Any) -> np.ndarray:
        """Outputs for every evaluation text, in the file's order, batched by length."""
        tokenizer = self.model.tokenizer
        names = self.model.info.input_names
        outputs: list[np.ndarray | None] = [None] * len(self.data)
        done = 0
        texts, pairs = self.data.texts, self.data.pairs
        for batch in length_buckets(tokenizer, texts, self.settings.eval_batch_size, recipe.seq_len, pairs):
            self.report("evaluate", done, len(self.data))
            feeds = encode(
                tokenizer, [texts[i] for i in batch], names, recipe.seq_len, pairs=pick(pairs, batch)
            )
            processed = self.model.postprocess(predictor(feeds), feeds["attention_mask"])
            for row, index in enumerate(batch):
                outputs[index] = processed[row]
            done += len(batch)
        self.report("evaluate", done, len(self.data))
        return np.stack([o for o in outputs if o is not None])

    def evaluate(self, predictor: Any, recipe: Any, reference: Any | None) -> Evaluation:
        outputs = self.outputs(predictor, recipe)
        fid = fidelity(reference if reference is not None else outputs, outputs, self.classification)
        fields: dict[str, Any] = {
            "accuracy": accuracy(outputs, self.gold)
            if self.gold is not None and self.classification
            else None,
            "top1_agreement": fid.top1_agreement,
            "kl": fid.kl,
            "cosine": fid.cosine,
            "max_abs_diff": fid.max_abs_diff,
            "topk": top_k(outputs, self.model.info.labels, self.settings.top_k)
            if self.classification
            else [],
        }
        finite = bool(np.isfinite(outputs).all())
        return Evaluation(fields, outputs, finite, [] if finite else ["non-finite outputs"])

    def timing_feeds(self, batch: int, seq_len: int) -> Feeds:
        rows = [i % len(self.data) for i in range(batch)]
        return encode(
            self.model.tokenizer,
            [self.data.texts[i] for i in rows],
            self.model.info.input_names,
            seq_len,
            pad_to_max=True,
            pairs=pick(self.data.pairs, rows),
        )

    def time(self, predictor: Any, recipe: Any, name: str) -> Timing:
        seconds = time_calls(
            predictor,
            self.timing_feeds(recipe.batch_size, recipe.seq_len),
            self.settings.timing,
            self.check_cancel,
            lambda done, total: self.report("time", done, total),
        )
        latency, throughput = latency_summary(seconds, recipe.batch_size)
        return {"latency_ms": latency, "throughput": throughput}

    def speed_fields(self, timing: Timing, reference: Timing | None) -> dict[str, Any]:
        p50 = timing["latency_ms"]["p50"]
        return {
            "latency_ms": timing["latency_ms"],
            "throughput": timing["throughput"],
            "speedup_vs_reference": reference["latency_ms"]["p50"] / p50 if reference and p50 else None,
        }

    def save_outputs(self, outputs: Any, path: Path) -> str:
        target = path.with_suffix(".npy")
        np.save(target, outputs)
        return str(target)

    def load_outputs(self, path: str) -> Any:
        return np.load(path)

    def predict(
        self, predictor: Any, recipe: Any, texts: list[str], pairs: list[str] | None = None
    ) -> dict[str, Any]:
        feeds = encode(self.model.tokenizer, texts, self.model.info.input_names, recipe.seq_len, pairs=pairs)
        outputs = self.model.postprocess(predictor(feeds), feeds["attention_mask"])
        return {"topk": top_k(outputs, self.model.info.labels, self.settings.top_k)}


class EncoderMeasurer(TextMeasurer):
    classification = False


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, fmt) + suffix


class ClassifierKind(ModelKind):
    task: ClassVar[Task] = "text-classification"
    title = "text classifier"
    measurer = TextMeasurer

    def columns(self) -> list[Column]:
        def lat(r: RecipeResult, key: str) -> str:
            return _num(getattr(r.latency_ms, key) if r.latency_ms else None, ".2f")

        return [
            Column("precision", lambda r: r.precision, left=True),
            Column("p50 ms", lambda r: lat(r, "p50")),
            Column("p99 ms", lambda r: lat(r, "p99")),
            Column("speed-up", lambda r: _num(r.speedup_vs_reference, ".2f", "x")),
            Column("inputs/s", lambda r: _num(r.throughput, ".1f")),
            Column("size", lambda r: human_bytes(r.size_bytes)),
            Column("peak RSS", lambda r: human_bytes(r.peak_rss_bytes)),
            Column("accuracy", lambda r: _pct(r.accuracy)),
            Column("agree", lambda r: _pct(r.top1_agreement)),
            Column("KL", lambda r: _num(r.kl, ".4f")),
            Column("cosine", lambda r: _num(r.cosine, ".4f")),
            Column("max |Δ|", lambda r: _num(r.max_abs_diff, ".3f")),
        ]


class EncoderKind(ClassifierKind):
    task: ClassVar[Task] = "feature-extraction"
    title = "encoder (embeddings)"
    measurer = EncoderMeasurer
