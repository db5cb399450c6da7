"""The window on a causal LM: its card, the recipes for its kind (the reference pinned on top), a run with the
LLM charts, the prompts' top-k with continuations, and a typed prompt."""

from PySide6.QtCore import Qt

from studio.core.results import RunResult


def _select(window, names):
    recipes = window.recipes_panel.list
    for i in range(recipes.count()):
        item = recipes.item(i)
        if item.flags() & Qt.ItemFlag.ItemIsEnabled and item.data(Qt.ItemDataRole.UserRole) != "(reference)":
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)


def test_llm_card_and_recipes_for_its_kind(make_window, tiny_llama, tiny_classifier, qtbot):
    window = make_window(str(tiny_llama))
    fields = window.model_panel.fields
    assert fields["task"].text() == "text-generation" and fields["layers"].text() == "2"
    assert fields["context"].text() == "512 tokens" and fields["chat template"].text() == "no"
    assert not window.model_panel.form.isRowVisible(fields["labels"])
    recipes = window.recipes_panel.list
    first = recipes.item(0)
    assert first.text().startswith("llm-torch-fp32") and "always runs first" in first.text()
    assert first.checkState() == Qt.CheckState.Checked
    first.setCheckState(Qt.CheckState.Unchecked)  # a click on the reference is undone
    assert first.checkState() == Qt.CheckState.Checked
    items = {recipes.item(i).text(): recipes.item(i) for i in range(recipes.count())}
    assert items["llm-ort-int4"].flags() & Qt.ItemFlag.ItemIsEnabled
    static = items["ort-int8-static-minmax"]
    assert not static.flags() & Qt.ItemFlag.ItemIsEnabled and "causal language models" in static.toolTip()
    names = [recipes.item(i).text() for i in range(recipes.count())]
    assert names.index("llm-ort-int4") < names.index("ort-fp32"), "recipes for this kind come first"
    assert (
        window.charts.task == "text-generation" and "decode" in window.charts.latency.plotItem.titleLabel.text
    )
    with qtbot.waitSignal(window.state.modelChanged, timeout=60_000):
        window.state.open_model(str(tiny_classifier))
    assert window.charts.task == "text-classification" and window.recipes_panel.list.item(
        0
    ).text().startswith("torch-fp32")


def test_llm_run_charts_topk_continuations_and_typed_prompt(
    make_window, tiny_llama, tiny_passages, tiny_prompts, qtbot
):
    window = make_window(str(tiny_llama))
    window.state.load_prompts(str(tiny_prompts))
    window.state.load_data(str(tiny_passages))
    assert window.state.data is not None and window.state.data.prompts
    _select(window, {"llm-ort-int4", "llm-ort-int8-dynamic"})
    with qtbot.waitSignal(window.controller.finished, timeout=300_000) as finished:
        window.run_action.trigger()
        assert window.run_panel.table.rowCount() == 3
    run: RunResult = finished.args[0]
    assert [r.status for r in run.results] == ["ok", "ok", "ok"], [r.reason for r in run.results]
    qtbot.waitUntil(lambda: len(window.charts.scatter_points()) == 3, timeout=5_000)
    points = {name: (kld, rate) for name, kld, rate in window.charts.scatter_points()}
    assert points["llm-torch-fp32"][0] == 0.0 and all(rate > 0 for _, rate in points.values())
    topk = window.topk
    assert (
        topk.inputs_model.rowCount() == 3
        and topk.inputs_model.headerData(1, Qt.Orientation.Horizontal) == "prompt"
    )
    assert "same top-1 on" in topk.summary.text()
    topk.inputs.selectRow(0)
    assert topk.continuations.isVisible() or not window.isVisible()
    html = topk.continuations.toHtml()
    assert "llm-ort-int4" in html and "the cat sat on" in html
    assert topk.detail.columnCount() == 3 and topk.detail.item(0, 0).text().startswith("␣the")
    with qtbot.waitSignal(window.controller.predicted, timeout=120_000) as predicted:
        topk.typed.setText("my friend ran to the")
        topk.predict_button.click()
    assert set(predicted.args[0]) == {"llm-torch-fp32", "llm-ort-int4", "llm-ort-int8-dynamic"}
    assert all(v.get("continuations") for v in predicted.args[0].values())
    assert "my friend ran to the" in topk.continuations.toHtml()
