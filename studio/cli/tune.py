"""`qstudio tune`: search the recipes this machine can run for the fastest one that meets an accuracy goal."""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from studio.cli.run import (
    EXIT_CANCELLED,
    EXIT_OK,
    add_data_options,
    add_measure_options,
    data_request,
    load_data,
    measure_settings,
    run_cancellable,
)
from studio.core.events import Event
from studio.core.settings import RunSettings

REQUEST_FILE = "request.json"
LM_MAX_KLD = 0.10  # a causal LM's default budget of mean KLD against FP32


def add_tune_command(commands: Any) -> None:
    command = commands.add_parser("tune", help="find the fastest recipe that keeps an accuracy goal")
    command.add_argument("--model", default="demo", help="'demo' (default), 'demo-llm', a folder or a file")
    add_data_options(command)
    command.add_argument(
        "--max-accuracy-drop", type=float, default=1.0, help="accuracy points below FP32 (1)"
    )
    command.add_argument(
        "--min-agreement", type=float, help="top-1 agreement with FP32 (0.98; causal LMs: same top-1, 0.90)"
    )
    command.add_argument(
        "--max-perplexity-rise", type=float, default=0.10, help="causal LMs: relative (0.10)"
    )
    command.add_argument(
        "--max-kld",
        type=float,
        help=f"mean KL divergence to FP32, in nats (causal LMs: llama.cpp's Mean KLD, {LM_MAX_KLD}; "
        "classifiers: over the labels, only when given)",
    )
    command.add_argument(
        "--objective", choices=("latency", "throughput", "size", "memory"), default="latency"
    )
    command.add_argument(
        "--recipe",
        action="append",
        metavar="NAME|FILE",
        help="search only these recipes (and their variants)",
    )
    command.add_argument("--budget", metavar="TIME", help="wall-clock budget, e.g. 15m, 90s, 1h")
    command.add_argument("--max-trials", type=int, help="stop after this many trials")
    command.add_argument("--out", metavar="DIR", help="where tune.json, best.toml and request.json go")
    command.add_argument("--resume", metavar="DIR", help="continue a stopped or killed tune in DIR")
    command.add_argument("--json", metavar="FILE", help="also write the state to FILE after every trial")
    add_measure_options(command)
    command.add_argument("--quiet", action="store_true")
    command.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from studio.core.engine import RunEngine, default_store
    from studio.core.errors import StudioError
    from studio.core.hardware import probe
    from studio.core.model import open_model
    from studio.core.paths import data_dir
    from studio.core.recipe import parse_recipe, resolve_recipe
    from studio.core.tune import TuneGoal, TuneState, expected_slower, parse_budget, plan_trials

    err = Console(stderr=True, highlight=False, soft_wrap=True)  # a line per message: the window reads them
    budget = parse_budget(args.budget)
    if args.resume:
        folder = Path(args.resume)
        state = TuneState.load(folder)
        request = json.loads((folder / REQUEST_FILE).read_text(encoding="utf-8"))
        model = open_model(request["model"])
        err.print(f"resuming: {len(state.trials)} of {len(state.planned)} trials done")
        state.stopped_by, state.finished = "", False  # what stopped it before does not stop this run
        state.rejudge()  # judged by this version's rules
        state.drop_moot_steps()  # killed after a fallback step held: the steps after it do not run
    else:
        model = open_model(args.model)
        folder = Path(args.out) if args.out else data_dir() / "tunes" / time.strftime("%Y%m%d-%H%M%S")
        if (folder / "tune.json").exists():
            raise StudioError(
                f"{folder} holds a tune already", f"resume it with --resume {folder}, or pick --out"
            )
        request = data_request(args, model, measure_settings(args))
        language = model.info.task == "text-generation"
        goal = TuneGoal(
            max_accuracy_drop=args.max_accuracy_drop,
            min_agreement=args.min_agreement
            if args.min_agreement is not None
            else (0.90 if language else 0.98),
            max_perplexity_rise=args.max_perplexity_rise,
            max_kld=args.max_kld if args.max_kld is not None else (LM_MAX_KLD if language else None),
            objective=args.objective,
        )
        only = [resolve_recipe(ref) for ref in args.recipe] if args.recipe else None
        hardware = probe()
        trials = plan_trials(model.info, hardware, only, args.objective)
        if not trials:
            raise StudioError("no recipe for this model can run on this machine", "see `qstudio recipes`")
        request["tune_trials"] = [r.to_toml() for r in trials]
        # Tried after the refinement and the fallback: they are unlikely to win and may take long.
        request["tune_late"] = [
            r.name for r in trials if expected_slower(r, hardware, model.info, args.objective)
        ]
        request["tune_dir"] = str(folder.resolve())  # `qstudio export RUN best` finds the tune from a run
        state = TuneState(goal=goal, model=model.info.name, planned=[r.name for r in trials])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REQUEST_FILE).write_text(json.dumps(request, indent=1), encoding="utf-8")
        state.save(folder)
    planned = [parse_recipe(tomllib.loads(text), "tune") for text in request["tune_trials"]]
    remaining = [r for r in planned if r.name not in state.done()]
    if args.max_trials is not None:
        remaining = remaining[: max(0, args.max_trials - len(state.trials))]
    data, calibration = load_data(request, err)
    settings = RunSettings.model_validate(request["settings"])
    engine = RunEngine(store=default_store())
    started = time.monotonic()
    err.print(f"tune: {len(remaining)} trials to run, state in {folder / 'tune.json'}")

    progress = Progress(
        TextColumn("{task.description:<60}"), BarColumn(), TextColumn("{task.completed}/{task.total} trials"),
        TimeElapsedColumn(), console=err, transient=not err.is_terminal, disable=args.quiet,
    )  # fmt: skip
    bar = progress.add_task("tune", total=len(state.planned), completed=len(state.trials))

    def out_of_time() -> bool:
        """Past the budget, less what the interleaved timing rounds after the last trial need."""
        reserve = (len(state.trials) + 1) * (settings.timing.min_seconds + 1.0)
        return budget is not None and time.monotonic() - started > budget - reserve

    def show(doing: str) -> None:
        best = state.best.name if state.best else "-"
        left = (
            ""
            if budget is None
            else f" · {max(0.0, budget - (time.monotonic() - started)) / 60:.1f} min left"
        )
        progress.update(
            bar,
            description=f"{doing[:28]:<28} best {best[:20]}{left}",
            completed=len(state.trials),
            total=len(state.planned),
        )

    in_flight: dict[str, Any] = {}  # the trial a worker runs now (position 0, the reference, is none)

    def stop_at_budget() -> None:
        """The budget is spent while a trial runs: stop it (a resume runs it again) and the run's queue."""
        if in_flight.get("trial") and not in_flight.get("stopping") and out_of_time():
            in_flight["stopping"] = True
            state.stopped_by = state.stopped_by or "budget"
            err.print(f"the budget is spent: stopping {in_flight['name']} (a resume runs it again)")
            engine.cancel_recipe(in_flight["name"])
            engine.finish_early()

    def listen(event: Event) -> None:
        if event.kind == "stage" and event.stage == "start" and event.recipe:
            in_flight.clear()
            in_flight.update(name=event.recipe, trial=bool(event.done))
        if event.kind in ("stage", "progress") and event.recipe:
            show(f"{event.recipe}: {event.stage}")
        if event.kind != "result" or not event.data:
            stop_at_budget()
            return
        in_flight.clear()
        if engine.run_id is not None and engine.run_id not in state.run_ids:
            state.run_ids.append(engine.run_id)
        if event.data.get("status") == "cancelled":  # not a trial: a resume runs it
            err.print(f"{event.recipe}: stopped before it finished, not recorded as a trial")
            return
        _record(state, event.data, folder, args.json, engine.run_id)
        best = state.best
        left = (
            "" if budget is None else f", {max(0.0, budget - (time.monotonic() - started)) / 60:.1f} min left"
        )
        if event.data.get("reference") is True:
            err.print(f"reference {event.recipe} measured")
        elif event.data.get("timing_rounds"):
            err.print(
                f"{event.recipe}: {_verdict(_trial(state, event.recipe), state.goal.objective)} (interleaved timing)"
            )
        else:
            err.print(
                f"trial {len(state.trials)}/{len(state.planned)} {event.recipe}: {_verdict(state.trials[-1], state.goal.objective)}"
                f"; best so far {best.name if best else '-'}{left}"
            )
        show(event.recipe)
        if out_of_time():
            state.stopped_by = state.stopped_by or "budget"
            engine.finish_early()
        elif falling_back and any(
            t.name == event.recipe and "-keep" in t.name and t.meets_goal for t in state.trials
        ):
            engine.finish_early()  # fallback steps stop at the first that holds the goal: fewer float nodes win

    def run_trials(recipes: list[Any]) -> bool:
        """One recorded engine run over `recipes` (the reference first); True when the user cancelled."""
        recorded = {**request, "recipes": [r.to_toml() for r in recipes]}  # what `qstudio rerun` reads

        def cancel() -> None:
            state.stopped_by = "cancelled"
            engine.cancel()

        def work() -> None:
            engine.run(request["model"], recipes, data, calibration, settings, listen, request=recorded)

        return run_cancellable(work, cancel, "qstudio-tune")[1]

    late = set(request.get("tune_late", []))
    falling_back = any("-keep" in r.name for r in remaining)
    with progress:  # stopped on any exit, an exception included
        # Deferred only behind other trials: when only such recipes are left, they are the search.
        first = [r for r in remaining if r.name not in late] or remaining
        stopped = run_trials(first) if first else False
        capped = args.max_trials is not None and len(state.trials) >= args.max_trials
        if not stopped and not state.stopped_by and not capped and not request.get("refined"):
            winner, close, refine = _refine_trials(state)
            if winner is not None and refine:
                err.print(f"refining {winner.name}: {', '.join(r.name for r in refine)}")
                if close:
                    err.print(
                        f"timed again beside it, within its timing noise: {', '.join(r.name for r in close)}"
                    )
                request["refined"] = True
                _extend_plan(request, state, folder, refine)
                # The winner again, in the same run: its refinements are timed in the same rounds as it,
                # and so are its close rivals (the earlier trial still wins a tie: the winner goes first).
                stopped = run_trials([winner, *close, *refine])
                capped = args.max_trials is not None and len(state.trials) >= args.max_trials
        if not stopped and not state.stopped_by and not capped and not request.get("fell_back"):
            try:
                fallback = _fallback_trials(state, model, data, calibration, err, show, out_of_time)
            except KeyboardInterrupt:  # while ranking: the trials so far stand, as after a cancelled trial
                state.stopped_by, stopped, fallback = "cancelled", True, []
            if fallback:
                request["fell_back"] = True
                _extend_plan(request, state, folder, fallback)
                falling_back = True
                stopped = run_trials(fallback)
        last = [r for r in remaining if r.name in late and r.name not in state.done() and r not in first]
        capped = args.max_trials is not None and len(state.trials) >= args.max_trials
        if not stopped and not state.stopped_by and not capped and last:
            err.print(
                f"last, the recipes expected no faster than FP32 here: {', '.join(r.name for r in last)}"
            )
            falling_back = False  # an ordinary stage again: every one of them runs
            stopped = run_trials(last)
    state.drop_moot_steps()  # also after a later stage ran (falling_back is False by then)
    state.stopped_by = state.stopped_by or ("max-trials" if len(state.trials) < len(state.planned) else "")
    state.finished = not state.stopped_by
    state.save(folder)
    if args.json:
        Path(args.json).write_text((folder / "tune.json").read_text(encoding="utf-8"), encoding="utf-8")
    _summary(state, folder)
    return EXIT_CANCELLED if stopped else EXIT_OK


