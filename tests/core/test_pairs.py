"""Text pairs (NLI, cross-encoders): read with their second text, encoded together, measured on every
CPU recipe, shown side by side, exported with `predict.py --pair`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio.core.artifact import BuildContext
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings, compare
from studio.core.dataset import TextSet, data_columns, load_texts, request_data, split_for_calibration
from studio.core.errors import StudioError
from studio.core.hardware import probe
from studio.core.inputs import encode
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.recipe import builtin_recipes, resolve_recipe
from tests.core.test_cli import FAST as CLI_FAST
from tests.core.test_cli import qstudio
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=2, min_seconds=0.0, rounds=0))
CPU_RECIPES = [r for r in builtin_recipes() if r.device == "cpu" and r.suits("text-classification")]


def test_pair_column_is_read_and_calibration_keeps_pairs_with_their_texts(tiny_nli_eval: Path) -> None:
    assert data_columns(tiny_nli_eval) == ["premise", "hypothesis", "label"]
    data = load_texts(tiny_nli_eval, "premise", "label", "hypothesis")
    assert data.pairs is not None and len(data.pairs) == len(data.texts) == 60
    assert data.labels is not None
    rows = set(zip(data.texts, data.pairs, data.labels, strict=True))
    evaluation, calibration = split_for_calibration(data)
    assert calibration.pairs is not None and evaluation.pairs is not None and evaluation.labels is not None
    # each text keeps its own hypothesis and label on both sides of the split
    assert set(zip(evaluation.texts, evaluation.pairs, evaluation.labels, strict=True)) <= rows
    assert {(t, p) for t, p, _ in rows} >= set(zip(calibration.texts, calibration.pairs, strict=True))
    assert len(evaluation) + len(calibration) == 60
    with pytest.raises(StudioError, match="has no column 'hyp' \\(columns: premise, hypothesis, label\\)"):
        load_texts(tiny_nli_eval, "premise", "label", "hyp")
    request = {"model": "x", "eval": str(tiny_nli_eval), "text_column": "premise", "pair_column": "hypothesis"}
    evaluation, calibration = request_data(request)
    assert calibration.pairs is not None and len(calibration.pairs) == len(calibration.texts) == 12


def test_pairs_are_encoded_together_with_token_types(tiny_nli: Path) -> None:
    model = open_model(str(tiny_nli))
    assert any("text pairs" in note for note in model.info.notes)  # the card says what it needs
    names = model.info.input_names
    assert "token_type_ids" in names
    together = encode(model.tokenizer, ["the car is red"], names, 64, pairs=["the car is red"])
    alone = encode(model.tokenizer, ["the car is red"], names, 64)
    assert together["token_type_ids"].sum() == 5  # the second text and its [SEP] are type 1
    assert alone["token_type_ids"].sum() == 0
    assert together["input_ids"].shape[1] == 2 * alone["input_ids"].shape[1] - 1  # one [CLS], two [SEP]


def test_calibration_digest_names_the_pairs(tiny_nli: Path) -> None:
    model = open_model(str(tiny_nli))
    recipe = resolve_recipe("ort-int8-static-minmax")
    cache = ArtifactCache(Path("unused"))
    single = BuildContext(model, recipe, cache, "int8", ["a", "b"])
    paired = BuildContext(model, recipe, cache, "int8", ["a", "b"], ["c", "d"])
    other = BuildContext(model, recipe, cache, "int8", ["a", "b"], ["c", "e"])
    assert len({single.calibration_digest(2), paired.calibration_digest(2), other.calibration_digest(2)}) == 3
    assert paired.calibration_sample(1) == (["a"], ["c"])


def test_every_cpu_recipe_measures_the_pairs(tiny_nli: Path, tiny_nli_eval: Path, tmp_path: Path) -> None:
    model = open_model(str(tiny_nli))
    data, calibration = split_for_calibration(load_texts(tiny_nli_eval, "premise", "label", "hypothesis"))
    hardware = probe(FakeNvml.missing())
    cache = ArtifactCache(tmp_path / "artifacts")
    run = compare(model, CPU_RECIPES, data, calibration, hardware, cache, FAST)
    assert len(CPU_RECIPES) >= 9 and run.evaluation.pairs
    assert data.pairs is not None and [item.pair for item in run.inputs] == data.pairs
    for result in run.results:
        assert result.ok, (result.recipe, result.reason)
        assert result.accuracy is not None and result.accuracy >= 0.9, (result.recipe, result.accuracy)
        assert result.top1_agreement is not None and result.top1_agreement >= 0.9, result.recipe
    # the premise alone cannot tell neutral from the rest: the figures above rest on the pairs
    premises = TextSet(data.texts, data.labels, "premises only")
    alone = compare(model, CPU_RECIPES[:1], premises, calibration, hardware, cache, FAST)
    assert alone.results[0].accuracy is not None and alone.results[0].accuracy < 0.8


CLI_RECIPES = ("torch-int8-dynamic", "ort-int8-dynamic", "ort-int8-static-minmax")  # every CPU recipe: above


def test_cli_pairs_and_export_predict_pair(tiny_nli: Path, tiny_nli_eval: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    recipes = [arg for name in CLI_RECIPES for arg in ("--recipe", name)]
    result = qstudio(
        "run", "--model", str(tiny_nli), "--eval", str(tiny_nli_eval), "--text-column", "premise",
        "--pair-column", "hypothesis", *recipes, "--json", str(out), *CLI_FAST,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    assert payload["evaluation"]["pairs"] is True
    assert all(item["pair"] for item in payload["inputs"])
    assert [r["recipe"] for r in payload["results"]] == ["torch-fp32", *CLI_RECIPES]
    for r in payload["results"]:
        assert r["status"] == "ok" and r["accuracy"] >= 0.9, (r["recipe"], r["reason"], r["accuracy"])
    target = tmp_path / "export"
    exported = qstudio("export", str(payload["run_id"]), "ort-int8-static-minmax", "--to", str(target))
    assert exported.returncode == 0, exported.stderr + exported.stdout
    assert json.loads((target / "deploy.json").read_text())["pairs"] is True
    static = next(r for r in payload["results"] if r["recipe"] == "ort-int8-static-minmax")
    first = payload["inputs"][:4]
    command = [sys.executable, "-I", "predict.py"]
    for item in first:
        command += [item["text"]]
    for item in first:
        command += ["--pair", item["pair"]]
    ran = subprocess.run(command, cwd=target, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [line["pair"] for line in lines] == [item["pair"] for item in first]
    assert [line["top"][0][0] for line in lines] == [row[0][0] for row in static["topk"][:4]]
    probabilities = np.array([line["top"][0][1] for line in lines])
    assert np.allclose(probabilities, [row[0][1] for row in static["topk"][:4]], atol=0.02)
    refused = subprocess.run([sys.executable, "-I", "predict.py", first[0]["text"]], cwd=target,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "reads text pairs" in refused.stderr
