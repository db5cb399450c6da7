"""`qstudio history`, `show`, `report` and `cache`: what earlier runs produced, and the artifact cache."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from rich.table import Table

from studio.cli.render import show_results, show_topk, wide_console
from studio.core.units import human_bytes


def cmd_history(args: argparse.Namespace) -> int:
    from studio.core.engine import default_store

    runs = default_store().runs(args.limit)
    console = wide_console()
    if not runs:
        console.print("no runs recorded yet: `qstudio run` records every run")
        return 0
    table = Table(title="Run history", title_justify="left")
    for column in ("run", "started", "status", "model", "recipes ok"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            str(run.id),
            run.created.astimezone().strftime("%Y-%m-%d %H:%M"),
            run.status,
            run.model_name,
            f"{run.ok}/{run.recipes}",
        )
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from studio.cli.run import sample_inputs
    from studio.core.engine import default_store

    run = default_store().load(args.run)
    console = wide_console()
    show_results(console, run)
    show_topk(console, run, sample_inputs(run, args.samples))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from studio.core.engine import default_store
    from studio.core.report import render

    run = default_store().load(args.run)
    text = render(run, args.format)
    out = Path(args.out) if args.out else Path(f"qstudio-run-{args.run}.{args.format}")
    out.write_text(text, encoding="utf-8")
    print(f"report written to {out}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from studio.core.engine import default_cache

    cache = default_cache()
    console = wide_console()
    if args.action == "clear":
        freed = cache.clear()
        console.print(f"cache cleared: {human_bytes(freed)} freed ({cache.root})")
        return 0
    entries = cache.entries()
    table = Table(title=f"Artifact cache {cache.root}", title_justify="left")
    for column in ("key", "what", "model", "size", "last used"):
        table.add_column(column)
    for entry in entries:
        what = entry.meta.get("recipe") or entry.meta.get("step", "")
        used = datetime.fromtimestamp(entry.meta.get("last_used", 0)).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            entry.key[:12], str(what), str(entry.meta.get("model", "")), human_bytes(entry.size_bytes), used
        )
    console.print(table)
    console.print(
        f"{len(entries)} entries, {human_bytes(sum(e.size_bytes for e in entries))} of a "
        f"{human_bytes(cache.cap_bytes)} cap (QSTUDIO_CACHE_CAP_GB); least recently used go first"
    )
    return 0
