"""Reports of a recorded run: one self-contained HTML file, a CSV of the recipe table, or the JSON.

The HTML carries everything a colleague needs offline: hardware, model card, the recipe table, the
charts (inline SVG), the top-k tables side by side with disagreements marked, and each recipe's file
with the command that reproduces the run.
"""

from __future__ import annotations

import csv
import io
import shlex
from html import escape

from studio.core.kinds import kind_of
from studio.core.results import RecipeResult, RunResult, pareto_front
from studio.core.svg import Point, bar_chart, scatter_chart

CSV_COLUMNS = (
    "recipe",
    "backend",
    "precision",
    "mode",
    "device",
    "status",
    "reason",
    "reference",
    "batch_size",
    "seq_len",
    "threads",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "throughput",
    "speedup_vs_reference",
    "size_bytes",
    "peak_rss_bytes",
    "peak_gpu_bytes",
    "accuracy",
    "top1_agreement",
    "kl",
    "cosine",
    "max_abs_diff",
    "flags",
)
# Causal language models add these (empty for the other kinds).
LM_CSV_COLUMNS = (
    "perplexity",
    "perplexity_delta",
    "kl_p99",
    "kl_max",
    "tokens_evaluated",
    "prefill_p50_ms",
    "prefill_p99_ms",
    "ttft_ms",
    "decode_tokens_per_s",
    "prefill_speedup",
    "bytes_per_parameter",
)


