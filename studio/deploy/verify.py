"""Checking an export folder: files intact, the model loads and reproduces the studio's outputs.

The reproduction runs `predict.py` (the folder's own inference code) in a fresh, isolated Python
process, so what passes is what a deployer will run, without the studio in the way. The measurement
checks are re-judged from the evidence against its thresholds; `qstudio verify` and the export both
come through here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from studio.core.errors import StudioError
from studio.deploy.evidence import (
    CONTRACT_FILE,
    EVIDENCE_FILE,
    SAMPLE_FILE,
    Check,
    Contract,
    Evidence,
    Measurements,
    Thresholds,
    Verification,
)

SNIPPET = "predict.py"
# Packages whose presence in the snippet's process would mean it leans on more than its runtime.
NEVER_IMPORTED = ("studio", "transformers", "optimum")
SNIPPET_TIMEOUT_S = 900


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def manifest(folder: Path) -> dict[str, str]:
    """sha256 of every file in the folder except the evidence itself (and Python's byte-code caches)."""
    return {
        path.relative_to(folder).as_posix(): file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != EVIDENCE_FILE and "__pycache__" not in path.parts
    }


def read_evidence(folder: Path) -> Evidence:
    path = folder / EVIDENCE_FILE
    if not folder.is_dir():
        raise StudioError(f"{folder} is not a folder", "pass the folder `qstudio export` wrote")
    if not path.is_file():
        raise StudioError(
            f"{folder} has no {EVIDENCE_FILE}, so it is not a studio export (or it is incomplete)",
            "pass the folder `qstudio export` wrote, or export the recipe again",
        )
    try:
        return Evidence.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as error:
        raise StudioError(
            f"{path} is damaged ({str(error).splitlines()[0][:160]})", "export the recipe again"
        ) from None


def integrity_check(folder: Path, recorded: dict[str, str]) -> Check:
    missing = [name for name in recorded if not (folder / name).is_file()]
    changed = [
        name
        for name, digest in recorded.items()
        if name not in missing and file_digest(folder / name) != digest
    ]
    problems = []
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if changed:
        problems.append(f"changed since export (sha256 differs): {', '.join(changed)}")
    if problems:
        return Check(
            name="artifact-present",
            passed=False,
            detail="; ".join(problems) + ": the folder is not what was exported; export the recipe again",
        )
    return Check(name="artifact-present", passed=True, detail=f"{len(recorded)} files, sha256 as exported")


def snippet_command(python: str | None, folder: Path, sample: Path, report: Path) -> list[str]:
    """predict.py --check in an isolated interpreter that neither reads nor writes byte-code caches in
    the folder: a .pyc left by an earlier run (same size and second as an edited .py) would hide the edit."""
    script = [str(folder / SNIPPET), "--check", str(sample), "--report", str(report)]
    no_caches = ["-B", "-X", f"pycache_prefix={report.parent / 'no-pycache'}"]
    if python:
        return [python, "-I", *no_caches, *script]
    if getattr(sys, "frozen", False):  # the installed bundle runs scripts through its own binary
        from studio.core.bundle import SCRIPT_FLAG

        return [sys.executable, SCRIPT_FLAG, *script]
    return [sys.executable, "-I", *no_caches, *script]


def run_snippet(folder: Path, python: str | None = None) -> dict[str, Any]:
    """The snippet's report on the sample, or {"error": one line} when it could not run."""
    with tempfile.TemporaryDirectory(prefix="qstudio-verify-") as scratch:
        report = Path(scratch) / "report.json"
        command = snippet_command(python, folder, folder / SAMPLE_FILE, report)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=SNIPPET_TIMEOUT_S, cwd=scratch, check=False
            )
        except FileNotFoundError:
            return {"error": f"no Python interpreter at {command[0]}"}
        except subprocess.TimeoutExpired:
            return {"error": f"predict.py did not finish within {SNIPPET_TIMEOUT_S} s"}
        if done.returncode != 0 or not report.is_file():
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            last = lines[-1] if lines else f"exit status {done.returncode}"
            return {"error": f"predict.py failed: {last[:300]}"}
        result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
        return result


