"""CPU benchmark of the language-model recipes on demo-llm (SmolLM2-135M-Instruct, GGUF Q4_1 dequantized).

    python benchmarks/llm_cpu.py [--rounds 3] [--out benchmarks/results/llm_cpu.json]

1. The studio's run engine runs every built-in CPU LLM recipe this machine can run (the onnxruntime-genai
   builder's INT4 graph where that package is installed) on the shipped evaluation passages and
   prompts: perplexity, KLD, same top-1, prefill, decode.
2. An independent loop (benchmarks/time_lm_artifact.py) times every artifact side by side: each in a
   fresh process per round, rounds interleaved over all artifacts; decode of 128 tokens at batch 1,
   prefill of 256 tokens, time to first token, the process's peak RSS.
3. This machine's memory read bandwidth (numpy sum over 1 GiB, best of 5) gives the ceiling of decode
   at batch 1, which reads every weight once per token: tokens/s <= bandwidth / bytes of weights.
Writes `benchmarks/results/llm_cpu.json` and the table between the markers in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from readme_section import write_section  # noqa: E402

from studio.core.cache import ArtifactCache  # noqa: E402
from studio.core.capability import assess  # noqa: E402
from studio.core.dataset import request_data  # noqa: E402
from studio.core.engine import RunEngine  # noqa: E402
from studio.core.hardware import probe  # noqa: E402
from studio.core.paths import cache_dir  # noqa: E402
from studio.core.recipe import Recipe, builtin_recipes  # noqa: E402
from studio.core.results import RunResult  # noqa: E402
from studio.core.settings import RunSettings  # noqa: E402

VARIANTS = Path(__file__).with_name("llm_variants")


def recipes() -> list[Recipe]:
    chosen = [r for r in builtin_recipes("text-generation") if r.device == "cpu"]
    hardware = probe()
    return [r for r in chosen if assess(r, hardware).available]


def studio_run() -> RunResult:
    data, calibration = request_data({"model": "demo-llm", "task": "text-generation"})
    return RunEngine(ArtifactCache(cache_dir() / "artifacts")).run(
        "demo-llm", recipes(), data, calibration, RunSettings()
    )


def bandwidth_gb_s() -> float:
    """Read bandwidth: numpy's sum over 1 GiB of float32, best of five (a sum reads each byte once)."""
    block = np.ones(2**28, dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        block.sum()
        best = min(best, time.perf_counter() - start)
    return block.nbytes / best / 1e9


def independent(names: list[str], files: dict[str, str], rounds: int) -> dict[str, dict[str, Any]]:
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    script = Path(__file__).with_name("time_lm_artifact.py")
    for round_ in range(rounds):
        for name in names:
            out = subprocess.run(
                [sys.executable, str(script), files.get(name, name)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            samples[name].append(json.loads(out.strip().splitlines()[-1]))
        print(f"  round {round_ + 1}/{rounds} done", flush=True)
    summary = {}
    for name, rows in samples.items():
        rates = [row["tokens_per_s"] for row in rows]
        prefill = [ms for row in rows for ms in row["prefill_ms"]]
        summary[name] = {
            "tokens_per_s": float(np.median(rates)),
            "tokens_per_s_rounds": rates,
            "prefill_p50_ms": float(np.percentile(prefill, 50)),
            "ttft_ms": float(np.median([row["ttft_ms"] for row in rows])),
            "peak_rss": int(np.median([row["peak_rss"] for row in rows])),
        }
    return summary


def table(run: RunResult, timed: dict[str, dict[str, Any]], bandwidth: float, flags: list[str]) -> str:
    ref = timed[run.results[0].recipe]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {run.hardware.cpu.model} ({run.hardware.cpu.logical_cores} threads; "
        f"{', '.join(flags)}); demo-llm, {run.results[0].tokens_evaluated} scored tokens of the shipped passages, "
        f"{len(run.inputs)} prompts. Independent figures: each artifact in a fresh process, "
        f"{len(ref['tokens_per_s_rounds'])} interleaved rounds, greedy decode of 128 tokens at batch 1, prefill of "
        f"256 tokens. Memory read bandwidth {bandwidth:.1f} GB/s.",
        "",
        "| recipe | decode tok/s | × FP32 | ceiling tok/s | prefill ms | TTFT ms | peak RSS MB | RSS / FP32 | size MB "
        "| KLD | same top-1 | ΔPPL | studio tok/s | flags |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in run.results:
        t = timed.get(r.recipe)
        if not r.ok or t is None:
            lines.append(f"| {r.recipe} | {r.status}: {r.reason[:80]} |" + " |" * 12)
            continue
        size = r.size_bytes or 0
        delta = (
            f"{r.perplexity_delta / (r.perplexity - r.perplexity_delta):+.1%}"
            if r.perplexity_delta is not None and r.perplexity is not None
            else "-"
        )
        lines.append(
            f"| {r.recipe} | {t['tokens_per_s']:.1f} | {t['tokens_per_s'] / ref['tokens_per_s']:.2f}x "
            f"| {bandwidth * 1e9 / size:.0f} | {t['prefill_p50_ms']:.1f} | {t['ttft_ms']:.1f} "
            f"| {t['peak_rss'] / 2**20:.0f} | {t['peak_rss'] / ref['peak_rss']:.2f} | {size / 2**20:.1f} "
            f"| {r.kl or 0:.4f} | {(r.top1_agreement or 0) * 100:.1f}% | {delta} | {r.decode_tokens_per_s or 0:.1f} "
            f"| {'; '.join(f.code for f in r.flags)} |"
        )
    lines += ["", *goal_lines(run, timed)]
    return "\n".join(lines)


def goal_lines(run: RunResult, timed: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's goal, judged from the figures: an INT4 recipe >= 3x FP32's decode, same top-1 >= 90%,
    ΔPPL <= +10%, in <= 1/4 of FP32's peak memory."""
    ref = timed[run.results[0].recipe]
    rows = []
    for r in run.results:
        if not r.ok or r.precision != "int4" or r.recipe not in timed:
            continue
        t = timed[r.recipe]
        speed = t["tokens_per_s"] / ref["tokens_per_s"]
        rise = (
            r.perplexity_delta / (r.perplexity - r.perplexity_delta)
            if r.perplexity_delta is not None and r.perplexity is not None
            else 0.0
        )
        memory = t["peak_rss"] / ref["peak_rss"]
        checks = {
            f"decode {speed:.2f}x (>= 3x)": speed >= 3,
            f"same top-1 {(r.top1_agreement or 0):.1%} (>= 90%)": (r.top1_agreement or 0) >= 0.9,
            f"ΔPPL {rise:+.1%} (<= +10%)": rise <= 0.10,
            f"peak RSS {memory:.2f} of FP32's (<= 0.25)": memory <= 0.25,
        }
        met = all(checks.values())
        rows.append(
            f"- {r.recipe}: {'**meets the goal**' if met else 'does not meet it'}: "
            + "; ".join(f"{text} {'yes' if ok else 'no'}" for text, ok in checks.items())
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm_cpu.json"))
    parser.add_argument(
        "--timing-only", action="store_true", help="reuse the studio run recorded in --out; time again"
    )
    parser.add_argument(
        "--table-only", action="store_true", help="only write the README table again from --out"
    )
    args = parser.parse_args()
    flags = probe().cpu.flags
    print(f"CPU {platform.processor() or platform.machine()}, flags {', '.join(flags)}", flush=True)
    started = time.perf_counter()
    if args.table_only:
        recorded = json.loads(Path(args.out).read_text())
        run = RunResult.model_validate(recorded["studio"])
        text = table(run, recorded["independent"], recorded["bandwidth_gb_s"], flags)
        write_section("llm-table", text)
        print(text)
        return 0
    if args.timing_only:
        run = RunResult.model_validate(json.loads(Path(args.out).read_text())["studio"])
    else:
        run = studio_run()
    print(f"studio run: {time.perf_counter() - started:.0f} s", flush=True)
    bandwidth = bandwidth_gb_s()
    names = [r.recipe for r in run.results if r.ok]
    VARIANTS.mkdir(exist_ok=True)
    files = {}
    for r in run.results:  # every recipe timed from the TOML the run recorded (variants are not built-ins)
        path = VARIANTS / f"{r.recipe}.toml"
        path.write_text(r.recipe_toml)
        files[r.recipe] = str(path)
    timed = independent(names, files, args.rounds)
    text = table(run, timed, bandwidth, flags)
    payload = {
        "cpu": run.hardware.cpu.model_dump(),
        "bandwidth_gb_s": bandwidth,
        "studio": json.loads(run.model_dump_json()),
        "independent": timed,
        "seconds": time.perf_counter() - started,
    }
    Path(args.out).write_text(json.dumps(payload, indent=1))
    write_section("llm-table", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
