"""Test-only backends: deliberately broken ones that the studio must catch, not report as results."""

from __future__ import annotations

import numpy as np

from studio.backends.base import Artifact, BuildContext, Feeds, Predictor
from studio.backends.ort_fp32 import OrtFp32
from studio.backends.registry import BackendSpec


class MislabelledOutput:
    """Runs the real ORT FP32 graph but shifts its output columns: every class gets its neighbour's label,
    as the TensorRT engine in the seed of this project did."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        return OrtFp32().prepare(ctx)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        inner = OrtFp32().load(ctx, artifact)

        def predict(feeds: Feeds) -> np.ndarray:
            return np.roll(inner(feeds), 1, axis=-1)

        return predict


class Exploding:
    """Fails with an unexpected exception while loading: the run must go on with the other recipes."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        return Artifact(None, 0)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        raise RuntimeError("kernel exploded")


MISLABELLED = BackendSpec(
    "test-mislabelled",
    "test: mislabelled outputs",
    "tests.fakes.backends:MislabelledOutput",
    "onnxruntime",
    ("cpu",),
    ("fp32",),
    ("none",),
)
EXPLODING = BackendSpec(
    "test-exploding",
    "test: raises",
    "tests.fakes.backends:Exploding",
    "onnxruntime",
    ("cpu",),
    ("fp32",),
    ("none",),
)
