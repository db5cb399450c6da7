"""A sweep's report: one table per model (every recipe, the node that ran it) and a models x recipes matrix
of speed-up and accuracy drop, as JSON, CSV and one HTML file, from the history runs the sweep recorded."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path
from typing import Any

from studio.core.results import RecipeResult, RunResult
from studio.core.tune_report import STYLE


def _drop(result: RecipeResult, reference: RecipeResult | None) -> float | None:
    """Accuracy points lost against FP32 on the same node type (perplexity rise for a causal LM)."""
    if reference is None:
        return None
    if result.accuracy is not None and reference.accuracy is not None:
        return round((reference.accuracy - result.accuracy) * 100, 3)
    return result.perplexity_delta


def rows(runs: list[tuple[str, RunResult]]) -> list[dict[str, Any]]:
    """One row per result of every run: (node type name, run) pairs in the sweep's order."""
    out = []
    for node_type, run in runs:
        reference = run.reference
        for result in run.results:
            out.append(
                {
                    "model": run.model.name,
                    "model_ref": run.model.ref,
                    "run_id": run.run_id,
                    "node_type": node_type,
                    "node": result.node,
                    "recipe": result.recipe,
                    "reference": result.reference,
                    "status": result.status,
                    "reason": result.reason,
                    "latency_p50_ms": result.latency_ms.p50 if result.latency_ms else None,
                    "speedup_vs_reference": result.speedup_vs_reference,
                    "accuracy": result.accuracy,
                    "accuracy_drop": _drop(result, reference),
                    "top1_agreement": result.top1_agreement,
                    "kl": result.kl,
                    "size_bytes": result.size_bytes,
                    "flags": [flag.code for flag in result.flags],
                }
            )
    return out


def to_json(table: list[dict[str, Any]], sweep_id: int) -> str:
    return json.dumps({"sweep_id": sweep_id, "results": table}, indent=1)


def to_csv(table: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if table:
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
        writer.writeheader()
        for row in table:
            writer.writerow({**row, "flags": " ".join(row["flags"])})
    return buffer.getvalue()


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def to_html(table: list[dict[str, Any]], sweep_id: int) -> str:
    models = list(dict.fromkeys(row["model"] for row in table))
    recipes = list(dict.fromkeys(row["recipe"] for row in table if not row["reference"]))
    cell = {(row["model"], row["recipe"]): row for row in table if not row["reference"]}
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {sweep_id}</title>"
        f"<style>{STYLE}</style></head><body><h1>Sweep {sweep_id}</h1>",
        "<h2>Speed-up / accuracy drop (points), models × recipes</h2><table><tr><th>model</th>",
        *(f"<th>{escape(r)}</th>" for r in recipes),
        "</tr>",
    ]
    for model in models:
        parts.append(f"<tr><td>{escape(model)}</td>")
        for recipe in recipes:
            row = cell.get((model, recipe))
            if row is None:
                parts.append("<td>–</td>")
            elif row["status"] != "ok":
                parts.append(f"<td title='{escape(row['reason'])}'>{row['status']}</td>")
            else:
                parts.append(
                    f"<td>{_fmt(row['speedup_vs_reference'], '.2f', '×')} / "
                    f"{_fmt(row['accuracy_drop'], '.2f')}</td>"
                )
        parts.append("</tr>")
    parts.append("</table>")
    heads = ("recipe", "status", "node type", "node", "p50 ms", "speed-up", "accuracy", "drop",
             "agreement", "KL", "flags")  # fmt: skip
    for model in models:
        parts.append(f"<h2>{escape(model)}</h2><table><tr>")
        parts.extend(f"<th>{h}</th>" for h in heads)
        parts.append("</tr>")
        for row in (r for r in table if r["model"] == model):
            values = (
                row["recipe"] + (" (reference)" if row["reference"] else ""),
                row["status"] if row["status"] == "ok" else f"{row['status']}: {row['reason'][:160]}",
                row["node_type"],
                row["node"],
                _fmt(row["latency_p50_ms"], ".2f"),
                _fmt(row["speedup_vs_reference"], ".2f", "×"),
                _fmt(row["accuracy"], ".1%"),
                _fmt(row["accuracy_drop"], ".2f"),
                _fmt(row["top1_agreement"], ".1%"),
                _fmt(row["kl"], ".4f"),
                " ".join(row["flags"]),
            )
            parts.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in values) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def write(folder: Path, runs: list[tuple[str, RunResult]], sweep_id: int) -> dict[str, Path]:
    """report.json, report.csv and report.html in `folder`; returns their paths."""
    table = rows(runs)
    paths = {fmt: folder / f"report.{fmt}" for fmt in ("json", "csv", "html")}
    paths["json"].write_text(to_json(table, sweep_id), encoding="utf-8")
    paths["csv"].write_text(to_csv(table), encoding="utf-8")
    paths["html"].write_text(to_html(table, sweep_id), encoding="utf-8")
    return paths
