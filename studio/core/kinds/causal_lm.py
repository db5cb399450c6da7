"""Causal language models: perplexity, next-token fidelity to FP32, prompts' top-k and greedy continuations,
prefill latency and decode speed with the KV cache.

Conventions follow llama.cpp's `perplexity --kl-divergence`: the evaluation passages are joined into one
token stream and cut into windows of the recipe's `seq_len` (stride = `seq_len`, no overlap); in each
window the first half is context only and every later position is scored, so every scored token sees at
least `seq_len / 2` tokens. The reference keeps, per scored token, the log-probabilities of its top
`kl_top_k` tokens (never a full-vocabulary logits file); a recipe's KL(FP32 || recipe) is taken over those
tokens plus one bucket for the rest of the vocabulary, which is a lower bound on the full KL that is
tight when the top-k holds most of the mass.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from studio.core.dataset import TextSet
from studio.core.errors import StudioError
from studio.core.greedy import greedy
from studio.core.kinds.base import Column, Evaluation, Measurer, ModelKind, Timing
from studio.core.measure import latency_summary, time_calls
from studio.core.results import Flag, RecipeResult, RunInput, fallback_flags, non_finite_flags
from studio.core.settings import RunSettings
from studio.core.types import Task
from studio.core.units import human_bytes

LOGITS_BUDGET_BYTES = 256 * 2**20  # logits of one evaluation batch of windows
PROMPTS_FROM_PASSAGES = 40


class LanguageModel(Protocol):
    """What a backend gives for a causal LM: full-sequence logits, and prefill + one step with a KV cache."""

    def logits(self, input_ids: np.ndarray) -> np.ndarray:
        """[batch, tokens] int64 -> [batch, tokens, vocab] float32, without a cache."""
        ...

    def start(self, input_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        """Prefill [1, tokens]: the last position's logits [vocab] and the cache to continue from."""
        ...

    def step(self, token: int, cache: Any) -> tuple[np.ndarray, Any]:
        """One decode step: the next logits [vocab] and the grown cache."""
        ...


# -- text and tokens ------------------------------------------------------------------------------------
def show_token(text: str) -> str:
    """A token as people can read it in a table: spaces, newlines and tabs made visible."""
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def first_sentence(passage: str, limit: int = 12) -> str:
    """The first sentence of a passage, at most `limit` words, as a prompt."""
    sentence = re.split(r"(?<=[.!?])\s", passage.strip(), maxsplit=1)[0]
    words = sentence.split()
    return " ".join(words[: max(3, min(limit, len(words) - 1))]) if len(words) > 3 else sentence


def prompts_of(data: TextSet, limit: int = 0) -> list[str]:
    """The prompts a run shows side by side (the first `limit` when it is set)."""
    prompts = (
        list(data.prompts)
        if data.prompts
        else [first_sentence(p) for p in data.texts[:PROMPTS_FROM_PASSAGES]]
    )
    return prompts[:limit] if limit else prompts


def token_stream(tokenizer: Any, passages: list[str]) -> np.ndarray:
    """The passages as one token stream (blank lines between them), with the tokenizer's special tokens."""
    ids = tokenizer("\n\n".join(passages))["input_ids"]
    return np.asarray(ids, dtype=np.int64)


