"""Drive the real window on a tiny NLI model and save screenshots: the data picker's column dialog, the
finished run, the top-k tab with both texts, and a typed pair.

    python -m tests.gui.capture_pairs OUT_DIR

Run under a display (Xvfb). Exits non-zero if a screenshot is missing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

SHOTS = ("pairs-columns.png", "pairs-finished.png", "pairs-topk.png", "pairs-typed.png")
RECIPES = {"ort-int8-dynamic", "ort-int8-static-minmax", "ort-int4-weight-only"}


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    from studio.gui.app import create_window
    from tests.fakes.tiny_nli import build_tiny_nli, nli_rows, write_pairs_csv

    scratch = tempfile.TemporaryDirectory(prefix="qstudio-capture-pairs-")
    model = build_tiny_nli(Path(scratch.name) / "tiny-nli")
    data = write_pairs_csv(Path(scratch.name) / "nli.csv", nli_rows(60, seed=7))
    app = QApplication(sys.argv[:1])
    window = create_window(str(model))
    window.resize(1600, 1000)
    window.show()
    shots: list[str] = []

    def shot(name: str, widget: object = None) -> None:
        (widget or window).grab().save(str(out / name))  # type: ignore[attr-defined]
        shots.append(name)
        print(f"saved {out / name}", flush=True)

    def pick() -> None:
        window.pick_columns(str(data))
        QTimer.singleShot(500, lambda: (shot("pairs-columns.png", window.columns_dialog), accept()))

    def accept() -> None:
        window.columns_dialog.accept()
        QTimer.singleShot(500, start)

    def start() -> None:
        recipes = window.recipes_panel.list
        for i in range(recipes.count()):
            item = recipes.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled and item.data(Qt.ItemDataRole.UserRole) != "(reference)":
                item.setCheckState(Qt.CheckState.Checked if item.text() in RECIPES else Qt.CheckState.Unchecked)
        window.start_run()

    def finished(_run: object) -> None:
        QTimer.singleShot(500, lambda: shot("pairs-finished.png"))
        QTimer.singleShot(1000, topk)

    def topk() -> None:
        window.tabs.setCurrentIndex(1)
        window.topk.inputs.selectRow(1)
        QTimer.singleShot(500, lambda: (shot("pairs-topk.png"), typed()))

    def typed() -> None:
        window.topk.typed.setText("the kite by the sea is not red")
        window.topk.typed_pair.setText("the kite is red")
        window.topk.predict_button.click()

    window.controller.finished.connect(finished)
    window.controller.predicted.connect(
        lambda _: QTimer.singleShot(500, lambda: (shot("pairs-typed.png"), app.quit()))
    )
    window.state.modelChanged.connect(lambda _: QTimer.singleShot(500, pick))
    QTimer.singleShot(600_000, app.quit)
    app.exec()
    scratch.cleanup()
    return 0 if set(SHOTS) <= set(shots) else 1


if __name__ == "__main__":
    sys.exit(main())
