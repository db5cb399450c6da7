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
    # Stopped by its trial cap: the tune can be opened again (here or from a CLI run) and resumed.
    folder = panel.folder
    assert not panel.payload["finished"] and panel.resume_button.isEnabled()
    panel.payload, panel.folder = {}, None
    panel.table.setRowCount(0)
    with qtbot.waitSignal(window.state.error) as refused:
        panel.open_folder(str(folder.parent))
    assert "holds no tune.json" in refused.args[0] and panel.folder is None
    panel.choose_folder = lambda: str(folder)
    panel.open_button.click()
    assert panel.table.rowCount() == 2 and panel.resume_button.isEnabled() and panel.best_button.isEnabled()
    assert f"2 of {len(panel.payload['planned'])} trials" in panel.status.text()
    panel.resume_button.click()
    assert panel.command.args == ["tune", "--resume", str(folder), "--quiet"] and not panel.start_button.isEnabled()
    with qtbot.waitSignal(panel.command.finished, timeout=120_000):
        panel.cancel()
    assert panel.start_button.isEnabled() and panel.open_button.isEnabled()


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


def test_the_tune_view_asks_a_causal_lm_for_same_top1_kld_and_perplexity(make_window, tiny_llama, tmp_path):
    """For a causal LM the goal is llama.cpp's (same top-1, mean KLD) plus perplexity; the chart and the
    table speak of ms per token and same top-1. Opening a classifier brings the classifier's goal back."""
    window = make_window(str(tiny_llama))
    panel = window.tune
    assert panel.language and panel.agreement.value() == 0.90
    assert panel.form.isRowVisible(panel.kld) and panel.form.isRowVisible(panel.perplexity)
    assert not panel.form.isRowVisible(panel.drop)
    assert panel.form.labelForField(panel.agreement).text() == "Min same top-1 with FP32"
    panel.kld.setValue(0.05)
    args = panel.arguments(tmp_path / "t")
    assert args[args.index("--max-kld") + 1] == "0.05" and args[args.index("--min-agreement") + 1] == "0.9"
    assert args[args.index("--max-perplexity-rise") + 1] == "0.1" and "--max-accuracy-drop" not in args
    headers = [panel.table.horizontalHeaderItem(i).text() for i in range(panel.table.columnCount())]
    assert headers[2] == "ms/token" and "same top-1" in headers and "KLD" in headers
    reference = {"recipe": "llm-torch-fp32", "perplexity": 10.0, "latency_ms": {"p50": 20.0}}
    trial = {"recipe": "llm-ort-int4", "status": "ok", "latency_ms": {"p50": 10.0}, "top1_agreement": 0.95,
             "perplexity": 10.5, "kl": 0.0321, "speedup_vs_reference": 2.0, "meets_goal": True}  # fmt: skip
    panel.show_payload({"trials": [trial], "state": {"reference": reference}, "best": {"recipe": "llm-ort-int4"}})
    row = [panel.table.item(0, c).text() for c in range(panel.table.columnCount())]
    assert row[1:] == ["ok", "10.00", "2.00", "95.0%", "+5.0%", "0.0321", "meets"]
    assert panel.points() == 2  # the trial and the reference
    panel.set_kind("text-classification")  # what a classifier's modelChanged does
    assert not panel.language and panel.agreement.value() == 0.98 and panel.form.isRowVisible(panel.drop)


def test_a_saved_tune_is_shown_by_this_versions_ranking() -> None:
    """A tune.json whose best was chosen by absolute milliseconds (an earlier version) opens with the best by
    speed-up within each trial's own run, as a resume would choose it."""
    from studio.core.tune import TuneGoal, TuneState, judge
    from studio.gui.qt_tune import rejudged
    from tests.core.test_tune import _result

    reference = _result("ref", 10.0, 1.0, 0.90)
    early = judge(_result("early", 5.0, 0.99, 0.90, reference_p50=10.0), reference, TuneGoal())
    late = judge(_result("late", 8.0, 0.99, 0.90, reference_p50=20.0), reference, TuneGoal())
    stale = TuneState(goal=TuneGoal(), model="m", planned=["early", "late"], best=early,
                      trials=[early.model_copy(update={"objective_value": 5.0}),
                              late.model_copy(update={"objective_value": 8.0})])  # fmt: skip
    payload = stale.payload()
    assert payload["best"]["recipe"] == "early"
    shown = rejudged(payload)
    assert shown["best"]["recipe"] == "late" and shown["trials"][1]["objective_value"] == 0.4
    assert rejudged({"trials": []}) == {"trials": []}  # not a tune's state: shown as it is
