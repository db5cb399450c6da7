"""Side-by-side top-k: every evaluation input with each backend's top-1 (disagreements with FP32 marked),
the full top-k of the chosen input in columns per backend, and top-k of text the user types."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.results import RecipeResult, RunResult

DISAGREE = QColor("#fde2e1")


def _item(text: str, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tooltip:
        item.setToolTip(tooltip)
    return item


class TopKPanel(QWidget):
    predictRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Run recipes to compare their predictions.")
        self.summary.setWordWrap(True)
        self.only_disagreements = QCheckBox("only inputs where a backend disagrees with FP32")
        self.inputs = QTableWidget(0, 0)
        self.inputs.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.inputs.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.inputs.verticalHeader().setVisible(False)
        self.inputs.setWordWrap(False)
        self.inputs.verticalHeader().setDefaultSectionSize(22)
        self.detail = QTableWidget(0, 0)
        self.detail.verticalHeader().setVisible(False)
        self.detail_title = QLabel("Choose an input")
        self.detail_title.setWordWrap(True)
        self.typed = QLineEdit()
        self.typed.setPlaceholderText("Type a text and press Enter to see every backend's top-k…")
        self.predict_button = QPushButton("Predict")
        typed_row = QHBoxLayout()
        typed_row.addWidget(self.typed, 1)
        typed_row.addWidget(self.predict_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(typed_row)
        right_layout.addWidget(self.detail_title)
        right_layout.addWidget(self.detail, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.only_disagreements)
        left_layout.addWidget(self.inputs, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([760, 420])
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        self.run: RunResult | None = None
        self.only_disagreements.toggled.connect(lambda _: self._fill_inputs())
        self.inputs.currentCellChanged.connect(lambda row, *_: self._show_input(row))
        self.typed.returnPressed.connect(self._predict)
        self.predict_button.clicked.connect(self._predict)

    def _ok(self) -> list[RecipeResult]:
        return [r for r in (self.run.results if self.run else []) if r.ok and r.topk]

    def show_run(self, run: RunResult) -> None:
        self.run = run
        ok = self._ok()
        reference = run.reference
        if not ok or reference is None or not reference.topk:
            self.summary.setText("No top-k predictions in this run (an encoder is compared on embeddings).")
            self.inputs.setRowCount(0)
            return
        parts = []
        for r in ok:
            if r.reference:
                continue
            same = sum(r.topk[i][0][0] == reference.topk[i][0][0] for i in range(len(run.inputs)))
            colour = "#b3261e" if same / len(run.inputs) < run.agreement_threshold else "#1a7f37"
            parts.append(
                f"<span style='color:{colour}'><b>{r.recipe}</b> agrees with FP32 on {same}/{len(run.inputs)} "
                f"({same / len(run.inputs):.1%})</span>"
            )
        self.summary.setText(" · ".join(parts) or "Only the reference ran.")
        self._fill_inputs()

    def disagreeing_rows(self) -> list[int]:
        """Table rows currently highlighted as disagreeing (for tests and the screenshot check)."""
        items = [(row, self.inputs.item(row, 0)) for row in range(self.inputs.rowCount())]
        return [row for row, item in items if item is not None and item.background().color() == DISAGREE]

    def _fill_inputs(self) -> None:
        run = self.run
        ok = self._ok()
        if run is None or not ok or run.reference is None:
            return
        reference = run.reference
        headers = ["#", "input", "label", *[r.recipe for r in ok]]
        rows = []
        for i, item in enumerate(run.inputs):
            differs = [r.topk[i][0][0] != reference.topk[i][0][0] for r in ok]
            if self.only_disagreements.isChecked() and not any(differs):
                continue
            rows.append((i, item, differs))
        self.inputs.clear()
        self.inputs.setColumnCount(len(headers))
        self.inputs.setHorizontalHeaderLabels(headers)
        self.inputs.setRowCount(len(rows))
        for row, (i, item, differs) in enumerate(rows):
            cells = [_item(str(i)), _item(item.text, item.text), _item(item.gold or "")]
            for r, differ in zip(ok, differs, strict=True):
                label, probability = r.topk[i][0]
                cell = _item(f"{label} {probability:.2f}")
                if differ:
                    cell.setForeground(QColor("#b3261e"))
                cells.append(cell)
            for column, cell in enumerate(cells):
                if any(differs):
                    cell.setBackground(DISAGREE)
                self.inputs.setItem(row, column, cell)
        header = self.inputs.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        self.inputs.setColumnWidth(1, 260)
        if rows:
            self.inputs.selectRow(0)

    def _show_input(self, row: int) -> None:
        first = self.inputs.item(row, 0) if row >= 0 else None
        if self.run is None or first is None:
            return
        index = int(first.text())
        item = self.run.inputs[index]
        self.detail_title.setText(
            f"<b>#{index}</b> {item.text}" + (f" <i>(label: {item.gold})</i>" if item.gold else "")
        )
        self._fill_detail({r.recipe: r.topk[index] for r in self._ok()})

    def _fill_detail(self, topk: dict[str, Any]) -> None:
        names = list(topk)
        reference = (
            self.run.reference.recipe if self.run and self.run.reference else names[0] if names else ""
        )
        depth = max((len(v) for v in topk.values() if isinstance(v, list)), default=0)
        self.detail.clear()
        self.detail.setColumnCount(len(names))
        self.detail.setHorizontalHeaderLabels(names)
        self.detail.setRowCount(max(depth, 1))
        ref_top = topk.get(reference, [[None]])[0][0] if isinstance(topk.get(reference), list) else None
        for column, name in enumerate(names):
            value = topk[name]
            if not isinstance(value, list):
                self.detail.setItem(0, column, _item(f"error: {value}"))
                continue
            for rank, (label, probability) in enumerate(value):
                cell = _item(f"{label}  {probability:.3f}")
                if rank == 0 and ref_top is not None and label != ref_top:
                    cell.setBackground(DISAGREE)
                self.detail.setItem(rank, column, cell)
        self.detail.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def _predict(self) -> None:
        text = self.typed.text().strip()
        if text:
            self.detail_title.setText(f"<b>typed:</b> {text} <i>(running every backend in a worker…)</i>")
            self.predictRequested.emit(text)

    def show_predictions(self, text: str, predictions: dict[str, Any]) -> None:
        self.detail_title.setText(f"<b>typed:</b> {text}")
        table = {}
        for name, value in predictions.items():
            table[name] = (
                [tuple(pair) for pair in value["topk"][0]] if "topk" in value else value.get("error", "?")
            )
        self._fill_detail(table)
