"""`qstudio export` / `verify`: deployment folders for every CPU backend, and what verify must catch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from studio.backends.registry import REGISTRY
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings
from studio.core.dataset import load_texts
from studio.core.engine import RunEngine, default_store
from studio.core.errors import StudioError
from studio.core.measure import TimingPlan
from studio.core.paths import cache_dir
from studio.core.recipe import parse_recipe, resolve_recipe
from studio.deploy import export as export_module
from studio.deploy.evidence import Evidence
from studio.deploy.export import export_recipe, open_run_model
from studio.deploy.verify import verify_folder
from tests.fakes import backends
from tests.fakes.nvml import FakeNvml

# One process runs this module: its measured run (a module fixture) is then built once, not once per worker.
pytestmark = pytest.mark.xdist_group("export-classifier")
CPU_RECIPES = (
    "torch-fp32",
    "torch-int8-dynamic",
    "ort-fp32",
    "ort-int8-dynamic",
    "ort-int8-static-minmax",
    "ort-int4-weight-only",
    "ort-fp16",
)
FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=3, min_seconds=0.0, rounds=0))
TEST_SPECS = (backends.MISLABELLED, backends.EXPLODING)


def _measure(model: Path, recipes: list, eval_file: Path, calibration_file: Path | None) -> int:
    """A run recorded in the default history, as `qstudio run` would leave it."""
    labelled = calibration_file is not None
    data = load_texts(eval_file, label_column="label" if labelled else None)
    calibration = load_texts(calibration_file or eval_file, label_column=None)
    engine = RunEngine(
        ArtifactCache(cache_dir() / "artifacts"),
        default_store(),
        nvml=FakeNvml.missing(),
        test_backends=tuple(f"tests.fakes.backends:{n}" for n in ("MISLABELLED", "EXPLODING")),
    )
    request = {
        "model": str(model),
        "recipes": [r.to_toml() for r in recipes],
        "eval": str(eval_file),
        "text_column": "text",
        "label_column": "label" if labelled else "",
        "calibration": str(calibration_file or eval_file),
        "limit": 0,
        "settings": FAST.model_dump(mode="json"),
    }
    run = engine.run(str(model), recipes, data, calibration, FAST, request=request)
    assert run.run_id is not None
    return run.run_id


@pytest.fixture(scope="module", autouse=True)
def test_backends():
    for spec in TEST_SPECS:
        REGISTRY[spec.name] = spec
    yield
    for spec in TEST_SPECS:
        REGISTRY.pop(spec.name, None)


@pytest.fixture(scope="module")
def classifier_run(test_backends, tiny_classifier: Path, tiny_eval: Path, tiny_calibration: Path) -> int:
    recipes = [resolve_recipe(name) for name in CPU_RECIPES] + [
        parse_recipe({"name": "mislabelled", "backend": "test-mislabelled", "precision": "fp32"}),
        parse_recipe({"name": "exploding", "backend": "test-exploding", "precision": "fp32"}),
    ]
    return _measure(tiny_classifier, recipes, tiny_eval, tiny_calibration)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


def _export(run_id: int, recipe: str, target: Path, **kwargs) -> Evidence:
    return export_recipe(
        run_id, recipe, target, store=default_store(), cache=ArtifactCache(cache_dir() / "artifacts"), **kwargs
    )


def _check(evidence: Evidence, name: str):
    return next(check for check in evidence.checks if check.name == name)


@pytest.mark.parametrize("recipe", CPU_RECIPES)
def test_export_and_verify_round_trip(recipe: str, classifier_run: int, exports: Path) -> None:
    target = exports / recipe
    evidence = _export(classifier_run, recipe, target)

    assert evidence.ready_for_local_trial.ready, evidence.ready_for_local_trial.reasons
    assert evidence.ready_for_release.ready, evidence.ready_for_release.reasons
    contract = evidence.contract
    for name in (contract.artifact, "tokenizer/tokenizer.json", "labels.json", "recipe.toml", "predict.py",
                 "README.md", "deploy.json", "evidence.json", "verification/sample.json"):
        assert (target / name).is_file(), name
    assert json.loads((target / "labels.json").read_text()) == ["greeting", "weather", "music"]
    assert [spec.name for spec in contract.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(spec.dtype == "int64" for spec in contract.inputs)
    assert contract.output == "logits" and contract.outputs[0].shape[-1] == 3
    assert contract.dynamic_axes["input_ids"] and contract.measured_with
    if recipe.startswith("ort-"):
        assert contract.runtime == "onnxruntime" and contract.opset and contract.opset["ai.onnx"] == 17
    else:
        assert contract.runtime == "torch" and contract.artifact == "model.pt2" and contract.opset is None
    quant = evidence.quantization
    expected_mode = parse_recipe(
        __import__("tomllib").loads((target / "recipe.toml").read_text()), "test"
    ).mode
    assert quant.mode == expected_mode
    if recipe == "ort-int8-static-minmax":
        assert quant.calibration_method == "minmax" and quant.calibration_samples == 24
    assert evidence.measurements.latency_ms and evidence.measurements.top1_agreement is not None
    verification = evidence.verification
    assert verification is not None and verification.samples == 48 and verification.top1_matches == 48
    assert "studio" not in verification.imported and "transformers" not in verification.imported
    if contract.runtime == "onnxruntime":
        assert "torch" not in verification.imported and "onnxruntime" in verification.imported
    # what was written is what verify finds again, from the folder alone
    again = verify_folder(target)
    assert all(check.passed for check in again.checks), [c for c in again.checks if not c.passed]
    saved = Evidence.model_validate_json((target / "evidence.json").read_text())
    assert saved.ready_for_release.ready and saved.verification is not None


@pytest.mark.parametrize("recipe", ["ort-int8-dynamic", "torch-int8-dynamic"])
def test_readme_snippet_and_predict_py_run_in_the_folder(recipe: str, classifier_run: int, exports: Path) -> None:
    target = exports / f"snippet-{recipe}"
    _export(classifier_run, recipe, target)
    code = re.search(r"```python\n(.*?)```", (target / "README.md").read_text(), re.S)
    assert code is not None
    ran = subprocess.run([sys.executable, "-I", "-c", code.group(1)], cwd=target, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "weather"
    cli = subprocess.run([sys.executable, "-I", "predict.py", "hello there friend good morning"], cwd=target,
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["top"][0][0] == "greeting"


def _tamper_one_weight(path: Path) -> str:
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.size > 16:
            changed = array.copy()
            changed.flat[0] = changed.flat[1] if changed.flat[0] != changed.flat[1] else changed.flat[0] + 1
            init.CopyFrom(numpy_helper.from_array(changed, init.name))
            onnx.save(model, str(path))
            return init.name
    raise AssertionError("no weight to change")


def test_tampered_weight_fails_verify(classifier_run: int, exports: Path, tmp_path: Path) -> None:
    target = tmp_path / "tampered"
    _export(classifier_run, "ort-int8-dynamic", target)
    _tamper_one_weight(target / "model.onnx")

    evidence = verify_folder(target)
    present = _check(evidence, "artifact-present")
    assert not present.passed
    assert "changed since export (sha256 differs): model.onnx" in present.detail
    assert not evidence.ready_for_local_trial.ready and not evidence.ready_for_release.ready
    cli = subprocess.run([sys.executable, "-m", "studio.cli.main", "verify", str(target)], capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 1
    assert "changed since export" in cli.stdout and "ready for release: no" in cli.stdout


def test_missing_file_fails_verify(classifier_run: int, tmp_path: Path) -> None:
    target = tmp_path / "incomplete"
    _export(classifier_run, "ort-fp32", target)
    (target / "tokenizer" / "tokenizer.json").unlink()

    evidence = verify_folder(target)
    assert "missing: tokenizer/tokenizer.json" in _check(evidence, "artifact-present").detail
    loadable = _check(evidence, "artifact-loadable")
    assert not loadable.passed and "tokenizer/tokenizer.json missing" in loadable.detail
    assert not evidence.ready_for_local_trial.ready

    (target / "evidence.json").unlink()
    with pytest.raises(StudioError, match="has no evidence.json"):
        verify_folder(target)


def test_verify_with_another_interpreter_says_what_is_missing(classifier_run: int, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    _export(classifier_run, "ort-fp32", target)
    evidence = verify_folder(target, python=str(tmp_path / "no-such-python"))
    assert "no Python interpreter at" in _check(evidence, "artifact-loadable").detail
    assert not evidence.ready_for_local_trial.ready


def test_flagged_recipe_exports_but_is_not_ready(classifier_run: int, tmp_path: Path) -> None:
    evidence = _export(classifier_run, "mislabelled", tmp_path / "flagged")
    assert (tmp_path / "flagged" / "model.onnx").is_file()
    flags = _check(evidence, "no-error-flags")
    assert not flags.passed and "top-1 agrees with FP32" in flags.detail
    assert not evidence.ready_for_local_trial.ready
    assert any(reason.startswith("no-error-flags:") for reason in evidence.ready_for_release.reasons)
    assert not _check(evidence, "top1-agreement").passed


def test_failed_recipe_exports_a_packet_that_says_why(classifier_run: int, tmp_path: Path) -> None:
    evidence = _export(classifier_run, "exploding", tmp_path / "failed")
    measured = _check(evidence, "measured-ok")
    assert not measured.passed and "kernel exploded" in measured.detail
    assert not _check(evidence, "artifact-present").passed
    assert not evidence.ready_for_local_trial.ready and not evidence.ready_for_release.ready
    assert (tmp_path / "failed" / "evidence.json").is_file()


def test_non_empty_folder_needs_force_and_a_failed_export_leaves_nothing(
    classifier_run: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(StudioError, match="not empty.*--force"):
        _export(classifier_run, "ort-fp32", target)
    assert (target / "notes.txt").read_text() == "mine"

    cli = subprocess.run(
        [sys.executable, "-m", "studio.cli.main", "export", str(classifier_run), "ort-fp32", "--to", str(target)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert cli.returncode == 2 and "--force" in cli.stderr

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "verify_folder", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _export(classifier_run, "ort-fp32", target, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no half-written folder beside it
    assert (target / "notes.txt").read_text() == "mine"  # and the old content is untouched
    monkeypatch.undo()

    evidence = _export(classifier_run, "ort-fp32", target, force=True)
    assert evidence.ready_for_release.ready
    assert not (target / "notes.txt").exists() and (target / "model.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_unknown_recipe_and_changed_model_are_refused(classifier_run: int, tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="has no recipe 'nope'.*torch-fp32"):
        _export(classifier_run, "nope", tmp_path / "x")
    run = default_store().load(classifier_run)
    run.model = run.model.model_copy(update={"content_hash": "0" * 64})
    with pytest.raises(StudioError, match="changed since run"):
        open_run_model(run)


def test_encoder_export_compares_embeddings(tiny_encoder: Path, tiny_eval: Path, tmp_path: Path) -> None:
    run_id = _measure(tiny_encoder, [resolve_recipe("ort-int8-dynamic")], tiny_eval, None)
    evidence = _export(run_id, "ort-int8-dynamic", tmp_path / "encoder")
    assert evidence.contract.task == "feature-extraction" and evidence.contract.labels is None
    assert _check(evidence, "outputs-reproduced").passed
    assert evidence.verification is not None and evidence.verification.min_cosine is not None
    assert evidence.verification.min_cosine > 0.999
    assert evidence.ready_for_local_trial.ready
    drop = _check(evidence, "accuracy-drop")  # no labels: release cannot be claimed
    assert not drop.passed and "no labelled evaluation data" in drop.detail
    assert not evidence.ready_for_release.ready


def test_snippet_is_standalone() -> None:
    """predict.py is copied into folders that have no studio: it may import nothing of it."""
    source = (Path(export_module.__file__).parent / "standalone_predict.py").read_text()
    assert "studio" not in re.findall(r"^\s*(?:from|import)\s+(\w+)", source, re.M)


def test_cli_export_prints_the_evidence(classifier_run: int, tmp_path: Path) -> None:
    target = tmp_path / "from-cli"
    cli = subprocess.run(
        [sys.executable, "-m", "studio.cli.main", "export", str(classifier_run), "ort-int4-weight-only",
         "--to", str(target), "--json", "--min-agreement", "0.5"],
        capture_output=True, text=True, timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    evidence = Evidence.model_validate_json(cli.stdout)
    assert evidence.thresholds.min_agreement == 0.5 and evidence.ready_for_release.ready
    assert evidence.quantization.mode == "weight-only" and evidence.quantization.block_size == 32
    assert "verifying" in cli.stderr  # progress goes to stderr, the JSON stays clean


@pytest.mark.parametrize(
    ("option", "message"), [(["--min-agreement", "1.5"], "--min-agreement 1.5 is out of range"),
                            (["--sample", "0"], "--sample 0 re-checks nothing")]
)
def test_cli_rejects_bad_settings_in_one_line(option: list[str], message: str, tmp_path: Path) -> None:
    cli = subprocess.run([sys.executable, "-m", "studio.cli.main", "export", "1", "ort-fp32", "--to",
                          str(tmp_path / "x"), *option], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and message in cli.stderr and "Traceback" not in cli.stderr
    assert not (tmp_path / "x").exists()
