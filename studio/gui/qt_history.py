"""Past runs from the run history: reopen one into the charts and tables, export its report."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.results import RunResult
from studio.core.store import RunStore


class HistoryPanel(QWidget):
    reopened = Signal(object)  # RunResult
    failed = Signal(str, str)

    def __init__(self, store: RunStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["run", "started", "status", "model", "recipes ok"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.open_button = QPushButton("Open in charts and tables")
        self.export_button = QPushButton("Export report…")
        self.refresh_button = QPushButton("Refresh")
        buttons = QHBoxLayout()
        for button in (self.open_button, self.export_button, self.refresh_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        self.open_button.clicked.connect(self.open_selected)
        self.table.doubleClicked.connect(lambda _: self.open_selected())
        self.export_button.clicked.connect(self.export_selected)
        self.refresh_button.clicked.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        runs = self.store.runs()
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            values = [
                str(run.id),
                run.created.astimezone().strftime("%Y-%m-%d %H:%M"),
                run.status,
                run.model_name,
                f"{run.ok}/{run.recipes}",
            ]
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, run.id)
                self.table.setItem(row, column, item)

    def selected_id(self) -> int | None:
        items = self.table.selectedItems()
        return int(items[0].data(Qt.ItemDataRole.UserRole)) if items else None

    def load(self, run_id: int) -> RunResult | None:
        try:
            return self.store.load(run_id)
        except Exception as error:
            self.failed.emit(f"Cannot open run {run_id}: {error}", "")
            return None

    def open_selected(self) -> None:
        run_id = self.selected_id()
        run = self.load(run_id) if run_id is not None else None
        if run is not None:
            self.reopened.emit(run)

    def export_selected(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export report", f"qstudio-run-{run_id}.html", "HTML (*.html);;CSV (*.csv);;JSON (*.json)"
        )
        if path:
            self.export(run_id, Path(path))

    def export(self, run_id: int, path: Path) -> Path | None:
        from studio.core.report import render

        run = self.load(run_id)
        if run is None:
            return None
        fmt = path.suffix.lstrip(".").lower()
        if fmt not in ("html", "csv", "json"):
            fmt, path = "html", path.with_suffix(".html")
        try:
            path.write_text(render(run, fmt), encoding="utf-8")
        except OSError as error:
            self.failed.emit(f"Cannot write {path}: {error}", "")
            return None
        return path
