"""Two small charts as inline SVG, so an HTML report is one file that opens offline without scripts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#3366cc",
    "#dc3912",
    "#ff9900",
    "#109618",
    "#990099",
    "#0099c6",
    "#dd4477",
    "#66aa00",
    "#b82e2e",
    "#316395",
)


def _nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value`: a readable axis end."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def bar_chart(items: list[tuple[str, float, bool]], unit: str, title: str, width: int = 720) -> str:
    """Horizontal bars; items are (label, value, highlight)."""
    bar_h, gap, left = 22, 8, 230
    height = 40 + len(items) * (bar_h + gap) + 30
    top = max((v for _, v, _ in items), default=1.0)
    scale = (width - left - 70) / (_nice_max(top) or 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value, highlight) in enumerate(items):
        y = 35 + i * (bar_h + gap)
        colour = "#dc3912" if highlight else "#3366cc"
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" font-size="12" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{left}" y="{y}" width="{max(1.0, value * scale):.1f}" height="{bar_h}" fill="{colour}">'
            f"<title>{escape(label)}: {value:.2f} {unit}</title></rect>"
        )
        parts.append(
            f'<text x="{left + value * scale + 6:.1f}" y="{y + 16}" font-size="12">{value:.2f} {unit}</text>'
        )
    axis_y = 35 + len(items) * (bar_h + gap) + 12
    parts.append(
        f'<text x="{left}" y="{axis_y}" font-size="11" fill="#555">{escape(unit)} (lower is faster)</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    reference: bool = False
    on_front: bool = False


def scatter_chart(
    points: list[Point],
    x_label: str,
    y_label: str,
    title: str,
    width: int = 720,
    height: int = 420,
    x_unit: str = " ms",
) -> str:
    """Latency (x) against accuracy (y); the Pareto front joined by a line, the reference drawn as a square."""
    left, right, top, bottom = 70, 30, 40, 55
    xs = [p.x for p in points] or [1.0]
    ys = [p.y for p in points] or [1.0]
    x_max = _nice_max(max(xs) * 1.05)
    y_min = max(0.0, min(ys) - 0.05)
    y_max = min(1.0, max(ys) + 0.02) if max(ys) <= 1 else max(ys) * 1.05
    span_y = (y_max - y_min) or 1.0

    def sx(x: float) -> float:
        return left + x / x_max * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y_min) / span_y * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
    ]
    for i in range(6):
        x_value = x_max * i / 5
        parts.append(
            f'<text x="{sx(x_value):.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle">{x_value:.1f}</text>'
        )
        y_value = y_min + span_y * i / 5
        parts.append(
            f'<text x="{left - 6}" y="{sy(y_value) + 4:.1f}" font-size="11" text-anchor="end">{y_value:.1%}</text>'
        )
        parts.append(
            f'<line x1="{left}" y1="{sy(y_value):.1f}" x2="{width - right}" y2="{sy(y_value):.1f}" stroke="#eee"/>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" font-size="12" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="16" y="{(top + height - bottom) / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + height - bottom) / 2})">{escape(y_label)}</text>'
    )
    front = sorted((p for p in points if p.on_front), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in front)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="#109618" stroke-width="2" stroke-dasharray="6 3"/>'
        )
    for i, p in enumerate(points):
        colour = PALETTE[i % len(PALETTE)]
        tip = f"<title>{escape(p.label)}: {p.x:.2f}{escape(x_unit)}, {p.y:.1%}</title>"
        if p.reference:
            parts.append(
                f'<rect x="{sx(p.x) - 6:.1f}" y="{sy(p.y) - 6:.1f}" width="12" height="12" fill="none" '
                f'stroke="#000" stroke-width="2">{tip}</rect>'
            )
        else:
            parts.append(
                f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="6" fill="{colour}">{tip}</circle>'
            )
        parts.append(
            f'<text x="{sx(p.x) + 9:.1f}" y="{sy(p.y) - 8:.1f}" font-size="11">{escape(p.label)}</text>'
        )
    parts.append(
        f'<text x="{width - right}" y="22" font-size="11" text-anchor="end" fill="#109618">'
        "dashes: Pareto front · square: FP32 reference</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
