"""Names of points that sit close together are stacked, not printed over each other."""

import pyqtgraph as pg

from studio.gui.chart_labels import add_names, levels


def test_names_at_the_same_place_go_one_line_lower_each() -> None:
    pixel = (0.01, 0.01)  # data units per pixel
    same = [(100.0, 20.0, 2.0, 95.0), (80.0, 20.0, 2.0, 95.0), (60.0, 20.0, 2.05, 95.0)]
    assert sorted(levels(same, pixel)) == [0, 1, 2]
    apart = [(100.0, 20.0, 2.0, 95.0), (100.0, 20.0, 4.0, 95.0), (100.0, 20.0, 2.0, 90.0)]
    assert levels(apart, pixel) == [0, 0, 0]  # 200 px right, or 500 px below: clear already
    # A fourth name goes one line above the first; a fifth has no room within those lines: its hover tip
    # names it, unless it must show (the reference, the Pareto front), which is placed before the others.
    crowd = [*same, (40.0, 20.0, 2.1, 95.0), (30.0, 20.0, 2.15, 95.0)]  # placed last: the rightmost
    assert levels(crowd, pixel) == [0, 1, 2, -1, None]
    assert levels(crowd, pixel, [False, False, False, False, True]) == [1, 2, -1, None, 0]


def test_the_drawn_names_do_not_overlap(qtbot) -> None:
    plot = _shown_plot(qtbot, 600)
    points = [("ort-int8-dynamic", 2.0, 95.0), ("ort-int8-dynamic-t2", 2.05, 95.1), ("ort-fp32", 2.0, 95.0),
              ("far", 9.7, 92.0)]  # fmt: skip
    add_names(plot, points)
    labels = [item for item in plot.getPlotItem().items if isinstance(item, pg.TextItem)]
    assert sorted(label.textItem.toPlainText() for label in labels) == sorted(name for name, _, _ in points)
    boxes = [label.sceneBoundingRect() for label in labels]
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    # "far" sat 20 px from the right edge: the x range grew until it fits
    view = plot.getViewBox().sceneBoundingRect()
    assert all(view.contains(box) for box in boxes), (view, boxes)


def test_names_are_placed_again_when_the_plot_shrinks(qtbot) -> None:
    plot = _shown_plot(qtbot, 900)
    points = [("ort-int8-static-minmax", 2.0, 95.0), ("ort-int8-static-minmax-keep3-float", 4.0, 95.0)]
    add_names(plot, points)
    labels = [item for item in plot.getPlotItem().items if isinstance(item, pg.TextItem)]

    def clear() -> bool:
        boxes = [label.sceneBoundingRect() for label in labels if label.isVisible()]
        return len(boxes) == 2 and not boxes[0].intersects(boxes[1])

    assert clear()
    assert labels[0].sceneBoundingRect().top() == labels[1].sceneBoundingRect().top()  # side by side: 170 px apart
    plot.resize(300, 400)  # 2 units are now 50 px: the first name runs over the second unless one moves
    qtbot.waitUntil(lambda: labels[0].sceneBoundingRect().left() < 150)  # the names followed their points
    qtbot.waitUntil(clear)


def test_a_plot_collapsed_to_nothing_keeps_its_names_for_later(qtbot) -> None:
    plot = _shown_plot(qtbot, 600)
    add_names(plot, [("ort-fp32", 2.0, 95.0)])
    plot.getViewBox().setGeometry(0, 0, 0, 0)  # a splitter or a dock squeezed it away: no pixel size
    plot.getViewBox().setGeometry(0, 0, 400, 300)
    label = next(item for item in plot.getPlotItem().items if isinstance(item, pg.TextItem))
    assert label.isVisible()


def _shown_plot(qtbot, width: int) -> pg.PlotWidget:
    """x 0..10, y 90..100, shown and laid out: the view's size in pixels is the shown one."""
    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.resize(width, 400)
    plot.setXRange(0, 10, padding=0)
    plot.setYRange(90, 100, padding=0)
    plot.show()
    qtbot.waitExposed(plot)
    return plot
