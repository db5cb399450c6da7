"""The frame the Tune and Sensitivity views share: their settings and buttons over a chart beside a table."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QSplitter, QTableWidget, QVBoxLayout, QWidget


def results_table(headers: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    return table


def lay_out(
    view: QWidget,
    form: QFormLayout,
    buttons: QHBoxLayout,
    status: QLabel,
    plot: pg.PlotWidget,
    table: QTableWidget,
) -> None:
    """Settings, buttons and the status line on top; the chart (wider) and the table side by side below."""
    top = QWidget()
    top_layout = QVBoxLayout(top)
    top_layout.addLayout(form)
    top_layout.addLayout(buttons)
    top_layout.addWidget(status)
    split = QSplitter()
    split.addWidget(plot)
    split.addWidget(table)
    split.setSizes([700, 500])
    layout = QVBoxLayout(view)
    layout.addWidget(top)
    layout.addWidget(split, 1)
