"""The Tune and Sensitivity views: the same commands as the CLI, run from the window and drawn live."""

from __future__ import annotations

import tomllib

from studio.core.recipe import parse_recipe


def test_a_tune_from_the_window_draws_its_trials_and_opens_the_best(make_window, tiny_classifier, tiny_eval, qtbot):
    window = make_window(str(tiny_classifier), str(tiny_eval))
    panel = window.tune
    panel.max_trials.setValue(2)
    panel.budget.setValue(0)
    panel.start()
    assert panel.command is not None and not panel.start_button.isEnabled()
    with qtbot.waitSignal(panel.command.finished, timeout=300_000) as done:
        pass
    assert done.args[0] == 0, panel.command.lines
    trials = panel.payload["trials"]
    assert len(trials) == 2 and panel.table.rowCount() == 2
    assert panel.points() == 3  # two trials and the reference
    assert all(t["timing_rounds"] == 3 for t in trials if t["status"] == "ok")  # decided on interleaved timing
    best = panel.payload["best"]
    assert best["recipe"] in panel.status.text() and panel.best_button.isEnabled() and panel.report_button.isEnabled()
    panel.best_button.click()
    assert window.state.run is not None and window.state.run.run_id == best["run_id"]
    assert window.tabs.currentIndex() == 0


def test_sensitivity_from_the_window_ranks_nodes_and_runs_the_worst_kept_in_float(
    make_window, tiny_classifier, tiny_eval, qtbot
):
    window = make_window(str(tiny_classifier), str(tiny_eval))
    panel = window.sensitivity
    names = [panel.recipes.itemText(i) for i in range(panel.recipes.count())]
    assert "ort-int8-static-minmax" in names and "torch-fp32" not in names
    panel.recipes.setCurrentText("ort-int8-dynamic")
    panel.sample.setValue(16)
    panel.start()
    with qtbot.waitSignal(panel.command.finished, timeout=300_000) as done:
        pass
    assert done.args[0] == 0, panel.command.lines
    layers = panel.payload["layers"]
    assert layers and panel.table.rowCount() == len(layers)
    assert len(panel.bars.opts["width"]) == min(20, len(layers))
    assert panel.keep_button.isEnabled() and panel.report_button.isEnabled()
    panel.keep.setValue(1)
    with qtbot.waitSignal(window.controller.finished, timeout=300_000) as finished:
        panel.keep_button.click()
    run = finished.args[0]
    assert [r.recipe for r in run.results] == ["torch-fp32", "ort-int8-dynamic", "ort-int8-dynamic-keep1-float"]
    assert all(r.ok for r in run.results), [r.reason for r in run.results]
    kept = parse_recipe(tomllib.loads(run.results[2].recipe_toml))
    assert kept.exclude_nodes == (layers[0]["name"],)
