"""The data picker's second step: which columns of the chosen file are the text, its pair and the label.

A text-pair model (NLI, cross-encoder) evaluated on one column sees half of every input, so the pair
column is a choice the user sees, pre-set when a column has one of the usual names for it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QWidget

from studio.gui.qt_state import DataColumns

NONE = "(none)"
PAIR_NAMES = ("text_pair", "pair", "hypothesis", "sentence2", "text2", "passage", "document", "premise2")
TEXT_NAMES = ("text", "premise", "sentence1", "sentence", "query", "question")


def _first(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {column.lower(): column for column in columns}
    return next((lowered[name] for name in names if name in lowered), None)


def guess_columns(columns: list[str], previous: DataColumns) -> DataColumns:
    """The previous choice where the file has those columns, else the usual names."""
    text = previous.text if previous.text in columns else _first(columns, TEXT_NAMES) or columns[0]
    pair = previous.pair if previous.pair in columns else _first(columns, PAIR_NAMES)
    label = previous.label if previous.label in columns else _first(columns, ("label", "labels", "gold"))
    return DataColumns(text, pair if pair != text else None, label)


class DataColumnsDialog(QDialog):
    """Three choices from the file's columns; `columns()` is what was chosen."""

    def __init__(
        self, file_name: str, columns: list[str], previous: DataColumns, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle(f"Columns of {file_name}")
        guess = guess_columns(columns, previous)
        self.text = QComboBox()
        self.text.addItems(columns)
        self.text.setCurrentText(guess.text)
        self.pair = QComboBox()
        self.pair.addItems([NONE, *columns])
        self.pair.setCurrentText(guess.pair or NONE)
        self.label = QComboBox()
        self.label.addItems([NONE, *columns])
        self.label.setCurrentText(guess.label or NONE)
        form = QFormLayout(self)
        form.addRow(QLabel(f"<b>{file_name}</b> has {len(columns)} columns."))
        form.addRow("Text", self.text)
        form.addRow("Second text (pairs)", self.pair)
        form.addRow("Gold label", self.label)
        hint = QLabel(
            "Choose a second text for NLI or cross-encoder models (premise/hypothesis, query/passage): "
            "the tokenizer then encodes both texts together, as the model was trained."
        )
        hint.setWordWrap(True)
        form.addRow(hint)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def columns(self) -> DataColumns:
        pair, label = self.pair.currentText(), self.label.currentText()
        return DataColumns(
            self.text.currentText(), None if pair == NONE else pair, None if label == NONE else label
        )