def windows(stream: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Non-overlapping windows of `length` tokens (a shorter stream makes one window) and the context size."""
    if len(stream) < length:
        length = len(stream)
    count = len(stream) // length
    return stream[: count * length].reshape(count, length), length // 2


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def top_ids(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values along the last axis, largest first."""
    k = min(k, values.shape[-1])
    part = np.argpartition(-values, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(values, part, axis=-1), axis=-1)
    result: np.ndarray = np.take_along_axis(part, order, axis=-1)
    return result


def first_departure(tokens: list[int], reference: list[int]) -> int | None:
    """The index of the first generated token that differs from the reference's (None: identical)."""
    for i, (a, b) in enumerate(zip(tokens, reference, strict=False)):
        if a != b:
            return i
    return None if len(tokens) == len(reference) else min(len(tokens), len(reference))


# -- the reference's outputs ----------------------------------------------------------------------------
@dataclass
class TokenReference:
    """Per scored token, the reference's top-k token ids, log-probabilities and raw logits."""

    ids: np.ndarray  # [N, K] int32
    logprobs: np.ndarray  # [N, K] float32
    logits: np.ndarray  # [N, K] float32
    continuations: list[list[int]]


def _stop_tokens(tokenizer: Any) -> set[int]:
    stop = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    return {int(t) for t in stop}


class CausalLMMeasurer(Measurer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prompts = prompts_of(self.data, self.settings.prompt_limit)
        self._stream: np.ndarray | None = None

    @property
    def stream(self) -> np.ndarray:
        if self._stream is None:
            self._stream = token_stream(self.model.tokenizer, self.data.texts)
            if len(self._stream) < 4:
                raise StudioError(
                    f"the evaluation text {Path(self.data.source).name} has only {len(self._stream)} tokens",
                    "pass a longer --eval text (perplexity needs at least a few sentences)",
                )
        return self._stream

    def display(self, token: int) -> str:
        text = self.model.tokenizer.decode([token])
        if "\ufffd" in text:  # a byte of a multi-byte character: show the token itself
            text = str(self.model.tokenizer.convert_ids_to_tokens(token))
        return show_token(text)

    def _prompt_topk(self, logits: np.ndarray) -> list[tuple[str, float]]:
        logp = log_softmax(logits.astype(np.float64)[None])[0]
        return [
            (self.display(int(j)), round(float(np.exp(logp[j])), 6))
            for j in top_ids(logp, self.settings.top_k)
        ]

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate(self, predictor: Any, recipe: Any, reference: Any | None) -> Evaluation:
        blocks, context = windows(self.stream, recipe.seq_len)
        scored = blocks.shape[1] - 1 - context
        vocab = self.model.info.vocab_size or 50_000
        per_batch = max(1, LOGITS_BUDGET_BYTES // (blocks.shape[1] * vocab * 4))
        k = self.settings.kl_top_k
        nll, kl, same, cosine = [], [], [], []
        own_ids, own_logprobs, own_logits = [], [], []
        finite = True
        offset = 0
        for start in range(0, len(blocks), per_batch):
            self.report("perplexity", start, len(blocks))
            batch = blocks[start : start + per_batch]
            logits = np.asarray(predictor.logits(batch), dtype=np.float32)[:, context:-1, :]
            finite = finite and bool(np.isfinite(logits).all())
            logits = np.nan_to_num(logits, nan=0.0, posinf=1e4, neginf=-1e4).reshape(-1, logits.shape[-1])
            targets = batch[:, context + 1 :].reshape(-1)
            logp = log_softmax(logits)
            nll.append(-logp[np.arange(len(targets)), targets])
            if reference is None:
                ids = top_ids(logp, k)
                own_ids.append(ids.astype(np.int32))
                own_logprobs.append(np.take_along_axis(logp, ids, axis=-1))
                own_logits.append(np.take_along_axis(logits, ids, axis=-1))
                ref_ids, ref_logp, ref_logits = own_ids[-1], own_logprobs[-1], own_logits[-1]
            else:
                rows = slice(offset, offset + len(targets))
                ref_ids, ref_logp, ref_logits = (
                    reference.ids[rows],
                    reference.logprobs[rows],
                    reference.logits[rows],
                )
            kl.append(_kl_over_top(ref_logp, np.take_along_axis(logp, ref_ids.astype(np.int64), axis=-1)))
            same.append(logits.argmax(-1) == ref_ids[:, 0])
            cosine.append(_cosine(ref_logits, np.take_along_axis(logits, ref_ids.astype(np.int64), axis=-1)))
            offset += len(targets)
        self.report("perplexity", len(blocks), len(blocks))
        if reference is not None and offset != len(reference.ids):
            raise StudioError(
                f"{offset} tokens scored but the reference scored {len(reference.ids)}",
                "run the reference and the recipe with the same seq_len",
            )
        token_nll = np.concatenate(nll)
        token_kl = np.concatenate(kl)
        prompt_topk, continuations, continuation_tokens = self._prompts(predictor)
        outputs = (
            TokenReference(
                np.concatenate(own_ids),
                np.concatenate(own_logprobs),
                np.concatenate(own_logits),
                continuation_tokens,
            )
            if reference is None
            else None
        )
        ref_tokens = reference.continuations if reference is not None else continuation_tokens
        departures = [first_departure(t, r) for t, r in zip(continuation_tokens, ref_tokens, strict=True)]
        tokenizer = self.model.tokenizer
        fields = {
            "perplexity": float(np.exp(token_nll.mean())),
            "tokens_evaluated": len(token_nll),
            "top1_agreement": float(np.concatenate(same).mean()),
            "kl": float(token_kl.mean()),
            "kl_p99": float(np.percentile(token_kl, 99)),
            "kl_max": float(token_kl.max()),
            "cosine": float(np.concatenate(cosine).mean()),
            "topk": prompt_topk,
            "continuations": continuations,
            "continuation_tokens": continuation_tokens,
            "first_departure": departures,
            "departure_chars": [
                None if d is None else len(tokenizer.decode(t[:d], skip_special_tokens=True))
                for t, d in zip(continuation_tokens, departures, strict=True)
            ],
        }
        notes = [
            f"{len(blocks)} windows of {blocks.shape[1]} tokens (stride {blocks.shape[1]}, the first {context} "
            f"of each are context): {scored * len(blocks)} tokens scored"
        ]
        if not finite:
            notes.append("non-finite outputs")
        return Evaluation(fields, outputs, finite, notes)

    def _prompts(self, lm: Any) -> tuple[list[list[tuple[str, float]]], list[str], list[list[int]]]:
        tokenizer = self.model.tokenizer
        stop = _stop_tokens(tokenizer)
        topk, texts, tokens = [], [], []
        for i, prompt in enumerate(self.prompts):
            self.report("prompts", i, len(self.prompts))
            first, generated = greedy(lm, tokenizer(prompt)["input_ids"], self.settings.new_tokens, stop)
            topk.append(self._prompt_topk(first))
            tokens.append(generated)
            texts.append(tokenizer.decode(generated, skip_special_tokens=True))
        self.report("prompts", len(self.prompts), len(self.prompts))
        return topk, texts, tokens

    # -- speed ----------------------------------------------------------------------------------------
    def time(self, predictor: Any, recipe: Any, name: str) -> Timing:
        length = recipe.seq_len
        stream = self.stream
        ids = np.resize(stream, length)[None, :]  # seq_len tokens of the evaluation text
        seconds = time_calls(
            lambda _: predictor.start(ids),
            {},
            self.settings.timing,
            self.check_cancel,
            lambda done, total: self.report("time prefill", done, total),
        )
        prefill, _ = latency_summary(seconds, length)
        prompt = self.model.tokenizer(self.prompts[0] if self.prompts else "The")["input_ids"]
        first, steps = [], []
        for round_ in range(self.settings.decode_rounds):
            self.report("time decode", round_, self.settings.decode_rounds)
            begin = time.perf_counter()
            logits, cache = predictor.start(np.asarray([prompt], dtype=np.int64))
            token = int(np.argmax(logits))
            first.append(time.perf_counter() - begin)
            for _ in range(self.settings.decode_tokens):
                self.check_cancel()
                begin = time.perf_counter()
                logits, cache = predictor.step(token, cache)
                token = int(np.argmax(logits))  # forced length: an end-of-sequence token does not stop timing
                steps.append(time.perf_counter() - begin)
        self.report("time decode", self.settings.decode_rounds, self.settings.decode_rounds)
        per_token, _ = latency_summary(np.asarray(steps), 1)
        return {
            "prefill_ms": prefill,
            "ttft_ms": float(np.median(first) * 1000),
            "latency_ms": per_token,
            "decode_tokens_per_s": float(len(steps) / sum(steps)),
        }

    def speed_fields(self, timing: Timing, reference: Timing | None) -> dict[str, Any]:
        rate = timing["decode_tokens_per_s"]
        return {
            "latency_ms": timing["latency_ms"],
            "throughput": rate,
            "prefill_ms": timing["prefill_ms"],
            "ttft_ms": timing["ttft_ms"],
            "decode_tokens_per_s": rate,
            "speedup_vs_reference": rate / reference["decode_tokens_per_s"] if reference else None,
            "prefill_speedup": reference["prefill_ms"]["p50"] / timing["prefill_ms"]["p50"]
            if reference
            else None,
        }

    # -- the reference's outputs for the other workers ------------------------------------------------
    def save_outputs(self, outputs: Any, path: Path) -> str:
        target = path.with_suffix(".npz")
        lengths = np.asarray([len(t) for t in outputs.continuations], dtype=np.int32)
        flat = np.asarray([t for c in outputs.continuations for t in c], dtype=np.int64)
        np.savez(
            target,
            ids=outputs.ids,
            logprobs=outputs.logprobs,
            logits=outputs.logits,
            lengths=lengths,
            flat=flat,
        )
        return str(target)

    def load_outputs(self, path: str) -> Any:
        with np.load(path) as data:
            bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
            flat = data["flat"].tolist()
            continuations = [flat[a:b] for a, b in itertools.pairwise(bounds)]
            return TokenReference(data["ids"], data["logprobs"], data["logits"], continuations)

    def predict(
        self, predictor: Any, recipe: Any, texts: list[str], pairs: list[str] | None = None
    ) -> dict[str, Any]:
        tokenizer = self.model.tokenizer
        topk, continuations = [], []
        for text in texts:
            first, generated = greedy(
                predictor, tokenizer(text)["input_ids"], self.settings.new_tokens, _stop_tokens(tokenizer)
            )
            topk.append(self._prompt_topk(first))
            continuations.append(tokenizer.decode(generated, skip_special_tokens=True))
        return {"topk": topk, "continuations": continuations}


def _kl_over_top(ref_logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """KL(P || Q) over the reference's top-k tokens plus one bucket for the rest of the vocabulary."""
    p = np.exp(ref_logp.astype(np.float64))
    q = np.exp(logq.astype(np.float64))
    head = (p * (ref_logp - logq)).sum(-1)
    p_rest = np.clip(1.0 - p.sum(-1), 0.0, 1.0)
    q_rest = np.clip(1.0 - q.sum(-1), 1e-12, 1.0)
    tail = np.where(p_rest > 1e-12, p_rest * (np.log(np.clip(p_rest, 1e-12, None)) - np.log(q_rest)), 0.0)
    result: np.ndarray = np.clip(head + tail, 0.0, None)
    return result


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    denom = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    result: np.ndarray = (a * b).sum(-1) / np.clip(denom, 1e-12, None)
    return result


# -- presentation ---------------------------------------------------------------------------------------
def lm_card_rows(info: Any) -> list[tuple[str, str]]:
    """The rows of a causal LM's model card, as the CLI and the window show them."""

    def value(v: Any) -> str:
        return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)

    return [
        ("layers", value(info.layers)),
        ("hidden size", value(info.hidden_size)),
        ("context", f"{value(info.context_length)} tokens"),
        ("vocabulary", f"{value(info.vocab_size)} tokens"),
        ("dtype on disk", value(info.dtype)),
        ("chat template", "yes" if info.chat_template else "no"),
    ]


def split_at_token(result: RecipeResult, index: int, departure: int) -> int:
    """Where, in continuation `index`'s text, the first token that departs from FP32 begins."""
    chars = result.departure_chars[index] if index < len(result.departure_chars) else None
    return len(result.continuations[index]) if chars is None else chars


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, fmt) + suffix


def _likely_cause(result: RecipeResult, same: float | None) -> str:
    """Why a language-model recipe strays from FP32, from what it is."""
    if same is not None and same < 0.2:
        return (
            "a wrong input binding (position ids, attention mask or past key values in the wrong order) or a "
            "quantized embedding/index path, not quantization error"
        )
    if result.mode == "dynamic":
        return (
            "activations are quantized at run time, and a few outlier channels of an LLM's activations set "
            "the scale and crush the rest (per-tensor scales suffer most): prefer weight-only INT8/INT4, or keep "
            "the MLP down-projections in float (exclude_nodes)"
        )
    if result.mode == "weight-only" and result.precision == "int4":
        return (
            "rounding the weights to this INT4 grid costs more than the model tolerates: try algorithm = "
            '"hqq" (float zero points; it also fits the grid of a GGUF-quantized reference), a smaller '
            "block_size, or keep lm_head and the most sensitive layers in float"
        )
    return "too coarse quantization for this model: keep lm_head and the most sensitive layers in float"


def _delta(r: RecipeResult) -> str:
    if r.perplexity_delta is None or r.perplexity is None:
        return "-"
    base = r.perplexity - r.perplexity_delta
    return f"{r.perplexity_delta / base:+.1%}" if base else f"{r.perplexity_delta:+.2f}"


class CausalLMKind(ModelKind):
    task: ClassVar[Task] = "text-generation"
    title = "causal language model"
    measurer = CausalLMMeasurer

    def columns(self) -> list[Column]:
        return [
            Column("prefill ms", lambda r: _num(r.prefill_ms.p50 if r.prefill_ms else None, ".1f")),
            Column("TTFT ms", lambda r: _num(r.ttft_ms, ".1f")),
            Column("tok/s", lambda r: _num(r.decode_tokens_per_s, ".1f")),
            Column("speed-up", lambda r: _num(r.speedup_vs_reference, ".2f", "x")),
            Column("size", lambda r: human_bytes(r.size_bytes)),
            Column("B/param", lambda r: _num(r.bytes_per_parameter, ".2f")),
            Column("peak RSS", lambda r: human_bytes(r.peak_rss_bytes)),
            Column("PPL", lambda r: _num(r.perplexity, ".2f")),
            Column("ΔPPL", _delta),
            Column("KLD", lambda r: _num(r.kl, ".4f")),
            Column("KLD p99", lambda r: _num(r.kl_p99, ".3f")),
            Column(
                "same top-1", lambda r: "-" if r.top1_agreement is None else f"{r.top1_agreement * 100:.1f}%"
            ),
        ]

    def run_inputs(self, data: TextSet, settings: RunSettings) -> list[RunInput]:
        return [RunInput(text=prompt) for prompt in prompts_of(data, settings.prompt_limit)]

    def check_data(self, data: TextSet) -> None:
        if not data.texts or not any(t.strip() for t in data.texts):
            raise StudioError(
                f"no evaluation text in {data.source}",
                "pass an --eval .txt file with passages (or a CSV/JSONL text column)",
            )
        if data.pairs is not None:
            raise StudioError(
                "a causal language model reads one text per input, not text pairs",
                "drop --pair-column (or choose no second column)",
            )

    def flags(
        self, result: RecipeResult, reference: RecipeResult | None, threshold: float, labels: int
    ) -> list[Flag]:
        flags = non_finite_flags(result)
        if result.reference or not result.ok:
            return flags
        same = result.top1_agreement
        ratio = (
            result.perplexity / reference.perplexity
            if reference is not None and reference.perplexity and result.perplexity is not None
            else None
        )
        cause = _likely_cause(result, same)
        if same is not None and same < threshold:
            flags.append(
                Flag(
                    code="low-agreement",
                    severity="error",
                    message=f"the most probable next token equals FP32's on only {same:.1%} of tokens "
                    f"(threshold {threshold:.0%}): treat this as a bug, not a result. Likely cause: {cause}",
                )
            )
        if ratio is not None and ratio > 2.0:
            flags.append(
                Flag(
                    code="perplexity-blowup",
                    severity="error",
                    message=f"perplexity is {ratio:.1f}x FP32's ({result.perplexity:.2f} against "
                    f"{reference.perplexity if reference else 0:.2f}): the model is broken. Likely cause: {cause}",
                )
            )
        elif ratio is not None and ratio > 1.10:
            flags.append(
                Flag(
                    code="perplexity-rise",
                    severity="warning",
                    message=f"perplexity {ratio - 1:+.1%} against FP32",
                )
            )
        return flags + fallback_flags(result)
