"""Run on cluster from the window: the ticked recipes as `qstudio sweep` on a local Ray instance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray-cluster")


def test_run_on_cluster_shows_each_task_and_opens_the_swept_run(make_window, tiny_classifier, tiny_eval, qtbot, tmp_path):
    from PySide6.QtCore import Qt

    window = make_window(str(tiny_classifier), str(tiny_eval))
    recipes = window.recipes_panel.list
    for i in range(recipes.count()):
        item = recipes.item(i)
        if item.flags() & Qt.ItemFlag.ItemIsEnabled:
            item.setCheckState(Qt.CheckState.Checked if item.text() == "ort-int8-dynamic" else Qt.CheckState.Unchecked)
    choice = window.run_panel.cluster
    assert choice.check.isEnabled() and not choice.address.isEnabled()
    choice.check.setChecked(True)
    assert choice.address.isEnabled()
    states: list[tuple[str, str]] = []
    window.cluster_run.task.connect(lambda recipe, state, _: states.append((recipe, state)))
    with qtbot.waitSignal(window.cluster_run.finished, timeout=300_000) as done:
        window.start_run()
        assert window.cluster_run.running and not window.run_panel.start_button.isEnabled()
    run_ids, code = done.args
    assert code == 0, "\n".join(window.cluster_run.command.lines)
    assert ("torch-fp32", "running") in states and ("ort-int8-dynamic", "done") in states
    run = window.state.run
    assert run is not None and run.run_id == run_ids[0]
    assert [r.recipe for r in run.results] == ["torch-fp32", "ort-int8-dynamic"] and all(r.ok for r in run.results)
    assert all(r.node for r in run.results)  # which node ran it
    assert "Sweep finished" in window.status.text() and window.run_panel.start_button.isEnabled()
    assert all(r.accuracy is not None and not [f for f in r.flags if f.severity == "error"] for r in run.results)
    charts = window.charts
    qtbot.waitUntil(lambda: charts.scatter_item is not None and bool(charts.quality.listDataItems()), timeout=5000)
    shots = os.environ.get("QSTUDIO_SCREENSHOTS")  # docs/screenshots/cluster-run.png when asked for
    window.grab().save(str(Path(shots) / "cluster-run.png" if shots else tmp_path / "cluster-run.png"))


def test_without_ray_the_choice_is_greyed_with_the_reason(qtbot, monkeypatch):
    from studio.gui import qt_cluster

    monkeypatch.setattr(qt_cluster, "ray_installed", lambda: False)
    choice = qt_cluster.ClusterChoice()
    qtbot.addWidget(choice)
    assert not choice.check.isEnabled() and "pip install 'quantization-studio[cluster]'" in choice.check.toolTip()
    assert not choice.chosen
