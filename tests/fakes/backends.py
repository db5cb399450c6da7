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


class Aborting:
    """Calls os.abort() while loading: a native crash (SIGABRT) inside the worker."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        return Artifact(None, 0)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        import os

        os.abort()


class MemoryHog:
    """Caps its own address space a little above what it uses, then allocates until the cap is hit."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        import resource

        import psutil

        ctx.report("allocate", 0, 1)
        limit = psutil.Process().memory_info().vms + 256 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        hoard = []
        while True:
            hoard.append(bytearray(32 * 2**20))

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        raise AssertionError("unreachable")


class Hanging:
    """Starts a cache entry and then sits in a loop that never checks for cancel (like a long native call)."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        import time

        def build(folder):  # type: ignore[no-untyped-def]
            (folder / "model.onnx").write_bytes(b"half-written")
            ctx.report("quantize", 0, 1)
            while True:
                time.sleep(0.05)

        ctx.cache.get_or_build(ctx.cache_key(step="hang"), build, step="hang")
        raise AssertionError("unreachable")

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        raise AssertionError("unreachable")


def _spec(name: str, target: str) -> BackendSpec:
    return BackendSpec(
        name, f"test: {name}", f"tests.fakes.backends:{target}", "onnxruntime", ("cpu",), ("fp32",), ("none",)
    )


ABORTING = _spec("test-abort", "Aborting")
MEMORY_HOG = _spec("test-memory-hog", "MemoryHog")
HANGING = _spec("test-hang", "Hanging")


class ShiftedVocabularyLM:
    """A causal LM whose logits are rolled by one token id: every next token gets its neighbour's score, as
    a graph with a wrong vocabulary mapping (or an embedding quantized through an index path) would."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        return Artifact(None, ctx.model.info.size_bytes)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        from studio.backends.torch_fp32 import TorchFp32

        inner = TorchFp32().load(ctx, artifact)

        class Shifted:
            def logits(self, input_ids: np.ndarray) -> np.ndarray:
                return np.roll(inner.logits(input_ids), 1, axis=-1)

            def start(self, input_ids: np.ndarray):  # type: ignore[no-untyped-def]
                logits, cache = inner.start(input_ids)
                return np.roll(logits, 1), cache

            def step(self, token: int, cache):  # type: ignore[no-untyped-def]
                logits, cache = inner.step(token, cache)
                return np.roll(logits, 1), cache

        return Shifted()  # type: ignore[return-value]


SHIFTED_LM = BackendSpec(
    "test-shifted-lm",
    "test: shifted vocabulary",
    "tests.fakes.backends:ShiftedVocabularyLM",
    "torch",
    ("cpu",),
    ("fp32",),
    ("none",),
)


class FakeCuda:
    """A "CUDA" backend that runs ONNX Runtime FP32 on the CPU: what a cluster sweep schedules on a node
    that advertises a (fake) GPU, so its placement can be tested on a machine without one."""

    @staticmethod
    def _on_cpu(ctx: BuildContext) -> BuildContext:
        import dataclasses

        return dataclasses.replace(ctx, recipe=ctx.recipe.model_copy(update={"device": "cpu"}), precision="fp32")

    def prepare(self, ctx: BuildContext) -> Artifact:
        return OrtFp32().prepare(self._on_cpu(ctx))

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return OrtFp32().load(self._on_cpu(ctx), artifact)


FAKE_CUDA = BackendSpec(
    "test-fake-cuda",
    "test: CUDA on the CPU",
    "tests.fakes.backends:FakeCuda",
    "onnxruntime",
    ("cuda",),
    ("fp16",),
    ("none",),
    ort_provider="CPUExecutionProvider",
)


class Introspecting:
    """Runs ORT FP32 after appending what its process sees (pid, parent, directory, environment, priority)
    to the file named by QSTUDIO_TEST_PROBE: how the worker was started, seen from inside."""

    def prepare(self, ctx: BuildContext) -> Artifact:
        import json
        import os

        seen = {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "nice": os.nice(0),
                "mark": os.environ.get("QSTUDIO_TEST_MARK"), "recipe": ctx.recipe.name}
        with open(os.environ["QSTUDIO_TEST_PROBE"], "a", encoding="utf-8") as probe:
            probe.write(json.dumps(seen) + "\n")
        return OrtFp32().prepare(ctx)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        return OrtFp32().load(ctx, artifact)


INTROSPECTING = _spec("test-introspect", "Introspecting")
