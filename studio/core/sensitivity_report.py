"""`qstudio sensitivity --html`: the ranking as bars (KL when a node alone is quantized) and as a table."""

from __future__ import annotations

from html import escape
from typing import Any

from studio.core.recipe import Recipe, keep_in_float
from studio.core.svg import bar_chart
from studio.core.tune_report import STYLE

BARS = 20


def worst_nodes(payload: dict[str, Any], count: int) -> list[str]:
    """From a ranking's JSON (`SensitivityReport.payload`): the `count` worst nodes, or every node of the
    `count` worst layers when only layers were ranked (a causal LM by default)."""
    if payload.get("layers"):
        return [entry["name"] for entry in payload["layers"][:count]]
    return [node for entry in (payload.get("groups") or [])[:count] for node in entry["nodes"]]


def keep_worst(recipe: Recipe, payload: dict[str, Any], count: int) -> Recipe:
    """`recipe` with the ranking's `count` worst kept in float: nodes, or whole transformer layers (named
    in the recipe's name and description) when only layers were ranked."""
    layers = None if payload.get("layers") else [e["name"] for e in (payload.get("groups") or [])[:count]]
    return keep_in_float(recipe, worst_nodes(payload, count), layers)


def _table(entries: list[dict[str, Any]]) -> str:
    headers = ("#", "name", "op", "KL quantized alone", "agreement kept float", "SQNR dB", "weight SQNR dB")
    rows = []
    for rank, e in enumerate(entries, start=1):
        sqnr, weight = e.get("sqnr_db"), e.get("weight_sqnr_db")
        cells = (
            str(rank),
            escape(e["name"]),
            escape(e["op_type"]),
            f"{e['kl_when_quantized_alone']:.5f}",
            f"{e['agreement_when_kept_float']:.1%}",
            "–" if sqnr is None else f"{sqnr:.1f}",
            "–" if weight is None else f"{weight:.1f}",
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>" + "".join(rows) + "</table>"


def sensitivity_html(payload: dict[str, Any], kept: list[str] | None = None) -> str:
    """`payload` is what `--json` writes; `kept` the nodes a --keep-float recipe leaves in float (drawn red)."""
    kept_set = set(kept or [])
    nodes = payload.get("layers") or []
    groups = payload.get("groups") or []
    bars = (
        bar_chart(
            [
                (e["name"][-40:], float(e["kl_when_quantized_alone"]), e["name"] in kept_set)
                for e in nodes[:BARS]
            ],
            "KL",
            f"The {min(BARS, len(nodes))} most sensitive nodes: KL from FP32 when each alone is quantized",
        )
        if nodes
        else ""
    )
    group_bars = (
        bar_chart(
            [(e["name"], float(e["kl_when_quantized_alone"]), False) for e in groups],
            "KL",
            "Per transformer layer: KL when the layer alone is quantized",
        )
        if groups
        else ""
    )
    kept_text = (
        f"<p>Kept in float by the recipe written (red bars): {', '.join(escape(n) for n in kept)}</p>"
        if kept
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sensitivity — {escape(payload["recipe"])}</title>
<style>{STYLE}</style></head><body>
<h1>Sensitivity of {escape(payload["recipe"])} on {escape(payload["model"])}</h1>
<p>All quantized: top-1 agreement {payload["agreement_all_quantized"]:.1%}, KL {payload["kl_all_quantized"]:.5f}
on {payload["sample"]} inputs. Each node is quantized alone (KL) and kept in float alone (agreement);
SQNR from ONNX Runtime's qdq_loss_debug.</p>
{kept_text}
{bars}
{group_bars}
<h2>Nodes, most sensitive first</h2>
{_table(nodes)}
<h2>Layers</h2>
{_table(groups)}
</body></html>
"""
