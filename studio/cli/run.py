"""`qstudio run` and `qstudio rerun`: a queue of recipes through the run engine, with a progress bar."""

from __future__ import annotations

import argparse
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from studio.cli.render import show_results, show_topk, wide_console
from studio.core.compare import RunSettings
from studio.core.dataset import TextSet
from studio.core.errors import StudioError
from studio.core.events import Event
from studio.core.measure import TimingPlan
from studio.core.model import DEMOS, PAIR_NOTE
from studio.core.recipe import Recipe
from studio.core.results import RunResult

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def load_data(request: dict[str, Any], console: Console) -> tuple[TextSet, TextSet]:
    """Evaluation and calibration texts as the request names them, saying what was assumed."""
    from studio.core.dataset import request_data

    return request_data(request, lambda text: console.print(f"[yellow]{text}[/yellow]"))


def sample_inputs(run: RunResult, count: int) -> list[int]:
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


def _progress_listener(progress: Progress) -> Any:
    tasks: dict[str, TaskID] = {}

    def listen(event: Event) -> None:
        if event.kind in ("stage", "progress") and event.recipe:
            if event.recipe not in tasks:
                tasks[event.recipe] = progress.add_task(event.recipe, total=None)
            progress.update(
                tasks[event.recipe],
                description=f"{event.recipe}: {event.stage}"[:34],
                completed=event.done,
                total=event.total or None,
            )
        elif event.kind == "result" and event.recipe in tasks:
            progress.update(
                tasks[event.recipe], description=f"{event.recipe}: done"[:34], completed=1, total=1
            )
        elif event.kind in ("warning", "error") and event.message:
            progress.console.print(f"[yellow]{event.message}[/yellow]")

    return listen


def execute(request: dict[str, Any], recipes: list[Recipe], args: argparse.Namespace) -> int:
    """Run `recipes` as `request` says, record it in the history, print and write the results."""
    from studio.core.engine import RunEngine, default_store
    from studio.core.model import open_model

    err = Console(stderr=True, highlight=False)
    model = open_model(request["model"])  # a bad model path fails before the data is read
    request.setdefault("task", model.info.task)
    names = [r.name for r in recipes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StudioError(f"recipe name(s) given twice: {', '.join(duplicates)}", "give each recipe once")
    data, calibration = load_data(request, err)
    if data.pairs is None and PAIR_NOTE in model.info.notes:
        err.print(f"[yellow]{model.info.name}: {PAIR_NOTE}[/yellow]")
    settings = RunSettings.model_validate(request["settings"])
    engine = RunEngine(store=default_store())
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=not err.is_terminal,
        disable=args.quiet,
    )

    def work() -> RunResult:
        return engine.run(
            request["model"],
            recipes,
            data,
            calibration,
            settings,
            _progress_listener(progress),
            request=request,
        )

    def cancel() -> None:
        engine.cancel()
        err.print("[yellow]cancelling ...[/yellow]")

    with progress:
        run, _ = run_cancellable(work, cancel, "qstudio-run")
    assert run is not None  # a cancelled engine run returns its cancelled results
    return report_outcome(run, args, err)