def _probability(row: list[list[Any]], label: str) -> float | None:
    return next((float(p) for name, p in row if name == label), None)


@dataclass
class TopKDiff:
    matches: int = 0
    near_ties: int = 0  # the studio's two best labels were closer than the tolerance
    mismatches: list[str] = field(default_factory=list)
    worst: float = 0.0  # largest probability difference on the expected top-k labels


def diff_topk(expected: list[list[list[Any]]], got: list[list[list[Any]]], tolerance: float) -> TopKDiff:
    diff = TopKDiff()
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        margin = float(want[0][1]) - float(want[1][1]) if len(want) > 1 else 1.0
        if want[0][0] == have[0][0]:
            diff.matches += 1
        elif margin < tolerance:
            diff.near_ties += 1
        else:
            diff.mismatches.append(f"input {i}: {have[0][0]!r} instead of {want[0][0]!r}")
        for label, p in want:
            other = _probability(have, label)
            if other is not None:
                diff.worst = max(diff.worst, abs(float(p) - other))
            elif float(p) > tolerance:  # the label fell out of the top-k: at least that far off
                diff.worst = max(diff.worst, float(p) - float(have[-1][1]))
    return diff


def compare_topk(
    expected: list[list[list[Any]]],
    got: list[list[list[Any]]],
    single: list[list[list[Any]]] | None,
    tolerance: float,
    verification: Verification,
) -> Check:
    """Top-1 must match (unless the studio itself saw a near tie) and probabilities stay within tolerance."""
    diff = diff_topk(expected, got, tolerance)
    verification.top1_matches, verification.near_ties = diff.matches, diff.near_ties
    verification.max_probability_diff = round(diff.worst, 6)
    count = len(expected)
    aside = ""
    if single is not None:
        alone = diff_topk(expected, single, tolerance)
        verification.single_text_top1_changes = count - alone.matches
        verification.single_text_max_probability_diff = round(alone.worst, 6)
        aside = (
            f". One text at a time instead of the measured batches: top-1 differs on "
            f"{count - alone.matches}/{count}, probabilities within {alone.worst:.4f}"
        )
    if diff.mismatches:
        return Check(
            name="outputs-reproduced",
            passed=False,
            detail=f"top-1 differs from the studio's on {len(diff.mismatches)}/{count} inputs "
            f"({'; '.join(diff.mismatches[:3])}){aside}",
        )
    if diff.worst > tolerance:
        return Check(
            name="outputs-reproduced",
            passed=False,
            detail=f"probabilities differ from the studio's by up to {diff.worst:.4f} (tolerance {tolerance}){aside}",
        )
    ties = f", {diff.near_ties} near ties" if diff.near_ties else ""
    return Check(
        name="outputs-reproduced",
        passed=True,
        detail=f"top-1 as measured on {diff.matches}/{count} inputs{ties}; "
        f"probabilities within {diff.worst:.4f} (tolerance {tolerance}){aside}",
    )


def _min_cosine(expected: list[list[float]], got: list[list[float]]) -> float:
    a, b = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    cosine = (a * b).sum(-1) / np.clip(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12, None)
    return float(cosine.min()) if len(cosine) else 1.0


def compare_embeddings(
    expected: list[list[float]],
    got: list[list[float]],
    single: list[list[float]] | None,
    min_cosine: float,
    verification: Verification,
) -> Check:
    worst = _min_cosine(expected, got)
    verification.min_cosine = round(worst, 6)
    aside = ""
    if single is not None:
        verification.single_text_min_cosine = round(_min_cosine(expected, single), 6)
        aside = f"; one text at a time: at least {verification.single_text_min_cosine:.5f}"
    return Check(
        name="outputs-reproduced",
        passed=worst >= min_cosine,
        detail=f"embedding cosine to the studio's at least {worst:.5f} (needs {min_cosine}){aside}",
    )


