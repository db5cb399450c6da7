"""Live charts (pyqtgraph): memory over time per recipe and three result charts chosen by the model's kind.

Classifiers and encoders: latency per backend, accuracy and agreement per backend, latency against
accuracy with the Pareto front. Causal LMs (`qt_lm_charts`): decode and prefill speed-up per recipe,
same-top-1 with KLD and ΔPPL per recipe, tokens/s against KLD with the Pareto front.

Samples arrive ~10 times a second per worker; they go into numpy buffers and the curves are redrawn by
one throttled timer (25 Hz), never from the event itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QGridLayout, QWidget

from studio.core.events import Event
from studio.core.results import RecipeResult, pareto_front
from studio.core.svg import PALETTE
from studio.gui.chart_labels import add_names

COLOURS = PALETTE
Axis = tuple[str, str]
TEXT_TITLES: tuple[tuple[str, Axis, Axis], ...] = (
    ("Latency: bar p50, dot p90, whisker p99", ("", ""), ("latency", "ms")),
    ("Accuracy (blue), agreement with FP32 (orange)", ("", ""), ("percent", "%")),
    ("Latency vs accuracy (★ FP32, dashes: Pareto)", ("accuracy", "%"), ("latency p50", "ms")),
)
LM_TITLES: tuple[tuple[str, Axis, Axis], ...] = (
    ("× FP32: decode (blue), prefill (orange)", ("", ""), ("speed-up against FP32", "×")),
    ("Same top-1 as FP32; KLD and ΔPPL", ("", ""), ("same top-1", "%")),
    ("Decode tok/s vs KLD (★ FP32, dashes: Pareto)", ("decode", "tok/s"), ("mean KLD", "")),
)


TICK_CHARS = 26  # a longer recipe name would widen the axis past the chart's cell


def tick_label(name: str) -> str:
    """A recipe name as an axis label: its end kept (where variants differ), the start elided."""
    return name if len(name) <= TICK_CHARS else "…" + name[-(TICK_CHARS - 1) :]


class Series:
    """A growing (time, value) buffer for one curve."""

    def __init__(self) -> None:
        self.t = np.zeros(256)
        self.v = np.zeros(256)
        self.n = 0

    def append(self, t: float, v: float) -> None:
        if self.n == len(self.t):
            self.t = np.resize(self.t, self.n * 2)
            self.v = np.resize(self.v, self.n * 2)
        self.t[self.n], self.v[self.n] = t, v
        self.n += 1


def make_plot(title: str, left: tuple[str, str | None], bottom: tuple[str, str | None]) -> pg.PlotWidget:
    plot = pg.PlotWidget(title=title)
    plot.setBackground("w")
    plot.showGrid(x=True, y=True, alpha=0.25)
    label_axes(plot, left, bottom)
    return plot


def label_axes(plot: pg.PlotWidget, left: tuple[str, str | None], bottom: tuple[str, str | None]) -> None:
    """Axis titles with units; only bytes and seconds take SI prefixes (MB, ms): pyqtgraph would print
    700 ms as 0.7 "kms"."""
    for side, (text, units) in (("left", left), ("bottom", bottom)):
        plot.setLabel(side, text, units=units)
        plot.getAxis(side).enableAutoSIPrefix(units in ("B", "s"))


class ChartsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.memory = make_plot(
            "Memory per recipe (RSS solid, GPU dashed)", ("memory", "B"), ("time since recipe start", "s")
        )
        self._memory_legend()
        self.memory.setDownsampling(mode="peak")
        self.memory.setClipToView(True)
        self.latency = make_plot("", ("", ""), ("", ""))
        self.quality = make_plot("", ("", ""), ("", ""))
        self.scatter = make_plot("", ("", ""), ("", ""))
        self.task = ""
        grid = QGridLayout(self)
        grid.addWidget(self.memory, 0, 0)
        grid.addWidget(self.latency, 0, 1)
        grid.addWidget(self.quality, 1, 0)
        grid.addWidget(self.scatter, 1, 1)
        self.series: dict[tuple[str, str], Series] = {}
        self.curves: dict[tuple[str, str], Any] = {}
        self.colours: dict[str, str] = {}
        self.results: list[RecipeResult] = []
        self.scatter_item: pg.ScatterPlotItem | None = None
        self._dirty = False
        self.timer = QTimer(self)
        self.timer.setInterval(40)  # 25 Hz
        self.timer.timeout.connect(self._redraw_memory)
        self.timer.start()
        self.set_kind("text-classification")

    def _memory_legend(self) -> None:
        """On a white box: the curves rise under the legend's corner and would cross its names. Hidden
        while it names nothing (a run reopened from the history has no memory samples)."""
        legend = self.memory.addLegend(
            offset=(10, 10), brush=pg.mkBrush(255, 255, 255, 225), pen=pg.mkPen("#c8c8c8")
        )
        legend.setVisible(False)

    def set_kind(self, task: str) -> None:
        """Pick the result charts for a kind of model: titles and axes now, drawing when results come."""
        if task == self.task:
            return
        self.task = task
        language = task == "text-generation"
        titles = LM_TITLES if language else TEXT_TITLES
        for plot, (title, left, bottom) in zip(
            (self.latency, self.quality, self.scatter), titles, strict=True
        ):
            plot.setTitle(title)
            label_axes(plot, left, bottom)
        self._redraw_results()

    def colour(self, recipe: str) -> str:
        if recipe not in self.colours:
            self.colours[recipe] = COLOURS[len(self.colours) % len(COLOURS)]
        return self.colours[recipe]

    def reset(self) -> None:
        self.memory.clear()
        self._memory_legend()
        self.series.clear()
        self.curves.clear()
        self.results = []
        self.colours.clear()
        for plot in (self.latency, self.quality, self.scatter):
            plot.clear()

    # -- live samples ---------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if event.kind == "sample" and event.data:
            t = float(event.data["t"])
            self._add(event.recipe, "rss", t, float(event.data["rss_bytes"]))
            if event.data.get("gpu_bytes") is not None:
                self._add(event.recipe, "gpu", t, float(event.data["gpu_bytes"]))
        elif event.kind == "result" and event.data:
            self.add_result(RecipeResult.model_validate(event.data))

    def _add(self, recipe: str, kind: str, t: float, value: float) -> None:
        key = (recipe, kind)
        if key not in self.series:
            self.series[key] = Series()
            pen = pg.mkPen(self.colour(recipe), width=2)
            if kind == "gpu":
                pen.setStyle(Qt.PenStyle.DashLine)
            name = recipe if kind == "rss" else f"{recipe} (GPU)"
            self.curves[key] = self.memory.plot([], [], pen=pen, name=name)
            self.memory.getPlotItem().legend.setVisible(True)
        self.series[key].append(t, value)
        self._dirty = True

    def _redraw_memory(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for key, series in self.series.items():
            self.curves[key].setData(series.t[: series.n], series.v[: series.n])

    def memory_points(self) -> int:
        return sum(s.n for s in self.series.values())

    # -- results --------------------------------------------------------------------------------------
    def add_result(self, result: RecipeResult) -> None:
        self.results = [r for r in self.results if r.recipe != result.recipe] + [result]
        self._redraw_results()

    def show_results(self, results: list[RecipeResult], keep_memory: bool = False) -> None:
        """Draw a run's results; `keep_memory` keeps the live memory curves of the run just finished."""
        if not keep_memory:
            self.reset()
        self.results = list(results)
        self._redraw_results()

    def _measured(self) -> list[RecipeResult]:
        return [r for r in self.results if r.ok and r.latency_ms is not None]

    def _redraw_results(self) -> None:
        """Rebuild the three result charts, one per event-loop turn: each repaint costs tens of ms in
        software rendering, and together they would stall the window past 50 ms."""
        measured = self._measured()
        for plot in (self.latency, self.quality, self.scatter):
            plot.clear()
        if not measured:
            return
        if self.task == "text-generation":
            from studio.gui.qt_lm_charts import draw_fidelity, draw_speed, draw_speed_vs_kld

            draw_speed(self.latency, measured, self.colour)
            QTimer.singleShot(30, self, lambda: draw_fidelity(self.quality, self._measured(), self.colour))
            QTimer.singleShot(
                60,
                self,
                lambda: self._set_scatter(draw_speed_vs_kld(self.scatter, self._measured(), self.colour)),
            )
            return
        self._redraw_latency(measured)
        QTimer.singleShot(30, self, lambda: self._redraw_quality(self._measured()))
        QTimer.singleShot(60, self, lambda: self._redraw_scatter(self._measured()))

    def _set_scatter(self, item: pg.ScatterPlotItem | None) -> None:
        self.scatter_item = item

    def _redraw_latency(self, measured: list[RecipeResult]) -> None:
        ticks = [[(i, tick_label(r.recipe)) for i, r in enumerate(measured)]]
        y = np.arange(len(measured), dtype=float)
        p50 = np.array([r.latency_ms.p50 for r in measured if r.latency_ms])
        p90 = np.array([r.latency_ms.p90 for r in measured if r.latency_ms])
        p99 = np.array([r.latency_ms.p99 for r in measured if r.latency_ms])
        brushes = [
            pg.mkBrush("#dc3912" if any(f.severity == "error" for f in r.flags) else self.colour(r.recipe))
            for r in measured
        ]
        self.latency.addItem(pg.BarGraphItem(x0=0, y=y, width=p50, height=0.6, brushes=brushes))
        self.latency.addItem(
            pg.ErrorBarItem(x=p50, y=y, left=0, right=p99 - p50, beam=0.25, pen=pg.mkPen("#333"))
        )
        self.latency.addItem(pg.ScatterPlotItem(x=p90, y=y, size=7, brush=pg.mkBrush("#333"), pen=None))
        self.latency.getAxis("left").setTicks(ticks)

    def _redraw_quality(self, measured: list[RecipeResult]) -> None:
        self.quality.clear()
        if not measured:
            return
        ticks = [[(i, tick_label(r.recipe)) for i, r in enumerate(measured)]]
        y = np.arange(len(measured), dtype=float)
        accuracy = np.array([(r.accuracy or 0) * 100 for r in measured])
        agreement = np.array([(r.top1_agreement or 0) * 100 for r in measured])
        self.quality.addItem(pg.BarGraphItem(x0=0, y=y - 0.18, width=accuracy, height=0.34, brush="#3366cc"))
        self.quality.addItem(pg.BarGraphItem(x0=0, y=y + 0.18, width=agreement, height=0.34, brush="#ff9900"))
        self.quality.getAxis("left").setTicks(ticks)
        self.quality.setXRange(0, 100)

    def _redraw_scatter(self, measured: list[RecipeResult]) -> None:
        self.scatter.clear()
        if not measured:
            return

        def quality(r: RecipeResult) -> float:
            value = r.accuracy if r.accuracy is not None else r.top1_agreement
            return (value or 0.0) * 100

        spots = []
        for r in measured:
            assert r.latency_ms is not None
            spots.append(
                {
                    "pos": (r.latency_ms.p50, quality(r)),
                    "data": r.recipe,
                    "symbol": "star" if r.reference else "o",
                    "size": 18 if r.reference else 12,
                    "brush": pg.mkBrush("#000" if r.reference else self.colour(r.recipe)),
                }
            )
        self.scatter_item = pg.ScatterPlotItem(
            spots=spots,
            hoverable=True,
            hoverSize=16,
            hoverPen=pg.mkPen("#000", width=2),
            tip=lambda x, y, data: f"{data}\n{x:.2f} ms · {y:.1f}%",
        )
        self.scatter.addItem(self.scatter_item)
        xs_all = [r.latency_ms.p50 for r in measured if r.latency_ms]
        ys_all = [quality(r) for r in measured]
        self.scatter.setXRange(0, max(xs_all) * 1.6, padding=0)  # room for the rightmost name
        self.scatter.setYRange(max(0.0, min(ys_all) - 5), min(100.0, max(ys_all) + 2) + 0.5, padding=0)
        front = sorted(pareto_front(measured), key=lambda r: r.latency_ms.p50 if r.latency_ms else 0)
        named = {r.recipe for r in front} | {r.recipe for r in measured if r.reference}
        add_names(self.scatter, [(s["data"], *s["pos"]) for s in spots], first=named)
        if len(front) > 1:
            xs = [r.latency_ms.p50 for r in front if r.latency_ms]
            self.scatter.plot(
                xs, [quality(r) for r in front], pen=pg.mkPen("#109618", width=2, style=Qt.PenStyle.DashLine)
            )

    def scatter_points(self) -> list[tuple[str, float, float]]:
        if self.scatter_item is None:
            return []
        return [(p.data(), p.pos().x(), p.pos().y()) for p in self.scatter_item.points()]
