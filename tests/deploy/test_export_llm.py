"""Exporting a causal LM recipe: a folder that generates text with onnxruntime, numpy and tokenizers only,
verified by re-running the prompts' next-token top-k and greedy continuations in a fresh process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings
from studio.core.dataset import load_prompts, load_texts
from studio.core.engine import RunEngine, default_store
from studio.core.errors import StudioError
from studio.core.measure import TimingPlan
from studio.core.paths import cache_dir
from studio.core.recipe import resolve_recipe
from studio.deploy.export import export_recipe
from studio.deploy.verify import verify_folder
from tests.fakes.nvml import FakeNvml

pytestmark = pytest.mark.xdist_group("export-llm")  # its measured run (a module fixture) is built once
FAST = RunSettings(
    timing=TimingPlan(warmup=1, min_iterations=3, min_seconds=0.0, rounds=0),
    decode_tokens=8,
    decode_rounds=1,
    new_tokens=8,
)
RECIPES = ("llm-torch-fp32", "llm-ort-int4", "llm-ort-int8-dynamic")


@pytest.fixture(scope="module")
def lm_run(tiny_llama: Path, tiny_passages: Path, tiny_prompts: Path) -> int:
    recipes = [resolve_recipe(name) for name in RECIPES]
    data = load_texts(tiny_passages).with_prompts(load_prompts(tiny_prompts), str(tiny_prompts))
    request = {
        "model": str(tiny_llama),
        "task": "text-generation",
        "recipes": [r.to_toml() for r in recipes],
        "eval": str(tiny_passages),
        "prompts": str(tiny_prompts),
        "text_column": "text",
        "label_column": "",
        "calibration": str(tiny_passages),
        "limit": 0,
        "settings": FAST.model_dump(mode="json"),
    }
    engine = RunEngine(ArtifactCache(cache_dir() / "artifacts"), default_store(), nvml=FakeNvml.missing())
    run = engine.run(str(tiny_llama), recipes, data, data, FAST, request=request)
    assert [r.status for r in run.results] == ["ok"] * 3, [r.reason for r in run.results]
    assert run.run_id is not None
    return run.run_id


def _export(run_id: int, recipe: str, target: Path):
    return export_recipe(
        run_id, recipe, target, store=default_store(), cache=ArtifactCache(cache_dir() / "artifacts")
    )


@pytest.mark.parametrize("recipe", ["llm-ort-int4", "llm-ort-int8-dynamic"])
def test_llm_export_generates_and_verifies(
    recipe: str, lm_run: int, tmp_path: Path, tiny_prompts: Path
) -> None:
    target = tmp_path / recipe
    evidence = _export(lm_run, recipe, target)
    checks = {c.name: c for c in evidence.checks}
    assert evidence.ready_for_local_trial.ready, evidence.ready_for_local_trial.reasons
    assert "greedy continuations identical on 3/3 prompts" in checks["outputs-reproduced"].detail
    assert "not torch" in checks["runtime-isolated"].detail.replace(
        "not studio, transformers, optimum, torch", "not torch"
    )
    assert checks["accuracy-drop"].detail.startswith("perplexity ")
    assert evidence.contract.task == "text-generation" and evidence.contract.stop_token_ids == [0]
    for name in (
        "model.onnx",
        "ort_lm.py",
        "greedy.py",
        "predict.py",
        "tokenizer/tokenizer.json",
        "generation_config.json",
    ):
        assert (target / name).is_file(), name
    # predict.py as a deployer runs it, in an isolated interpreter.
    done = subprocess.run(
        [sys.executable, "-I", "predict.py", "the cat sat on", "--max-new-tokens", "5"],
        cwd=target, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[0])
    assert (
        line["prompt"] == "the cat sat on" and line["next"][0][0] == "␣the" and line["continuation"].strip()
    )
    # The README's minimal example runs as written.
    code = re.search(r"```python\n(.*?)```", (target / "README.md").read_text(), re.S)
    assert code is not None
    snippet = subprocess.run(
        [sys.executable, "-I", "-c", code.group(1)],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert snippet.returncode == 0, snippet.stderr
    # Verify again from the folder alone; a changed continuation loop is caught.
    assert verify_folder(target).ready_for_local_trial.ready
    loop = target / "greedy.py"
    loop.write_text(
        loop.read_text().replace("token = int(np.argmax(logits))", "token = int(np.argmin(logits))")
    )
    again = verify_folder(target)
    details = {c.name: c.detail for c in again.checks}
    assert "changed since export (sha256 differs): greedy.py" in details["artifact-present"]
    assert "greedy continuation departs" in details["outputs-reproduced"]


def test_torch_llm_recipes_are_refused_for_export_with_a_reason(lm_run: int, tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="export one of the ONNX Runtime LLM recipes"):
        _export(lm_run, "llm-torch-fp32", tmp_path / "torch")
    assert not (tmp_path / "torch").exists()
