"""Show a tune's folder in the real window's Tune tab (the "Open a tune…" action) and save a screenshot:
how a tune run from the command line (e.g. a long causal-LM tune) is looked at in the studio.

    python -m tests.gui.capture_tune_folder TUNE_DIR OUT.png

Run under a display (Xvfb). Opens the window on the tune's model (its request.json), so the Tune tab
speaks that model's kind, then opens the folder. Exits non-zero if the folder shows no trial.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


def main() -> int:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    from studio.gui.app import create_window

    model = json.loads((folder / "request.json").read_text(encoding="utf-8"))["model"]
    app = QApplication(sys.argv[:1])
    window = create_window(model)
    window.resize(1600, 1000)
    window.show()
    shown: list[int] = []

    def show() -> None:
        window.tabs.setCurrentWidget(window.tune)
        window.tune.choose_folder = lambda: str(folder)  # the folder dialog, answered
        window.tune.open_button.click()
        shown.append(window.tune.table.rowCount())
        QTimer.singleShot(1500, grab)  # the chart's delayed redraws first

    def grab() -> None:
        window.grab().save(str(out))
        print(f"saved {out}: {shown[0]} trials; {window.tune.status.text()}", flush=True)
        app.quit()

    window.state.modelChanged.connect(lambda _: QTimer.singleShot(500, show))
    QTimer.singleShot(300_000, app.quit)
    app.exec()
    return 0 if shown and shown[0] else 1


if __name__ == "__main__":
    sys.exit(main())
