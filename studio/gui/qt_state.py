"""What the window is working on (model, data, recipes, the current run) and the run controller.

`StudioState` is the one object the panels share: they read it and connect to its signals in one place.
`RunController` drives the core's `RunEngine` from a Python thread; engine events reach the GUI thread
as Qt signals (queued), so no worker thread ever touches a widget.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from studio.core.capability import Availability, assess
from studio.core.compare import RunSettings
from studio.core.dataset import TextSet, load_prompts, request_data
from studio.core.errors import StudioError
from studio.core.hardware import HardwareInfo
from studio.core.model import ModelInfo
from studio.core.paths import data_dir
from studio.core.recipe import Recipe, builtin_recipes
from studio.core.results import RunResult
from studio.gui.background import in_background

log = logging.getLogger(__name__)
MAX_RECENT = 8


def settings() -> QSettings:
    """Settings live with the user's data (platformdirs, or QSTUDIO_HOME), not in Qt's own location."""
    return QSettings(str(data_dir() / "settings.ini"), QSettings.Format.IniFormat)


@dataclass(frozen=True)
class DataColumns:
    """Which columns of an evaluation file hold the text, the pair's second text and the gold label."""

    text: str = "text"
    pair: str | None = None
    label: str | None = "label"


class StudioState(QObject):
    modelLoading = Signal(str)
    modelChanged = Signal(object)  # ModelInfo
    modelFailed = Signal(str, str)
    dataChanged = Signal(str)
    recipesChanged = Signal()
    runShown = Signal(object)  # RunResult: a finished or reopened run
    error = Signal(str, str)  # message, details

    def __init__(self, hardware: HardwareInfo, parent: QObject | None = None, nvml: Any = None) -> None:
        super().__init__(parent)
        self.hardware = hardware
        self.nvml = nvml  # None: the real pynvml
        self.model_ref: str | None = None
        self.model: ModelInfo | None = None
        self.recipes: list[Recipe] = builtin_recipes()
        self.eval_file: str | None = None
        self.columns = DataColumns()
        self.prompts_file: str | None = None
        self.data: TextSet | None = None
        self.calibration: TextSet | None = None
        self.run: RunResult | None = None
        self._tasks: list[Any] = []

    # -- model ----------------------------------------------------------------------------------------
    def open_model(self, ref: str) -> None:
        """Open a model in the background; `modelChanged` or `modelFailed` follows."""
        from studio.core.model import open_model

        self.modelLoading.emit(ref)

        def opened(model: Any) -> None:
            if self.model is not None and self.model.task != model.info.task:  # another kind's data
                self.eval_file, self.prompts_file, self.columns = None, None, DataColumns()
            self.model_ref = ref
            self.model = model.info
            self._remember_model(ref)
            self.load_data(self.eval_file)
            self.modelChanged.emit(model.info)

        def failed(message: str, details: str) -> None:
            self.modelFailed.emit(message, details)
            self.error.emit(f"Cannot open model: {message}", details)

        self._tasks.append(in_background(lambda: open_model(ref), opened, failed, self))

    def _remember_model(self, ref: str) -> None:
        store = settings()
        recent = [r for r in self.recent_models() if r != ref]
        store.setValue("recent_models", [ref, *recent][:MAX_RECENT])
        store.setValue("last_model", ref)

    @staticmethod
    def recent_models() -> list[str]:
        value = settings().value("recent_models", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    # -- data -----------------------------------------------------------------------------------------
    def data_request(self, path: str | None = None) -> dict[str, Any]:
        """What the run's request says about its data, as the CLI writes it (so a rerun reads the same)."""
        return {
            "model": self.model_ref or "demo",
            "task": self.model.task if self.model else "text-classification",
            "eval": path,
            "text_column": self.columns.text if path else "text",
            "pair_column": self.columns.pair if path else None,
            "label_column": self.columns.label if path else "label",
            "prompts": self.prompts_file,
            "calibration": None,
            "limit": 0,
        }

    def cli_data_args(self) -> list[str]:
        """The model and data as `qstudio` options, for the commands the window runs (tune, sensitivity)."""
        args = ["--model", self.model_ref or "demo"]
        if self.eval_file:
            args += ["--eval", self.eval_file, "--text-column", self.columns.text]
            args += ["--label-column", self.columns.label or ""]
            if self.columns.pair:
                args += ["--pair-column", self.columns.pair]
        return args

    def load_data(self, path: str | None, columns: DataColumns | None = None) -> None:
        """Evaluation texts: the chosen file (20% held out for calibration) read with `columns` (the
        last ones chosen when not given), or the demo's own sets (for a language model, the LLM demo's
        passages and prompts). A file that cannot be read leaves the data as it was."""
        previous = self.columns
        if columns is not None:
            self.columns = columns
        try:
            data, calibration = request_data(self.data_request(path))
        except StudioError as error:
            self.columns = previous
            self.error.emit(str(error), "")
            return
        self.eval_file, self.data, self.calibration = path, data, calibration
        self.dataChanged.emit(data.source)

    def load_prompts(self, path: str) -> None:
        """Prompts for a language model's side-by-side tables, one per line."""
        try:
            load_prompts(path)
        except StudioError as error:
            self.error.emit(str(error), "")
            return
        self.prompts_file = path
        self.load_data(self.eval_file)

    # -- recipes --------------------------------------------------------------------------------------
    def availability(self, recipe: Recipe) -> Availability:
        return assess(recipe, self.hardware, self.model)

    def add_recipe(self, recipe: Recipe) -> None:
        self.recipes = [r for r in self.recipes if r.name != recipe.name] + [recipe]
        self.recipesChanged.emit()

    def show_run(self, run: RunResult) -> None:
        self.run = run
        self.runShown.emit(run)


class RunController(QObject):
    """Starts, watches and cancels runs of the core's engine without blocking the event loop."""

    runEvent = Signal(object)  # studio.core.events.Event
    started = Signal(list)  # recipe names in queue order
    finished = Signal(object)  # RunResult
    failed = Signal(str, str)
    predicted = Signal(object)  # {recipe: {"topk": ...} | {"error": ...}}

    def __init__(self, state: StudioState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.engine: Any = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, recipes: list[Recipe], settings_: RunSettings | None = None) -> bool:
        from studio.core.compare import plan_queue
        from studio.core.engine import RunEngine, default_store

        state = self.state
        if (
            self.running
            or state.model is None
            or state.model_ref is None
            or state.data is None
            or state.calibration is None
        ):
            return False
        model_ref, data, calibration = state.model_ref, state.data, state.calibration
        engine = RunEngine(store=default_store(), nvml=state.nvml)
        self.engine = engine
        request = {
            **state.data_request(state.eval_file),
            "recipes": [r.to_toml() for r in recipes],
            "settings": (settings_ or RunSettings()).model_dump(mode="json"),
        }

        def work() -> None:
            try:
                run = engine.run(
                    model_ref,
                    recipes,
                    data,
                    calibration,
                    settings_,
                    self.runEvent.emit,
                    hardware=state.hardware,
                    request=request,
                )
            except Exception as error:
                import traceback

                self.failed.emit(str(error), traceback.format_exc())
                return
            self.finished.emit(run)

        queue = [r.name for r in plan_queue(state.model, recipes)]
        self._thread = threading.Thread(target=work, name="studio-run", daemon=True)
        self.started.emit(queue)
        self._thread.start()
        return True

    def cancel_all(self) -> None:
        if self.engine is not None:
            self.engine.cancel()

    def cancel_recipe(self, name: str) -> None:
        if self.engine is not None:
            self.engine.cancel_recipe(name)

    def predict(self, recipes: list[Recipe], typed: TextSet) -> None:
        """Every recipe's top-k of `typed`, on the artifacts the run built (its calibration texts too)."""
        from studio.core.engine import RunEngine

        model_ref = self.state.model_ref
        if model_ref is None:
            return
        calibration = self.state.calibration
        in_background(
            lambda: RunEngine(nvml=self.state.nvml).predict(
                model_ref, recipes, typed, hardware=self.state.hardware, calibration=calibration
            ),
            self.predicted.emit,
            lambda message, details: self.state.error.emit(f"Prediction failed: {message}", details),
            self,
        )


def path_name(ref: str) -> str:
    return "demo model" if ref == "demo" else Path(ref).name


__all__ = ["DataColumns", "RunController", "StudioState", "path_name", "settings"]
