"""How the CLI shows hardware, recipes, model cards and comparison results in a terminal."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from studio.core.capability import Availability
from studio.core.hardware import HardwareInfo
from studio.core.kinds import kind_of
from studio.core.kinds.causal_lm import lm_card_rows, split_at_token
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
    if info.task == "text-generation":
        for label, value in lm_card_rows(info):
            console.print(f"  {label:<13} {value}")
        for note in info.notes:
            console.print(f"  [dim]{note}[/dim]")
        return
    labels = ", ".join(info.labels[:8]) + (" ..." if len(info.labels) > 8 else "")
    console.print(f"  labels        {len(info.labels)}{': ' + labels if info.labels else ''}")
    for note in info.notes:
        console.print(f"  [dim]{note}[/dim]")


def show_results(console: Console, run: RunResult) -> None:
    kind = kind_of(run.model.task)
    count = (
        f"{run.evaluation.count} evaluation passages, {len(run.inputs)} prompts"
        if run.model.task == "text-generation"
        else f"{run.evaluation.count} evaluation {'text pairs' if run.evaluation.pairs else 'inputs'}"
    )
    table = Table(title=f"{run.model.name} — {count}", title_justify="left", box=box.SIMPLE_HEAD)
    columns = kind.columns()
    table.add_column("recipe", justify="left", no_wrap=True)
    for column in columns:
        table.add_column(column.header, justify="left" if column.left else "right")
    table.add_column("status", justify="left")
    for r in run.results:
        cells = [column.cell(r) if r.ok else "-" for column in columns]
        table.add_row(r.recipe + (" (ref)" if r.reference else ""), *cells, _status(r))
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
    """Top-k of a few inputs, one column per backend; a top-1 that differs from FP32 is marked.
    For a causal LM each prompt also gets every backend's continuation, cut where it departs from FP32."""
    ok = [r for r in run.results if r.ok and r.topk]
    if not ok:
        return
    reference = run.reference
    if run.model.task == "text-generation":
        show_continuations(console, run, ok, indices, k)
        return
    for index in indices:
        item = run.inputs[index]
        gold = f"  (label: {item.gold})" if item.gold else ""
        table = Table(title=f"#{index}: {item.shown()}{gold}", title_justify="left", show_lines=False)
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


def show_continuations(
    console: Console, run: RunResult, ok: list[RecipeResult], indices: list[int], k: int
) -> None:
    reference = run.reference
    for index in indices:
        table = Table(title=f"prompt #{index}: {run.inputs[index].text!r}", title_justify="left")
        table.add_column("recipe")
        table.add_column(f"next-token top-{k}")
        table.add_column("greedy continuation (red from the first token that departs from FP32)")
        ref_top = reference.topk[index][0][0] if reference and reference.topk else None
        for r in ok:
            top = Text()
            for rank, (token, probability) in enumerate(r.topk[index][:k]):
                style = "bold red" if rank == 0 and ref_top is not None and token != ref_top else ""
                top.append(f"{token} {probability:.2f}  ", style=style)
            table.add_row(r.recipe, top, continuation_text(r, index))
        console.print(table)


def continuation_text(r: RecipeResult, index: int) -> Text:
    """The continuation, with the part from the first departure from FP32 in red."""
    if index >= len(r.continuations):
        return Text("-")
    text = r.continuations[index]
    departure = r.first_departure[index] if index < len(r.first_departure) else None
    if departure is None or r.reference:
        return Text(text)
    kept = split_at_token(r, index, departure)
    return Text(text[:kept]) + Text(text[kept:], style="bold red")