def run_cancellable(
    work: Callable[[], T], on_interrupt: Callable[[], None], name: str
) -> tuple[T | None, bool]:
    """`work()` in a thread, so that Ctrl+C reaches the main thread while it runs: then `on_interrupt()`
    (which must make `work` end, e.g. cancel the engine) and wait for it. Returns what `work` returned
    and whether the user interrupted; a failure of `work` is raised here."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the main thread
            failure.append(error)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    interrupted = False
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        interrupted = True
        on_interrupt()
        thread.join()
    if failure:
        raise failure[0]
    return (outcome[0] if outcome else None), interrupted


def report_outcome(run: RunResult, args: argparse.Namespace, err: Console) -> int:
    if getattr(args, "json", None):
        text = run.model_dump_json(indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
            err.print(f"results written to {args.json}")
    if getattr(args, "json", None) != "-":
        console = wide_console()
        show_results(console, run)
        show_topk(console, run, sample_inputs(run, getattr(args, "samples", 4)))
        if run.run_id is not None:
            console.print(
                f"run {run.run_id} recorded: `qstudio show {run.run_id}`, "
                f"`qstudio report {run.run_id} --format html`"
            )
    statuses = [r.status for r in run.results]
    if "cancelled" in statuses:
        return EXIT_CANCELLED
    unavailable = [r for r in run.results if r.status == "unavailable"]
    for r in unavailable:
        err.print(f"qstudio: recipe {r.recipe} is not available here: {r.reason}")
    if unavailable:
        return EXIT_USAGE
    return EXIT_FAILED if "failed" in statuses else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from studio.core.capability import assess
    from studio.core.hardware import probe
    from studio.core.model import open_model
    from studio.core.recipe import builtin_recipes, resolve_recipe

    model = open_model(args.model)
    if args.recipe:
        recipes = [resolve_recipe(ref) for ref in args.recipe]
    else:  # by default every built-in recipe for this kind of model that this machine can run
        hardware = probe()
        recipes = [r for r in builtin_recipes(model.info.task) if assess(r, hardware, model.info).available]
    settings = measure_settings(args, agreement_threshold=args.threshold, top_k=args.top_k)
    request = data_request(args, model, settings) | {"recipes": [r.to_toml() for r in recipes]}
    return execute(request, recipes, args)


def add_data_options(command: argparse.ArgumentParser, limit: bool = True) -> None:
    """Which texts a command evaluates and calibrates on: `tune`, `sensitivity` and `sweep` alike."""
    command.add_argument("--eval", metavar="FILE", help="labelled texts; default: the demo's evaluation set")
    command.add_argument("--text-column", default="text")
    command.add_argument("--pair-column", metavar="NAME")
    command.add_argument("--label-column", default="label")
    command.add_argument("--calibration", metavar="FILE")
    if limit:
        command.add_argument("--limit", type=int, default=0, help="evaluate only the first N inputs")


def add_measure_options(command: argparse.ArgumentParser) -> None:
    """How recipes are timed (and, for causal LMs, prompted and decoded): `run` and `tune` alike."""
    command.add_argument(
        "--prompts",
        metavar="FILE",
        help="causal LMs: one prompt per line for the side-by-side top-k and continuations "
        "(default: the first sentences of the --eval passages)",
    )
    command.add_argument("--warmup", type=int, default=5)
    command.add_argument("--iterations", type=int, default=20, help="minimum timed calls per recipe")
    command.add_argument("--seconds", type=float, default=2.0, help="minimum timing seconds per recipe")
    command.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved timing rounds after evaluation (speed-ups side by side); 0: each recipe's own timing",
    )
    command.add_argument("--new-tokens", type=int, default=32, help="causal LMs: greedy continuation length")
    command.add_argument(
        "--decode-tokens", type=int, default=128, help="causal LMs: tokens per timed decode round"
    )
    command.add_argument("--decode-rounds", type=int, default=3, help="causal LMs: timed decode rounds")
    command.add_argument(
        "--prompt-limit", type=int, default=0, help="causal LMs: use only the first N prompts"
    )


def measure_settings(args: argparse.Namespace, **fields: Any) -> RunSettings:
    """The RunSettings of `add_measure_options`' flags (and `fields`)."""
    return RunSettings(
        timing=TimingPlan(
            warmup=args.warmup, min_iterations=args.iterations, min_seconds=args.seconds, rounds=args.rounds
        ),
        new_tokens=args.new_tokens,
        decode_tokens=args.decode_tokens,
        decode_rounds=args.decode_rounds,
        prompt_limit=args.prompt_limit,
        **fields,
    )


def data_request(args: argparse.Namespace, model: Any, settings: RunSettings) -> dict[str, Any]:
    """What a run's request says about its model, data and settings, from the shared data options, with
    paths made absolute so that a rerun (or a resumed tune) reads the same files."""
    return {
        "model": model.info.ref
        if model.info.source in DEMOS
        else str(Path(args.model).expanduser().resolve()),
        "task": model.info.task,
        "eval": str(Path(args.eval).resolve()) if args.eval else None,
        "text_column": args.text_column,
        "pair_column": args.pair_column,
        "label_column": args.label_column,
        "calibration": str(Path(args.calibration).resolve()) if args.calibration else None,
        "limit": getattr(args, "limit", 0),
        "prompts": str(Path(args.prompts).resolve()) if getattr(args, "prompts", None) else None,
        "settings": settings.model_dump(mode="json"),
    }


def cmd_rerun(args: argparse.Namespace) -> int:
    """Repeat a recorded run: same model path, recipe texts, data files and settings."""
    from studio.core.engine import default_store
    from studio.core.recipe import parse_recipe

    request = default_store().request(args.run)
    recipes = [parse_recipe(tomllib.loads(text), f"run {args.run}") for text in request["recipes"]]
    return execute(request, recipes, args)
