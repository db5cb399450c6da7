"""GUI fixtures: a main window over a tiny model, fake NVML, isolated settings; fails on leaked windows."""

from __future__ import annotations

import pytest

from tests.fakes.nvml import FakeNvml


@pytest.fixture
def make_window(qtbot, monkeypatch, tmp_path):
    """Build the main window the way `qstudio` does, on a given model and evaluation file."""
    from studio.gui import app

    monkeypatch.setenv("QSTUDIO_HOME", str(tmp_path / "home"))
    windows = []

    def make(model: str, eval_file: str | None = None, nvml: FakeNvml | None = None):
        window = app.create_window(model, nvml or FakeNvml.missing())
        qtbot.addWidget(window)
        windows.append(window)
        if eval_file:
            window.state.eval_file = eval_file
        with qtbot.waitSignal(window.state.modelChanged, timeout=60_000):
            pass
        if eval_file:
            window.state.load_data(eval_file)
        return window

    yield make
    for window in windows:
        if window.controller.running:
            window.controller.cancel_all()
            qtbot.waitUntil(lambda w=window: not w.controller.running, timeout=10_000)
