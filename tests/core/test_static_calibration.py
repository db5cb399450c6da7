"""Each static calibration method gives its own activation ranges (entropy was minmax byte for byte)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from studio.backends.ort_static_int8 import OrtStaticInt8
from studio.core.artifact import BuildContext
from studio.core.cache import ArtifactCache
from studio.core.dataset import load_texts
from studio.core.model import open_model
from studio.core.recipe import resolve_recipe


def _activation_scales(path: Path) -> dict[str, float]:
    """The scale of every quantized activation (weights are initializers, not matrix-product outputs)."""
    graph = onnx.load(str(path)).graph
    weights = {i.name for i in graph.initializer if not i.name.endswith(("_scale", "_zero_point"))}
    quantized = {n.input[0]: n.input[1] for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in weights}
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {tensor: float(np.max(values[scale])) for tensor, scale in quantized.items()}


def test_minmax_entropy_and_percentile_give_their_own_ranges(
    tiny_classifier: Path, tiny_calibration: Path, tmp_path: Path
) -> None:
    model = open_model(str(tiny_classifier))
    texts = load_texts(tiny_calibration, label_column=None).texts
    digests, scales = {}, {}
    for method in ("minmax", "entropy", "percentile"):
        recipe = resolve_recipe(f"ort-int8-static-{method}")
        artifact = OrtStaticInt8().prepare(BuildContext(model, recipe, ArtifactCache(tmp_path), "int8", texts))
        assert artifact.path is not None
        digests[method] = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
        scales[method] = _activation_scales(artifact.path)
    assert len(set(digests.values())) == 3, digests
    shared = sorted(set(scales["minmax"]) & set(scales["entropy"]))
    assert shared
    # minmax covers every value seen; entropy clips outliers where that loses less information
    assert all(scales["entropy"][t] <= scales["minmax"][t] * (1 + 1e-6) for t in shared)
    assert any(scales["entropy"][t] < 0.99 * scales["minmax"][t] for t in shared), [
        scales["entropy"][t] / scales["minmax"][t] for t in shared
    ]
