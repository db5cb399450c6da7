"""What a comparison run produces: the schema of `qstudio run --json`, the history and the reports.

`RunResult.results` holds one `RecipeResult` per recipe, the FP32 reference first. `topk[i]` of a
result is the top-k of input `i` of `RunResult.inputs`, so every backend's predictions line up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from studio.core.hardware import HardwareInfo
from studio.core.model import ModelInfo

SCHEMA_VERSION = 1
Status = Literal["ok", "unavailable", "failed", "cancelled"]


class Latency(BaseModel):
    p50: float
    p90: float
    p99: float
    mean: float


class Flag(BaseModel):
    """Something about a result the user must not miss."""

    code: str  # low-agreement, accuracy-drop, non-finite, fallback, low-cosine
    severity: Literal["error", "warning", "info"]
    message: str


class RecipeResult(BaseModel):
    recipe: str
    backend: str
    precision: str  # what ran (after any fallback)
    requested_precision: str
    mode: str
    device: str
    status: Status
    reason: str = ""
    reference: bool = False
    from_cache: bool = False
    notes: list[str] = Field(default_factory=list)
    batch_size: int
    seq_len: int
    threads: int
    latency_ms: Latency | None = None
    throughput: float | None = None  # inputs per second at batch_size
    size_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None  # from NVML, see gpu_memory_scope
    gpu_memory_scope: str = "none"  # process, device (device-wide used memory) or none
    accuracy: float | None = None
    top1_agreement: float | None = None
    kl: float | None = None
    cosine: float | None = None
    max_abs_diff: float | None = None
    speedup_vs_reference: float | None = None
    flags: list[Flag] = Field(default_factory=list)
    topk: list[list[tuple[str, float]]] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)  # prepare, load, evaluate, time
    recipe_toml: str = ""
    node: str = ""  # the cluster node that ran it ("host (node id)"), for a swept result
    # Interleaved timing (`studio.core.rounds`): how many rounds the speed figures are the median of,
    # how far the rounds' p50s disagreed, and the share of the CPUs other processes used meanwhile.
    timing_rounds: int | None = None
    latency_spread: float | None = None
    others_cpu_share: float | None = None
    bytes_per_parameter: float | None = None  # size_bytes / the model's parameters
    # Causal language models: top1_agreement is "same top-1" over every scored token, kl the mean KLD,
    # latency_ms the per-token decode latency, throughput and speedup_vs_reference decode tokens/s.
    perplexity: float | None = None
    perplexity_delta: float | None = None  # this recipe's perplexity minus FP32's
    kl_p99: float | None = None
    kl_max: float | None = None
    tokens_evaluated: int | None = None
    prefill_ms: Latency | None = None  # seq_len tokens at batch 1, KV cache built
    ttft_ms: float | None = None  # a prompt to its first generated token
    decode_tokens_per_s: float | None = None
    prefill_speedup: float | None = None
    continuations: list[str] = Field(default_factory=list)  # per prompt, the greedy continuation
    continuation_tokens: list[list[int]] = Field(default_factory=list)
    first_departure: list[int | None] = Field(default_factory=list)  # first token differing from FP32's
    departure_chars: list[int | None] = Field(default_factory=list)  # where that token starts in the text

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class EvalInfo(BaseModel):
    source: str
    count: int
    labelled: bool
    calibration_source: str
    calibration_count: int
    prompts_source: str = ""  # causal LMs: where the side-by-side prompts came from
    pairs: bool = False  # each input is a text pair (NLI, cross-encoders)


class RunInput(BaseModel):
    text: str
    gold: str | None = None
    pair: str | None = None  # the second text of a text-pair model's input (hypothesis, passage)

    def shown(self) -> str:
        """The input as tables show it: a pair's two texts side by side, each quoted."""
        return repr(self.text) if self.pair is None else f"{self.text!r} ‖ {self.pair!r}"


class RunResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: int | None = None  # its number in the run history, when it was recorded
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    studio_version: str
    libraries: dict[str, str | None]
    model: ModelInfo
    hardware: HardwareInfo
    evaluation: EvalInfo
    agreement_threshold: float
    inputs: list[RunInput]
    results: list[RecipeResult]

    @property
    def reference(self) -> RecipeResult | None:
        return next((r for r in self.results if r.reference), None)


def diagnose(
    result: RecipeResult, reference: RecipeResult | None, threshold: float, labels: int
) -> list[Flag]:
    """Flags for results that look like bugs rather than quantization effects, with the likely cause."""
    flags: list[Flag] = non_finite_flags(result)
    agreement = result.top1_agreement
    if agreement is not None and agreement < threshold and not result.reference:
        chance = 1.0 / max(labels, 1)
        if agreement <= 3 * chance:
            cause = (
                "agreement is at chance level: a mislabelled output (label order) or inputs bound to the "
                "wrong names/positions, not quantization error"
            )
        elif result.cosine is not None and result.cosine > 0.99:
            cause = "outputs are close to FP32 but the winning class differs: check the label mapping"
        elif result.mode == "static":
            cause = (
                "static quantization saturated an activation (a tensor of very wide range, such as an additive "
                "attention mask of about -3.4e38, or an outlier channel); try percentile calibration or "
                "per_channel, or keep the most sensitive nodes in float (exclude_nodes)"
            )
        else:
            cause = "overflow or saturation in reduced precision; exclude the sensitive operators or nodes"
        flags.append(
            Flag(
                code="low-agreement",
                severity="error",
                message=f"top-1 agrees with FP32 on only {agreement:.1%} of inputs (threshold {threshold:.0%}): "
                f"treat this as a bug, not a result. Likely cause: {cause}",
            )
        )
    if (
        reference is not None
        and reference.accuracy is not None
        and result.accuracy is not None
        and not result.reference
        and reference.accuracy - result.accuracy > 0.01
    ):
        drop = (reference.accuracy - result.accuracy) * 100
        flags.append(
            Flag(code="accuracy-drop", severity="warning", message=f"accuracy {drop:.1f} points below FP32")
        )
    if agreement is None and result.cosine is not None and result.cosine < 0.95 and not result.reference:
        flags.append(
            Flag(
                code="low-cosine",
                severity="error",
                message=f"embeddings drift from FP32 (cosine {result.cosine:.3f})",
            )
        )
    return flags + fallback_flags(result)


