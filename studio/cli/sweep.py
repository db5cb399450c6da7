"""`qstudio sweep`: models x recipes as Ray tasks on a cluster (a local Ray instance by default), every result
committed to the history as it arrives, one report for the whole sweep."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from studio.cli.run import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_data_options,
    add_measure_options,
    measure_settings,
    run_cancellable,
)

INSTALL = "Ray is not installed: pip install 'quantization-studio[cluster]' (Ray 2.60)"


def add_sweep_command(commands: Any) -> None:
    command = commands.add_parser(
        "sweep", help="models x recipes as Ray tasks on a cluster, one merged history"
    )
    command.add_argument("--models", help="comma-separated: 'demo', folders, .onnx or .gguf files")
    command.add_argument("--recipes", default="all", help="'all' (default) or comma-separated names or files")
    command.add_argument(
        "--address",
        help="the Ray cluster: 'auto' (a cluster started on this machine), ray://HOST:10001; "
        "default: start a local Ray instance",
    )
    add_data_options(command)
    command.add_argument("--threshold", type=float, default=0.90, help="flag top-1 agreement below this")
    command.add_argument(
        "--shared-paths",
        action="store_true",
        help="the model paths are the same on every node (a shared file system): nothing is shipped",
    )
    command.add_argument(
        "--node-cache", metavar="DIR", help="where nodes keep artifacts (default: their own cache)"
    )
    command.add_argument(
        "--fetch-limit-gb",
        type=float,
        default=8.0,
        help="artifacts up to this size come back to this machine's cache, for `qstudio export` (8)",
    )
    command.add_argument(
        "--gpus-per-task",
        type=float,
        default=1.0,
        help="the GPU share a CUDA recipe's task asks Ray for (1; 0.5 lets two tasks share a GPU)",
    )
    command.add_argument("--cpus", type=int, help="the local Ray instance's CPUs (default: all)")
    command.add_argument(
        "--resume", type=int, metavar="RUN", help="re-submit what a sweep (any of its runs) lacks"
    )
    command.add_argument("--out", metavar="DIR", help="the sweep's folder (sweep.json, report.*)")
    command.add_argument("--json", metavar="FILE", help="also write the report's JSON to FILE")
    add_measure_options(command)
    command.add_argument("--quiet", action="store_true")
    command.set_defaults(func=cmd_sweep)


def sweep_folder(run_id: int) -> Path:
    """The folder of the sweep that recorded history run `run_id`."""
    from studio.cluster.sweep import SweepState
    from studio.core.errors import StudioError
    from studio.core.paths import data_dir

    for state_file in sorted((data_dir() / "sweeps").glob("*/sweep.json")):
        state = SweepState.load(state_file.parent)
        if any(run.run_id == run_id for run in state.runs):
            return state_file.parent
    raise StudioError(f"run {run_id} belongs to no sweep", "see `qstudio history`; give a run of a sweep")


def _new_state(args: argparse.Namespace) -> Any:
    from studio.cli.run import data_request
    from studio.cluster.sweep import SweepState
    from studio.core.errors import StudioError
    from studio.core.model import DEMOS, open_model
    from studio.core.recipe import resolve_recipe

    refs = [ref.strip() for ref in (args.models or "demo").split(",") if ref.strip()]
    models = []
    for ref in refs:  # a missing folder or a corrupt file fails here, before a cluster is started
        model = open_model(ref)
        models.append(model.info.ref if model.info.source in DEMOS else str(Path(ref).expanduser().resolve()))
    if len(set(models)) != len(models):
        raise StudioError("a model is named twice in --models", "name each model once")
    names = [] if args.recipes == "all" else [n.strip() for n in args.recipes.split(",") if n.strip()]
    recipes = [resolve_recipe(name).to_toml() for name in names]
    args.model = refs[0]
    settings = measure_settings(args, agreement_threshold=args.threshold)
    request = data_request(args, open_model(refs[0]), settings)
    for key in ("model", "task"):
        request.pop(key)
    return SweepState(models=models, recipes=recipes, request=request)


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        import ray  # noqa: F401
    except ImportError:
        Console(stderr=True, highlight=False, markup=False).print(f"qstudio: {INSTALL}")
        return EXIT_USAGE
    from studio.cluster.sweep import ClusterOptions, Sweep, SweepState, TaskView, connect
    from studio.core import sweep_report
    from studio.core.engine import default_cache, default_store
    from studio.core.paths import data_dir

    # A line per message (the window reads them); no markup: reasons and paths may hold brackets.
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    options = ClusterOptions(
        address=args.address,
        shared_paths=args.shared_paths,
        node_cache=str(Path(args.node_cache).resolve()) if args.node_cache else None,
        fetch_limit=int(args.fetch_limit_gb * 2**30),
        gpus_per_task=args.gpus_per_task,
        local_cpus=args.cpus,
    )
    store = default_store()
    if args.resume is not None:
        folder = sweep_folder(args.resume)
        state = SweepState.load(folder)
        connect(options)
        err.print(f"resuming sweep {state.sweep_id} ({folder})")
    else:
        state = _new_state(args)  # a missing model or recipe fails here, before Ray starts
        folder = Path(args.out) if args.out else data_dir() / "sweeps" / time.strftime("%Y%m%d-%H%M%S")
        if (folder / "sweep.json").exists():
            raise_existing(folder)
        connect(options)  # in the main thread: a cluster that is not there fails before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        state.save(folder)
    lock = threading.Lock()

    def write_report() -> None:
        runs = [(run.node_type_name, store.load(run.run_id)) for run in sweep.state.runs]
        paths = sweep_report.write(folder, runs, sweep.state.sweep_id)
        if args.json:
            Path(args.json).write_text(paths["json"].read_text(encoding="utf-8"), encoding="utf-8")

    def on_task(view: TaskView) -> None:
        with lock:
            if not args.quiet:
                where = f" on {view.node}" if view.node else ""
                why = f": {view.reason[:200]}" if view.reason and view.state != "done" else ""
                stage = f" ({view.stage})" if view.state == "running" and view.stage else ""
                err.print(f"{view.model} · {view.recipe}: {view.state}{where}{stage}{why}")
            if view.state in ("done", "failed", "unavailable"):
                write_report()

    sweep = Sweep(state, folder, store, default_cache(), options, on_task, lambda m: err.print(m))

    def cancel() -> None:
        err.print("cancelling the sweep's Ray tasks ...", style="yellow")
        sweep.cancel()

    started = time.monotonic()
    run_cancellable(sweep.run, cancel, "qstudio-sweep")
    write_report()
    states = [view.state for view in sweep.tasks.values()]
    err.print(
        f"sweep {state.sweep_id}: {states.count('done')} done, {states.count('failed')} failed, "
        f"{states.count('unavailable')} unavailable, {states.count('cancelled')} cancelled, "
        f"{states.count('lost')} lost in "
        f"{time.monotonic() - started:.0f} s; runs {', '.join(str(r.run_id) for r in state.runs)}; "
        f"report {folder / 'report.html'}"
    )
    if state.status in ("cancelled", "incomplete"):
        err.print(f"resume with `qstudio sweep --resume {state.sweep_id}`")
        if state.status == "cancelled":
            return EXIT_CANCELLED
    return EXIT_FAILED if "failed" in states or "lost" in states else EXIT_OK


def raise_existing(folder: Path) -> None:
    from studio.core.errors import StudioError

    raise StudioError(f"{folder} holds a sweep already", "resume it with --resume RUN, or pick --out")
