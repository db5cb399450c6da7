"""Drive the real window on the demo model: a tune from the Tune tab (15-minute budget), its best trial's
run and export, then the Sensitivity tab's ranking and its keep-the-worst-in-float run.

    python -m tests.gui.capture_tune OUT_DIR [EXPORT_DIR]

Run under a display (Xvfb); takes the tune's time (about 6 minutes here). Prints the tune's best and the
export's verdict; exits non-zero if a screenshot is missing or a step failed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

SHOTS = ("tune-running.png", "tune-finished.png", "tune-best-run.png", "tune-export.png",
         "sensitivity.png", "sensitivity-before-after.png")  # fmt: skip


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    exports = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="qstudio-capture-export-"))
    from studio.gui.app import create_window

    app = QApplication(sys.argv[:1])
    window = create_window("demo")
    window.resize(1600, 1000)
    window.show()
    shots: list[str] = []
    failures: list[str] = []

    def shot(name: str, widget: object = None) -> None:
        (widget or window).grab().save(str(out / name))  # type: ignore[attr-defined]
        shots.append(name)
        print(f"saved {out / name}", flush=True)

    def tune() -> None:
        window.tabs.setCurrentWidget(window.tune)
        window.tune.budget.setValue(15)
        window.tune.start()
        window.tune.command.finished.connect(tuned)  # type: ignore[union-attr]
        watch()

    def watch() -> None:
        if len(window.tune.payload.get("trials", [])) >= 5 and "tune-running.png" not in shots:
            shot("tune-running.png")
        elif window.tune.command is not None and window.tune.command.running:
            QTimer.singleShot(1000, watch)

    def tuned(code: int) -> None:
        if code != 0:
            failures.append(f"tune exited {code}: {window.tune.command.lines[-3:]}")  # type: ignore[union-attr]
        best = window.tune.payload.get("best") or {}
        builtin = window.tune.payload.get("best_builtin") or {}
        print(f"tune best: {best.get('recipe')} p50 {best.get('latency_ms', {}).get('p50')} meets {best.get('meets_goal')}; "
              f"best built-in: {builtin.get('recipe')} p50 {builtin.get('latency_ms', {}).get('p50')}", flush=True)  # fmt: skip
        QTimer.singleShot(800, lambda: (shot("tune-finished.png"), open_best()))

    def open_best() -> None:
        window.tune.best_button.click()
        QTimer.singleShot(800, lambda: (shot("tune-best-run.png"), export()))

    def export() -> None:
        best = window.tune.payload["best"]["recipe"]
        window.choose_export_parent = lambda _recipe: str(exports)  # the folder dialog, answered
        window.exporter.finished.connect(lambda *_: QTimer.singleShot(800, exported))
        window.exporter.failed.connect(lambda message, _: (failures.append(f"export: {message}"), sensitivity()))
        window.export_recipe(best)

    def exported() -> None:
        shot("tune-export.png", window.export_box)  # the verdicts' message box
        print(f"export: {window.status.text()}", flush=True)
        if window.export_box is not None:
            window.export_box.close()
        sensitivity()

    def sensitivity() -> None:
        panel = window.sensitivity
        window.tabs.setCurrentWidget(panel)
        panel.recipes.setCurrentText("ort-int8-static-minmax")
        panel.start()
        panel.command.finished.connect(ranked)  # type: ignore[union-attr]

    def ranked(code: int) -> None:
        if code != 0:
            failures.append(f"sensitivity exited {code}")
            app.quit()
            return
        QTimer.singleShot(800, lambda: (shot("sensitivity.png"), keep()))

    def keep() -> None:
        window.sensitivity.keep.setValue(3)
        window.controller.finished.connect(lambda run: QTimer.singleShot(1500, lambda: before_after(run)))
        window.sensitivity.keep_button.click()

    def before_after(run: object) -> None:
        shot("sensitivity-before-after.png")
        rows = [(r.recipe, r.top1_agreement, r.kl) for r in run.results]  # type: ignore[attr-defined]
        print("before/after:", json.dumps(rows), flush=True)
        app.quit()

    window.state.modelChanged.connect(lambda _: QTimer.singleShot(500, tune))
    QTimer.singleShot(2_400_000, app.quit)
    app.exec()
    missing = set(SHOTS) - set(shots)
    for problem in failures + [f"missing {m}" for m in sorted(missing)]:
        print(problem, file=sys.stderr)
    return 0 if not missing and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
