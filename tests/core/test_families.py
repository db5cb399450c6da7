"""Every encoder family users bring, through every CPU recipe: each recipe runs with agreement that makes
sense or is refused before running with its reason; no raw runtime error reaches the user."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from studio.backends.onnx_graphs import index_path_nodes
from studio.core.cache import ArtifactCache
from studio.core.capability import assess
from studio.core.compare import RunSettings, compare
from studio.core.dataset import load_texts
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.paths import cache_dir
from studio.core.recipe import builtin_recipes, resolve_recipe
from tests.fakes.families import available_families, build_family
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=2, min_seconds=0.0, rounds=0))
CPU_RECIPES = [r for r in builtin_recipes() if r.device == "cpu" and r.suits("text-classification")]
FAMILIES = available_families()


def test_the_matrix_covers_the_families_users_bring() -> None:
    assert {"bert", "distilbert", "roberta", "deberta-v2", "electra", "albert", "mpnet", "xlm-roberta"} <= set(
        FAMILIES
    )
    assert "ernie" in FAMILIES  # a family optimum-onnx has no exporter for


@pytest.mark.parametrize("family", FAMILIES)
def test_family_through_every_cpu_recipe(
    family: str, tiny_eval: Path, tiny_calibration: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = build_family(family, tmp_path_factory.mktemp(family))
    model = open_model(str(folder))
    assert model.info.model_type == family
    run = compare(
        model,
        CPU_RECIPES,
        load_texts(tiny_eval),
        load_texts(tiny_calibration, label_column=None),
        probe(FakeNvml.missing()),
        ArtifactCache(cache_dir() / "artifacts"),
        FAST,
    )
    outcomes = {r.recipe: (r.status, r.top1_agreement, r.reason) for r in run.results}
    print(f"\n{family}: " + "; ".join(f"{n} {s} {a}" for n, (s, a, _) in outcomes.items()))
    reference = run.results[0]
    assert reference.ok and (reference.accuracy or 0) >= 0.9, (family, reference.reason, reference.accuracy)
    for result in run.results:
        assert result.status in ("ok", "unavailable"), (family, result.recipe, result.reason)
        if result.status == "unavailable":
            assert result.reason and len(result.reason) < 300, result.reason
            continue
        assert result.top1_agreement is not None and result.top1_agreement >= 0.9, (family, result.recipe)
        if result.recipe.startswith("ort-"):
            exported = next(n for n in result.notes if "optimizer" in n or "fusion" in n)
            assert family in exported or "'bert' optimizer" in exported, exported
    if family == "ernie":
        assert any("torch.onnx" in note for note in run.results[2].notes), run.results[2].notes


def test_static_int8_quantizes_only_the_matrix_products_and_embeddings(tiny_eval: Path, tmp_path: Path) -> None:
    """DeBERTa's relative-position buckets are float arithmetic on indices: quantizing it moved the
    buckets and cost 19 points of agreement before static INT8 kept to MatMul/Gemm."""
    from studio.backends.ort_static_int8 import OrtStaticInt8
    from studio.core.artifact import BuildContext

    model = open_model(str(build_family("deberta-v2", tmp_path / "deberta")))
    recipe = resolve_recipe("ort-int8-static-minmax")
    ctx = BuildContext(model, recipe, ArtifactCache(tmp_path / "c"), "int8", load_texts(tiny_eval).texts)
    artifact = OrtStaticInt8().prepare(ctx)
    assert artifact.path is not None
    graph = onnx.load(str(artifact.path)).graph
    readers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    producer = {out: node for node in graph.node for out in node.output}
    products = {"MatMul", "Gemm", "Gather"}  # Gather: the embedding tables
    dequantized = [node for node in graph.node if node.op_type == "DequantizeLinear"]
    assert dequantized
    for node in dequantized:  # each quantized tensor is read by a matrix product, or is one's output
        quantize = producer.get(node.input[0])
        source = producer.get(quantize.input[0]) if quantize is not None else None
        assert readers.get(node.output[0], set()) & products or (source is not None and source.op_type in products), (
            node.name
        )
    outputs = {node.output[0] for node in dequantized}
    for node in graph.node:  # and never an index
        if node.op_type.startswith("Gather"):
            assert not set(node.input[1:]) & outputs, node.name


def test_index_paths_are_found_and_shapes_end_the_walk() -> None:
    """A MatMul whose output becomes a Gather index is on an index path; one whose output only gives a
    Shape is not."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["scores"], name="to_index"),
        helper.make_node("Cast", ["scores"], ["ids"], to=TensorProto.INT64, name="cast"),
        helper.make_node("Gather", ["table", "ids"], ["picked"], name="gather"),
        helper.make_node("MatMul", ["x", "w"], ["hidden"], name="to_shape"),
        helper.make_node("Shape", ["hidden"], ["shape"], name="shape"),
        helper.make_node("Reshape", ["picked", "shape"], ["out"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.0] * 16),
            helper.make_tensor("table", TensorProto.FLOAT, [4, 4], [0.0] * 16),
        ],
    )
    path = Path(__file__).parent / "index-paths.onnx"
    try:
        onnx.save(helper.make_model(graph), str(path))
        assert index_path_nodes(path, ("MatMul", "Gemm")) == ["to_index"]
    finally:
        path.unlink(missing_ok=True)


def test_no_exporter_greys_onnx_recipes_from_then_on(
    tiny_eval: Path, tiny_calibration: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.core import onnx_export

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::unknown_op' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(onnx_export, "export_with_torch", broken)
    folder = build_family("ernie", tmp_path / "ernie", train_steps=20)  # its own weights: its own hash
    model = open_model(str(folder))
    hardware = probe(FakeNvml.missing())
    recipes = [resolve_recipe(n) for n in ("torch-fp32", "ort-fp32", "torch-int8-dynamic")]
    cache = ArtifactCache(tmp_path / "c")
    first = compare(model, recipes, load_texts(tiny_eval), load_texts(tiny_calibration, label_column=None),
                    hardware, cache, FAST)
    failed = first.results[1]
    assert failed.status == "failed" and "no ONNX export for 'ernie'" in failed.reason
    assert "Traceback" not in failed.reason and len(failed.reason.splitlines()) == 1
    reopened = open_model(str(folder)).info
    refused = assess(resolve_recipe("ort-int8-static-minmax"), hardware, reopened)
    assert not refused.available and "aten::unknown_op" in refused.reason and "torch recipes" in refused.reason
    assert assess(resolve_recipe("torch-int8-dynamic"), hardware, reopened).available
    assert first.results[2].ok
