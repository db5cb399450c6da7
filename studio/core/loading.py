"""A recipe's predictor, ready to call: its artifact built or taken from the cache, then loaded.

What a worker does when it only needs to call a recipe (typed text, interleaved timing), without the
measuring and reporting of a comparison run.
"""

from __future__ import annotations

from typing import Any

from studio.core.artifact import BuildContext
from studio.core.cache import ArtifactCache
from studio.core.capability import assess
from studio.core.catalogue import get_spec
from studio.core.dataset import TextSet
from studio.core.errors import StudioError
from studio.core.hardware import HardwareInfo
from studio.core.model import Model
from studio.core.recipe import Recipe


def load_predictor(
    model: Model, recipe: Recipe, hardware: HardwareInfo, cache: ArtifactCache, calibration: TextSet
) -> Any:
    """The predictor of `recipe` on `model`; a recipe this machine cannot run raises its reason. Given the
    run's calibration texts, a static recipe finds the artifact the run built (same cache key)."""
    availability = assess(recipe, hardware, model.info)
    if not availability.available:
        raise StudioError(availability.reason)
    ctx = BuildContext(model, recipe, cache, availability.precision, calibration.texts, calibration.pairs)
    backend = get_spec(recipe.backend).load()
    return backend.load(ctx, backend.prepare(ctx))
