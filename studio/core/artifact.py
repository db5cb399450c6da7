"""The one small protocol every backend meets, and what it is handed to do its work.

A backend turns the FP32 model into an `Artifact` (quantizing, or taking it from the cache) and loads
an artifact into a `Predictor`: a callable from named integer inputs to the model's named output.
Inputs and outputs are bound by name, never by position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from studio.core.cache import ArtifactCache
from studio.core.model import Model
from studio.core.recipe import Recipe
from studio.core.types import Precision

Feeds = dict[str, np.ndarray]


@dataclass
class Artifact:
    """What a recipe produced: files on disk (None for an in-memory reference) and their size."""

    path: Path | None
    size_bytes: int
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)
    sidecar: Path | None = None  # a folder that belongs with the artifact, e.g. a runtime's engine cache


@dataclass
class BuildContext:
    """Everything a backend may use; `report(stage, done, total)` and `check_cancel()` keep the user informed."""

    model: Model
    recipe: Recipe
    cache: ArtifactCache
    precision: Precision
    calibration_texts: list[str] = field(default_factory=list)
    calibration_pairs: list[str] | None = None  # text-pair models: each calibration text's second text
    report: Callable[[str, int, int], None] = lambda stage, done, total: None
    check_cancel: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)  # things the user should know about this build

    def calibration_sample(self, limit: int) -> tuple[list[str], list[str] | None]:
        """The first `limit` calibration texts, each with its pair (None for single-text models)."""
        pairs = self.calibration_pairs[:limit] if self.calibration_pairs is not None else None
        return self.calibration_texts[:limit], pairs

    def calibration_digest(self, limit: int) -> str:
        """Names the calibration sample in cache keys: other texts (or pairs) are another artifact."""
        texts, pairs = self.calibration_sample(limit)
        rows = (
            texts if pairs is None else [f"{text}\t{pair}" for text, pair in zip(texts, pairs, strict=True)]
        )
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]

    def cache_key(self, **extra: object) -> str:
        return self.cache.key(
            model=self.model.info.content_hash,
            recipe=self.recipe.artifact_fields(),
            precision=self.precision,
            **extra,
        )


class Predictor(Protocol):
    def __call__(self, feeds: Feeds) -> np.ndarray:
        """The model's primary output (logits or last_hidden_state) for a batch of named inputs."""
        ...


class Backend(Protocol):
    def prepare(self, ctx: BuildContext) -> Artifact:
        """Produce the artifact for `ctx.recipe` (from the cache when it is there)."""
        ...

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        """A predictor that runs `artifact` with the recipe's thread count."""
        ...


def artifact_size(path: Path) -> int:
    """Bytes on disk of a model file or folder, without the cache's bookkeeping."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name != "entry.json")
