"""The Sensitivity view: `qstudio sensitivity` from the window, the ranking as a bar chart, and one action
that keeps the worst N nodes in float and runs that recipe beside the original.

The analysis is the command itself in a child process (the window never loads a runtime); its JSON is
what this view draws. The before/after is an ordinary run of the two recipes, so it lands in the Run view,
the history and the reports like any other.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QWidget,
)

from studio.backends.sensitivity import SUPPORTED
from studio.core.recipe import Recipe
from studio.core.sensitivity_report import keep_worst, worst_nodes
from studio.gui.qt_analysis import lay_out, results_table
from studio.gui.qt_charts import make_plot
from studio.gui.qt_command import CommandRun
from studio.gui.qt_state import StudioState

HEADERS = ("#", "name", "op", "KL quantized alone", "agreement kept float", "SQNR dB")
BARS = 20  # the most sensitive entries drawn; the table holds them all


class SensitivityPanel(QWidget):
    runRequested = Signal(list)  # [original, kept]: the before/after run

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.command: CommandRun | None = None
        self.payload: dict[str, Any] = {}
        self.recipe: Recipe | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="qstudio-sensitivity-")

        self.recipes = QComboBox()
        self.sample = QSpinBox(minimum=8, maximum=100000, value=64, suffix=" inputs")
        self.view = QComboBox()
        self.view.addItems(["nodes", "layers"])
        self.view.currentIndexChanged.connect(lambda _: self.show_payload(self.payload))
        form = QFormLayout()
        form.addRow("Recipe", self.recipes)
        form.addRow("Sample", self.sample)
        form.addRow("Show", self.view)
        self.rank_button = QPushButton("Rank layers")
        self.rank_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.command.cancel() if self.command else None)
        self.keep = QSpinBox(minimum=1, maximum=64, value=3)
        self.keep_button = QPushButton("Keep the worst N in float and run it beside the original")
        self.keep_button.setEnabled(False)
        self.keep_button.clicked.connect(self.keep_worst)
        self.report_button = QPushButton("Open the report")
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.html_file)))
        )
        buttons = QHBoxLayout()
        for widget in (
            self.rank_button, self.cancel_button, QLabel("N"), self.keep, self.keep_button, self.report_button
        ):  # fmt: skip
            buttons.addWidget(widget)
        buttons.addStretch(1)
        self.status = QLabel(
            "Pick an INT8 or INT4 recipe: each node is quantized alone, and kept in float alone."
        )
        self.status.setWordWrap(True)

        self.plot = make_plot(
            "Each node alone quantized: KL from FP32", ("", ""), ("KL(FP32 ‖ quantized)", "")
        )
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)  # KLs of 0.01 read as such, not as 10 m
        self.table = results_table(HEADERS)
        lay_out(self, form, buttons, self.status, self.plot, self.table)
        state.modelChanged.connect(lambda _: self.refresh_recipes())
        state.recipesChanged.connect(self.refresh_recipes)
        self.refresh_recipes()

    def refresh_recipes(self) -> None:
        """The recipes the analysis handles; one this machine cannot run is listed, greyed, with why."""
        current = self.recipes.currentText()
        self.recipes.clear()
        for recipe in self.state.recipes:
            if recipe.backend not in SUPPORTED or "-keep" in recipe.name:
                continue
            availability = self.state.availability(recipe)
            self.recipes.addItem(recipe.name, recipe)
            if not availability.available:
                index = self.recipes.count() - 1
                item = self.recipes.model().item(index)  # type: ignore[attr-defined]
                item.setEnabled(False)
                item.setToolTip(availability.reason)
        if current:
            self.recipes.setCurrentText(current)

    # -- running --------------------------------------------------------------------------------------
    def start(self) -> None:
        recipe = self.recipes.currentData()
        if recipe is None or (self.command is not None and self.command.running):
            return
        self.recipe = recipe
        folder = Path(self._folder.name)
        recipe_file = folder / f"{recipe.name}.toml"
        recipe_file.write_text(recipe.to_toml(), encoding="utf-8")
        self.json_file = folder / f"{recipe.name}.json"
        self.json_file.unlink(missing_ok=True)
        args = ["sensitivity", *self.state.cli_data_args(), "--recipe", str(recipe_file)]
        self.html_file = folder / f"{recipe.name}.html"
        args += ["--sample", str(self.sample.value()), "--json", str(self.json_file), "--quiet"]
        args += ["--html", str(self.html_file)]
        self.command = CommandRun(args, self)
        self.command.line.connect(self.status.setText)
        self.command.finished.connect(self._finished)
        self.command.start()
        self.rank_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.keep_button.setEnabled(False)
        self.status.setText(f"ranking the nodes of {recipe.name} on {self.sample.value()} inputs…")

    def _finished(self, code: int) -> None:
        self.rank_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        lines = self.command.lines if self.command is not None else []
        try:
            payload = json.loads(self.json_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            reason = lines[-1] if lines else f"exit status {code}"
            self.state.error.emit(f"Sensitivity analysis failed: {reason}", "\n".join(lines))
            self.status.setText("the analysis failed: see Problems")
            return
        self.show_payload(payload)
        self.status.setText(
            f"{payload['recipe']}: all quantized, agreement {payload['agreement_all_quantized']:.1%}, "
            f"KL {payload['kl_all_quantized']:.5f} on {payload['sample']} inputs"
        )
        self.keep_button.setEnabled(bool(worst_nodes(payload, 1)))
        if not payload.get("layers"):  # layers only (a causal LM): show them, N counts layers
            self.view.setCurrentText("layers")
        self.report_button.setEnabled(self.html_file.exists())

    def keep_worst(self) -> None:
        """The recipe with the worst N nodes in float, run beside the original (the before/after)."""
        if self.recipe is None or not worst_nodes(self.payload, self.keep.value()):
            return
        kept = keep_worst(self.recipe, self.payload, self.keep.value())
        self.state.add_recipe(kept)
        self.runRequested.emit([self.recipe, kept])

    # -- drawing --------------------------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        key = "layers" if self.view.currentText() == "nodes" else "groups"
        return list(self.payload.get(key) or [])

    def show_payload(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        entries = self.entries()
        shown = entries[:BARS]
        self.plot.clear()
        if shown:
            kl = [max(0.0, float(e["kl_when_quantized_alone"])) for e in shown]
            y = list(range(len(shown)))[::-1]  # the worst at the top
            self.bars = pg.BarGraphItem(x0=0, y=y, height=0.7, width=kl, brush="#d62728")
            self.plot.addItem(self.bars)
            ticks = [(y[i], _tail(e["name"])) for i, e in enumerate(shown)]
            self.plot.getAxis("left").setTicks([ticks])
            self.plot.setXRange(0, max(kl) * 1.05 or 1.0, padding=0)
            self.plot.setYRange(-0.6, len(shown) - 0.4, padding=0)
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            sqnr = e.get("sqnr_db")
            cells = (
                str(row + 1),
                e["name"],
                e["op_type"],
                f"{e['kl_when_quantized_alone']:.5f}",
                f"{e['agreement_when_kept_float']:.1%}",
                "-" if sqnr is None else f"{sqnr:.1f}",
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()


def _tail(name: str, most: int = 40) -> str:
    """A node's name as the axis has room for it: its end (layer and op) names it, "…" says it was cut."""
    return name if len(name) <= most else "…" + name[-(most - 1) :]
