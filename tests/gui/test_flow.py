"""The whole flow: pick a model, run two recipes, watch charts and tables fill, cancel, reopen, export."""

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton

from studio.core.results import RunResult


def _select(window, names):
    recipes = window.recipes_panel.list
    for i in range(recipes.count()):
        item = recipes.item(i)
        if item.flags() & Qt.ItemFlag.ItemIsEnabled:
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)


def test_run_two_recipes_then_charts_tables_history_export(
    make_window, tiny_classifier, tiny_eval, qtbot, tmp_path, monkeypatch
):
    window = make_window(str(tiny_classifier), str(tiny_eval))
    _select(window, {"ort-fp32", "ort-int8-dynamic"})
    events = []
    window.controller.runEvent.connect(events.append)
    with qtbot.waitSignal(window.controller.finished, timeout=300_000) as finished:
        window.run_action.trigger()
        assert window.controller.running
        assert window.run_panel.table.rowCount() == 3  # reference + two recipes
        qtbot.waitUntil(lambda: window.charts.memory_points() > 0, timeout=120_000)  # live, while running
    run: RunResult = finished.args[0]
    assert [r.status for r in run.results] == ["ok", "ok", "ok"]
    assert window.run_panel.clock.text().startswith("finished in")
    qtbot.waitUntil(lambda: len(window.charts.scatter_points()) == 3, timeout=5_000)  # drawn a turn later
    points = window.charts.scatter_points()
    assert {name for name, _, _ in points} == {"torch-fp32", "ort-fp32", "ort-int8-dynamic"}
    assert all(x > 0 and 0 <= y <= 100 for _, x, y in points)
    assert any(e.kind == "sample" for e in events)
    assert window.charts.memory.getPlotItem().legend.isVisible()  # it names the curves
    topk = window.topk
    assert topk.inputs_model.rowCount() == len(run.inputs)
    assert topk.inputs_model.columnCount() == 3 + 3
    assert topk.detail.columnCount() == 3 and topk.detail.rowCount() == 3
    assert "agrees with FP32" in topk.summary.text()
    history = window.history
    assert history.table.rowCount() == 1 and history.table.item(0, 2).text() == "finished"
    history.table.selectRow(0)
    report = history.export(run.run_id, tmp_path / "report.html")
    assert report is not None and "Top-k predictions side by side" in report.read_text()
    window.charts.reset()
    with qtbot.waitSignal(history.reopened, timeout=10_000):
        history.open_selected()
    qtbot.waitUntil(lambda: len(window.charts.scatter_points()) == 3, timeout=5_000)
    assert not window.charts.memory.getPlotItem().legend.isVisible()  # no samples kept: no empty box
    # typed text: every backend's top-k from a worker
    with qtbot.waitSignal(window.controller.predicted, timeout=120_000) as predicted:
        topk.typed.setText("will it rain in paris")
        topk.predict_button.click()
    assert set(predicted.args[0]) == {"torch-fp32", "ort-fp32", "ort-int8-dynamic"}
    assert topk.detail.columnCount() == 3 and topk.detail.item(0, 0).text().split()[0] in (
        "greeting",
        "weather",
        "music",
    )
    # export a result row: a child process, progress, then the verdicts; the window stays live
    exports = tmp_path / "exports"
    exports.mkdir()
    window.choose_export_parent = lambda recipe: str(exports)
    row = window.run_panel.rows["ort-int8-dynamic"]
    export_button = window.run_panel.table.cellWidget(row, 3)
    assert export_button.text() == "Export…" and export_button.isEnabled()
    with qtbot.waitSignal(window.exporter.finished, timeout=300_000) as exported:
        export_button.click()
        assert window.export_progress is not None and window.exporter.running
    evidence, folder = exported.args
    assert Path(folder).parent == exports and (Path(folder) / "model.onnx").is_file()
    assert evidence.recipe == "ort-int8-dynamic" and evidence.ready_for_local_trial.ready
    assert window.export_box is not None and "Ready for release" in window.export_box.text()
    assert window.export_progress is None
    # cancel: nothing is left behind
    with qtbot.waitSignal(window.exporter.failed, timeout=60_000) as cancelled:
        window.run_panel.table.cellWidget(window.run_panel.rows["ort-fp32"], 3).click()
        qtbot.waitUntil(lambda: window.exporter.running, timeout=10_000)
        window.export_progress.findChild(QPushButton).click()  # the dialog's Cancel
    assert "cancelled" in cancelled.args[0]
    assert [p.name for p in exports.iterdir()] == [Path(folder).name]
    # the same row again: the folder is not empty, so the window asks first
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *args, **kwargs: asked.append(args[2]) or QMessageBox.StandardButton.No
    )
    export_button = window.run_panel.table.cellWidget(window.run_panel.rows["ort-int8-dynamic"], 3)
    export_button.click()
    assert asked and "is not empty" in asked[0] and not window.exporter.running
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.exporter.finished, timeout=300_000) as replaced:
        export_button.click()
    assert replaced.args[1] == folder and replaced.args[0].exported_at >= evidence.exported_at


def test_cancel_all_from_the_window(make_window, tiny_classifier, tiny_eval, qtbot):
    window = make_window(str(tiny_classifier), str(tiny_eval))
    _select(window, {"ort-int8-static-entropy", "ort-int4-weight-only"})
    with qtbot.waitSignal(window.controller.finished, timeout=120_000) as finished:
        window.run_action.trigger()
        qtbot.waitUntil(lambda: window.run_panel.table.item(0, 2).text() not in ("queued",), timeout=60_000)
        window.cancel_action.trigger()
    statuses = [r.status for r in finished.args[0].results]
    assert statuses[-1] == "cancelled" and len(statuses) <= 3
    assert window.run_panel.start_button.isEnabled()


def test_starting_without_selection_reports_it(make_window, tiny_classifier):
    window = make_window(str(tiny_classifier))
    _select(window, set())
    window.run_action.trigger()
    assert not window.controller.running
    assert "No recipe selected" in window.errors.list.item(0).text()