def _extend_plan(request: dict[str, Any], state: Any, folder: Path, recipes: list[Any]) -> None:
    """Add a later stage's trials to the plan, on disk before they run (a resume runs what is missing)."""
    request["tune_trials"] += [r.to_toml() for r in recipes]
    (folder / REQUEST_FILE).write_text(json.dumps(request, indent=1), encoding="utf-8")
    state.planned += [r.name for r in recipes]
    state.save(folder)


def _refine_trials(state: Any) -> tuple[Any, list[Any], list[Any]]:
    """The best trial's recipe, its close rivals' (`tune.rivals`) and the variants of its knobs
    (`refine_trials`), when it meets the goal."""
    from studio.core.hardware import probe
    from studio.core.recipe import parse_recipe
    from studio.core.tune import refine_trials, rivals

    best = state.best
    if best is None or not best.meets_goal:
        return None, [], []
    recipe = parse_recipe(tomllib.loads(best.recipe_toml), best.name)
    close = [
        parse_recipe(tomllib.loads(t.recipe_toml), t.name)
        for t in rivals(state.trials, best, state.goal.objective)
    ]
    return recipe, close, [r for r in refine_trials(recipe, probe()) if r.name not in state.planned]


def _fallback_start(state: Any) -> Any:
    """The trial the fallback starts from: among the ONNX Runtime INT8/INT4 trials that miss the goal, the
    closest to it, if it could still win (it leads the best passing trial by more than timing noise, see
    `tune.leads`, or nothing passes). None when there is none."""
    from studio.backends.sensitivity import SUPPORTED
    from studio.core.recipe import parse_recipe
    from studio.core.tune import leads, standing

    objective = state.goal.objective
    best = standing([t for t in state.trials if t.meets_goal], objective).best
    candidates = [
        t
        for t in state.trials
        if t.status == "ok"
        and not t.meets_goal
        and t.objective_value is not None
        and "-keep" not in t.name
        and (best is None or leads(t, best, objective))
        and parse_recipe(tomllib.loads(t.recipe_toml), t.name).backend in SUPPORTED
    ]
    return (
        min(candidates, key=lambda t: (t.distance_to_goal or 0.0, t.objective_value)) if candidates else None
    )