def non_finite_flags(result: RecipeResult) -> list[Flag]:
    """NaN or Inf in the outputs, whatever the model kind."""
    if not any(note.startswith("non-finite") for note in result.notes):
        return []
    return [
        Flag(
            code="non-finite",
            severity="error",
            message="outputs contain NaN or Inf: overflow in reduced precision",
        )
    ]


def fallback_flags(result: RecipeResult) -> list[Flag]:
    """A precision the hardware could not run was replaced (FP16 below compute capability 7.0)."""
    if result.precision == result.requested_precision:
        return []
    return [
        Flag(
            code="fallback",
            severity="info",
            message=f"ran in {result.precision.upper()} instead of "
            f"{result.requested_precision.upper()}: " + "; ".join(result.notes[:1]),
        )
    ]


def pareto_front(results: list[RecipeResult]) -> list[RecipeResult]:
    """Results no other result beats on both latency (p50) and quality (accuracy, else agreement)."""

    def quality(r: RecipeResult) -> float | None:
        return r.accuracy if r.accuracy is not None else r.top1_agreement

    points = [r for r in results if r.ok and r.latency_ms is not None and quality(r) is not None]
    front = []
    for r in points:
        assert r.latency_ms is not None
        dominated = any(
            o is not r
            and o.latency_ms is not None
            and o.latency_ms.p50 <= r.latency_ms.p50
            and (quality(o) or 0) >= (quality(r) or 0)
            and (o.latency_ms.p50 < r.latency_ms.p50 or (quality(o) or 0) > (quality(r) or 0))
            for o in points
        )
        if not dominated:
            front.append(r)
    return front


def slower_flags(result: RecipeResult, reference: RecipeResult | None, cores: int) -> list[Flag]:
    """A recipe slower than the FP32 reference it is meant to beat, with the likely cause."""
    speedup = result.speedup_vs_reference
    if result.reference or not result.ok or speedup is None or speedup >= 0.95:
        return []
    expected = next((n for n in result.notes if n.startswith(("expect slower", "expect no speed-up"))), "")
    if expected:
        cause = f"this CPU's instruction sets ({expected.partition(': ')[2] or expected})"
    elif result.mode == "static" and any("unfused" in n for n in result.notes):
        cause = "the graph was not fused before quantizing (optimize_graph = false or fusion failed)"
    elif result.threads > cores:
        cause = f"{result.threads} threads on {cores} cores: the runtime's threads fight for the cores"
    elif reference is not None and reference.threads > cores:
        cause = f"the reference ran {reference.threads} threads on {cores} cores"
    else:
        cause = (
            "this runtime's kernels for this precision do not beat FP32 on this CPU (or the machine was busy)"
        )
    return [
        Flag(
            code="slower-than-fp32",
            severity="warning",
            message=f"{speedup:.2f}x the FP32 reference's speed: slower, not faster. Likely cause: {cause}",
        )
    ]


def timing_flags(result: RecipeResult) -> list[Flag]:
    """Speed figures not to trust: rounds that disagree, or a machine other processes kept busy."""
    from studio.core.rounds import BUSY_SHARE, NOISY_SPREAD

    flags = []
    if result.latency_spread is not None and result.latency_spread > NOISY_SPREAD:
        flags.append(
            Flag(
                code="noisy-timing",
                severity="warning",
                message=f"timing rounds disagree by {result.latency_spread:.0%} (more than "
                f"{NOISY_SPREAD:.0%}): the speed figures are noisy; time again on a quieter machine",
            )
        )
    if result.others_cpu_share is not None and result.others_cpu_share > BUSY_SHARE:
        flags.append(
            Flag(
                code="busy-machine",
                severity="warning",
                message=f"other processes used {result.others_cpu_share:.0%} of the CPUs while this was "
                "timed: speed figures and speed-ups are unreliable; close them and run again",
            )
        )
    return flags


SLOW_REFERENCE = (
    3.0  # another FP32 backend this many times faster than the reference: the reference is suspect
)


def reference_flags(results: list[RecipeResult]) -> list[Flag]:
    """A reference many times slower than another FP32 backend of the same model (threads fighting for the
    cores, a busy machine) inflates every speed-up: flagged on the reference."""
    faster = [
        r
        for r in results
        if r.ok
        and not r.reference
        and r.precision == "fp32"
        and (r.speedup_vs_reference or 0) >= SLOW_REFERENCE
    ]
    if not faster:
        return []
    best = max(faster, key=lambda r: r.speedup_vs_reference or 0)
    return [
        Flag(
            code="slow-reference",
            severity="warning",
            message=f"{best.recipe} (also FP32) runs {best.speedup_vs_reference:.1f}x faster than this "
            "reference: the reference was likely starved (threads fighting for the cores, a busy machine), "
            "so every speed-up is inflated",
        )
    ]
