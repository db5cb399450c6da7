"""Each panel on its own: model card, hardware, recipes (greyed with reasons, form validation), errors."""

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt

from tests.fakes.nvml import FakeNvml


def test_model_panel_shows_the_card_and_survives_a_bad_model(make_window, tiny_classifier, tmp_path, qtbot):
    window = make_window(str(tiny_classifier))
    fields = window.model_panel.fields
    assert fields["architecture"].text() == "BertForSequenceClassification"
    assert fields["labels"].text().startswith("3: greeting, weather, music")
    assert fields["task"].text() == "text-classification"
    assert window.model_panel.recent.count() >= 1
    with qtbot.waitSignal(window.state.modelFailed, timeout=30_000) as failed:
        window.state.open_model(str(tmp_path / "missing"))
    assert "model not found" in failed.args[0]
    assert (window.errors.count() == 1 and window.isVisible() is False) or window.errors.count() == 1
    assert window.state.model is not None and window.state.model.name == tiny_classifier.name, "the old model stays"


def test_hardware_panel_without_and_with_gpu(make_window, tiny_classifier):
    window = make_window(str(tiny_classifier))
    assert "No NVIDIA GPU" in window.hardware_panel.label.text()
    assert "no NVIDIA driver found" in window.hardware_panel.label.text()
    with_gpu = make_window(str(tiny_classifier), nvml=FakeNvml.with_cards("h100"))
    text = with_gpu.hardware_panel.label.text()
    assert "NVIDIA H100 80GB HBM3" in text and "compute capability 9.0" in text and "80.0 GB" in text


def test_recipes_unavailable_are_greyed_with_reason(make_window, tiny_classifier):
    window = make_window(str(tiny_classifier))
    recipes = window.recipes_panel.list
    items = {recipes.item(i).text(): recipes.item(i) for i in range(recipes.count())}
    cuda = items["ort-cuda-fp16"]
    assert not cuda.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "Not available: needs an NVIDIA GPU" in cuda.toolTip()
    assert items["ort-int8-dynamic"].flags() & Qt.ItemFlag.ItemIsEnabled
    recipes.setCurrentItem(cuda)
    assert "Not available:" in window.recipes_panel.detail.text()


def test_gtx1060_shows_the_fp16_fallback(make_window, tiny_classifier):
    window = make_window(str(tiny_classifier), nvml=FakeNvml.with_cards("gtx1060"))
    window.state.hardware.ort_providers.append("CUDAExecutionProvider")
    window.recipes_panel.list.refresh()
    recipes = window.recipes_panel.list
    item = next(recipes.item(i) for i in range(recipes.count()) if recipes.item(i).text() == "ort-cuda-fp16")
    assert item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "FP32 will run instead" in item.toolTip()


def test_recipe_form_validates_as_you_type_and_saves_toml(make_window, tiny_classifier, tmp_path):
    window = make_window(str(tiny_classifier))
    form = window.recipes_panel.form
    recipes = window.recipes_panel.list
    recipes.setCurrentRow(next(i for i in range(recipes.count()) if recipes.item(i).text() == "ort-int8-dynamic"))
    assert form.validate() and window.recipes_panel.save_button.isEnabled()
    form.precision.setCurrentText("int4")
    assert "backend 'ort-int8-dynamic' does not do precision 'int4'; allowed: int8" in form.message.text()
    assert not window.recipes_panel.save_button.isEnabled()
    form.precision.setCurrentText("int8")
    form.name.setText("my-int8")
    form.per_channel.setChecked(False)
    assert form.recipe is not None and form.recipe.name == "my-int8"
    path = tmp_path / "my-int8.toml"
    path.write_text(form.recipe.to_toml())
    window.recipes_panel.load_file(path)
    names = [recipes.item(i).text() for i in range(recipes.count())]
    assert "my-int8" in names
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbackend = "ort-fp32"\nprecision = "fp9"\n')
    window.recipes_panel.load_file(bad)
    assert window.errors.count() == 1 and "field 'precision'" in window.errors.list.item(0).text()


def test_pyqtgraph_plot_paints(qtbot):
    """PySide6 6.12 crashed on the first QPainter paint; keep a test that paints a plot."""
    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.plot([0, 1, 2], [2, 1, 3])
    plot.resize(300, 200)
    image = plot.grab().toImage()
    assert image.width() == 300 and not image.isNull()


def test_shortcuts(make_window, tiny_classifier):
    window = make_window(str(tiny_classifier))
    assert window.run_action.shortcut().toString() == "Ctrl+R"
    assert window.cancel_action.shortcut().toString() == "Esc"
    assert window.open_action.shortcut().toString() == "Ctrl+O"


