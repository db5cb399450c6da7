"""Recipes: the built-ins as a checkable list (greyed with the reason when this machine cannot run them),
and a form that edits a recipe with validation as you type, saves it as TOML and loads one."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.backends.registry import REGISTRY
from studio.core.errors import StudioError
from studio.core.recipe import Recipe, load_recipe_file, parse_recipe
from studio.core.types import CALIBRATION_METHODS, DEVICES, MODES, PRECISIONS
from studio.gui.qt_state import StudioState, settings

NAME_ROLE = Qt.ItemDataRole.UserRole


class RecipeList(QListWidget):
    """Checkable recipes; unavailable ones are disabled (greyed) with the reason as tooltip."""

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = state
        self.refresh(self._saved_selection())

    @staticmethod
    def _saved_selection() -> set[str] | None:
        value = settings().value("selected_recipes")
        if value is None:
            return None
        return {value} if isinstance(value, str) else set(value)

    def refresh(self, checked: set[str] | None = None) -> None:
        if checked is None:
            checked = {"torch-int8-dynamic", "ort-int8-dynamic", "ort-int8-static-minmax", "ort-fp16"}
        self.clear()
        for recipe in self.studio.recipes:
            availability = self.studio.availability(recipe)
            item = QListWidgetItem(recipe.name)
            item.setData(NAME_ROLE, recipe.name)
            if availability.available:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                item.setCheckState(
                    Qt.CheckState.Checked if recipe.name in checked else Qt.CheckState.Unchecked
                )
                item.setToolTip(
                    f"{recipe.title}\n{availability.notice}" if availability.notice else recipe.title
                )
                if availability.notice:
                    item.setForeground(QColor("#9a6700"))
            else:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                item.setToolTip(f"{recipe.title}\nNot available: {availability.reason}")
            self.addItem(item)

    def checked(self) -> list[Recipe]:
        names = {
            self.item(i).data(NAME_ROLE)
            for i in range(self.count())
            if self.item(i).checkState() == Qt.CheckState.Checked
            and self.item(i).flags() & Qt.ItemFlag.ItemIsEnabled
        }
        return [r for r in self.studio.recipes if r.name in names]

    def save_selection(self) -> None:
        settings().setValue("selected_recipes", [r.name for r in self.checked()])


class RecipeForm(QGroupBox):
    """Edits one recipe; every change is validated by the same pydantic model the CLI uses."""

    validityChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Edit recipe", parent)
        self.name = QLineEdit()
        self.description = QLineEdit()
        self.backend = QComboBox()
        self.backend.addItems(sorted(REGISTRY))
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.calibration = QComboBox()
        self.calibration.addItems(["(none)", *CALIBRATION_METHODS])
        self.samples = _spin(1, 100_000, 128)
        self.per_channel = QCheckBox("per-channel weights")
        self.optimize_graph = QCheckBox("fuse graph before quantizing")
        self.exclude_ops = QLineEdit()
        self.exclude_ops.setPlaceholderText("e.g. Gather, LayerNormalization")
        self.threads = _spin(0, 1024, 0)
        self.batch_size = _spin(1, 4096, 1)
        self.seq_len = _spin(8, 8192, 128)
        self.message = QLabel()
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        for label, widget in (
            ("Name", self.name),
            ("Description", self.description),
            ("Backend", self.backend),
            ("Precision", self.precision),
            ("Mode", self.mode),
            ("Device", self.device),
            ("Calibration", self.calibration),
            ("Samples", self.samples),
            ("", self.per_channel),
            ("", self.optimize_graph),
            ("Exclude ops", self.exclude_ops),
            ("Threads (0 = default)", self.threads),
            ("Batch size", self.batch_size),
            ("Sequence length", self.seq_len),
        ):
            form.addRow(label, widget)
        form.addRow(self.message)
        for widget in (self.name, self.description, self.exclude_ops):
            widget.textChanged.connect(self.validate)
        for combo in (self.backend, self.precision, self.mode, self.device, self.calibration):
            combo.currentTextChanged.connect(self.validate)
        for spin in (self.samples, self.threads, self.batch_size, self.seq_len):
            spin.valueChanged.connect(self.validate)
        for box in (self.per_channel, self.optimize_graph):
            box.toggled.connect(self.validate)
        self.recipe: Recipe | None = None

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name.text().strip(),
            "description": self.description.text().strip(),
            "backend": self.backend.currentText(),
            "precision": self.precision.currentText(),
            "mode": self.mode.currentText(),
            "device": self.device.currentText(),
            "per_channel": self.per_channel.isChecked(),
            "optimize_graph": self.optimize_graph.isChecked(),
            "exclude_ops": [op.strip() for op in self.exclude_ops.text().split(",") if op.strip()],
            "threads": self.threads.value(),
            "batch_size": self.batch_size.value(),
            "seq_len": self.seq_len.value(),
        }
        if self.calibration.currentText() != "(none)":
            data["calibration"] = {"method": self.calibration.currentText(), "samples": self.samples.value()}
        return data

    def validate(self) -> bool:
        try:
            self.recipe = parse_recipe(self.data(), "in the form")
        except StudioError as error:
            self.recipe = None
            self.message.setText(f"<span style='color:#b3261e'>{error}</span>")
            self.validityChanged.emit(False)
            return False
        self.message.setText("<span style='color:#1a7f37'>valid recipe</span>")
        self.validityChanged.emit(True)
        return True

    def show_recipe(self, recipe: Recipe) -> None:
        widgets = (
            self.name,
            self.description,
            self.backend,
            self.precision,
            self.mode,
            self.device,
            self.calibration,
            self.samples,
            self.per_channel,
            self.optimize_graph,
            self.exclude_ops,
            self.threads,
            self.batch_size,
            self.seq_len,
        )
        for widget in widgets:
            widget.blockSignals(True)
        self.name.setText(recipe.name)
        self.description.setText(recipe.description)
        self.backend.setCurrentText(recipe.backend)
        self.precision.setCurrentText(recipe.precision)
        self.mode.setCurrentText(recipe.mode)
        self.device.setCurrentText(recipe.device)
        self.calibration.setCurrentText(recipe.calibration.method if recipe.calibration else "(none)")
        self.samples.setValue(recipe.calibration.samples if recipe.calibration else 128)
        self.per_channel.setChecked(recipe.per_channel)
        self.optimize_graph.setChecked(recipe.optimize_graph)
        self.exclude_ops.setText(", ".join(recipe.exclude_ops))
        self.threads.setValue(recipe.threads)
        self.batch_size.setValue(recipe.batch_size)
        self.seq_len.setValue(recipe.seq_len)
        for widget in widgets:
            widget.blockSignals(False)
        self.validate()


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


class RecipesPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.list = RecipeList(state)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.form = RecipeForm()
        self.save_button = QPushButton("Save as TOML…")
        self.load_button = QPushButton("Load TOML…")
        self.add_button = QPushButton("Add to list")
        buttons = QHBoxLayout()
        for button in (self.add_button, self.save_button, self.load_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Recipes (greyed: this machine cannot run them; hover for why)"))
        layout.addWidget(self.list, 3)
        layout.addWidget(self.detail)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        layout.addWidget(scroll, 2)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(self._selected)
        self.list.itemChanged.connect(lambda _: self.list.save_selection())
        self.form.validityChanged.connect(self.save_button.setEnabled)
        self.form.validityChanged.connect(self.add_button.setEnabled)
        self.save_button.clicked.connect(self.save)
        self.load_button.clicked.connect(self.load)
        self.add_button.clicked.connect(self.add)
        state.recipesChanged.connect(lambda: self.list.refresh({r.name for r in self.list.checked()}))
        if self.list.count():
            self.list.setCurrentRow(0)

    def _selected(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        recipe = next(r for r in self.state.recipes if r.name == item.data(NAME_ROLE))
        availability = self.state.availability(recipe)
        status = (
            f"<b>Not available:</b> {availability.reason}"
            if not availability.available
            else availability.notice or "Available on this machine."
        )
        self.detail.setText(f"<b>{recipe.name}</b>: {recipe.title}<br>{status}")
        self.form.show_recipe(recipe)

    def save(self) -> None:
        if not self.form.validate() or self.form.recipe is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save recipe", f"{self.form.recipe.name}.toml", "Recipes (*.toml)"
        )
        if path:
            Path(path).write_text(self.form.recipe.to_toml())
            self.add()

    def load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load recipe", filter="Recipes (*.toml)")
        if path:
            self.load_file(Path(path))

    def load_file(self, path: Path) -> None:
        try:
            recipe = load_recipe_file(path)
        except (StudioError, tomllib.TOMLDecodeError) as error:
            self.state.error.emit(f"Cannot load recipe: {error}", "")
            return
        self.state.add_recipe(recipe)
        self.form.show_recipe(recipe)

    def add(self) -> None:
        if self.form.validate() and self.form.recipe is not None:
            checked = {r.name for r in self.list.checked()} | {self.form.recipe.name}
            self.state.add_recipe(self.form.recipe)
            self.list.refresh(checked)


__all__ = ["RecipeForm", "RecipeList", "RecipesPanel"]