def _fallback_trials(
    state: Any,
    model: Any,
    data: Any,
    calibration: Any,
    err: Console,
    show: Callable[[str], None],
    out_of_time: Callable[[], bool],
) -> list[Any]:
    """INC's fallback: the closest INT8/INT4 trial that misses the goal (`_fallback_start`) with, first,
    its embeddings (Gather, for ONNX Runtime INT8) in float, then its most sensitive nodes kept in float
    (1, 2, 4 and 8 of them, ranked by `qstudio sensitivity`'s analysis on 64 inputs; a causal LM's whole
    transformer layers, ranked by the KL each causes when quantized alone). The steps stop at the first
    that holds. The ranking stops when the budget is spent (no fallback then)."""
    from studio.backends.sensitivity import analyse
    from studio.core.cache import ArtifactCache
    from studio.core.capability import assess
    from studio.core.hardware import probe
    from studio.core.paths import cache_dir
    from studio.core.recipe import keep_ops_in_float, parse_recipe
    from studio.core.sensitivity_report import keep_worst

    start = _fallback_start(state)
    if start is None or model.info.task not in ("text-classification", "text-generation"):
        return []
    recipe = parse_recipe(tomllib.loads(start.recipe_toml), start.name)
    language = model.is_causal_lm
    unit = "transformer layers" if language else "nodes"
    why = (
        f"{recipe.name} misses the goal but is faster than the best passing trial"
        if any(t.meets_goal for t in state.trials)
        else "no trial meets the goal"
    )
    err.print(f"{why}: ranking the {unit} of {recipe.name} to keep the most sensitive in float")
    sample = data.subset(list(range(min(64, len(data)))), data.source)
    precision = assess(recipe, probe(), model.info).precision

    def report(stage: str, done: int, total: int) -> None:
        show(f"ranking {unit} {done}/{total}")
        if out_of_time():
            raise _BudgetSpent

    try:
        ranking = analyse(
            model, recipe, sample, calibration, ArtifactCache(cache_dir() / "artifacts"), precision, report,
            nodes=not language, recovery=not language,
        )  # fmt: skip
    except _BudgetSpent:
        state.stopped_by = "budget"
        err.print(f"the budget ran out while ranking the {unit}: no fallback trial")
        return []
    variants = []
    if (
        recipe.precision == "int8"
        and recipe.backend.startswith("ort-")
        and "Gather" not in recipe.exclude_ops
    ):
        variants.append(keep_ops_in_float(recipe, ["Gather"]))  # an op type first, as INC falls back
    payload = ranking.payload()
    for count in (1, 2, 4, 8):
        if count > len(payload["layers"] or payload["groups"]):
            break
        variants.append(keep_worst(recipe, payload, count))
    return [v for v in variants if v.name not in state.done()]


