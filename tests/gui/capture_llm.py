"""Drive the real window on a causal LM and save screenshots: mid-run, after the run (LLM charts), the
prompts' top-k with continuations, and the typed-prompt box.

    python -m tests.gui.capture_llm OUT_DIR [MODEL] [--recipes a,b] [--passages N] [--prompts N] [--decode-tokens N]

MODEL defaults to demo-llm. The run is kept short (a part of the evaluation passages, fewer decode
rounds) so that screenshots take minutes, not the full benchmark. Exits non-zero if a shot is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

SHOTS = ("llm-running.png", "llm-finished.png", "llm-topk.png", "llm-typed.png")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("model", nargs="?", default="demo-llm")
    parser.add_argument("--recipes", default="llm-ort-int4,llm-ort-genai-int4,llm-ort-int8-dynamic")
    parser.add_argument("--passages", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--decode-tokens", type=int, default=64, help="tokens per decode timing round (2 rounds)")
    parser.add_argument("--eval")
    parser.add_argument("--prompt-file")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.recipes.split(","))
    from studio.core.measure import TimingPlan
    from studio.core.settings import RunSettings
    from studio.gui.app import create_window

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Quantization Studio")
    window = create_window(args.model)
    window.resize(1600, 1000)
    window.show()
    shots: list[str] = []
    settings = RunSettings(
        timing=TimingPlan(warmup=2, min_iterations=5, min_seconds=1.0, rounds=0),
        decode_tokens=args.decode_tokens,
        decode_rounds=2,
        prompt_limit=args.prompts,
    )

    def shot(name: str) -> None:
        window.grab().save(str(out / name))
        shots.append(name)
        print(f"saved {out / name}", flush=True)

    def start() -> None:
        state = window.state
        if args.prompt_file:
            state.prompts_file = args.prompt_file
        if args.eval or args.prompt_file:
            state.load_data(args.eval)
        if state.data is not None and args.passages:
            state.data = state.data.subset(
                list(range(min(args.passages, len(state.data)))), state.data.source
            )
        recipes = window.recipes_panel.list
        for i in range(recipes.count()):
            item = recipes.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                item.setCheckState(
                    Qt.CheckState.Checked if item.text() in wanted else Qt.CheckState.Unchecked
                )
        window.charts.reset()
        window.controller.start(window.recipes_panel.list.checked(), settings)

    results: list[str] = []

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "result":
            results.append(event.recipe)
            if len(results) == 2:
                QTimer.singleShot(1500, lambda: shot("llm-running.png"))

    def finished(_run) -> None:  # type: ignore[no-untyped-def]
        QTimer.singleShot(800, lambda: shot("llm-finished.png"))

        def topk() -> None:
            window.tabs.setCurrentIndex(1)
            panel = window.topk
            rows = panel.disagreeing_rows() or [0]
            panel.inputs.selectRow(rows[0])
            QTimer.singleShot(600, lambda: (shot("llm-topk.png"), QTimer.singleShot(200, typed)))

        def typed() -> None:
            window.controller.predicted.connect(lambda _: QTimer.singleShot(600, done))
            window.topk.typed.setText("The three primary colors are")
            window.topk.predict_button.click()

        def done() -> None:
            shot("llm-typed.png")
            app.quit()

        QTimer.singleShot(1500, topk)

    window.controller.runEvent.connect(on_event)
    window.controller.finished.connect(finished)
    window.state.modelChanged.connect(lambda _: QTimer.singleShot(500, start))
    QTimer.singleShot(1_200_000, app.quit)  # never hang a test run
    app.exec()
    return 0 if set(SHOTS) <= set(shots) else 1


if __name__ == "__main__":
    sys.exit(main())
