"""The seam between the kind-agnostic run (engine, worker, history, window frame) and what a model kind does.

A `ModelKind` says how a kind's results read (its table columns, flags, the inputs shown side by side);
its `Measurer` does the work inside a worker: evaluate a recipe's predictor against the reference, time
it, answer typed text. The engine and the worker only ever call these two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from studio.core.dataset import TextSet
from studio.core.results import Flag, RecipeResult, RunInput
from studio.core.settings import RunSettings
from studio.core.types import Task

Report = Callable[[str, int, int], None]  # stage, done, total; raises Cancelled when the user cancelled
Timing = dict[str, Any]  # a kind's speed fields for one shape, JSON-able (they cross process boundaries)


@dataclass
class Evaluation:
    """What evaluating one recipe gave: result fields, and the outputs later recipes compare against."""

    fields: dict[str, Any]
    outputs: Any
    finite: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    """One column of the results table (CLI, HTML report): its header and how a result reads in it."""

    header: str
    cell: Callable[[RecipeResult], str]
    left: bool = False


class Measurer(ABC):
    """Evaluates and times predictors of one model on one data set, for one model kind."""

    def __init__(
        self,
        model: Any,
        data: TextSet,
        settings: RunSettings,
        report: Report = lambda stage, done, total: None,
        check_cancel: Callable[[], None] = lambda: None,
    ) -> None:
        self.model = model
        self.data = data
        self.settings = settings
        self.report = report
        self.check_cancel = check_cancel

    @abstractmethod
    def evaluate(self, predictor: Any, recipe: Any, reference: Any | None) -> Evaluation:
        """Run every evaluation input; `reference` is the reference's outputs (None: this is the reference)."""

    @abstractmethod
    def time(self, predictor: Any, recipe: Any, name: str) -> Timing:
        """Latency and throughput figures at the recipe's shape."""

    @abstractmethod
    def speed_fields(self, timing: Timing, reference: Timing | None) -> dict[str, Any]:
        """Result fields from a timing, with speed-ups against the reference's timing at the same shape."""

    @abstractmethod
    def save_outputs(self, outputs: Any, path: Path) -> str:
        """Write the reference's outputs for the workers of the other recipes; returns the file written."""

    @abstractmethod
    def load_outputs(self, path: str) -> Any: ...

    @abstractmethod
    def predict(
        self, predictor: Any, recipe: Any, texts: list[str], pairs: list[str] | None = None
    ) -> dict[str, Any]:
        """What the window's typed-text box shows for `texts` (and their `pairs`): {"topk": [...], ...}."""


class ModelKind(ABC):
    """How one kind of model is measured and presented; stateless, cheap to import."""

    task: ClassVar[Task]
    title: ClassVar[str]
    measurer: ClassVar[type[Measurer]]

    @abstractmethod
    def columns(self) -> list[Column]:
        """The results table's columns after the recipe name."""

    def run_inputs(self, data: TextSet, settings: RunSettings) -> list[RunInput]:
        """The inputs a run's top-k tables line up with."""
        return [
            RunInput(
                text=text,
                pair=data.pairs[i] if data.pairs is not None else None,
                gold=data.labels[i] if data.labels is not None else None,
            )
            for i, text in enumerate(data.texts)
        ]

    def flags(
        self, result: RecipeResult, reference: RecipeResult | None, threshold: float, labels: int
    ) -> list[Flag]:
        from studio.core.results import diagnose

        return diagnose(result, reference, threshold, labels)

    def check_data(self, data: TextSet) -> None:
        from studio.core.errors import StudioError

        if not data.texts:
            raise StudioError(
                f"no evaluation texts in {data.source}", "pass an --eval file with at least one text"
            )
