"""Top-k of arbitrary texts on several recipes' artifacts: what the GUI's "type your own text" shows.

Artifacts come from the cache (a recipe that was run is not quantized again). Runs in a worker process
through the engine, like every other piece of work that loads a runtime.
"""

from __future__ import annotations

from typing import Any

from studio.core.cache import ArtifactCache
from studio.core.compare import describe_failure
from studio.core.dataset import TextSet
from studio.core.hardware import HardwareInfo
from studio.core.kinds import kind_of
from studio.core.loading import load_predictor
from studio.core.model import Model
from studio.core.recipe import Recipe
from studio.core.settings import RunSettings


def predict_texts(
    model: Model,
    recipes: list[Recipe],
    typed: TextSet,
    hardware: HardwareInfo,
    cache: ArtifactCache,
    settings: RunSettings | None = None,
    calibration: TextSet | None = None,
) -> dict[str, Any]:
    """Per recipe, what the model kind predicts for every typed text (top-k; for an LLM also the
    continuation), or the reason it could not run."""
    settings = settings or RunSettings()
    calibration = calibration if calibration is not None and len(calibration) else typed
    measurer = kind_of(model.info.task).measurer(model, typed, settings)
    out: dict[str, Any] = {}
    for recipe in recipes:
        try:
            predictor = load_predictor(model, recipe, hardware, cache, calibration)
            out[recipe.name] = measurer.predict(predictor, recipe, typed.texts, typed.pairs)
        except Exception as error:  # one backend's failure (or absence) must not hide the others
            out[recipe.name] = {"error": describe_failure(error)}
    return out
