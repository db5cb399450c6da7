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
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.catalogue import REGISTRY
from studio.core.compare import reference_recipe
from studio.core.errors import StudioError
from studio.core.recipe import Recipe, load_recipe_file, parse_recipe
from studio.core.types import CALIBRATION_METHODS, DEVICES, MODES, PRECISIONS
from studio.gui.qt_state import StudioState, settings

NAME_ROLE = Qt.ItemDataRole.UserRole
REFERENCE_ROLE = "(reference)"
DEFAULT_SELECTION = {
    "torch-int8-dynamic",
    "ort-int8-dynamic",
    "ort-int8-static-minmax",
    "ort-fp16",
    "llm-ort-int4",
    "llm-ort-int8-dynamic",
    "llm-torchao-int8-weight-only",
}


class RecipeList(QListWidget):
    """Checkable recipes; unavailable ones are disabled (greyed) with the reason as tooltip."""

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = state
        self.refresh(self._saved_selection())
        self.itemChanged.connect(self.keep_reference_ticked)

    @staticmethod
    def _saved_selection() -> set[str] | None:
        value = settings().value("selected_recipes")
        if value is None:
            return None
        return {value} if isinstance(value, str) else set(value)

    def refresh(self, checked: set[str] | None = None) -> None:
        """List the recipes: the reference first (always runs), then those for this model's kind, then the
        rest greyed with the reason; a recipe this machine cannot run is greyed with its reason too."""
        if checked is None:
            checked = DEFAULT_SELECTION
        self.clear()
        model = self.studio.model
        reference = reference_recipe(model) if model is not None else None
        if reference is not None:
            item = QListWidgetItem(f"{reference.name}  (FP32 reference: always runs first)")
            item.setData(NAME_ROLE, REFERENCE_ROLE)
            # Enabled so that it reads as part of the run; a click that unticks it is undone (see below).
            item.setFlags(
                Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
            )
            item.setCheckState(Qt.CheckState.Checked)
            item.setToolTip(
                f"{reference.title}\nEvery run starts with the reference; every figure is measured against it."
            )
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            self.addItem(item)
        suits = [r for r in self.studio.recipes if model is None or r.suits(model.task)]
        others = [r for r in self.studio.recipes if r not in suits]
        for recipe in suits + others:
            if reference is not None and recipe.name == reference.name:
                continue
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

    def keep_reference_ticked(self, item: QListWidgetItem) -> None:
        if item.data(NAME_ROLE) == REFERENCE_ROLE and item.checkState() != Qt.CheckState.Checked:
            item.setCheckState(Qt.CheckState.Checked)

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
    """Edits one recipe; every change is validated by the same pydantic model the CLI uses.

    Two columns of fields, so the whole recipe fits the dock without scrolling; fields the form does not
    show (the model kinds it is for, bitsandbytes' knobs) are kept from the recipe last shown."""

    validityChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
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
        self.block_size = QComboBox()
        self.block_size.addItems(["16", "32", "64", "128", "256"])
        self.accuracy_level = QComboBox()
        self.accuracy_level.addItems(["default", "0", "1", "2", "3", "4"])
        self.accuracy_level.setToolTip("INT4 MatMulNBits compute type: 4 = INT8 (fast on CPU)")
        self.algorithm = QComboBox()
        self.algorithm.addItems(["rtn", "hqq"])
        self.algorithm.setToolTip(
            "INT4: round-to-nearest per block, or HQQ (float zero points; accurate, slower)"
        )
        self.per_channel = QCheckBox("per-channel")
        self.optimize_graph = QCheckBox("fuse graph")
        self.symmetric = QCheckBox("symmetric")
        self.quantize_lm_head = QCheckBox("quantize lm_head")
        self.exclude_ops = QLineEdit()
        self.exclude_ops.setPlaceholderText("e.g. Gather, LayerNormalization")
        self.exclude_nodes = QLineEdit()
        self.exclude_nodes.setPlaceholderText("node names, comma-separated")
        self.threads = _spin(0, 1024, 0)
        self.batch_size = _spin(1, 4096, 1)
        self.seq_len = _spin(8, 8192, 128)
        self.message = QLabel()
        self.message.setWordWrap(True)
        grid = QGridLayout(self)
        grid.setVerticalSpacing(3)
        wide = (("Name", self.name), ("Description", self.description))
        for row, (label, line) in enumerate(wide):
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(line, row, 1, 1, 3)
        pairs = (
            ("Backend", self.backend),
            ("Precision", self.precision),
            ("Mode", self.mode),
            ("Device", self.device),
            ("Calibration", self.calibration),
            ("Samples", self.samples),
            ("Block size", self.block_size),
            ("Accuracy lvl", self.accuracy_level),
            ("Threads (0=auto)", self.threads),
            ("Batch size", self.batch_size),
            ("Seq length", self.seq_len),
            ("INT4 algorithm", self.algorithm),
        )
        for index, (label, field) in enumerate(pairs):
            row, column = len(wide) + index // 2, (index % 2) * 2
            grid.addWidget(QLabel(label), row, column)
            grid.addWidget(field, row, column + 1)
        row = len(wide) + (len(pairs) + 1) // 2
        boxes = QHBoxLayout()
        for box in (self.per_channel, self.optimize_graph, self.symmetric, self.quantize_lm_head):
            boxes.addWidget(box)
        grid.addLayout(boxes, row, 0, 1, 4)
        grid.addWidget(QLabel("Exclude ops"), row + 1, 0)
        grid.addWidget(self.exclude_ops, row + 1, 1, 1, 3)
        grid.addWidget(QLabel("Exclude nodes"), row + 2, 0)
        grid.addWidget(self.exclude_nodes, row + 2, 1, 1, 3)
        grid.addWidget(self.message, row + 3, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.widgets: tuple[QWidget, ...] = (
            *(w for _, w in wide),
            *(w for _, w in pairs),
            self.per_channel,
            self.optimize_graph,
            self.symmetric,
            self.quantize_lm_head,
            self.exclude_ops,
            self.exclude_nodes,
        )
        for each in self.widgets:
            if isinstance(each, QLineEdit):
                each.textChanged.connect(self.validate)
            elif isinstance(each, QComboBox):
                each.currentTextChanged.connect(self.validate)
            elif isinstance(each, QSpinBox):
                each.valueChanged.connect(self.validate)
            elif isinstance(each, QCheckBox):
                each.toggled.connect(self.validate)
        self.recipe: Recipe | None = None
        self.kept: dict[str, Any] = {}

    def data(self) -> dict[str, Any]:
        level = self.accuracy_level.currentText()
        data: dict[str, Any] = {
            **self.kept,
            "name": self.name.text().strip(),
            "description": self.description.text().strip(),
            "backend": self.backend.currentText(),
            "precision": self.precision.currentText(),
            "mode": self.mode.currentText(),
            "device": self.device.currentText(),
            "per_channel": self.per_channel.isChecked(),
            "optimize_graph": self.optimize_graph.isChecked(),
            "symmetric": self.symmetric.isChecked(),
            "quantize_lm_head": self.quantize_lm_head.isChecked(),
            "block_size": int(self.block_size.currentText()),
            "accuracy_level": None if level == "default" else int(level),
            "algorithm": self.algorithm.currentText(),
            "exclude_ops": _names(self.exclude_ops.text()),
            "exclude_nodes": _names(self.exclude_nodes.text()),
            "threads": self.threads.value(),
            "batch_size": self.batch_size.value(),
            "seq_len": self.seq_len.value(),
        }
        data.pop("calibration", None)
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
        for widget in self.widgets:
            widget.blockSignals(True)
        self.kept = recipe.model_dump(mode="json", include={"tasks", "double_quant", "compute_dtype"})
        self.name.setText(recipe.name)
        self.description.setText(recipe.description)
        self.backend.setCurrentText(recipe.backend)
        self.precision.setCurrentText(recipe.precision)
        self.mode.setCurrentText(recipe.mode)
        self.device.setCurrentText(recipe.device)
        self.calibration.setCurrentText(recipe.calibration.method if recipe.calibration else "(none)")
        self.samples.setValue(recipe.calibration.samples if recipe.calibration else 128)
        self.block_size.setCurrentText(str(recipe.block_size))
        self.accuracy_level.setCurrentText(
            "default" if recipe.accuracy_level is None else str(recipe.accuracy_level)
        )
        self.algorithm.setCurrentText(recipe.algorithm)
        self.per_channel.setChecked(recipe.per_channel)
        self.optimize_graph.setChecked(recipe.optimize_graph)
        self.symmetric.setChecked(recipe.symmetric)
        self.quantize_lm_head.setChecked(recipe.quantize_lm_head)
        self.exclude_ops.setText(", ".join(recipe.exclude_ops))
        self.exclude_nodes.setText(", ".join(recipe.exclude_nodes))
        self.threads.setValue(recipe.threads)
        self.batch_size.setValue(recipe.batch_size)
        self.seq_len.setValue(recipe.seq_len)
        for widget in self.widgets:
            widget.blockSignals(False)
        self.validate()


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


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
        # The list and the form each get the dock's whole height: side by side in one column, the form
        # showed three fields at 1600x1000.
        chooser = QWidget()
        chooser_layout = QVBoxLayout(chooser)
        chooser_layout.setContentsMargins(0, 4, 0, 0)
        chooser_layout.addWidget(QLabel("Greyed: not for this model or this machine (hover for why)"))
        chooser_layout.addWidget(self.list, 1)
        chooser_layout.addWidget(self.detail)
        editor = QWidget()
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(0, 4, 0, 0)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        editor_layout.addWidget(scroll, 1)
        editor_layout.addLayout(buttons)
        self.tabs = QTabWidget()
        self.tabs.addTab(chooser, "Choose")
        self.tabs.addTab(editor, "Edit recipe")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tabs)
        self.list.currentItemChanged.connect(self._selected)
        self.list.itemChanged.connect(lambda _: self.list.save_selection())
        self.form.validityChanged.connect(self.save_button.setEnabled)
        self.form.validityChanged.connect(self.add_button.setEnabled)
        self.save_button.clicked.connect(self.save)
        self.load_button.clicked.connect(self.load)
        self.add_button.clicked.connect(self.add)
        state.recipesChanged.connect(lambda: self.list.refresh({r.name for r in self.list.checked()}))
        state.modelChanged.connect(self._model_changed)
        if self.list.count():
            self.list.setCurrentRow(0)

    def _model_changed(self, _: object) -> None:
        self.list.refresh(self._kept_selection())
        self.list.setCurrentRow(0)  # the reference: the detail below must describe this model's list

    def _kept_selection(self) -> set[str]:
        """The selection to keep when another model opens; the defaults where none of its kind is chosen."""
        chosen = (self.list._saved_selection() or set()) | {r.name for r in self.list.checked()}
        model = self.state.model
        if model is not None and not any(
            r.suits(model.task) and r.name in chosen for r in self.state.recipes
        ):
            chosen |= DEFAULT_SELECTION
        return chosen

    def _selected(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        if item.data(NAME_ROLE) == REFERENCE_ROLE and self.state.model is not None:
            recipe = reference_recipe(self.state.model)
            self.detail.setText(
                f"<b>{recipe.name}</b>: {recipe.title}<br>The reference runs first in every run; speed-ups, "
                "agreement, KL and ΔPPL are measured against it."
            )
            self.form.show_recipe(recipe)
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
