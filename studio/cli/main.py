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
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

import studio
from studio.core.errors import StudioError

if TYPE_CHECKING:
    from studio.core.dataset import TextSet
    from studio.core.results import RunResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def _console() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def cmd_probe(args: argparse.Namespace) -> int:
    from studio.cli.render import show_hardware, show_matrix
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
    console = _console()
    show_hardware(console, hardware)
    show_matrix(console, recipes, matrix)
    return EXIT_OK


def cmd_recipes(args: argparse.Namespace) -> int:
    from studio.cli.render import show_matrix
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
    show_matrix(_console(), recipes, matrix)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from studio.cli.render import show_model
    from studio.core.model import open_model

    info = open_model(args.model).info
    if args.json:
        print(info.model_dump_json(indent=2))
    else:
        show_model(_console(), info)
    return EXIT_OK


def _load_data(args: argparse.Namespace, model_ref: str, console: Console) -> tuple[TextSet, TextSet]:
    from studio.core import demo
    from studio.core.dataset import load_texts, split_for_calibration

    label_column = args.label_column
    if args.eval:
        data = load_texts(args.eval, args.text_column, label_column)
    else:
        if model_ref != "demo":
            console.print(
                "[yellow]no --eval file: measuring fidelity to FP32 on the demo's texts, without task accuracy[/yellow]",
                highlight=False,
            )
            label_column = None
        data = load_texts(demo.eval_file(), "text", label_column)
    if args.limit:
        data = data.subset(list(range(min(args.limit, len(data)))), data.source)
    if args.calibration:
        calibration = load_texts(args.calibration, args.text_column, None)
    elif not args.eval:
        calibration = load_texts(demo.calibration_file(), "text", None)
    else:
        data, calibration = split_for_calibration(data)
        console.print(
            f"[dim]no --calibration file: {len(calibration)} texts of the evaluation file are held out for it[/dim]"
        )
    return data, calibration


def _sample_inputs(run: RunResult, count: int) -> list[int]:
    """A few inputs to show side by side: those where a backend disagrees with FP32 first."""
    reference = run.reference
    if reference is None or not reference.topk or count <= 0:
        return []
    disagreeing = [
        i
        for i in range(len(run.inputs))
        if any(r.ok and r.topk and r.topk[i][0][0] != reference.topk[i][0][0] for r in run.results)
    ]
    chosen = disagreeing[: max(1, count // 2)]
    for i in range(len(run.inputs)):
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def cmd_run(args: argparse.Namespace) -> int:
    from studio.cli.render import show_results, show_topk
    from studio.core.cache import ArtifactCache
    from studio.core.capability import assess
    from studio.core.compare import RunSettings, compare
    from studio.core.events import Event
    from studio.core.hardware import probe
    from studio.core.measure import TimingPlan
    from studio.core.model import open_model
    from studio.core.paths import cache_dir
    from studio.core.recipe import builtin_recipes, resolve_recipe

    console = _console()
    err = Console(stderr=True, highlight=False)
    model = open_model(args.model)
    hardware = probe()
    if args.recipe:
        recipes = [resolve_recipe(ref) for ref in args.recipe]
    else:  # by default every built-in recipe this machine can run
        recipes = [r for r in builtin_recipes() if assess(r, hardware).available]
    names = [r.name for r in recipes]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise StudioError(
            f"recipe name(s) given twice: {', '.join(sorted(duplicates))}", "give each recipe once"
        )
    data, calibration = _load_data(args, args.model, err)
    settings = RunSettings(
        agreement_threshold=args.threshold,
        top_k=args.top_k,
        timing=TimingPlan(warmup=args.warmup, min_iterations=args.iterations, min_seconds=args.seconds),
    )
    cancel = threading.Event()
    outcome: dict[str, RunResult] = {}
    failure: list[BaseException] = []
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=not err.is_terminal,
        disable=args.quiet,
    )
    tasks: dict[str, TaskID] = {}

    def listen(event: Event) -> None:
        if event.kind in ("stage", "progress") and event.recipe:
            if event.recipe not in tasks:
                tasks[event.recipe] = progress.add_task(event.recipe, total=None)
            description = f"{event.recipe}: {event.stage}"
            progress.update(
                tasks[event.recipe],
                description=description[:34],
                completed=event.done,
                total=event.total or None,
            )
        elif event.kind == "result" and event.recipe in tasks:
            progress.update(
                tasks[event.recipe], description=f"{event.recipe}: done"[:34], completed=1, total=1
            )
        elif event.kind in ("warning", "error"):
            progress.console.print(f"[yellow]{event.message}[/yellow]")

    def work() -> None:
        try:
            outcome["run"] = compare(
                model,
                recipes,
                data,
                calibration,
                hardware,
                ArtifactCache(cache_dir() / "artifacts"),
                settings,
                listen,
                cancel,
            )
        except BaseException as error:  # handed to the main thread
            failure.append(error)

    worker = threading.Thread(target=work, name="qstudio-run")
    with progress:
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:
            cancel.set()
            err.print("[yellow]cancelling: finishing the current step ...[/yellow]")
            worker.join()
    if failure:
        raise failure[0]
    run = outcome["run"]
    if args.json:
        text = run.model_dump_json(indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
            err.print(f"results written to {args.json}")
    if args.json != "-":
        show_results(console, run)
        show_topk(console, run, _sample_inputs(run, args.samples))
    statuses = [r.status for r in run.results]
    if "cancelled" in statuses:
        return EXIT_CANCELLED
    unavailable = [r for r in run.results if r.status == "unavailable"]
    for r in unavailable:
        err.print(f"qstudio: recipe {r.recipe} is not available here: {r.reason}")
    if unavailable:
        return EXIT_USAGE
    return EXIT_FAILED if "failed" in statuses else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qstudio", description="Quantize a model with several recipes and compare them."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {studio.__version__}")
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
        "model", nargs="?", default="demo", help="'demo', a Hugging Face folder or an .onnx file"
    )
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    run = commands.add_parser("run", help="quantize with recipes and compare them against FP32")
    run.add_argument(
        "--model", default="demo", help="'demo' (default), a Hugging Face folder or an .onnx file"
    )
    run.add_argument(
        "--recipe",
        action="append",
        metavar="NAME|FILE",
        help="repeat for several; default: all that run here",
    )
    run.add_argument(
        "--eval", metavar="FILE", help="labelled texts (.csv/.jsonl); default: the demo's evaluation set"
    )
    run.add_argument("--text-column", default="text")
    run.add_argument("--label-column", default="label")
    run.add_argument(
        "--calibration", metavar="FILE", help="texts for static calibration; default: held out from --eval"
    )
    run.add_argument("--limit", type=int, default=0, help="evaluate only the first N inputs")
    run.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' for stdout)")
    run.add_argument(
        "--threshold", type=float, default=0.90, help="flag top-1 agreement with FP32 below this (0.90)"
    )
    run.add_argument("--top-k", type=int, default=5)
    run.add_argument("--samples", type=int, default=4, help="inputs whose top-k are shown side by side")
    run.add_argument("--warmup", type=int, default=5)
    run.add_argument("--iterations", type=int, default=20, help="minimum timed calls per recipe")
    run.add_argument("--seconds", type=float, default=2.0, help="minimum timing seconds per recipe")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio.backends.torch_runtime import quiet_torch_imports

    quiet_torch_imports()
    if args.command is None:
        parser.print_help()
        return EXIT_OK
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
