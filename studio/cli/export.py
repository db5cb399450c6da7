"""`qstudio export` and `qstudio verify`: a measured recipe as a deployment folder, and re-checking one."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from studio.cli.render import wide_console
from studio.cli.run import EXIT_FAILED, EXIT_OK
from studio.core.errors import StudioError
from studio.deploy.evidence import Evidence, Readiness


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the export, which removes its half-written folder


def _verdict(console: Console, title: str, readiness: Readiness) -> None:
    if readiness.ready:
        console.print(f"[green]{title}: yes[/green]")
        return
    console.print(f"[red]{title}: no[/red]")
    for reason in readiness.reasons:
        console.print(f"  - {reason}")


def show_evidence(console: Console, evidence: Evidence, folder: Path) -> None:
    table = Table(title=f"{evidence.recipe} (run {evidence.run_id}) in {folder}", title_justify="left")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    for check in evidence.checks:
        table.add_row(check.name, "[green]pass[/green]" if check.passed else "[red]FAIL[/red]", check.detail)
    console.print(table)
    _verdict(console, "ready for a local trial", evidence.ready_for_local_trial)
    _verdict(console, "ready for release", evidence.ready_for_release)


def _confirm_replace(target: Path) -> bool:
    from studio.deploy.export import occupied

    if not occupied(target):
        return False
    if not sys.stdin.isatty():
        return False  # export_recipe refuses, naming --force
    answer = input(f"{target} is not empty. Replace everything in it? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_export(args: argparse.Namespace) -> int:
    from studio.core.engine import default_cache, default_store
    from studio.deploy.evidence import Thresholds
    from studio.deploy.export import export_recipe

    err = Console(stderr=True)
    target = Path(args.to).expanduser().resolve()
    force = args.force or _confirm_replace(target)
    try:
        thresholds = Thresholds(
            min_agreement=args.min_agreement,
            max_accuracy_drop=args.max_accuracy_drop,
            tolerance=args.tolerance,
        )
    except ValidationError as error:
        first = error.errors()[0]
        raise StudioError(
            f"--{str(first['loc'][0]).replace('_', '-')} {first['input']} is out of range ({first['msg']})",
            "agreement and tolerance are fractions between 0 and 1, the accuracy drop is in points",
        ) from None
    if args.sample < 1:
        raise StudioError(f"--sample {args.sample} re-checks nothing", "pass 1 or more")
    signal.signal(signal.SIGTERM, _interrupt)
    run_id, recipe = args.run, args.recipe
    if recipe == "best":
        from studio.core.tune import best_of_run

        run_id, recipe = best_of_run(default_store(), run_id)
        err.print(f"best trial of the tune: {recipe} (run {run_id})")
    evidence = export_recipe(
        run_id,
        recipe,
        target,
        store=default_store(),
        cache=default_cache(),
        force=force,
        thresholds=thresholds,
        sample_size=args.sample,
        say=lambda stage: err.print(f"[dim]{stage}…[/dim]"),
    )
    if args.json:
        print(evidence.model_dump_json(indent=2))
    else:
        show_evidence(wide_console(), evidence, target)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from studio.deploy.verify import verify_folder

    folder = Path(args.folder).expanduser().resolve()
    evidence = verify_folder(folder, args.python)
    if args.json:
        print(evidence.model_dump_json(indent=2))
    else:
        show_evidence(wide_console(), evidence, folder)
    return EXIT_OK if all(check.passed for check in evidence.checks) else EXIT_FAILED


def add_commands(commands: Any) -> None:
    from studio.deploy.evidence import SAMPLE_SIZE, Thresholds

    default = {name: field.default for name, field in Thresholds.model_fields.items()}
    export = commands.add_parser(
        "export", help="write a measured recipe as a deployment folder with its evidence"
    )
    export.add_argument("run", type=int, help="run number (see `qstudio history`)")
    export.add_argument(
        "recipe", help="recipe name in that run; 'best': the best trial of the tune that ran it"
    )
    export.add_argument("--to", required=True, metavar="DIR", help="folder to create (must be empty or new)")
    export.add_argument("--force", action="store_true", help="replace what DIR holds without asking")
    export.add_argument(
        "--min-agreement",
        type=float,
        default=default["min_agreement"],
        help=f"top-1 agreement for release ({default['min_agreement']})",
    )
    export.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=default["max_accuracy_drop"],
        help=f"accuracy points below FP32 for release ({default['max_accuracy_drop']})",
    )
    export.add_argument(
        "--tolerance",
        type=float,
        default=default["tolerance"],
        help=f"probability difference allowed on reload ({default['tolerance']})",
    )
    export.add_argument(
        "--sample",
        type=int,
        default=SAMPLE_SIZE,
        help=f"evaluation inputs to re-check on reload ({SAMPLE_SIZE})",
    )
    export.add_argument("--json", action="store_true", help="print evidence.json instead of the table")
    export.set_defaults(func=cmd_export)

    verify = commands.add_parser("verify", help="re-check an exported folder (files, reload, outputs)")
    verify.add_argument("folder", help="a folder written by `qstudio export`")
    verify.add_argument(
        "--python", metavar="EXE", help="interpreter to load it with, e.g. a deployment venv's python"
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_verify)
