"""The window on a text-pair model: the data picker's column choice, a run over both texts, both texts
in the top-k tables, and a typed pair."""

from pathlib import Path

from PySide6.QtCore import Qt

from studio.core.results import RunResult
from studio.gui.qt_data_dialog import NONE, guess_columns
from studio.gui.qt_state import DataColumns

# Every CPU recipe on pairs runs in tests/core/test_pairs.py; the window runs one of each runtime.
CPU = {"torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic", "ort-int8-static-minmax"}


def test_usual_pair_names_are_preset() -> None:
    assert guess_columns(["premise", "hypothesis", "label"], DataColumns()) == DataColumns(
        "premise", "hypothesis", "label"
    )
    assert guess_columns(["query", "passage", "score"], DataColumns()) == DataColumns("query", "passage", None)
    assert guess_columns(["text", "label"], DataColumns()) == DataColumns("text", None, "label")


def test_pairs_from_the_data_picker_to_a_typed_pair(make_window, tiny_nli, tiny_nli_eval: Path, qtbot) -> None:
    window = make_window(str(tiny_nli))
    window.pick_columns(str(tiny_nli_eval))
    dialog = window.columns_dialog
    assert dialog.pair.currentText() == "hypothesis" and dialog.text.currentText() == "premise"
    dialog.pair.setCurrentText(NONE)  # the user's choice wins over the guess ...
    dialog.pair.setCurrentText("hypothesis")  # ... and is what gets read
    with qtbot.waitSignal(window.state.dataChanged, timeout=10_000):
        dialog.accept()
    data = window.state.data
    assert data is not None and data.pairs is not None and len(data) == 48
    assert window.state.calibration is not None and window.state.calibration.pairs is not None
    recipes = window.recipes_panel.list
    for i in range(recipes.count()):
        item = recipes.item(i)
        if item.flags() & Qt.ItemFlag.ItemIsEnabled and item.data(Qt.ItemDataRole.UserRole) != "(reference)":
            item.setCheckState(Qt.CheckState.Checked if item.text() in CPU else Qt.CheckState.Unchecked)
    with qtbot.waitSignal(window.controller.finished, timeout=600_000) as finished:
        window.run_action.trigger()
    run: RunResult = finished.args[0]
    assert {r.recipe for r in run.results} == CPU
    assert all(r.ok and (r.accuracy or 0) >= 0.9 for r in run.results), [(r.recipe, r.reason) for r in run.results]
    assert run.evaluation.pairs and run.inputs[0].pair == data.pairs[0]
    topk = window.topk
    model = topk.inputs_model
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(4)] == ["#", "input", "second text", "label"]
    shown = [model.data(model.index(0, c), Qt.ItemDataRole.DisplayRole) for c in range(5)]
    assert shown[1:4] == [data.texts[0], data.pairs[0], data.labels[0] if data.labels else ""]
    assert shown[4].split()[0] == run.results[0].topk[0][0][0]  # the first backend's top-1
    assert "‖" in topk.detail_title.text()
    assert not topk.typed_pair.isHidden()
    topk.typed.setText("the kite by the sea is not red")
    topk.predict_button.click()  # the second text is missing: asked for, nothing runs
    assert "type the second text too" in topk.detail_title.text()
    with qtbot.waitSignal(window.controller.predicted, timeout=120_000) as predicted:
        topk.typed_pair.setText("the kite is red")
        topk.predict_button.click()
    predictions = predicted.args[0]
    assert set(predictions) == CPU
    assert all(value["topk"][0][0][0] == "contradiction" for value in predictions.values()), predictions
    assert "the kite is red" in topk.detail_title.text()
