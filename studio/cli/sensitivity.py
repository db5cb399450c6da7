"""`qstudio sensitivity`: rank a recipe's layers by the error each causes, and keep the worst in float."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from studio.cli.run import EXIT_OK, add_data_options, data_request, execute, load_data
from studio.core.compare import RunSettings


def add_sensitivity_command(commands: Any) -> None:
    command = commands.add_parser(
        "sensitivity", help="rank a quantization recipe's layers by the error each one causes"
    )
    command.add_argument(
        "--model", default="demo", help="'demo' (default), a Hugging Face folder or an .onnx file"
    )
    command.add_argument(
        "--recipe",
        required=True,
        metavar="NAME|FILE",
        help="an ORT INT8 (static/dynamic) or INT4 recipe (for a causal LM: llm-ort-int8-dynamic, llm-ort-int4)",
    )
    add_data_options(command, limit=False)
    command.add_argument("--sample", type=int, default=64, help="evaluation inputs measured per variant (64)")
    command.add_argument("--no-groups", action="store_true", help="nodes only, no per-layer groups")
    command.add_argument(
        "--layers-only", action="store_true", help="rank transformer layers only (the default for causal LMs)"
    )
    command.add_argument(
        "--all-nodes", action="store_true", help="causal LMs: rank every matrix product too (2 builds each)"
    )
    command.add_argument("--json", metavar="FILE", help="write `layers` and `groups`, ranked worst first")
    command.add_argument(
        "--csv", metavar="FILE", help="the node ranking as CSV (layers when only layers were ranked)"
    )
    command.add_argument("--html", metavar="FILE", help="the ranking as a report (bar charts and tables)")
    command.add_argument(
        "--keep-float",
        type=int,
        metavar="N",
        help="write the recipe with the worst N nodes in exclude_nodes, then run it and the original side by side",
    )
    command.add_argument(
        "--recipe-out", metavar="FILE", help="where --keep-float writes its recipe (default: ./NAME.toml)"
    )
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from studio.backends.sensitivity import analyse
    from studio.core.cache import ArtifactCache
    from studio.core.capability import assess
    from studio.core.errors import StudioError
    from studio.core.hardware import probe
    from studio.core.model import open_model
    from studio.core.paths import cache_dir
    from studio.core.recipe import resolve_recipe
    from studio.core.sensitivity_report import keep_worst, worst_nodes

    err = Console(stderr=True, highlight=False, soft_wrap=True)  # a line per message: the window reads them
    model = open_model(args.model)
    recipe = resolve_recipe(args.recipe)
    availability = assess(recipe, probe(), model.info)
    if not availability.available:
        raise StudioError(
            f"recipe {recipe.name} cannot run here: {availability.reason}", "pick another recipe"
        )
    request = data_request(args, model, RunSettings())
    data, calibration = load_data(request, err)
    sample = data.subset(list(range(min(args.sample, len(data)))), f"{data.source} (first {args.sample})")
    nodes = not args.layers_only and (args.all_nodes or not model.is_causal_lm)
    if not nodes and not args.layers_only:
        err.print("causal LM: ranking transformer layers (--all-nodes ranks every matrix product too)")
    progress = Progress(
        TextColumn("{task.description:<24}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=err, transient=True, disable=args.quiet,
    )  # fmt: skip
    with progress:
        task = progress.add_task("sensitivity", total=None)
        result = analyse(
            model,
            recipe,
            sample,
            calibration,
            ArtifactCache(cache_dir() / "artifacts"),
            availability.precision,
            lambda stage, done, total: progress.update(task, completed=done, total=total),
            groups=not args.no_groups,
            nodes=nodes,
        )
    payload: dict[str, Any] = {"model": model.info.name, **result.payload()}
    layers = payload["layers"]
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1), encoding="utf-8")
        err.print(f"ranking written to {args.json}")
    if args.csv:
        _write_csv(Path(args.csv), layers or payload["groups"])  # a causal LM: its layers
        err.print(f"ranking written to {args.csv}")
    _show(result)
    worst = worst_nodes(payload, args.keep_float) if args.keep_float else []
    if args.html:
        from studio.core.sensitivity_report import sensitivity_html

        Path(args.html).write_text(sensitivity_html(payload, worst), encoding="utf-8")
        err.print(f"report written to {args.html}")
    if not args.keep_float:
        return EXIT_OK
    kept = keep_worst(recipe, payload, args.keep_float)
    target = Path(args.recipe_out or f"{kept.name}.toml")
    target.write_text(kept.to_toml(), encoding="utf-8")
    err.print(f"recipe written to {target}")
    run_args = argparse.Namespace(quiet=args.quiet, json=None, samples=4)
    request["recipes"] = [r.to_toml() for r in (recipe, kept)]
    return execute(request, [recipe, kept], run_args)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["rank", "name", "op_type", "kl_when_quantized_alone", "agreement_when_kept_float", "sqnr_db"]
        )
        for rank, row in enumerate(rows, start=1):
            writer.writerow(
                [rank, row["name"], row["op_type"], row["kl_when_quantized_alone"],
                 row["agreement_when_kept_float"], row["sqnr_db"]]
            )  # fmt: skip


def _show(result: Any) -> None:
    from studio.cli.render import wide_console

    console = wide_console()
    console.print(
        f"{result.recipe}: all quantized, agreement {result.agreement_all_quantized:.1%}, KL "
        f"{result.kl_all_quantized:.5f} on {result.sample} inputs"
    )
    for title, entries in (("nodes", result.layers[:15]), ("layers", result.groups)):
        if not entries:
            continue
        table = Table(title=f"{title}, most sensitive first", title_justify="left")
        for header in (
            "#",
            "name",
            "op",
            "KL quantized alone",
            "agreement kept float",
            "SQNR dB",
            "weight SQNR dB",
        ):
            table.add_column(header, justify="left" if header in ("name", "op") else "right")
        for rank, e in enumerate(entries, start=1):
            sqnr = "-" if e.sqnr_db is None else f"{e.sqnr_db:.1f}"
            weight = "-" if e.weight_sqnr_db is None else f"{e.weight_sqnr_db:.1f}"
            table.add_row(
                str(rank), e.name, e.op_type, f"{e.kl_when_quantized_alone:.5f}",
                f"{e.agreement_when_kept_float:.1%}", sqnr, weight,
            )  # fmt: skip
        console.print(table)
