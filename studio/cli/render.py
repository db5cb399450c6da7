"""How the CLI shows hardware, recipes, model cards and comparison results in a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from studio.core.capability import Availability
from studio.core.hardware import HardwareInfo
from studio.core.model import ModelInfo
from studio.core.recipe import Recipe
from studio.core.results import RecipeResult, RunResult
from studio.core.units import human_bytes


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 160 columns when writing to a file or pipe."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def show_hardware(console: Console, hw: HardwareInfo) -> None:
    console.print("[bold]GPUs[/bold]")
    if hw.gpus:
        for gpu in hw.gpus:
            console.print(
                f"  #{gpu.index} {gpu.name}  compute capability {gpu.cc_text}  VRAM "
                f"{human_bytes(gpu.memory_used_bytes)} used of {human_bytes(gpu.memory_total_bytes)}  driver {gpu.driver}"
            )
    else:
        console.print(f"  none: {hw.gpu_status}")
    cores = f"{hw.cpu.physical_cores or '?'} cores / {hw.cpu.logical_cores} threads"
    console.print(
        f"[bold]CPU[/bold]\n  {hw.cpu.model} ({cores})  flags: {', '.join(hw.cpu.flags) or 'none of interest'}"
    )
    console.print(f"[bold]System[/bold]\n  {hw.os}, Python {hw.python}")
    console.print("[bold]Runtimes[/bold]")
    for name, version in hw.runtimes.items():
        console.print(f"  {name:<16} {version or '[dim]not installed[/dim]'}")
    console.print(f"  ORT execution providers: {', '.join(hw.ort_providers) or 'none'}")
    for warning in hw.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def show_matrix(console: Console, recipes: list[Recipe], matrix: list[Availability]) -> None:
    table = Table(title="Recipes on this machine", title_justify="left")
    for column in ("recipe", "backend", "precision", "mode", "device", "status"):
        table.add_column(column)
    for recipe, availability in zip(recipes, matrix, strict=True):
        style = "" if availability.available else "dim"
        status = Text(
            availability.status_text,
            style="green" if availability.available and not availability.notice else "yellow",
        )
        if not availability.available:
            status = Text(availability.status_text, style="dim")
        table.add_row(
            recipe.name, recipe.backend, recipe.precision, recipe.mode, recipe.device, status, style=style
        )
    console.print(table)


def show_model(console: Console, info: ModelInfo) -> None:
    console.print(f"[bold]{info.name}[/bold]  ({info.source})")
    console.print(f"  path          {info.path}")
    console.print(f"  architecture  {info.architecture}")
    console.print(f"  task          {info.task}")
    console.print(f"  parameters    {info.parameters / 1e6:.1f} M")
    console.print(f"  size on disk  {human_bytes(info.size_bytes)}")
    labels = ", ".join(info.labels[:8]) + (" ..." if len(info.labels) > 8 else "")
    console.print(f"  labels        {len(info.labels)}{': ' + labels if info.labels else ''}")


def show_results(console: Console, run: RunResult) -> None:
    table = Table(title=f"{run.model.name} — {run.evaluation.count} evaluation inputs", title_justify="left")
    columns = (
        "recipe",
        "precision",
        "p50 ms",
        "p99 ms",
        "speed-up",
        "inputs/s",
        "size",
        "peak RSS",
        "accuracy",
        "agree",
        "KL",
        "cosine",
        "max |Δ|",
        "status",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("recipe", "precision", "status") else "right")
    for r in run.results:
        status = _status(r)
        table.add_row(
            r.recipe + (" (ref)" if r.reference else ""),
            r.precision,
            _num(r.latency_ms.p50 if r.latency_ms else None, ".2f"),
            _num(r.latency_ms.p99 if r.latency_ms else None, ".2f"),
            _num(r.speedup_vs_reference, ".2f") + ("x" if r.speedup_vs_reference else ""),
            _num(r.throughput, ".1f"),
            human_bytes(r.size_bytes),
            human_bytes(r.peak_rss_bytes),
            _pct(r.accuracy),
            _pct(r.top1_agreement),
            _num(r.kl, ".4f"),
            _num(r.cosine, ".4f"),
            _num(r.max_abs_diff, ".3f"),
            status,
        )
    console.print(table)
    for r in run.results:
        for flag in r.flags:
            colour = {"error": "red", "warning": "yellow", "info": "cyan"}[flag.severity]
            console.print(f"[{colour}]{flag.severity.upper()}[/{colour}] {r.recipe}: {flag.message}")
        for note in r.notes:
            console.print(f"[dim]note[/dim] {r.recipe}: {note}")
        if r.status in ("failed", "unavailable"):
            console.print(f"[red]{r.status}[/red] {r.recipe}: {r.reason}")


def _status(r: RecipeResult) -> Text:
    if r.status != "ok":
        return Text(r.status, style="red" if r.status == "failed" else "dim")
    if any(f.severity == "error" for f in r.flags):
        return Text("SUSPECT", style="bold red")
    return Text("cached" if r.from_cache else "ok", style="green")


def show_topk(console: Console, run: RunResult, indices: list[int], k: int = 3) -> None:
    """Top-k of a few inputs, one column per backend; a top-1 that differs from FP32 is marked."""
    ok = [r for r in run.results if r.ok and r.topk]
    if not ok:
        return
    reference = run.reference
    for index in indices:
        item = run.inputs[index]
        gold = f"  (label: {item.gold})" if item.gold else ""
        table = Table(title=f"#{index}: {item.text!r}{gold}", title_justify="left", show_lines=False)
        for r in ok:
            table.add_column(r.recipe)
        ref_top = reference.topk[index][0][0] if reference and reference.topk else None
        for rank in range(k):
            cells = []
            for r in ok:
                label, probability = r.topk[index][rank]
                style = "bold red" if rank == 0 and ref_top is not None and label != ref_top else ""
                cells.append(Text(f"{label} {probability:.2f}", style=style))
            table.add_row(*cells)
        console.print(table)