def compare_generation(
    sample: dict[str, Any], report: dict[str, Any], tolerance: float, verification: Verification
) -> Check:
    """A causal LM: each prompt's next-token top-k as the studio measured it, and the same greedy tokens."""
    topk = compare_topk(sample["expected_topk"], report["topk"], None, tolerance, verification)
    expected, got = sample["expected_continuations"], report["continuations"]
    departed = [
        f"prompt {i}: token {next((j for j, (a, b) in enumerate(zip(w, h, strict=False)) if a != b), min(len(w), len(h)))}"
        for i, (w, h) in enumerate(zip(expected, got, strict=True))
        if w != h
    ]
    tokenised = report.get("token_ids_match") or []
    retokenised = sum(1 for same in tokenised if not same)
    aside = (
        f"; note: tokenizers' own encoding differs from the studio's on {retokenised}/{len(tokenised)} prompts "
        "(the sample feeds the studio's token ids)"
        if retokenised
        else ""
    )
    if departed:
        return Check(
            name="outputs-reproduced",
            passed=False,
            detail=f"greedy continuation departs from the studio's on {len(departed)}/{len(expected)} prompts "
            f"({'; '.join(departed[:3])}); next-token top-k: {topk.detail}{aside}",
        )
    return Check(
        name="outputs-reproduced",
        passed=topk.passed,
        detail=f"greedy continuations identical on {len(expected)}/{len(expected)} prompts; next-token "
        f"{topk.detail}{aside}",
    )


def isolation_check(contract: Contract, imported: list[str]) -> Check:
    """The snippet's process must not lean on the studio or the libraries that built the model."""
    forbidden = [*NEVER_IMPORTED, *(("torch",) if contract.runtime == "onnxruntime" else ())]
    leaked = [name for name in imported if name in forbidden]
    if leaked:
        return Check(
            name="runtime-isolated",
            passed=False,
            detail=f"predict.py imported {', '.join(leaked)}: it must need only its runtime and the tokenizer",
        )
    direct = {"numpy", "tokenizers", *(p.removesuffix("-gpu") for p in contract.runtime_packages)}
    named = [name for name in imported if name in direct]
    pulled = len(imported) - len(named)
    more = f" (and {pulled} packages they pull in)" if pulled else ""
    return Check(
        name="runtime-isolated",
        passed=True,
        detail=f"the fresh process imported {', '.join(named)}{more}; not {', '.join(forbidden)}",
    )


def reproduction_checks(
    folder: Path, evidence: Evidence, python: str | None
) -> tuple[list[Check], Verification]:
    """Run the snippet in a fresh process and judge what it gave."""
    needed = {SNIPPET, CONTRACT_FILE, SAMPLE_FILE, evidence.contract.artifact, *evidence.files} - {""}
    absent = sorted(name for name in needed if not (folder / name).is_file())
    verification = Verification(python=python or sys.executable)
    if absent or not evidence.contract.artifact:
        missing = f"{', '.join(absent)} missing" if absent else "the export holds no artifact"
        verification.error = f"not run: {missing}"
        failed = [
            Check(name=name, passed=False, detail=verification.error)
            for name in ("artifact-loadable", "outputs-reproduced", "runtime-isolated")
        ]
        return failed, verification
    sample = json.loads((folder / SAMPLE_FILE).read_text(encoding="utf-8"))
    report = run_snippet(folder, python)
    if "error" in report:
        verification.error = report["error"]
        detail = report["error"]
        if "No module named" in detail:
            detail += f"; install numpy, tokenizers and {', '.join(evidence.contract.runtime_packages)}"
        return [
            Check(name="artifact-loadable", passed=False, detail=detail),
            Check(name="outputs-reproduced", passed=False, detail="not run: the model did not load"),
            Check(name="runtime-isolated", passed=False, detail="not run: the model did not load"),
        ], verification
    verification.python = report.get("python", verification.python)
    verification.runtime_version = report.get("runtime", "")
    verification.imported = list(report.get("imported", []))
    verification.load_seconds = report.get("load_seconds")
    verification.samples = len(sample["texts"])
    loaded = Check(
        name="artifact-loadable",
        passed=True,
        detail=f"loaded by {verification.runtime_version} in a fresh process in {verification.load_seconds} s",
    )
    thresholds = evidence.thresholds
    if "continuations" in report and sample.get("expected_continuations") is not None:
        reproduced = compare_generation(sample, report, thresholds.tolerance, verification)
    elif "topk" in report and sample.get("expected_topk"):
        reproduced = compare_topk(
            sample["expected_topk"],
            report["topk"],
            report.get("topk_single"),
            thresholds.tolerance,
            verification,
        )
    elif "embeddings" in report and sample.get("expected_embeddings"):
        reproduced = compare_embeddings(
            sample["expected_embeddings"],
            report["embeddings"],
            report.get("embeddings_single"),
            thresholds.min_cosine,
            verification,
        )
    else:
        reproduced = Check(
            name="outputs-reproduced",
            passed=False,
            detail=f"nothing to compare with: the recipe has no measured outputs in run {evidence.run_id}",
        )
    return [
        loaded,
        reproduced,
        isolation_check(evidence.contract, verification.imported),
    ], verification


