"""Per-layer sensitivity finds a layer made fragile on purpose, and keeping it in float recovers agreement."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from studio.backends.sensitivity import analyse, layer_of
from studio.core.cache import ArtifactCache
from studio.core.dataset import load_texts
from studio.core.errors import StudioError
from studio.core.model import open_model
from studio.core.recipe import resolve_recipe
from studio.core.sensitivity_report import worst_nodes
from tests.core.test_cli import qstudio
from tests.fakes.tiny import build_tiny

FRAGILE = "/classifier/Gemm"


def make_fragile(folder: Path) -> Path:
    """The tiny classifier with one outlier input feature in its classification head: the float model
    barely changes (the pooler's feature is scaled down by as much), but a per-channel INT8 or INT4 grid
    sized for the outlier rounds the head's other weights to zero."""
    import torch
    from transformers import AutoModelForSequenceClassification

    build_tiny(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight[:, 0] *= 1000.0
        model.bert.pooler.dense.weight[0, :] /= 1000.0
        model.bert.pooler.dense.bias[0] /= 1000.0
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fragile(tmp_path_factory.mktemp("fragile"))


@pytest.mark.parametrize("recipe", ["ort-int8-static-minmax", "ort-int8-dynamic", "ort-int4-weight-only"])
def test_the_fragile_layer_ranks_first(
    recipe: str, fragile: Path, tiny_eval: Path, tiny_calibration: Path, tmp_path: Path
) -> None:
    report = analyse(
        open_model(str(fragile)),
        resolve_recipe(recipe),
        load_texts(tiny_eval),
        load_texts(tiny_calibration, label_column=None),
        ArtifactCache(tmp_path),
        "int4" if "int4" in recipe else "int8",
    )
    worst = report.layers[0]
    assert worst.name == FRAGILE, [(e.name, e.kl_when_quantized_alone) for e in report.layers]
    assert report.agreement_all_quantized < 0.6  # the whole recipe is broken by that one node ...
    assert worst.agreement_when_kept_float >= 0.95  # ... and keeping it in float repairs it
    assert worst.kl_when_quantized_alone > 10 * max(e.kl_when_quantized_alone for e in report.layers[1:])
    assert {g.name for g in report.groups} == {"layer 0", "layer 1", "other"}
    assert report.groups[0].name == "other"  # the head is no transformer layer
    if recipe == "ort-int8-static-minmax":  # activation and weight SQNR from qdq_loss_debug
        assert all(e.sqnr_db is not None and e.weight_sqnr_db is not None for e in report.layers)
    # Of the dozens of variants built, only the recipe's own artifact stays in the cache.
    quantized = [e for e in ArtifactCache(tmp_path).entries() if e.meta.get("recipe")]
    assert [e.meta["recipe"] for e in quantized] == [recipe], [e.meta for e in quantized]


def test_layer_names() -> None:
    assert layer_of("/bert/encoder/layer.11/output/dense/MatMul") == "layer 11"
    assert layer_of("/model/layers.3/mlp/down_proj/MatMul") == "layer 3"
    assert layer_of("/classifier/Gemm") == "other"


def test_only_ort_quantization_recipes(fragile: Path, tiny_eval: Path, tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="sensitivity covers"):
        analyse(open_model(str(fragile)), resolve_recipe("ort-fp16"), load_texts(tiny_eval),
                load_texts(tiny_eval), ArtifactCache(tmp_path), "fp16")  # fmt: skip


def test_cli_ranks_writes_and_keeps_the_worst_in_float(
    fragile: Path, tiny_eval: Path, tiny_calibration: Path, tmp_path: Path
) -> None:
    out, table, recipe_file, html = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "kept.toml", tmp_path / "s.html"
    result = qstudio(
        "sensitivity", "--model", str(fragile), "--recipe", "ort-int8-static-minmax", "--eval", str(tiny_eval),
        "--calibration", str(tiny_calibration), "--json", str(out), "--csv", str(table), "--keep-float", "1",
        "--recipe-out", str(recipe_file), "--html", str(html), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    first = payload["layers"][0]
    assert set(first) >= {"name", "op_type", "kl_when_quantized_alone", "agreement_when_kept_float", "sqnr_db"}
    assert first["name"] == FRAGILE and first["op_type"] == "Gemm"
    assert table.read_text().splitlines()[1].startswith(f"1,{FRAGILE},Gemm,")
    report = html.read_text()
    assert "<svg" in report and f"Kept in float by the recipe written (red bars): {FRAGILE}" in report
    assert report.count("<tr>") == len(payload["layers"]) + len(payload["groups"]) + 2  # rows and two headers
    kept = tomllib.loads(recipe_file.read_text())
    assert kept["exclude_nodes"] == [FRAGILE] and kept["name"] == "ort-int8-static-minmax-keep1-float"
    # the before/after run, side by side in one table
    assert "ort-int8-static-minmax-keep1-float" in result.stdout
    assert "top-1 agrees with FP32 on only" in result.stdout  # the original is flagged, the kept one is not


FRAGILE_LM = "/model/layers.1/mlp/down_proj/MatMul"


def make_fragile_lm(source: Path, folder: Path) -> Path:
    """The tiny Llama with one outlier input feature in layer 1's down projection (its up projection's
    row scaled down by as much, so the float model is the same): INT8 per channel rounds the rest of that
    matrix to zero."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        mlp = model.model.layers[1].mlp
        mlp.down_proj.weight[:, 0] *= 1000.0
        mlp.up_proj.weight[0, :] /= 1000.0
    model.save_pretrained(folder)
    return folder


def test_a_causal_lm_ranks_by_next_token_kl_and_the_fragile_layer_comes_first(
    tiny_llama: Path, tiny_passages: Path, tmp_path: Path
) -> None:
    from studio.core.paths import cache_dir

    model = make_fragile_lm(Path(tiny_llama), tmp_path / "fragile-lm")
    passages = load_texts(tiny_passages)
    report = analyse(open_model(str(model)), resolve_recipe("llm-ort-int8-dynamic"), passages, passages,
                     ArtifactCache(cache_dir() / "artifacts"), "int8")  # fmt: skip
    assert report.layers[0].name == FRAGILE_LM, [(e.name, e.kl_when_quantized_alone) for e in report.layers]
    assert not any("lm_head" in e.name for e in report.layers)  # the recipe keeps it in float
    assert report.groups[0].name == "layer 1"
    assert report.layers[0].agreement_when_kept_float > report.agreement_all_quantized
    # From the command line a causal LM is ranked by layer; keeping the worst layer keeps all its nodes.
    out = tmp_path / "lm.json"
    result = qstudio(
        "sensitivity", "--model", str(model), "--recipe", "llm-ort-int8-dynamic", "--eval", str(tiny_passages),
        "--json", str(out), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ranking transformer layers" in result.stderr
    payload = json.loads(out.read_text())
    assert payload["layers"] == [] and payload["groups"][0]["name"] == "layer 1"
    kept = worst_nodes(payload, 1)
    assert FRAGILE_LM in kept and all("/layers.1/" in n for n in kept)
