"""Write a benchmark's table between its markers in benchmarks/README.md."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).with_name("README.md")


def write_section(name: str, table: str) -> Path:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text()
    head, found, rest = text.partition(begin)
    if not found:
        raise SystemExit(f"{README} has no {begin} marker")
    _, _, tail = rest.partition(end)
    README.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    return README
