"""A non-modal list of what went wrong, with details to copy; the window stays usable."""

from __future__ import annotations

import time

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ErrorPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.copy_button = QPushButton("Copy details")
        self.clear_button = QPushButton("Clear")
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addWidget(self.details, 1)
        layout.addLayout(row)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(self._show)
        self.copy_button.clicked.connect(self.copy)
        self.clear_button.clicked.connect(self.clear)

    def add(self, message: str, details: str = "") -> None:
        item = QListWidgetItem(f"{time.strftime('%H:%M:%S')}  {message}")
        item.setData(256, f"{message}\n\n{details}".strip())
        item.setToolTip(message)
        self.list.addItem(item)
        self.list.setCurrentItem(item)

    def _show(self, item: QListWidgetItem | None) -> None:
        self.details.setPlainText(item.data(256) if item else "")

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.details.toPlainText())

    def clear(self) -> None:
        self.list.clear()
        self.details.clear()

    def count(self) -> int:
        return self.list.count()