def to_csv(run: RunResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    language = run.model.task == "text-generation"
    writer.writerow(CSV_COLUMNS + (LM_CSV_COLUMNS if language else ()))
    for r in run.results:
        latency = r.latency_ms
        extra = (
            [
                r.perplexity,
                r.perplexity_delta,
                r.kl_p99,
                r.kl_max,
                r.tokens_evaluated,
                r.prefill_ms.p50 if r.prefill_ms else "",
                r.prefill_ms.p99 if r.prefill_ms else "",
                r.ttft_ms,
                r.decode_tokens_per_s,
                r.prefill_speedup,
                r.bytes_per_parameter,
            ]
            if language
            else []
        )
        writer.writerow(
            [
                r.recipe,
                r.backend,
                r.precision,
                r.mode,
                r.device,
                r.status,
                r.reason,
                r.reference,
                r.batch_size,
                r.seq_len,
                r.threads,
                latency.p50 if latency else "",
                latency.p90 if latency else "",
                latency.p99 if latency else "",
                r.throughput,
                r.speedup_vs_reference,
                r.size_bytes,
                r.peak_rss_bytes,
                r.peak_gpu_bytes,
                r.accuracy,
                r.top1_agreement,
                r.kl,
                r.cosine,
                r.max_abs_diff,
                "; ".join(f"{f.code}: {f.message}" for f in r.flags),
                *extra,
            ]
        )
    return buffer.getvalue()


def to_json(run: RunResult) -> str:
    return run.model_dump_json(indent=1)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{format(value, spec)}{suffix}"


def _mb(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:.1f} MB"


def _recipe_table(run: RunResult) -> str:
    """The recipe table, its columns as the model's kind defines them (the CLI shows the same)."""
    columns = kind_of(run.model.task).columns()
    span = len(columns) + 2
    head = "".join(f"<th>{escape(c.header)}</th>" for c in columns)
    rows = [f"<tr><th>recipe</th><th>backend</th><th>status</th>{head}</tr>"]
    for r in run.results:
        severity = "error" if any(f.severity == "error" for f in r.flags) else ("warn" if r.flags else "")
        status = "SUSPECT" if severity == "error" else r.status
        cells = "".join(f"<td>{escape(c.cell(r) if r.ok else '–')}</td>" for c in columns)
        rows.append(
            f'<tr class="{severity} {r.status}"><td>{escape(r.recipe)}{" <b>(FP32 reference)</b>" if r.reference else ""}</td>'
            f"<td>{escape(r.backend)}</td><td>{escape(status)}</td>{cells}</tr>"
        )
        for flag in r.flags:
            rows.append(
                f'<tr class="flag {flag.severity}"><td></td><td colspan="{span}">{flag.severity.upper()}: '
                f"{escape(flag.message)}</td></tr>"
            )
        for line in ([r.reason] if r.reason else []) + r.notes:
            rows.append(f'<tr class="flag"><td></td><td colspan="{span}">{escape(line)}</td></tr>')
    return f"<table>{''.join(rows)}</table>"


def _charts(run: RunResult) -> str:
    ok = [r for r in run.results if r.ok and r.latency_ms is not None]
    if not ok:
        return "<p>No recipe produced measurements.</p>"
    language = run.model.task == "text-generation"
    bars = bar_chart(
        [
            (
                r.recipe,
                (r.decode_tokens_per_s or 0.0) if language else r.latency_ms.p50,
                any(f.severity == "error" for f in r.flags),
            )
            for r in ok
            if r.latency_ms
        ],
        "tok/s" if language else "ms",
        "Decode tokens/s per recipe (red: flagged as suspect)"
        if language
        else "Latency p50 per recipe (red: flagged as suspect)",
    )
    front = {id(r) for r in pareto_front(ok)}
    labelled = run.evaluation.labelled
    points = [
        Point(
            r.recipe,
            r.latency_ms.p50,
            (r.accuracy if labelled else r.top1_agreement) or 0.0,
            r.reference,
            id(r) in front,
        )
        for r in ok
        if r.latency_ms and (r.accuracy if labelled else r.top1_agreement) is not None
    ]
    scatter = (
        scatter_chart(
            points,
            "decode latency per token p50 (ms)" if language else "latency p50 (ms)",
            "task accuracy"
            if labelled
            else "same top-1 as FP32"
            if language
            else "top-1 agreement with FP32",
            "Decode latency against fidelity" if language else "Latency against accuracy",
        )
        if points
        else ""
    )
    return f'<div class="chart">{bars}</div><div class="chart">{scatter}</div>'


def _topk_section(run: RunResult, limit: int = 40) -> str:
    ok = [r for r in run.results if r.ok and r.topk]
    reference = run.reference
    if not ok or reference is None or not reference.topk:
        return "<p>No top-k predictions (an encoder compares embeddings, not labels).</p>"
    disagree = [
        i for i in range(len(run.inputs)) if any(r.topk[i][0][0] != reference.topk[i][0][0] for r in ok)
    ]
    agree = [i for i in range(len(run.inputs)) if i not in set(disagree)]
    shown = disagree[:limit] + agree[: max(0, limit - len(disagree))][:10]
    summary = "".join(
        f"<li><b>{escape(r.recipe)}</b>: top-1 agrees with FP32 on "
        f"{sum(r.topk[i][0][0] == reference.topk[i][0][0] for i in range(len(run.inputs)))} of {len(run.inputs)} inputs</li>"
        for r in ok
        if not r.reference
    )
    head = "".join(f"<th>{escape(r.recipe)}</th>" for r in ok)
    rows = []
    for i in sorted(shown):
        item = run.inputs[i]
        cells = []
        for r in ok:
            top = r.topk[i]
            differs = top[0][0] != reference.topk[i][0][0]
            lines = "<br>".join(f"{escape(label)} <small>{p:.2f}</small>" for label, p in top[:3])
            cells.append(f'<td class="{"differs" if differs else ""}">{lines}</td>')
        gold = f"<br><small>label: {escape(item.gold)}</small>" if item.gold else ""
        pair = f" <b>‖</b> {escape(item.pair)}" if item.pair is not None else ""
        rows.append(f"<tr><td>#{i} {escape(item.text)}{pair}{gold}</td>{''.join(cells)}</tr>")
    return (
        f"<ul>{summary}</ul><p>{len(disagree)} of {len(run.inputs)} inputs have a backend whose top-1 differs "
        f"from FP32 (marked red); {len(shown)} inputs shown, disagreements first.</p>"
        f'<table class="topk"><tr><th>input</th>{head}</tr>{"".join(rows)}</table>'
    )


def _continuations_section(run: RunResult, limit: int = 40) -> str:
    """Per prompt, each backend's next-token top-3 and greedy continuation, red from where it departs."""
    ok = [r for r in run.results if r.ok and r.topk]
    reference = run.reference
    if not ok or reference is None or not reference.topk:
        return "<p>No prompts were measured.</p>"
    head = "".join(f"<th>{escape(r.recipe)}</th>" for r in ok)
    rows = []
    for i, item in enumerate(run.inputs[:limit]):
        cells = []
        for r in ok:
            top = r.topk[i]
            differs = top[0][0] != reference.topk[i][0][0]
            tokens = " ".join(f"{escape(t)} <small>{p:.2f}</small>" for t, p in top[:3])
            text = r.continuations[i] if i < len(r.continuations) else ""
            cut = r.departure_chars[i] if i < len(r.departure_chars) else None
            if cut is None or r.reference:
                continuation = escape(text)
            else:
                continuation = f'{escape(text[:cut])}<span class="departs">{escape(text[cut:])}</span>'
            cells.append(f'<td class="{"differs" if differs else ""}">{tokens}<br><i>{continuation}</i></td>')
        rows.append(f"<tr><td>#{i} {escape(item.text)}</td>{''.join(cells)}</tr>")
    return (
        f"<p>{len(run.inputs)} prompts from {escape(run.evaluation.prompts_source)}; a next token that differs "
        "from FP32's is marked red, a continuation is red from its first token that departs from FP32's.</p>"
        f'<table class="topk"><tr><th>prompt</th>{head}</tr>{"".join(rows)}</table>'
    )


def reproduce_command(run: RunResult, result: RecipeResult) -> str:
    parts = ["qstudio", "run", "--model", run.model.ref, "--recipe", f"{result.recipe}.toml"]
    if not run.evaluation.source.endswith(("intents_eval.csv", "llm_eval.txt")):
        parts += ["--eval", run.evaluation.source]
    prompts = run.evaluation.prompts_source
    if prompts and not prompts.endswith("llm_prompts.txt") and not prompts.startswith("first sentences"):
        parts += ["--prompts", prompts]
    return shlex.join(parts)


def to_html(run: RunResult) -> str:
    hw = run.hardware
    gpus = (
        "".join(
            f"<li>GPU {g.index}: {escape(g.name)} — compute capability {g.cc_text}, {g.memory_total_bytes / 2**30:.1f} GiB, driver {escape(g.driver)}</li>"
            for g in hw.gpus
        )
        or f"<li>GPU: none ({escape(hw.gpu_status)})</li>"
    )
    runtimes = ", ".join(f"{escape(k)} {escape(v)}" for k, v in hw.runtimes.items() if v)
    model = run.model
    labels = ", ".join(escape(label) for label in model.labels[:20]) + (
        " …" if len(model.labels) > 20 else ""
    )
    recipes = "".join(
        f"<details><summary>{escape(r.recipe)}.toml</summary><pre>{escape(r.recipe_toml)}</pre>"
        f"<p>Reproduce: <code>{escape(reproduce_command(run, r))}</code>"
        f"{f' or <code>qstudio rerun {run.run_id}</code>' if run.run_id else ''}</p></details>"
        for r in run.results
        if r.recipe_toml
    )
    title = f"Quantization Studio report — {model.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }}
th {{ background: #f0f3f8; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.error td {{ background: #fde2e1; }} tr.warn td {{ background: #fff6dc; }}
tr.flag td {{ text-align: left; font-size: 12px; border-top: none; }}
tr.unavailable td, tr.failed td {{ color: #888; }}
table.topk td {{ text-align: left; }} td.differs {{ background: #fde2e1; font-weight: bold; }}
span.departs {{ color: #b3261e; font-weight: bold; }}
.chart {{ display: inline-block; margin-right: 24px; vertical-align: top; }}
pre {{ background: #f6f6f6; padding: 8px; }} code {{ background: #f3f3f3; padding: 1px 4px; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>Run {run.run_id or "–"}, {run.created:%Y-%m-%d %H:%M UTC}, Quantization Studio {escape(run.studio_version)}.
{run.evaluation.count} evaluation {"text pairs" if run.evaluation.pairs else "inputs"} from <code>{escape(run.evaluation.source)}</code>{", labelled" if run.evaluation.labelled else ""};
{run.evaluation.calibration_count} calibration texts. Agreement flag threshold {run.agreement_threshold:.0%}.</p>
<h2>Hardware</h2>
<ul><li>CPU: {escape(hw.cpu.model)} ({hw.cpu.logical_cores} threads), flags: {escape(", ".join(hw.cpu.flags) or "none of interest")}</li>
{gpus}<li>{escape(hw.os)}, Python {escape(hw.python)}</li><li>Runtimes: {runtimes}</li>
<li>ONNX Runtime providers: {escape(", ".join(hw.ort_providers))}</li></ul>
<h2>Model</h2>
<ul><li><b>{escape(model.name)}</b> ({escape(model.source)}): {escape(model.architecture)}</li>
<li>Task: {escape(model.task)}; {model.parameters / 1e6:.1f} M parameters; {model.size_bytes / 2**20:.1f} MB on disk</li>
<li>{len(model.labels)} labels{": " + labels if model.labels else ""}</li>
<li>Path: <code>{escape(model.path)}</code>; content hash <code>{model.content_hash[:16]}</code></li></ul>
<h2>Recipes</h2>
{_recipe_table(run)}
<h2>Charts</h2>
{_charts(run)}
<h2>{"Next-token top-k and continuations side by side" if run.model.task == "text-generation" else "Top-k predictions side by side"}</h2>
{_continuations_section(run) if run.model.task == "text-generation" else _topk_section(run)}
<h2>Recipe files</h2>
{recipes}
</body></html>
"""


def render(run: RunResult, fmt: str) -> str:
    renderers = {"html": to_html, "csv": to_csv, "json": to_json}
    return renderers[fmt](run)
