"""How long the studio's event loop stalls while a run executes (goal: never more than 50 ms).

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_responsiveness.py [--model demo] [--recipes a,b]

A probe timer fires every 5 ms on the GUI thread; the gaps between its ticks, minus 5 ms, are how long
the loop was busy elsewhere. The window runs the recipes through the engine as a user would (Ctrl+R).
Writes benchmarks/results/gui_responsiveness.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--recipes", default="ort-int8-dynamic,ort-fp16")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "gui_responsiveness.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["QSTUDIO_HOME"] = tempfile.mkdtemp(prefix="qstudio-gui-bench-")
    import numpy as np
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication
    from readme_section import write_section

    from studio.gui.app import create_window

    app = QApplication(sys.argv[:1])
    started = time.perf_counter()
    window = create_window(args.model)
    window.show()
    ticks: list[float] = []
    phase: dict[str, Any] = {"running": False, "ready_s": None, "samples": 0}
    wanted = set(args.recipes.split(","))

    def tick() -> None:
        if phase["running"]:
            ticks.append(time.perf_counter())

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(5)
    probe.timeout.connect(tick)
    probe.start()

    def start() -> None:
        phase["ready_s"] = time.perf_counter() - started
        recipes = window.recipes_panel.list
        for i in range(recipes.count()):
            item = recipes.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                item.setCheckState(
                    Qt.CheckState.Checked if item.text() in wanted else Qt.CheckState.Unchecked
                )
        phase["running"] = True
        window.run_action.trigger()

    def finished(_run: object) -> None:
        phase["running"] = False
        QTimer.singleShot(100, app.quit)

    def count(event: object) -> None:
        if getattr(event, "kind", "") == "sample":
            phase["samples"] += 1

    window.state.modelChanged.connect(lambda _: QTimer.singleShot(0, start))
    window.controller.finished.connect(finished)
    window.controller.runEvent.connect(count)
    app.exec()
    gaps = (np.diff(np.array(ticks)) * 1000) - 5.0
    result = {
        "model": args.model,
        "recipes": sorted(wanted),
        "window_ready_s": round(phase["ready_s"] or -1, 2),
        "run_seconds": round(ticks[-1] - ticks[0], 1) if ticks else 0,
        "probe_ticks": len(ticks),
        "live_samples": phase["samples"],
        "max_stall_ms": round(float(gaps.max()), 1),
        "p99_stall_ms": round(float(np.percentile(gaps, 99)), 1),
        "stalls_over_50ms": int((gaps > 50).sum()),
        "platform": os.environ["QT_QPA_PLATFORM"],
    }
    args.out.write_text(json.dumps(result, indent=1))
    table = (
        f"Window ready (demo model open) {result['window_ready_s']} s after start; during a {result['run_seconds']} s run of "
        f"{', '.join(result['recipes'])} with {result['live_samples']} live samples charted: longest event-loop stall "
        f"**{result['max_stall_ms']} ms**, p99 {result['p99_stall_ms']} ms, {result['stalls_over_50ms']} stalls over 50 ms "
        f"({result['probe_ticks']} probe ticks, {result['platform']})."
    )
    write_section("gui-table", table)
    print(table)
    return 0 if result["stalls_over_50ms"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
