"""The studio window: PySide6 and pyqtgraph over the Qt-free core. No quantization logic lives here."""
