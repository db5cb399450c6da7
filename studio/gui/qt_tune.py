"""The Tune view: `qstudio tune` from the window, its trials drawn on a latency/quality chart as they finish.

The search runs as the command itself in a child process (its state file is what this view reads, so a
tune started here can be resumed from the CLI and the other way round). Each trial appears as a point
as soon as the command rewrites tune.json; the best one is a star; Cancel stops the search and keeps
what it found.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QWidget,
)

from studio.core.paths import data_dir
from studio.core.tune import TuneState
from studio.core.tune_report import axis_names, is_language, latency_p50, quality_loss, speed_axis, speedup
from studio.gui.chart_labels import add_names
from studio.gui.qt_analysis import lay_out, results_table
from studio.gui.qt_charts import make_plot
from studio.gui.qt_command import CommandRun
from studio.gui.qt_state import StudioState

HEADERS = ("trial", "status", "p50 ms", "× FP32", "agreement", "accuracy drop", "goal")
LM_HEADERS = ("trial", "status", "ms/token", "× FP32", "same top-1", "ΔPPL", "KLD", "goal")
POLL_MS = 500
# Defaults per model kind: a classifier's top-1 agreement, a causal LM's same top-1 (llama.cpp's) and KLD.
AGREEMENT = {False: 0.98, True: 0.90}
LM_MAX_KLD = 0.10


class TunePanel(QWidget):
    openRun = Signal(int)  # a run of the tune (the best trial's), to show in the Run view

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.command: CommandRun | None = None
        self.folder: Path | None = None
        self.payload: dict[str, Any] = {}
        self._mtime = 0.0

        self.drop = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=100.0, value=1.0, suffix=" points")
        self.agreement = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, value=0.98, singleStep=0.005)
        self.perplexity = QDoubleSpinBox(decimals=0, minimum=0.0, maximum=1000.0, value=10.0, suffix=" %")
        self.kld = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=10.0, value=LM_MAX_KLD, singleStep=0.01)
        self.objective = QComboBox()
        self.objective.addItems(["latency", "throughput", "size", "memory"])
        self.budget = QSpinBox(minimum=0, maximum=24 * 60, value=15, suffix=" min")
        self.budget.setSpecialValueText("no limit")
        self.max_trials = QSpinBox(minimum=0, maximum=1000, value=0)
        self.max_trials.setSpecialValueText("all")
        form = QFormLayout()
        self.form = form
        form.addRow("Max accuracy drop", self.drop)
        form.addRow("Min agreement with FP32", self.agreement)
        form.addRow("Max perplexity rise", self.perplexity)
        form.addRow("Max mean KLD (nats)", self.kld)
        form.addRow("Optimise", self.objective)
        form.addRow("Budget", self.budget)
        form.addRow("Max trials", self.max_trials)
        self.start_button = QPushButton("Start tune")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.best_button = QPushButton("Show the best trial's run")
        self.best_button.setEnabled(False)
        self.best_button.clicked.connect(self._open_best)
        self.report_button = QPushButton("Open the report")
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(self._open_report)
        self.open_button = QPushButton("Open a tune…")
        self.open_button.setToolTip(
            "Show a tune's folder (started here or with `qstudio tune`), and resume it"
        )
        self.open_button.clicked.connect(lambda: self.open_folder(self.choose_folder()))
        self.resume_button = QPushButton("Resume")
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(self.resume)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.open_button, self.resume_button,
                       self.best_button, self.report_button):  # fmt: skip
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.status = QLabel(
            "Pick a goal and a budget, then start: the studio tries the recipes this machine runs."
        )
        self.status.setWordWrap(True)

        self.plot = make_plot(
            "Trials (● meets the goal, ○ misses, ★ best, ■ FP32)",
            ("agreement with FP32", "%"),
            (speed_axis(False), None),
        )
        self.table = results_table(HEADERS)
        lay_out(self, form, buttons, self.status, self.plot, self.table)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.language = False
        self.set_kind(state.model.task if state.model else "text-classification")
        state.modelChanged.connect(lambda info: self.set_kind(info.task))

    def set_kind(self, task: str) -> None:
        """The goal's fields, the chart's axes and the table's columns for a classifier or a causal LM."""
        language = task == "text-generation"
        if language != self.language or not self.table.columnCount():
            self.agreement.setValue(AGREEMENT[language])
        self.language = language
        self.form.setRowVisible(self.drop, not language)
        self.form.setRowVisible(self.perplexity, language)
        self.form.setRowVisible(self.kld, language)
        self.form.labelForField(self.agreement).setText(  # type: ignore[attr-defined]
            "Min same top-1 with FP32" if language else "Min agreement with FP32"
        )
        self._show_kind(language)

    def _show_kind(self, language: bool) -> None:
        """Axes and columns for the figures shown: a classifier's or a causal LM's."""
        self.shown_language = language
        agreement = axis_names(language)[1]
        self.plot.setLabel("left", f"{agreement} with FP32", units="%")
        self.plot.setLabel("bottom", speed_axis(language))
        headers = LM_HEADERS if language else HEADERS
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(list(headers))

    # -- running --------------------------------------------------------------------------------------
    def arguments(self, folder: Path) -> list[str]:
        args = ["tune", *self.state.cli_data_args(), "--out", str(folder), "--quiet"]
        args += ["--min-agreement", f"{self.agreement.value():g}"]
        if self.language:
            args += ["--max-perplexity-rise", f"{self.perplexity.value() / 100:g}"]
            args += ["--max-kld", f"{self.kld.value():g}"]
        else:
            args += ["--max-accuracy-drop", f"{self.drop.value():g}"]
        args += ["--objective", self.objective.currentText()]
        if self.budget.value():
            args += ["--budget", f"{self.budget.value()}m"]
        if self.max_trials.value():
            args += ["--max-trials", str(self.max_trials.value())]
        return args

    def start(self) -> None:
        if self.command is not None and self.command.running:
            return
        if self.state.model is None:
            self.state.error.emit("No model is open yet: open one before tuning", "")
            return
        self.folder = data_dir() / "tunes" / time.strftime("%Y%m%d-%H%M%S")
        self.payload, self._mtime = {}, 0.0
        self.plot.clear()
        self.table.setRowCount(0)
        self._launch(self.arguments(self.folder), f"tuning {self.state.model.name}: state in {self.folder}")

    def _launch(self, args: list[str], message: str) -> None:
        self.command = CommandRun(args, self)
        self.command.line.connect(self.status.setText)
        self.command.finished.connect(self._finished)
        self.command.start()
        for button in (self.start_button, self.open_button, self.resume_button, self.best_button):
            button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(message)
        self.timer.start()

    def choose_folder(self) -> str:
        """The folder dialog (tests answer it instead)."""
        return QFileDialog.getExistingDirectory(self, "Open a tune's folder", str(data_dir() / "tunes"))

    def open_folder(self, folder: str) -> None:
        """Show the tune in `folder` (its tune.json), whoever ran it; Resume continues an unfinished one."""
        if not folder or (self.command is not None and self.command.running):
            return
        path = Path(folder)
        if not (path / "tune.json").is_file():
            self.state.error.emit(f"{folder} holds no tune.json", "Pick the folder a tune wrote (its --out).")
            return
        self.folder, self._mtime = path, 0.0
        self.poll()
        finished = bool(self.payload.get("finished"))
        self.resume_button.setEnabled(not finished)
        self._enable_results()
        trials, planned = len(self.payload.get("trials", [])), len(self.payload.get("planned", []))
        self.status.setText(
            f"tune in {path}: {trials} of {planned} trials, "
            + (
                "finished"
                if finished
                else f"stopped ({self.payload.get('stopped_by') or 'killed'}): Resume continues it"
            )
        )

    def resume(self) -> None:
        if self.folder is None or (self.command is not None and self.command.running):
            return
        self._launch(["tune", "--resume", str(self.folder), "--quiet"], f"resuming the tune in {self.folder}")

    def cancel(self) -> None:
        if self.command is not None:
            self.status.setText("cancelling: the trial in flight stops, the best so far is kept")
            self.command.cancel()

    def _finished(self, code: int) -> None:
        self.timer.stop()
        self.poll()
        self.start_button.setEnabled(True)
        self.open_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(not self.payload.get("finished", True))
        best = self.payload.get("best")
        lines = self.command.lines if self.command is not None else []
        if best:
            verdict = (
                "meets the goal"
                if best.get("meets_goal")
                else (f"closest to the goal, {best.get('distance_to_goal')} points short")
            )
            self.status.setText(f"best: {best['recipe']} ({verdict}); recipe in {self.folder}/best.toml")
            self._enable_results()
        elif code != 0:
            self.state.error.emit(
                f"Tune failed: {lines[-1] if lines else f'exit status {code}'}", "\n".join(lines)
            )
            self.status.setText("the tune failed: see Problems")

    def _enable_results(self) -> None:
        best = self.payload.get("best") or {}
        self.best_button.setEnabled(best.get("run_id") is not None)
        self.report_button.setEnabled(self.folder is not None and (self.folder / "report.html").exists())

    def _open_report(self) -> None:
        if self.folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder / "report.html")))

    def _open_best(self) -> None:
        best = self.payload.get("best") or {}
        if best.get("run_id") is not None:
            self.openRun.emit(int(best["run_id"]))

    # -- drawing --------------------------------------------------------------------------------------
    def poll(self) -> None:
        """Re-read tune.json when the command rewrote it (atomically: a read never sees half a file)."""
        if self.folder is None:
            return
        path = self.folder / "tune.json"
        try:
            mtime = path.stat().st_mtime
            if mtime == self._mtime:
                return
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        self._mtime = mtime
        self.show_payload(rejudged(payload))

    def show_payload(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        trials = payload.get("trials", [])
        reference = payload.get("state", {}).get("reference") or {}
        if reference and is_language(reference) != self.shown_language:  # a tune of another kind, opened
            self._show_kind(is_language(reference))
        best = (payload.get("best") or {}).get("recipe")
        self._draw(trials, reference, best)
        self._fill(trials, reference, best)

    def _draw(self, trials: list[dict[str, Any]], reference: dict[str, Any], best: str | None) -> None:
        self.plot.clear()
        spots = []
        for trial in trials:  # x: the speed-up in the trial's own run, which the ranking uses
            x, agreement = speedup(trial), trial.get("top1_agreement")
            if x is None or agreement is None:
                continue
            meets = bool(trial.get("meets_goal"))
            spots.append(
                {
                    "pos": (x, agreement * 100),
                    "size": 18 if trial["recipe"] == best else 11,
                    "symbol": "star" if trial["recipe"] == best else "o",
                    "brush": pg.mkBrush("#2ca02c" if meets else "#ffffff"),
                    "pen": pg.mkPen("#2ca02c" if meets else "#7f7f7f", width=2),
                    "data": trial["recipe"],
                }
            )
        if reference:
            spots.append(
                {"pos": (1.0, 100.0), "size": 14, "symbol": "s", "brush": pg.mkBrush("#000000"),
                 "pen": pg.mkPen("#000000"), "data": "FP32 reference"}
            )  # fmt: skip
            self.plot.addItem(
                pg.InfiniteLine(
                    pos=1.0, angle=90, pen=pg.mkPen("#000000", style=pg.QtCore.Qt.PenStyle.DotLine)
                )
            )
        self.scatter = pg.ScatterPlotItem(
            spots=spots, hoverable=True, tip=lambda x, y, data: f"{data}: {x:.2f}x FP32, {y:.1f}%"
        )
        self.plot.addItem(self.scatter)
        if spots:  # explicit ranges: labels are not part of the auto-range, and points sit at its edge
            xs = [s["pos"][0] for s in spots]
            ys = [s["pos"][1] for s in spots]
            span = max(xs) - min(xs) or max(xs) or 1.0
            # room for the names; no negative speed-ups
            self.plot.setXRange(max(0.0, min(xs) - 0.3 * span), max(xs) + 0.5 * span, padding=0)
            low = min(ys) - 0.5  # above 100%: room for the names of trials as good as FP32
            self.plot.setYRange(low, 100.0 + max(0.4, 0.06 * (100.0 - low)), padding=0)
        pareto = set(self.payload.get("pareto") or [])
        named = {best, "FP32 reference", *pareto}  # the rest on hover
        shown = [(s["data"], *s["pos"]) for s in spots if s["data"] in named]
        add_names(self.plot, shown, "#333333", first={name for name, _, _ in shown})

    def _fill(self, trials: list[dict[str, Any]], reference: dict[str, Any], best: str | None) -> None:
        self.table.setRowCount(len(trials))
        for row, trial in enumerate(trials):
            p50, times = latency_p50(trial), speedup(trial)
            agreement, kld = trial.get("top1_agreement"), trial.get("kl")
            cells = [
                ("★ " if trial["recipe"] == best else "") + trial["recipe"],
                trial.get("status", ""),
                "-" if p50 is None else f"{p50:.2f}",
                "-" if times is None else f"{times:.2f}",
                "-" if agreement is None else f"{agreement:.1%}",
                quality_loss(trial, reference),
            ]
            if self.shown_language:
                cells.append("-" if kld is None else f"{kld:.4f}")
            cells.append("meets" if trial.get("meets_goal") else (trial.get("reason") or "misses")[:60])
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def points(self) -> int:
        return len(self.scatter.data) if hasattr(self, "scatter") else 0


def rejudged(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its best, Pareto front and objective values by this version's rules: a tune saved
    by an earlier version (or a killed one) shows what a resume would make of it."""
    try:
        state = TuneState.model_validate(payload["state"])
    except (KeyError, TypeError, ValueError):
        return payload
    state.rejudge()
    return state.payload()
