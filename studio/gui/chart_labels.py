"""Names beside scatter points, stacked so that no name overwrites another.

pyqtgraph draws a `TextItem` at a data position but at a fixed size in pixels, so the names of points that
sit close together (a variant as fast as its recipe, a sensitivity run's before and after) print on top of
each other. Each name here goes one line lower until its box is clear of the names placed before it; a
name that would drift more than a few lines from its point is left to the point's hover tip, unless it is
one that must show (the reference, the Pareto front), and those are placed first.
"""

from __future__ import annotations

import pyqtgraph as pg

MAX_LEVELS = 3  # lines a name may go below its point; further, it would read as another point's
# Where a name may go, in order: just above-right of its point, one and two lines lower, then one line
# higher (a cluster of three reads better with a name stacked on top than with one left out).
PLACES = (*range(MAX_LEVELS), -1)

Box = tuple[float, float, float, float]


def levels(
    names: list[tuple[float, float, float, float]],
    pixel: tuple[float, float],
    first: list[bool] | None = None,
) -> list[int | None]:
    """Per name (width and height in pixels, x and y of its point): how many lines below its place just
    above-right of the point it goes (-1: one line above it), or None: no room near its point. `pixel`
    is the data size of one pixel (x, y). Names are placed top to bottom, left to right, those marked
    `first` before the others; each takes the first of `PLACES` whose box is clear of those placed
    before (one marked `first` with no room stays just above its point)."""
    px, py = pixel
    must = first or [False] * len(names)
    out: list[int | None] = [None] * len(names)
    boxes: list[Box] = []
    for i in sorted(range(len(names)), key=lambda i: (not must[i], -names[i][3], names[i][2])):
        width, height, x, y = names[i]
        left, above = x / px, -y / py - height  # pixel rows grow downwards
        for level in PLACES:
            box = (left, above + level * height, left + width, above + (level + 1) * height)
            if not any(_overlap(box, other) for other in boxes):
                out[i] = level
                boxes.append(box)
                break
        else:
            if must[i]:
                out[i] = 0
                boxes.append((left, above, left + width, above + height))
    return out


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def add_names(
    plot: pg.PlotWidget,
    points: list[tuple[str, float, float]],
    color: str = "#333",
    first: set[str] | None = None,
) -> None:
    """Each name just above-right of its point, or as many lines lower as keeps it clear of the others
    (`levels`; names in `first` are placed first and always shown); the x range grows until the
    rightmost names fit. Call after the plot's ranges are set. Placed again whenever the plot is
    resized: names keep their size in pixels while the points move closer or apart."""
    previous = getattr(plot, "_studio_names", None)
    if previous is not None:
        plot.getViewBox().sigResized.disconnect(previous.place)
    names = _Names(plot, points, color, {name for name, _, _ in points} & (first or set()))
    plot._studio_names = names
    names.place()
    plot.getViewBox().sigResized.connect(names.place)


class _Names:
    """The names of one chart's points, and where they go at the plot's present size."""

    def __init__(
        self, plot: pg.PlotWidget, points: list[tuple[str, float, float]], color: str, first: set[str]
    ):
        self.plot = plot
        self.points = points
        self.must = [name in first for name, _, _ in points]
        self.labels = [pg.TextItem(name, color=color, anchor=(0, 1)) for name, _, _ in points]
        self.right = plot.getViewBox().viewRange()[0][1]  # as the caller set it: grown from, never below
        for label, (_, x, y) in zip(self.labels, points, strict=True):
            label.setPos(x, y)
            label.setVisible(False)
            plot.addItem(label)

    def place(self) -> None:
        view = self.plot.getViewBox()
        if view.width() < 2 or view.height() < 2:  # collapsed or not laid out yet: no pixel size to place by
            return
        sizes = [(label.boundingRect().width(), label.boundingRect().height()) for label in self.labels]
        left = view.viewRange()[0][0]
        pixels = view.width()
        needed = [  # a name w pixels wide fits right of x when (x - left) / (right - left) <= 1 - w / pixels
            left + (x - left) * pixels / (pixels - w)
            for (w, _), (_, x, _) in zip(sizes, self.points, strict=True)
            if w < 0.6 * pixels
        ]
        right = max([self.right, *needed])
        if right != view.viewRange()[0][1]:
            self.plot.setXRange(left, right, padding=0)
        boxes = [(w, h, x, y) for (w, h), (_, x, y) in zip(sizes, self.points, strict=True)]
        for label, level in zip(self.labels, levels(boxes, view.viewPixelSize(), self.must), strict=True):
            label.setVisible(level is not None)  # None: no room near its point, its hover tip names it
            if level is not None:
                label.setAnchor((0, 1 - level))
