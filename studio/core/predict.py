"""Top-k of arbitrary texts on several recipes' artifacts: what the GUI's "type your own text" shows.

Artifacts come from the cache (a recipe that was run is not quantized again). Runs in a worker process
through the engine, like every other piece of work that loads a runtime.
"""

from __future__ import annotations

from typing import Any

from studio.backends.base import BuildContext
from studio.backends.registry import get_spec
from studio.core.cache import ArtifactCache
from studio.core.capability import assess
from studio.core.compare import describe_failure
from studio.core.hardware import HardwareInfo
from studio.core.inputs import encode
from studio.core.measure import top_k
from studio.core.model import Model
from studio.core.recipe import Recipe


def predict_texts(
    model: Model,
    recipes: list[Recipe],
    texts: list[str],
    hardware: HardwareInfo,
    cache: ArtifactCache,
    k: int = 5,
    calibration_texts: list[str] | None = None,
) -> dict[str, Any]:
    """Per recipe, the top-k of every text, or the reason it could not run."""
    out: dict[str, Any] = {}
    for recipe in recipes:
        availability = assess(recipe, hardware)
        if not availability.available:
            out[recipe.name] = {"error": availability.reason}
            continue
        try:
            spec = get_spec(recipe.backend)
            ctx = BuildContext(model, recipe, cache, availability.precision, calibration_texts or texts)
            backend = spec.load()
            predictor = backend.load(ctx, backend.prepare(ctx))
            feeds = encode(model.tokenizer, texts, model.info.input_names, recipe.seq_len)
            outputs = model.postprocess(predictor(feeds), feeds["attention_mask"])
            out[recipe.name] = {"topk": top_k(outputs, model.info.labels, k)}
        except Exception as error:  # one backend's failure must not hide the others
            out[recipe.name] = {"error": describe_failure(error)}
    return out