def measurement_checks(measured: Measurements, thresholds: Thresholds, run_id: int) -> list[Check]:
    """What the run measured, judged against the release thresholds."""
    checks = [
        Check(name="measured-ok", passed=True, detail=f"measured without error in run {run_id}")
        if measured.status == "ok"
        else Check(
            name="measured-ok",
            passed=False,
            detail=f"the recipe {measured.status} in run {run_id}: {measured.reason or 'no measurements'}",
        )
    ]
    errors = [flag["message"] for flag in measured.flags if flag.get("severity") == "error"]
    checks.append(
        Check(name="no-error-flags", passed=not errors, detail="; ".join(errors) if errors else "none raised")
    )
    agreement = measured.top1_agreement
    if agreement is not None:
        checks.append(
            Check(
                name="top1-agreement",
                passed=agreement >= thresholds.min_agreement,
                detail=f"{agreement:.1%} of inputs agree with FP32 on top-1 (needs {thresholds.min_agreement:.1%})",
            )
        )
    elif measured.cosine_vs_fp32 is not None:  # an encoder: no classes to agree on
        checks.append(
            Check(
                name="top1-agreement",
                passed=measured.cosine_vs_fp32 >= 0.99,
                detail=f"encoder: embedding cosine to FP32 {measured.cosine_vs_fp32:.4f} (needs 0.99)",
            )
        )
    else:
        checks.append(Check(name="top1-agreement", passed=False, detail="not measured"))
    drop = measured.accuracy_drop_points
    if measured.perplexity is not None and measured.reference_perplexity:
        rise = measured.perplexity / measured.reference_perplexity - 1
        checks.append(
            Check(
                name="accuracy-drop",
                passed=rise <= thresholds.max_perplexity_rise,
                detail=f"perplexity {measured.perplexity:.3f} against FP32's {measured.reference_perplexity:.3f} "
                f"({rise:+.1%}; budget {thresholds.max_perplexity_rise:+.0%})",
            )
        )
    elif drop is None:
        checks.append(
            Check(
                name="accuracy-drop",
                passed=False,
                detail="not measured: the run had no labelled evaluation data (or the recipe did not run)",
            )
        )
    else:
        checks.append(
            Check(
                name="accuracy-drop",
                passed=drop <= thresholds.max_accuracy_drop,
                detail=f"{drop:.2f} points below FP32 (budget {thresholds.max_accuracy_drop:g})",
            )
        )
    return checks


def verify_folder(folder: Path, python: str | None = None) -> Evidence:
    """The evidence of `folder` with every check re-run here; the folder itself is not changed."""
    evidence = read_evidence(folder)
    checks = [integrity_check(folder, evidence.files)]
    reproduced, verification = reproduction_checks(folder, evidence, python)
    checks += reproduced
    checks += measurement_checks(evidence.measurements, evidence.thresholds, evidence.run_id)
    result = evidence.model_copy(update={"checks": checks, "verification": verification})
    result.decide()
    return result
