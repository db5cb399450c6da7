"""`qstudio`: everything the studio does, headless.

Bad input ends with one line naming the problem and the remedy and exit status 2; `--debug` shows the
traceback. Progress goes to stderr so `--json -` output stays clean.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from studio.cli.run import EXIT_CANCELLED, EXIT_OK, EXIT_USAGE, add_measure_options
from studio.core.errors import StudioError


def cmd_probe(args: argparse.Namespace) -> int:
    from studio.cli.render import show_hardware, show_matrix, wide_console
    from studio.core.capability import capability_matrix
    from studio.core.hardware import probe
    from studio.core.recipe import builtin_recipes

    hardware = probe()
    recipes = builtin_recipes()
    matrix = capability_matrix(recipes, hardware)
    if args.json:
        payload = {
            "hardware": hardware.model_dump(mode="json"),
            "recipes": [
                {
                    "recipe": a.recipe,
                    "available": a.available,
                    "reason": a.reason,
                    "precision": a.precision,
                    "notice": a.notice,
                }
                for a in matrix
            ],
        }
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    console = wide_console()
    show_hardware(console, hardware)
    show_matrix(console, recipes, matrix)
    return EXIT_OK


def cmd_recipes(args: argparse.Namespace) -> int:
    from studio.cli.render import show_matrix, wide_console
    from studio.core.capability import capability_matrix
    from studio.core.hardware import probe
    from studio.core.recipe import builtin_recipes

    recipes = builtin_recipes()
    matrix = capability_matrix(recipes, probe())
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **r.model_dump(mode="json"),
                        "available": a.available,
                        "reason": a.reason,
                        "notice": a.notice,
                    }
                    for r, a in zip(recipes, matrix, strict=True)
                ],
                indent=2,
            )
        )
        return EXIT_OK
    show_matrix(wide_console(), recipes, matrix)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from studio.cli.render import show_model, wide_console
    from studio.core.model import open_model

    info = open_model(args.model).info
    if args.json:
        print(info.model_dump_json(indent=2))
    else:
        show_model(wide_console(), info)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from studio.cli.export import add_commands as add_export_commands
    from studio.cli.history import cmd_cache, cmd_history, cmd_report, cmd_show
    from studio.cli.run import cmd_rerun, cmd_run
    from studio.cli.sensitivity import add_sensitivity_command
    from studio.cli.sweep import add_sweep_command
    from studio.cli.tune import add_tune_command

    parser = argparse.ArgumentParser(
        prog="qstudio", description="Quantize a model with several recipes and compare them against FP32."
    )
    parser.add_argument(
        "--version", action="store_true", help="version, runtimes it carries, where data lives"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command")

    probe = commands.add_parser("probe", help="GPUs, CPU, runtimes and which recipes this machine can run")
    probe.add_argument("--json", action="store_true", help="machine-readable output")
    probe.set_defaults(func=cmd_probe)

    recipes = commands.add_parser("recipes", help="the built-in recipes and whether they run here")
    recipes.add_argument("--json", action="store_true")
    recipes.set_defaults(func=cmd_recipes)

    info = commands.add_parser("info", help="a model's card: architecture, parameters, labels, size")
    info.add_argument(
        "model",
        nargs="?",
        default="demo",
        help="'demo', 'demo-llm', a Hugging Face folder, an .onnx or a .gguf file",
    )
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    run = commands.add_parser("run", help="quantize with recipes and compare them against FP32")
    run.add_argument(
        "--model",
        default="demo",
        help="'demo' (default), 'demo-llm', a Hugging Face folder, an .onnx or a .gguf file",
    )
    run.add_argument(
        "--recipe",
        action="append",
        metavar="NAME|FILE",
        help="repeat for several; default: all that run here",
    )
    run.add_argument(
        "--eval",
        metavar="FILE",
        help="labelled texts (.csv/.jsonl); for a causal LM a .txt of passages (blank-line separated) or a "
        "text column; default: the demo's evaluation set",
    )
    run.add_argument("--text-column", default="text")
    run.add_argument(
        "--pair-column",
        metavar="NAME",
        help="a second text per input, for text-pair models (NLI hypothesis, cross-encoder passage)",
    )
    run.add_argument("--label-column", default="label", help="'' for none: fidelity to FP32 only")
    run.add_argument(
        "--calibration", metavar="FILE", help="texts for static calibration; default: held out from --eval"
    )
    run.add_argument("--limit", type=int, default=0, help="evaluate only the first N inputs")
    run.add_argument(
        "--threshold", type=float, default=0.90, help="flag top-1 agreement with FP32 below this (0.90)"
    )
    run.add_argument("--top-k", type=int, default=5)
    add_measure_options(run)
    rerun = commands.add_parser("rerun", help="repeat a recorded run (same model, recipes, data, settings)")
    rerun.add_argument("run", type=int)
    for command in (run, rerun):
        command.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
        command.add_argument(
            "--samples", type=int, default=4, help="inputs whose top-k are shown side by side"
        )
        command.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
    rerun.set_defaults(func=cmd_rerun)

    history = commands.add_parser("history", help="recorded runs, newest first")
    history.add_argument("--limit", type=int, default=50)
    history.set_defaults(func=cmd_history)

    show = commands.add_parser("show", help="a recorded run's table and top-k")
    show.add_argument("run", type=int)
    show.add_argument("--samples", type=int, default=4)
    show.set_defaults(func=cmd_show)

    report = commands.add_parser("report", help="export a recorded run as HTML, CSV or JSON")
    report.add_argument("run", type=int)
    report.add_argument("--format", choices=("html", "csv", "json"), default="html")
    report.add_argument("--out", metavar="FILE", help="default: qstudio-run-RUN.FORMAT")
    report.set_defaults(func=cmd_report)

    gui = commands.add_parser("gui", help="open the studio window (also what `qstudio` alone does)")
    gui.add_argument("model", nargs="?", help="a model to open instead of the last one (or the demo)")
    gui.add_argument("--screenshot", metavar="PNG", help="save the window once the model is open, then quit")

    add_export_commands(commands)
    add_sensitivity_command(commands)
    add_tune_command(commands)
    add_sweep_command(commands)

    cache = commands.add_parser("cache", help="list or clear the quantized-artifact cache")
    cache.add_argument("action", choices=("list", "clear"), nargs="?", default="list")
    cache.set_defaults(func=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio.core.quiet import quiet_torch_imports

    quiet_torch_imports()
    if args.version:
        from studio.core.about import about_lines

        print("\n".join(about_lines()))
        return EXIT_OK
    if args.command in (None, "gui"):
        from studio.gui.app import main as gui_main

        extra = ["--screenshot", args.screenshot] if getattr(args, "screenshot", None) else []
        return gui_main([sys.argv[0], *([args.model] if getattr(args, "model", None) else []), *extra])
    try:
        code: int = args.func(args)
        return code
    except StudioError as error:
        if args.debug:
            raise
        print(f"qstudio: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("qstudio: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