class _BudgetSpent(Exception):
    """Raised from the ranking's progress callback when the tune's budget is spent."""


def _record(
    state: Any, data: dict[str, Any], folder: Path, json_file: str | None, run_id: int | None
) -> None:
    from studio.core.results import RecipeResult
    from studio.core.tune import judge

    result = RecipeResult.model_validate(data)
    if result.reference:
        state.reference = data
        return
    if not state.reference:
        return
    reference = RecipeResult.model_validate(state.reference)
    trial = judge(result, reference, state.goal).model_copy(update={"run_id": run_id})
    state.trials = [t for t in state.trials if t.name != result.recipe] + [trial]
    state.rejudge()
    state.save(folder)
    if json_file:
        Path(json_file).write_text((folder / "tune.json").read_text(encoding="utf-8"), encoding="utf-8")


def _trial(state: Any, name: str) -> Any:
    return next(t for t in state.trials if t.name == name)


def _verdict(trial: Any, objective: str) -> str:
    from studio.core.tune import objective_text

    if trial.status != "ok":
        return f"{trial.status} ({trial.reason[:80]})"
    if trial.meets_goal:
        return f"meets the goal, {objective_text(trial.objective_value, objective)}"
    return "misses the goal by " + ", ".join(
        f"{v:g} {k.replace('_', ' ')}" for k, v in trial.shortfall.items()
    )


