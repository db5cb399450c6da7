"""Drive the real window on the demo model and save screenshots: mid-run, after the run, top-k, history,
export.

    python -m tests.gui.capture OUT_DIR [--recipes a,b]

Run under a display (Xvfb in the tests). Exits non-zero if the run does not finish.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

SHOTS = (
    "main-window-running.png",
    "main-window-finished.png",
    "topk.png",
    "history.png",
    "export-running.png",
    "export-done.png",  # the verdicts' message box, not the window
)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    wanted = (
        set(sys.argv[3].split(","))
        if len(sys.argv) > 3
        else {"ort-fp32", "ort-int8-dynamic", "ort-int8-static-minmax"}
    )
    from studio.gui.app import create_window

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Quantization Studio")
    window = create_window("demo")
    window.resize(1600, 1000)
    window.show()
    shots: list[str] = []

    def shot(name: str) -> None:
        path = out / name
        window.grab().save(str(path))
        shots.append(name)
        print(f"saved {path}", flush=True)

    def start() -> None:
        recipes = window.recipes_panel.list
        for i in range(recipes.count()):
            item = recipes.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                item.setCheckState(
                    Qt.CheckState.Checked if item.text() in wanted else Qt.CheckState.Unchecked
                )
        window.start_run()

    results: list[str] = []

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "result":
            results.append(event.recipe)
            if len(results) == 2:  # the reference and one recipe are done, the rest still run
                QTimer.singleShot(1500, lambda: shot("main-window-running.png"))

    def finished(_run) -> None:  # type: ignore[no-untyped-def]
        QTimer.singleShot(500, lambda: shot("main-window-finished.png"))

        def topk() -> None:
            window.tabs.setCurrentIndex(1)
            window.topk.only_disagreements.setChecked(True)
            QTimer.singleShot(500, lambda: (shot("topk.png"), QTimer.singleShot(200, history)))

        def history() -> None:
            window.tabs.setCurrentIndex(2)
            QTimer.singleShot(500, lambda: (shot("history.png"), QTimer.singleShot(200, export)))

        def export() -> None:  # the Export… button of a result row, into a scratch folder
            window.tabs.setCurrentIndex(0)
            window.choose_export_parent = lambda recipe: exports.name
            window.exporter.finished.connect(lambda *_: QTimer.singleShot(800, exported))
            button = window.run_panel.table.cellWidget(window.run_panel.rows["ort-int8-dynamic"], 3)
            button.click()
            QTimer.singleShot(1000, screen_shot)

        def screen_shot() -> None:  # the whole screen: the progress dialog is a window of its own
            app.primaryScreen().grabWindow(0).copy(window.frameGeometry()).save(
                str(out / "export-running.png")
            )
            shots.append("export-running.png")

        def exported() -> None:
            box = window.export_box
            if box is not None:
                box.grab().save(str(out / "export-done.png"))
                shots.append("export-done.png")
            app.quit()

        QTimer.singleShot(1200, topk)

    exports = tempfile.TemporaryDirectory(prefix="qstudio-capture-exports-")
    window.controller.runEvent.connect(on_event)
    window.controller.finished.connect(finished)
    window.state.modelChanged.connect(lambda _: QTimer.singleShot(500, start))
    QTimer.singleShot(600_000, app.quit)  # never hang a test run
    app.exec()
    exports.cleanup()
    return 0 if set(SHOTS) <= set(shots) else 1


if __name__ == "__main__":
    sys.exit(main())
