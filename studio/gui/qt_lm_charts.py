"""The result charts of a causal LM run: speed-ups (decode, prefill), fidelity (same top-1, KLD, ΔPPL) and
decode tokens/s against KLD with the Pareto front (faster and closer to FP32 is better)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from studio.core.results import RecipeResult
from studio.gui.chart_labels import add_names
from studio.gui.qt_charts import tick_label

FLAGGED = "#dc3912"


def _suspect(r: RecipeResult) -> bool:
    return any(f.severity == "error" for f in r.flags)


def _ticks(plot: pg.PlotWidget, measured: list[RecipeResult]) -> np.ndarray:
    plot.getAxis("left").setTicks([[(i, tick_label(r.recipe)) for i, r in enumerate(measured)]])
    return np.arange(len(measured), dtype=float)


def draw_speed(plot: pg.PlotWidget, measured: list[RecipeResult], colour: Callable[[str], str]) -> None:
    """Decode and prefill speed-up against FP32, grouped per recipe, the absolute figures as labels."""
    plot.clear()
    y = _ticks(plot, measured)
    decode = np.array([r.speedup_vs_reference or 0.0 for r in measured])
    prefill = np.array([r.prefill_speedup or 0.0 for r in measured])
    brushes = [pg.mkBrush(FLAGGED if _suspect(r) else "#3366cc") for r in measured]
    plot.addItem(pg.BarGraphItem(x0=0, y=y - 0.18, width=decode, height=0.34, brushes=brushes))
    plot.addItem(pg.BarGraphItem(x0=0, y=y + 0.18, width=prefill, height=0.34, brush="#ff9900"))
    plot.addItem(pg.InfiniteLine(pos=1.0, angle=90, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine)))
    for i, r in enumerate(measured):
        if r.decode_tokens_per_s is None:
            continue
        prefill_ms = f" · {r.prefill_ms.p50:.0f} ms" if r.prefill_ms else ""
        label = pg.TextItem(f"{r.decode_tokens_per_s:.1f} tok/s{prefill_ms}", color="#333", anchor=(0, 0.5))
        label.setPos(max(decode[i], prefill[i]) * 1.02, y[i])
        plot.addItem(label)
    plot.setXRange(0, max(1.0, float(max(decode.max(), prefill.max()))) * 1.9, padding=0)


def draw_fidelity(plot: pg.PlotWidget, measured: list[RecipeResult], colour: Callable[[str], str]) -> None:
    """Same top-1 as FP32 per recipe, with mean KLD and ΔPPL written next to each bar."""
    plot.clear()
    if not measured:
        return
    y = _ticks(plot, measured)
    same = np.array([(r.top1_agreement or 0.0) * 100 for r in measured])
    brushes = [pg.mkBrush(FLAGGED if _suspect(r) else colour(r.recipe)) for r in measured]
    plot.addItem(pg.BarGraphItem(x0=0, y=y, width=same, height=0.6, brushes=brushes))
    for i, r in enumerate(measured):
        delta = ""
        if r.perplexity_delta is not None and r.perplexity:
            base = r.perplexity - r.perplexity_delta
            delta = f" · ΔPPL {r.perplexity_delta / base:+.1%}" if base else ""
        label = pg.TextItem(f"KLD {r.kl or 0:.4f}{delta}", color="#111", anchor=(1, 0.5))
        label.setPos(max(same[i] - 1, 0), y[i])
        plot.addItem(label)
    plot.setXRange(0, 100, padding=0)


def pareto_by_speed_and_kld(results: list[RecipeResult]) -> list[RecipeResult]:
    """Results no other beats on both decode tokens/s (higher) and mean KLD (lower)."""
    points = [r for r in results if r.decode_tokens_per_s is not None and r.kl is not None]
    front = []
    for r in points:
        assert r.decode_tokens_per_s is not None and r.kl is not None
        beaten = any(
            o is not r
            and (o.decode_tokens_per_s or 0) >= r.decode_tokens_per_s
            and (o.kl or 0) <= r.kl
            and ((o.decode_tokens_per_s or 0) > r.decode_tokens_per_s or (o.kl or 0) < r.kl)
            for o in points
        )
        if not beaten:
            front.append(r)
    return sorted(front, key=lambda r: r.kl or 0.0)


def draw_speed_vs_kld(
    plot: pg.PlotWidget, measured: list[RecipeResult], colour: Callable[[str], str]
) -> pg.ScatterPlotItem | None:
    plot.clear()
    points = [r for r in measured if r.decode_tokens_per_s is not None and r.kl is not None]
    if not points:
        return None
    spots = [
        {
            "pos": (r.kl, r.decode_tokens_per_s),
            "data": r.recipe,
            "symbol": "star" if r.reference else "o",
            "size": 18 if r.reference else 12,
            "brush": pg.mkBrush("#000" if r.reference else FLAGGED if _suspect(r) else colour(r.recipe)),
        }
        for r in points
    ]
    item = pg.ScatterPlotItem(
        spots=spots,
        hoverable=True,
        hoverSize=16,
        hoverPen=pg.mkPen("#000", width=2),
        tip=lambda x, y, data: f"{data}\n{y:.1f} tok/s · KLD {x:.4f}",
    )
    plot.addItem(item)
    front = pareto_by_speed_and_kld(points)
    if len(front) > 1:
        plot.plot(
            [r.kl for r in front],
            [r.decode_tokens_per_s for r in front],
            pen=pg.mkPen("#109618", width=2, style=Qt.PenStyle.DashLine),
        )
    kls = [r.kl or 0.0 for r in points]
    rates = [r.decode_tokens_per_s or 0.0 for r in points]
    plot.setXRange(0, max(max(kls) * 1.45, 1e-3), padding=0)
    plot.setYRange(0, max(rates) * 1.15, padding=0)
    add_names(plot, [(r.recipe, r.kl or 0.0, r.decode_tokens_per_s or 0.0) for r in points])
    return item
