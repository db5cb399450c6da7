"""Sizes as people read them, shared by the CLI, the window and the reports."""

from __future__ import annotations


def human_bytes(value: float | None) -> str:
    """1536 -> '1.5 KB'; None (not measured) -> '-'."""
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