def _summary(state: Any, folder: Path) -> None:
    from studio.cli.render import wide_console
    from studio.core.tune_report import is_language, latency_p50, quality_loss

    console = wide_console()
    best = state.best
    if best is None:
        console.print("no trial ran: nothing to recommend")
        return
    how = (
        "meets the goal"
        if best.meets_goal
        else f"closest to the goal, {best.distance_to_goal:g} points short"
    )
    console.print(f"best: [bold]{best.name}[/bold] ({how}); recipe in {folder / 'best.toml'}")
    language = is_language(state.reference)
    latency, agreement = ("ms/token", "same top-1") if language else ("p50 ms", "agreement")
    for title, trial in (("tune's best", best), ("best built-in recipe", state.best_builtin)):
        if trial is not None:
            r = trial.result
            kld = (
                f"  KLD {r['kl']:.4f}  PPL {quality_loss(r, state.reference)}"
                if language and r.get("kl") is not None
                else ""
            )
            console.print(
                f"  {title:<21} {trial.name:<40} {latency} {latency_p50(r) or 0:8.2f}  "
                f"{r.get('speedup_vs_reference') or 0:5.2f}x FP32  {agreement} {r.get('top1_agreement') or 0:.1%}{kld}"
                f"  {'meets the goal' if trial.meets_goal else 'misses the goal'}"
            )
    console.print(f"report: {folder / 'report.html'}")
    console.print(f"Pareto front ({state.goal.objective} against {agreement}): {', '.join(state.pareto)}")
    if best.run_id is not None:
        console.print(f"export it: qstudio export {best.run_id} best --to DIR")