def test_settings_persist_between_starts(make_window, tiny_classifier):
    window = make_window(str(tiny_classifier))
    recipes = window.recipes_panel.list
    for i in range(recipes.count()):
        item = recipes.item(i)
        if item.flags() & Qt.ItemFlag.ItemIsEnabled:
            item.setCheckState(Qt.CheckState.Checked if item.text() == "ort-fp16" else Qt.CheckState.Unchecked)
    window.resize(640, 480)
    window.close()
    again = make_window(None)  # no model given: the last one opens
    assert again.state.model_ref == str(tiny_classifier)
    assert [r.name for r in again.recipes_panel.list.checked()] == ["ort-fp16"]
    assert again.size().width() == 640  # the window layout came back too


def test_errors_panel_copies_details(make_window, tiny_classifier):
    from PySide6.QtGui import QGuiApplication

    window = make_window(str(tiny_classifier))
    window.report_error("something broke", "the details")
    window.errors.copy()
    assert QGuiApplication.clipboard().text() == "something broke\n\nthe details"
    assert Path  # keep the import used


def test_topk_marks_disagreements(qtbot, tiny_classifier, tiny_eval, tiny_calibration):
    from studio.backends.registry import REGISTRY
    from studio.core.cache import ArtifactCache
    from studio.core.compare import RunSettings, compare
    from studio.core.dataset import load_texts
    from studio.core.hardware import probe
    from studio.core.measure import TimingPlan
    from studio.core.model import open_model
    from studio.core.paths import cache_dir
    from studio.core.recipe import parse_recipe
    from studio.gui.qt_topk import DISAGREE, TopKPanel
    from tests.fakes.backends import MISLABELLED

    REGISTRY[MISLABELLED.name] = MISLABELLED
    try:
        run = compare(open_model(tiny_classifier),
                      [parse_recipe({"name": "mislabelled", "backend": MISLABELLED.name, "precision": "fp32"})],
                      load_texts(tiny_eval), load_texts(tiny_calibration, label_column=None), probe(FakeNvml.missing()),
                      ArtifactCache(cache_dir() / "artifacts"),
                      RunSettings(timing=TimingPlan(warmup=1, min_iterations=2, min_seconds=0, rounds=0)))
    finally:
        del REGISTRY[MISLABELLED.name]
    panel = TopKPanel()
    qtbot.addWidget(panel)
    panel.show_run(run)
    model = panel.inputs_model
    assert len(panel.disagreeing_rows()) == model.rowCount() == len(run.inputs)
    assert model.data(model.index(0, 4), Qt.ItemDataRole.BackgroundRole) == DISAGREE
    assert "mislabelled</b> agrees with FP32 on 0/48" in panel.summary.text() or "#b3261e" in panel.summary.text()
    assert panel.detail.item(0, 1).background().color() == DISAGREE  # the chosen input's differing top-1
    panel.only_disagreements.setChecked(True)
    assert model.rowCount() == len(run.inputs)


def test_drop_a_model_folder_and_a_recipe_file(make_window, tiny_classifier, tiny_encoder, tmp_path, qtbot):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window(str(tiny_classifier))

    def drop(path):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        window.dropEvent(event)

    with qtbot.waitSignal(window.state.modelChanged, timeout=30_000):
        drop(tiny_encoder / "config.json")
    assert window.state.model.task == "feature-extraction"
    recipe = tmp_path / "dropped.toml"
    recipe.write_text('name = "dropped"\nbackend = "ort-fp32"\nprecision = "fp32"\n')
    drop(recipe)
    names = [window.recipes_panel.list.item(i).text() for i in range(window.recipes_panel.list.count())]
    assert "dropped" in names


def test_scatter_tooltip_names_the_recipe(qtbot):
    from studio.core.results import Latency, RecipeResult
    from studio.gui.qt_charts import ChartsPanel

    charts = ChartsPanel()
    qtbot.addWidget(charts)
    result = RecipeResult(recipe="ort-int8-dynamic", backend="ort-int8-dynamic", precision="int8",
                          requested_precision="int8", mode="dynamic", device="cpu", status="ok", batch_size=1,
                          seq_len=128, threads=0, latency_ms=Latency(p50=7.5, p90=8, p99=9, mean=7.6), accuracy=0.92)
    charts.show_results([result])
    qtbot.waitUntil(lambda: charts.scatter_item is not None, timeout=2_000)
    spot = charts.scatter_item.points()[0]
    assert charts.scatter_item.opts["tip"](spot.pos().x(), spot.pos().y(), spot.data()) == "ort-int8-dynamic\n7.50 ms · 92.0%"
