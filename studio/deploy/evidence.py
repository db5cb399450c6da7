"""`evidence.json`: what a deployer codes against and the checks that say whether the model is ready.

The contract (`deploy.json`, repeated in the evidence) is what `predict.py` reads; the checks are
named, each pass or fail with a detail, and the two verdicts are derived from them, never set by hand.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EVIDENCE_FILE = "evidence.json"
CONTRACT_FILE = "deploy.json"
SAMPLE_FILE = "verification/sample.json"
EVIDENCE_VERSION = 1
SAMPLE_SIZE = 64  # evaluation inputs an export re-checks on reload

Runtime = Literal["onnxruntime", "torch", "tensorrt"]


class TensorSpec(BaseModel):
    name: str
    dtype: str  # numpy's name: int64, float32, float16 ...
    shape: list[str | int]  # a string is a dynamic axis


class Contract(BaseModel):
    """The interface of the exported model: what `predict.py` and a deployer's own code rely on."""

    runtime: Runtime
    runtime_packages: list[str]  # pip names the runtime needs, besides numpy and tokenizers
    measured_with: dict[str, str | None] = Field(default_factory=dict)  # those packages' versions in the run
    artifact: str  # file name in the folder
    onnx_source: str | None = None  # the ONNX graph an engine was built from
    device: str = "cpu"
    providers: list[str] = Field(default_factory=list)  # ONNX Runtime execution providers, in order
    task: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    output: str  # the output predict.py reads
    dynamic_axes: dict[str, dict[str, str]] = Field(default_factory=dict)
    opset: dict[str, int] | None = None  # ONNX domains and versions; None for non-ONNX artifacts
    format: str  # "ONNX", "torch.export program (.pt2)", "TensorRT engine"
    max_length: int  # tokens per input (a pair's two texts together); longer inputs are truncated
    pairs: bool = False  # each input is two texts (NLI, cross-encoders): predict.py --pair
    tokenizer: str = "tokenizer"  # folder with tokenizer.json
    pad_id: int = 0
    pad_token: str = "[PAD]"
    labels: str | None = "labels.json"
    threads: int = 0
    stop_token_ids: list[int] = Field(default_factory=list)  # causal LMs: generation ends at these


class QuantizationParams(BaseModel):
    backend: str
    precision: str
    requested_precision: str
    mode: str
    calibration_method: str | None = None
    calibration_samples: int | None = None  # as many as were actually used
    per_channel: bool
    fused_graph: bool
    block_size: int | None = None
    excluded_ops: list[str] = Field(default_factory=list)
    excluded_nodes: list[str] = Field(default_factory=list)


class Measurements(BaseModel):
    status: str
    reason: str = ""
    latency_ms: dict[str, float] | None = None  # p50, p90, p99, mean
    batch_size: int
    seq_len: int
    threads: int
    size_bytes: int | None = None
    reference_size_bytes: int | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    accuracy_drop_points: float | None = None
    top1_agreement: float | None = None
    kl_vs_fp32: float | None = None
    cosine_vs_fp32: float | None = None
    max_abs_diff: float | None = None
    speedup_vs_fp32: float | None = None
    # Causal LMs: task quality is perplexity; speed is decode tokens/s (speedup_vs_fp32 is its ratio).
    perplexity: float | None = None
    reference_perplexity: float | None = None
    decode_tokens_per_s: float | None = None
    prefill_ms: dict[str, float] | None = None
    flags: list[dict[str, str]] = Field(default_factory=list)
    evaluation: dict[str, Any] = Field(default_factory=dict)


class Check(BaseModel):
    name: str
    passed: bool
    detail: str


class Verification(BaseModel):
    """One run of `predict.py` in a fresh process on the evaluation sample."""

    python: str
    runtime_version: str = ""
    imported: list[str] = Field(default_factory=list)  # third-party packages the snippet imported
    samples: int = 0
    top1_matches: int = 0
    near_ties: int = 0  # inputs whose two best labels were closer than the tolerance in the studio
    max_probability_diff: float | None = None
    min_cosine: float | None = None
    load_seconds: float | None = None
    # Served one text at a time instead of in the measured batches: informative, not a check.
    single_text_top1_changes: int | None = None
    single_text_max_probability_diff: float | None = None
    single_text_min_cosine: float | None = None
    error: str = ""


class Thresholds(BaseModel):
    min_agreement: float = Field(0.98, ge=0.0, le=1.0, description="top-1 agreement with FP32 for release")
    max_accuracy_drop: float = Field(1.0, ge=0.0, description="accuracy points below FP32 for release")
    tolerance: float = Field(0.02, gt=0.0, le=1.0, description="probability difference allowed on reload")
    min_cosine: float = Field(0.999, gt=0.0, le=1.0, description="embedding cosine allowed on reload")
    max_perplexity_rise: float = Field(
        0.10, ge=0.0, description="causal LMs: perplexity above FP32's, as a share"
    )


class Readiness(BaseModel):
    ready: bool
    reasons: list[str] = Field(default_factory=list)  # the failed checks' details, when not ready


# Which checks each verdict needs; release needs everything a local trial needs.
LOCAL_TRIAL_CHECKS = (
    "artifact-present",
    "artifact-loadable",
    "outputs-reproduced",
    "runtime-isolated",
    "measured-ok",
    "no-error-flags",
)
RELEASE_CHECKS = (*LOCAL_TRIAL_CHECKS, "top1-agreement", "accuracy-drop")


def verdict(checks: list[Check], needed: tuple[str, ...]) -> Readiness:
    by_name = {check.name: check for check in checks}
    reasons = []
    for name in needed:
        check = by_name.get(name)
        if check is None:
            reasons.append(f"{name}: not checked")
        elif not check.passed:
            reasons.append(f"{name}: {check.detail}")
    return Readiness(ready=not reasons, reasons=reasons)


class Evidence(BaseModel):
    evidence_version: int = EVIDENCE_VERSION
    exported_at: str
    studio_version: str
    run_id: int
    recipe: str
    model: dict[str, Any]  # name, source, path, content hash, architecture, labels count
    contract: Contract
    quantization: QuantizationParams
    hardware: dict[str, Any]  # where it was measured
    libraries: dict[str, str | None]  # versions it was measured with
    measurements: Measurements
    thresholds: Thresholds
    files: dict[str, str]  # relative path -> sha256, everything but this file
    verification: Verification | None = None
    checks: list[Check]
    ready_for_local_trial: Readiness
    ready_for_release: Readiness

    def decide(self) -> None:
        """Derive both verdicts from the checks."""
        self.ready_for_local_trial = verdict(self.checks, LOCAL_TRIAL_CHECKS)
        self.ready_for_release = verdict(self.checks, RELEASE_CHECKS)
