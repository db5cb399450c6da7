"""Side-by-side top-k: every evaluation input with each backend's top-1 (disagreements with FP32 marked),
the full top-k of the chosen input in columns per backend, and top-k of text the user types.

For a causal LM the inputs are prompts, top-k means the next token, and the chosen prompt's greedy
continuation per backend is shown below its top-k, red from the first token that departs from FP32."""

from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.core.results import RecipeResult, RunResult

DISAGREE = QColor("#fde2e1")


class InputsModel(QAbstractTableModel):
    """Evaluation inputs with each backend's top-1; a row where any backend differs from FP32 is marked.

    A model/view table only formats the rows on screen, so a thousand inputs cost the event loop nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.run: RunResult | None = None
        self.ok: list[RecipeResult] = []
        self.rows: list[int] = []  # input indices shown
        self.differs: dict[int, list[bool]] = {}

    def load(self, run: RunResult | None, ok: list[RecipeResult], only_disagreements: bool) -> None:
        self.beginResetModel()
        self.run, self.ok, self.rows, self.differs = run, ok, [], {}
        if run is not None and run.reference is not None and run.reference.topk and ok:
            ref = [top[0][0] for top in run.reference.topk]
            for i in range(len(run.inputs)):
                differs = [r.topk[i][0][0] != ref[i] for r in ok]
                self.differs[i] = differs
                if any(differs) or not only_disagreements:
                    self.rows.append(i)
        self.endResetModel()

    @property
    def pairs(self) -> bool:
        return self.run is not None and self.run.evaluation.pairs

    @property
    def fixed(self) -> list[str]:
        """The columns before the backends' (a text-pair model's second text gets its own)."""
        if self.run is not None and self.run.model.task == "text-generation":
            return ["#", "prompt", ""]
        return ["#", "input", "second text", "label"] if self.pairs else ["#", "input", "label"]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() or not self.ok else len(self.fixed) + len(self.ok)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        if orientation != Qt.Orientation.Horizontal:
            return None
        first = self.fixed
        return first[section] if section < len(first) else self.ok[section - len(first)].recipe

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if self.run is None or not index.isValid():
            return None
        i = self.rows[index.row()]
        column = index.column()
        differs = self.differs[i]
        fixed = len(self.fixed)
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            item = self.run.inputs[i]
            if column >= fixed:
                label, probability = self.ok[column - fixed].topk[i][0]
                return f"{label} {probability:.2f}"
            return [str(i), item.text, item.pair or "", item.gold or ""][
                column if self.pairs or column < 2 else 3
            ]
        if role == Qt.ItemDataRole.BackgroundRole and any(differs):
            return DISAGREE
        if role == Qt.ItemDataRole.ForegroundRole and column >= fixed and differs[column - fixed]:
            return QColor("#b3261e")
        return None

    def disagreeing_rows(self) -> list[int]:
        return [row for row, i in enumerate(self.rows) if any(self.differs[i])]


class SpreadTable(QTableView):
    """The inputs table: its columns are shared out again whenever its width changes."""

    def __init__(self, panel: TopKPanel) -> None:
        super().__init__()
        self.panel = panel

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.panel.spread_columns()


def _item(text: str, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tooltip:
        item.setToolTip(tooltip)
    return item


class TopKPanel(QWidget):
    predictRequested = Signal(str, str)  # text, its pair ("" for single-text models)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run: RunResult | None = None
        self.summary = QLabel("Run recipes to compare their predictions.")
        self.summary.setWordWrap(True)
        self.only_disagreements = QCheckBox("only inputs where a backend disagrees with FP32")
        self.inputs_model = InputsModel()
        self.inputs = SpreadTable(self)
        self.inputs.setModel(self.inputs_model)
        self.inputs.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.inputs.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.inputs.verticalHeader().setVisible(False)
        self.inputs.setWordWrap(False)
        self.inputs.verticalHeader().setDefaultSectionSize(22)
        self.detail = QTableWidget(0, 0)
        self.detail.verticalHeader().setVisible(False)
        self.detail_title = QLabel("Choose an input")
        self.detail_title.setWordWrap(True)
        self.continuations = QTextBrowser()
        self.continuations.setMaximumHeight(220)
        self.continuations.hide()
        self.typed = QLineEdit()
        self.typed.setPlaceholderText("Your own text: every backend's top-k")
        self.typed_pair = QLineEdit()
        self.typed_pair.setPlaceholderText("Second text (hypothesis, passage)")
        self.typed_pair.hide()
        self.predict_button = QPushButton("Predict")
        typed_row = QHBoxLayout()
        typed_row.addWidget(self.typed, 1)
        typed_row.addWidget(self.typed_pair, 1)
        typed_row.addWidget(self.predict_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(typed_row)
        right_layout.addWidget(self.detail_title)
        right_layout.addWidget(self.detail, 1)
        right_layout.addWidget(self.continuations)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.only_disagreements)
        left_layout.addWidget(self.inputs, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([620, 580])
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        self.only_disagreements.toggled.connect(lambda _: self._fill_inputs())
        self.inputs.selectionModel().currentRowChanged.connect(
            lambda current, _: self._show_input(current.row())
        )
        self.typed.returnPressed.connect(self._predict)
        self.typed_pair.returnPressed.connect(self._predict)
        self.predict_button.clicked.connect(self._predict)

    def _ok(self) -> list[RecipeResult]:
        """Results with a top-k for every input (a run recorded by another version may not line up)."""
        if self.run is None:
            return []
        count = len(self.run.inputs)
        return [r for r in self.run.results if r.ok and len(r.topk) == count]

    @property
    def language(self) -> bool:
        return self.run is not None and self.run.model.task == "text-generation"

    @property
    def pairs(self) -> bool:
        return self.run is not None and self.run.evaluation.pairs

    def show_run(self, run: RunResult) -> None:
        self.run = run
        ok = self._ok()
        reference = run.reference
        self.continuations.setVisible(self.language)
        self.typed.setPlaceholderText(
            "A prompt of your own: every backend's next tokens and continuation"
            if self.language
            else "First text of your own (premise, query)"
            if self.pairs
            else "Your own text: every backend's top-k"
        )
        self.typed_pair.setVisible(self.pairs)
        if not ok or reference is None or not reference.topk:
            self.summary.setText("No top-k predictions in this run (an encoder is compared on embeddings).")
            self.inputs_model.load(None, [], False)
            return
        parts = []
        for r in ok:
            if r.reference:
                continue
            same = sum(r.topk[i][0][0] == reference.topk[i][0][0] for i in range(len(run.inputs)))
            if self.language:  # the verdict rests on every scored token, not on the few prompts
                share = r.top1_agreement or 0.0
                colour = "#b3261e" if share < run.agreement_threshold else "#1a7f37"
                parts.append(
                    f"<span style='color:{colour}'><b>{r.recipe}</b>: same top-1 on {share:.1%} of "
                    f"{r.tokens_evaluated or 0:,} tokens, next token as FP32 on {same}/{len(run.inputs)} prompts"
                    "</span>"
                )
                continue
            colour = "#b3261e" if same / len(run.inputs) < run.agreement_threshold else "#1a7f37"
            parts.append(
                f"<span style='color:{colour}'><b>{r.recipe}</b> agrees with FP32 on {same}/{len(run.inputs)} "
                f"({same / len(run.inputs):.1%})</span>"
            )
        self.summary.setText(" · ".join(parts) or "Only the reference ran.")
        self._fill_inputs()

    def disagreeing_rows(self) -> list[int]:
        """Table rows highlighted as disagreeing with FP32 (for tests and the screenshot check)."""
        return self.inputs_model.disagreeing_rows()

    def _fill_inputs(self) -> None:
        self.inputs_model.load(self.run, self._ok(), self.only_disagreements.isChecked())
        for column in range(4):  # a language model's prompts have no label
            self.inputs.setColumnHidden(column, self.language and column == 2)
        self.spread_columns()
        if self.inputs_model.rowCount():
            self.inputs.selectRow(0)

    def spread_columns(self) -> None:
        """Share the table's width: the input 40% of what the number and label leave (a pair's two texts
        half of it each), each backend's top-1 an equal part of the rest, so every backend stays in view
        without a horizontal scroll bar."""
        header = self.inputs.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        fixed = len(self.inputs_model.fixed)
        backends = max(1, self.inputs_model.columnCount() - fixed)
        label = 0 if self.language else 100
        room = max(0, self.inputs.viewport().width() - 40 - label)
        text = max(90, int(room * (0.5 if self.pairs else 0.4)))
        share = max(44, (room - text) // backends)
        texts = [text // 2, text // 2] if self.pairs else [text]
        for column, width in enumerate([40, *texts, label, *([share] * backends)]):
            if column < self.inputs_model.columnCount():
                self.inputs.setColumnWidth(column, width)

    def _show_input(self, row: int) -> None:
        if self.run is None or not 0 <= row < len(self.inputs_model.rows):
            return
        index = self.inputs_model.rows[row]
        item = self.run.inputs[index]
        pair = f" <b>‖</b> {escape(item.pair)}" if item.pair is not None else ""
        self.detail_title.setText(
            f"<b>#{index}</b> {escape(item.text)}{pair}"
            + (f" <i>(label: {escape(item.gold)})</i>" if item.gold else "")
        )
        self._fill_detail({r.recipe: r.topk[index] for r in self._ok()})
        if self.language:
            reference = self.run.reference
            rows = []
            for r in self._ok():
                departure = r.departure_chars[index] if index < len(r.departure_chars) else None
                rows.append(
                    (r.recipe, r.continuations[index] if index < len(r.continuations) else "", departure)
                )
            self._show_continuations(item.text, rows, reference.recipe if reference else "")

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
        # Every backend gets a share of the width (long labels elide; the tooltip has them whole), so a
        # third or fourth backend never hides behind a horizontal scroll bar.
        self.detail.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for row in range(self.detail.rowCount()):
            for column in range(self.detail.columnCount()):
                shown = self.detail.item(row, column)
                if shown is not None:
                    shown.setToolTip(shown.text())

    def _show_continuations(
        self, prompt: str, rows: list[tuple[str, str, int | None]], reference: str
    ) -> None:
        """Each backend's greedy continuation of `prompt`, red from where it departs from the reference's."""
        parts = [
            f"<p><b>Greedy continuations</b> of <i>{escape(prompt)}</i> (red: from the first token "
            "that departs from FP32)</p>"
        ]
        for name, text, departure in rows:
            same = text if departure is None or name == reference else text[:departure]
            rest = "" if departure is None or name == reference else text[departure:]
            parts.append(
                f"<p><b>{escape(name)}</b>: {escape(same).replace(chr(10), '↵')}"
                f"<span style='color:#b3261e;font-weight:bold'>{escape(rest).replace(chr(10), '↵')}</span></p>"
            )
        self.continuations.setHtml("".join(parts))

    def _predict(self) -> None:
        text, pair = self.typed.text().strip(), self.typed_pair.text().strip() if self.pairs else ""
        if not text:
            return
        if self.pairs and not pair:
            self.detail_title.setText("<b>typed:</b> this model reads text pairs: type the second text too")
            self.typed_pair.setFocus()
            return
        shown = escape(text) + (f" <b>‖</b> {escape(pair)}" if pair else "")
        self.detail_title.setText(f"<b>typed:</b> {shown} <i>(running every backend in a worker…)</i>")
        self.predictRequested.emit(text, pair)

    def show_predictions(self, text: str, predictions: dict[str, Any]) -> None:
        self.detail_title.setText(f"<b>typed:</b> {escape(text)}")
        table = {}
        for name, value in predictions.items():
            table[name] = (
                [tuple(pair) for pair in value["topk"][0]] if "topk" in value else value.get("error", "?")
            )
        self._fill_detail(table)
        continued = [
            (n, v["continuations"][0], None) for n, v in predictions.items() if v.get("continuations")
        ]
        if continued:
            first = continued[0][1]
            rows = [(n, t, None if t == first else _common_prefix(t, first)) for n, t, _ in continued]
            self.continuations.show()
            self._show_continuations(text, rows, continued[0][0])


def _common_prefix(a: str, b: str) -> int:
    """Characters two texts share at the start (typed prompts have no token-level reference to compare)."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
