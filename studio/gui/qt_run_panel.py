"""The run queue: start, a progress bar and stage per recipe, cancel one or all, elapsed and remaining time."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.events import Event
from studio.core.results import RecipeResult
from studio.gui.qt_cluster import ClusterChoice


class RunPanel(QWidget):
    startRequested = Signal()
    cancelAllRequested = Signal()
    cancelRecipeRequested = Signal(str)
    exportRequested = Signal(str)  # a recipe of the run shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.start_button = QPushButton("Run selected recipes  (Ctrl+R)")
        self.cancel_button = QPushButton("Cancel all  (Esc)")
        self.cancel_button.setEnabled(False)
        self.clock = QLabel("Idle")
        self.cluster = ClusterChoice()
        top = QHBoxLayout()
        top.addWidget(self.start_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.cluster)
        top.addStretch(1)
        top.addWidget(self.clock)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["recipe", "progress", "stage", ""])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table)
        self.start_button.clicked.connect(self.startRequested)
        self.cancel_button.clicked.connect(self.cancelAllRequested)
        self.rows: dict[str, int] = {}
        self.done_at: dict[str, float] = {}
        self.started_at = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(500)
        self.timer.timeout.connect(self._tick)

    def begin(self, names: list[str]) -> None:
        self.table.setRowCount(0)
        self.rows = {}
        self.done_at = {}
        for name in names:
            self._add_row(name)
        self.table.resizeColumnToContents(0)
        self.started_at = time.monotonic()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.timer.start()

    def _add_row(self, name: str) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(name))
        bar = QProgressBar()
        bar.setRange(0, 1)
        bar.setValue(0)
        bar.setFormat("queued")
        self.table.setCellWidget(row, 1, bar)
        self.table.setItem(row, 2, QTableWidgetItem("queued"))
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(lambda _=False, n=name: self.cancelRecipeRequested.emit(n))
        self.table.setCellWidget(row, 3, cancel)
        self.rows[name] = row
        return row

    def on_task(self, name: str, state: str, detail: str) -> None:
        """A cluster task's state (queued, running on NODE, done ...): its row, added when it is new (the
        reference of each node type)."""
        row = self.rows.get(name)
        if row is None:
            row = self._add_row(name)
            self.table.resizeColumnToContents(0)
        bar, stage_item = self.table.cellWidget(row, 1), self.table.item(row, 2)
        if not isinstance(bar, QProgressBar) or stage_item is None:
            return
        final = state in ("done", "failed", "unavailable", "cancelled", "lost")
        bar.setRange(0, 1 if final or state == "queued" else 0)
        bar.setValue(1 if final else 0)
        bar.setFormat(state)
        stage_item.setText(f"{state} {detail}".strip())
        stage_item.setToolTip(detail)
        stage_item.setForeground(Qt.GlobalColor.red if state in ("failed", "lost") else Qt.GlobalColor.black)
        button = self.table.cellWidget(row, 3)
        if button is not None:  # a sweep is cancelled as a whole (Cancel all): its tasks are Ray's
            button.setEnabled(False)
            button.setToolTip("Cancel all stops the sweep; finished results stay in the history")
        if final:
            self.done_at[name] = time.monotonic()

    def on_event(self, event: Event) -> None:
        row = self.rows.get(event.recipe)
        if row is None or event.kind in ("sample", "warning"):
            return
        bar = self.table.cellWidget(row, 1)
        stage_item = self.table.item(row, 2)
        if not isinstance(bar, QProgressBar) or stage_item is None:
            return
        if event.kind in ("stage", "progress"):
            stage = event.stage
            if event.total:
                bar.setRange(0, event.total)
                bar.setValue(event.done)
                bar.setFormat(f"{stage} %v/%m")
            else:
                bar.setRange(0, 0)  # busy
            stage_item.setText(stage)
        elif event.kind == "result" and event.data:
            self._show_outcome(
                row,
                event.data.get("status", ""),
                event.data.get("reason") or "",
                event.data.get("flags") or [],
            )
            button = self.table.cellWidget(row, 3)
            if button is not None:
                button.setEnabled(False)
            self.done_at[event.recipe] = time.monotonic()

    def _show_outcome(self, row: int, status: str, reason: str, flags: list[dict[str, Any]]) -> None:
        bar = self.table.cellWidget(row, 1)
        stage_item = self.table.item(row, 2)
        if not isinstance(bar, QProgressBar) or stage_item is None:
            return
        bar.setRange(0, 1)
        bar.setValue(1)
        bar.setFormat(status)
        suspect = any(f.get("severity") == "error" for f in flags)
        stage_item.setText("SUSPECT: " + flags[0]["message"][:80] if suspect else (reason or status))
        stage_item.setToolTip(reason or "; ".join(f["message"] for f in flags))
        stage_item.setForeground(
            Qt.GlobalColor.red if suspect or status == "failed" else Qt.GlobalColor.black
        )

    def show_results(self, results: list[RecipeResult]) -> None:
        """A finished or reopened run: each recipe's outcome, and an Export button where there is something
        to export (flagged and failed recipes too: their evidence says why they are not ready)."""
        self.table.setRowCount(0)
        self.rows = {}
        for result in results:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.table.setItem(row, 0, QTableWidgetItem(result.recipe))
            self.table.setCellWidget(row, 1, QProgressBar())
            self.table.setItem(row, 2, QTableWidgetItem())
            self._show_outcome(row, result.status, result.reason, [f.model_dump() for f in result.flags])
            stage_item = self.table.item(row, 2)
            if result.node and stage_item is not None:  # a swept result: which cluster node ran it
                stage_item.setText(f"{stage_item.text()} · on {result.node}")
            button = QPushButton("Export…")
            exportable = result.status in ("ok", "failed")
            button.setEnabled(exportable)
            button.setToolTip(
                "Write a deployment folder with the artifact and its evidence"
                if exportable
                else f"Nothing to export: the recipe was {result.status}"
            )
            button.clicked.connect(lambda _=False, n=result.recipe: self.exportRequested.emit(n))
            self.table.setCellWidget(row, 3, button)
            self.rows[result.recipe] = row
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(2)
        self.table.resizeColumnToContents(3)

    def finish(self) -> None:
        self.timer.stop()
        self._tick()
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        for row in range(self.table.rowCount()):
            button = self.table.cellWidget(row, 3)
            if button is not None:
                button.setEnabled(False)

    def _tick(self) -> None:
        elapsed = time.monotonic() - self.started_at
        done = len(self.done_at)
        remaining = len(self.rows) - done
        if done and remaining:
            estimate = elapsed / done * remaining
            self.clock.setText(
                f"elapsed {elapsed:.0f} s · about {estimate:.0f} s remaining ({remaining} to go)"
            )
        elif remaining:
            self.clock.setText(f"elapsed {elapsed:.0f} s · estimating remaining time…")
        else:
            self.clock.setText(f"finished in {elapsed:.0f} s")
