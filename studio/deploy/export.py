"""Exporting a measured recipe as a deployment folder, written whole or not at all.

The folder is built in a hidden temporary folder beside the target, verified there (a fresh process
loads it with `predict.py` and must reproduce the run's top-k), and only then renamed into place; a
failed or cancelled export leaves nothing behind. The artifact comes from the cache when it is still
there, else it is rebuilt from the recipe the run recorded, on the same model (its content hash must
match the run's) and, for static recipes, the same calibration texts.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import shutil
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import studio
from studio.core.artifact import BuildContext
from studio.core.cache import ArtifactCache
from studio.core.catalogue import get_spec
from studio.core.compare import describe_failure
from studio.core.dataset import TextSet
from studio.core.errors import StudioError
from studio.core.inputs import encode, length_buckets
from studio.core.model import Model, open_model
from studio.core.recipe import Recipe, parse_recipe
from studio.core.results import RecipeResult, RunResult
from studio.core.store import RunStore
from studio.core.types import Precision
from studio.deploy.artifacts import Packed, pack
from studio.deploy.evidence import (
    CONTRACT_FILE,
    EVIDENCE_FILE,
    SAMPLE_FILE,
    SAMPLE_SIZE,
    Contract,
    Evidence,
    Measurements,
    QuantizationParams,
    Readiness,
    Thresholds,
)
from studio.deploy.readme import render_readme
from studio.deploy.verify import SNIPPET, manifest, verify_folder

log = logging.getLogger(__name__)
Say = Callable[[str], None]
TEMP_MARK = ".export-"


def find_result(run: RunResult, recipe: str) -> RecipeResult:
    for result in run.results:
        if result.recipe == recipe:
            return result
    names = ", ".join(r.recipe for r in run.results)
    raise StudioError(f"run {run.run_id} has no recipe '{recipe}'", f"pick one of: {names}")


def open_run_model(run: RunResult) -> Model:
    """The model the run measured, refused if its files changed since: the evidence would not apply."""
    model = open_model(run.model.ref)
    if model.info.content_hash != run.model.content_hash:
        raise StudioError(
            f"the model at {run.model.path} changed since run {run.run_id} (its content hash differs)",
            "run the recipe again on the current model, then export that run",
        )
    return model


def occupied(folder: Path) -> bool:
    """A folder with something in it: replacing it needs the user's yes (or --force)."""
    return folder.is_dir() and any(folder.iterdir())


def check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise StudioError(f"{target} is a file", "pick a folder to export into")
    if occupied(target) and not force:
        raise StudioError(
            f"{target} is not empty",
            "pick an empty or new folder, or pass --force to replace what is there",
        )


def _remove_stale_temporaries(target: Path) -> None:
    """Temporary folders of exports killed before they could clean up (their process is gone)."""
    import psutil

    for leftover in target.parent.glob(f".{target.name}{TEMP_MARK}*"):
        pid = leftover.name.rsplit(TEMP_MARK, 1)[-1].split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _move_into_place(built: Path, target: Path) -> None:
    if occupied(target):
        old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        target.rename(old)
        built.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if target.is_dir():
            target.rmdir()
        built.rename(target)


def measurements(run: RunResult, result: RecipeResult) -> Measurements:
    reference = run.reference
    drop = None
    if reference is not None and reference.accuracy is not None and result.accuracy is not None:
        drop = round((reference.accuracy - result.accuracy) * 100, 3)
    return Measurements(
        status=result.status,
        reason=result.reason,
        latency_ms=result.latency_ms.model_dump() if result.latency_ms else None,
        batch_size=result.batch_size,
        seq_len=result.seq_len,
        threads=result.threads,
        size_bytes=result.size_bytes,
        reference_size_bytes=reference.size_bytes if reference else None,
        accuracy=result.accuracy,
        reference_accuracy=reference.accuracy if reference else None,
        accuracy_drop_points=drop,
        top1_agreement=result.top1_agreement,
        kl_vs_fp32=result.kl,
        cosine_vs_fp32=result.cosine,
        max_abs_diff=result.max_abs_diff,
        speedup_vs_fp32=result.speedup_vs_reference,
        perplexity=result.perplexity,
        reference_perplexity=reference.perplexity if reference else None,
        decode_tokens_per_s=result.decode_tokens_per_s,
        prefill_ms=result.prefill_ms.model_dump() if result.prefill_ms else None,
        flags=[flag.model_dump() for flag in result.flags],
        evaluation=run.evaluation.model_dump(),
    )


def quantization(
    recipe: Recipe, result: RecipeResult, run: RunResult, notes: list[str]
) -> QuantizationParams:
    calibrated = recipe.calibration is not None and (recipe.mode == "static" or result.precision == "int8")
    samples = (
        min(recipe.calibration.samples, run.evaluation.calibration_count) if recipe.calibration else None
    )
    fused = recipe.optimize_graph and not any("unfused" in note for note in [*result.notes, *notes])
    return QuantizationParams(
        backend=recipe.backend,
        precision=result.precision,
        requested_precision=result.requested_precision,
        mode=recipe.mode,
        calibration_method=recipe.calibration.method if calibrated and recipe.calibration else None,
        calibration_samples=samples if calibrated else None,
        per_channel=recipe.per_channel,
        fused_graph=fused and get_spec(recipe.backend).runtime == "onnxruntime",
        block_size=recipe.block_size if recipe.mode == "weight-only" else None,
        excluded_ops=list(recipe.exclude_ops),
        excluded_nodes=list(recipe.exclude_nodes),
    )


def _calibration(recipe: Recipe, request: dict[str, Any]) -> TextSet:
    """The run's calibration texts (with their pairs), re-read as its request names them; only static
    builds need them."""
    from studio.core.dataset import request_data

    if recipe.calibration is None:
        return TextSet([], None, "none")
    return request_data(request)[1]


def write_tokenizer(model: Model, folder: Path) -> tuple[int, str]:
    """The tokenizer's files (tokenizer.json included); its padding id and token."""
    tokenizer = model.tokenizer
    tokenizer.save_pretrained(folder)
    if not (folder / "tokenizer.json").is_file():
        raise StudioError(
            f"the tokenizer of {model.info.name} has no fast (tokenizer.json) form",
            "convert it with transformers (AutoTokenizer.from_pretrained(..., use_fast=True)) and save it",
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return int(pad_id), str(tokenizer.pad_token or "[PAD]")


def evaluation_batches(
    model: Model, texts: list[str], count: int, batch_size: int, seq_len: int, pairs: list[str] | None = None
) -> tuple[list[list[int]], list[list[int]]]:
    """The studio's evaluation batches (input indices) that hold the first `count` inputs, and where
    each of them sat.

    Some runtimes' outputs depend on the batch an input is in (dynamic INT8 scales activations per
    batch, padding differs), so reproducing the measured top-k means re-running those same batches.
    """
    batches: list[list[int]] = []
    positions: dict[int, list[int]] = {}
    for bucket in length_buckets(model.tokenizer, texts, batch_size, seq_len, pairs):
        if not any(index < count for index in bucket):
            continue
        for row, index in enumerate(bucket):
            if index < count:
                positions[index] = [len(batches), row]
        batches.append(bucket)
    return batches, [positions[index] for index in range(count)]


def sample_file(
    run: RunResult,
    result: RecipeResult,
    model: Model,
    packed: Packed | None,
    size: int,
    eval_batch_size: int,
) -> dict[str, Any]:
    """The evaluation sample, the batches it was measured in, and what the studio measured on it.

    Classifiers: the run's own top-k. Encoders (the run keeps no embeddings): computed now with the
    studio's predictor on the same batches.
    """
    texts = [item.text for item in run.inputs]
    pairs = [item.pair or "" for item in run.inputs] if run.evaluation.pairs else None
    count = min(size, len(texts))
    if model.is_causal_lm:
        return generation_sample(result, model, texts[:count])
    buckets, positions = evaluation_batches(model, texts, count, eval_batch_size, result.seq_len, pairs)
    batches = [[texts[i] for i in bucket] for bucket in buckets]
    batch_pairs = [[pairs[i] for i in bucket] for bucket in buckets] if pairs is not None else None
    sample: dict[str, Any] = {"texts": texts[:count], "batches": batches, "positions": positions, "k": 5}
    if pairs is not None:
        sample["pairs"], sample["batch_pairs"] = pairs[:count], batch_pairs
    if model.info.task == "text-classification":
        if len(result.topk) >= count and count:
            sample["expected_topk"] = [[[label, p] for label, p in row] for row in result.topk[:count]]
            sample["k"] = len(result.topk[0])
    elif packed is not None and packed.studio_predictor is not None:
        predictor = packed.studio_predictor()
        outputs = []
        for number, batch in enumerate(batches):
            feeds = encode(
                model.tokenizer,
                batch,
                model.info.input_names,
                result.seq_len,
                pairs=batch_pairs[number] if batch_pairs is not None else None,
            )
            outputs.append(model.postprocess(predictor(feeds), feeds["attention_mask"]))
        sample["expected_embeddings"] = [outputs[b][row].tolist() for b, row in positions]
    return sample


def generation_sample(result: RecipeResult, model: Model, prompts: list[str]) -> dict[str, Any]:
    """A causal LM's sample: the prompts as the studio tokenized them, and its measured top-k and
    greedy continuations (reproducing them needs no batches: prompts run one at a time)."""
    count = min(len(prompts), len(result.topk), len(result.continuation_tokens))
    new_tokens = max((len(t) for t in result.continuation_tokens), default=1)
    return {
        "texts": prompts[:count],
        "prompt_ids": [list(model.tokenizer(p)["input_ids"]) for p in prompts[:count]],
        "new_tokens": new_tokens,
        "k": len(result.topk[0]) if result.topk else 5,
        "expected_topk": [[[token, p] for token, p in row] for row in result.topk[:count]],
        "expected_continuations": result.continuation_tokens[:count],
    }


def write_generation_files(model: Model, folder: Path) -> list[int]:
    """predict.py for text generation, the KV-cache loop it runs, and the generation config; returns the
    token ids that end generation."""
    source = importlib.resources.files("studio.deploy").joinpath("standalone_generate.py")
    (folder / SNIPPET).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    for package, name in (("studio.backends", "ort_lm.py"), ("studio.core", "greedy.py")):
        code = importlib.resources.files(package).joinpath(name)
        (folder / name).write_text(code.read_text(encoding="utf-8"), encoding="utf-8")
    config = model.weights_folder / "generation_config.json"
    if config.is_file():
        shutil.copyfile(config, folder / "generation_config.json")
    eos = model.tokenizer.eos_token_id
    return [int(eos)] if eos is not None else []


def export_recipe(
    run_id: int,
    recipe_name: str,
    target: Path,
    *,
    store: RunStore,
    cache: ArtifactCache,
    force: bool = False,
    thresholds: Thresholds | None = None,
    sample_size: int = SAMPLE_SIZE,
    python: str | None = None,
    say: Say = lambda _: None,
) -> Evidence:
    """Write `recipe_name` of run `run_id` to `target` with its evidence; returns the evidence."""
    thresholds = thresholds or Thresholds()
    target = target.expanduser().resolve()
    run = store.load(run_id)
    result = find_result(run, recipe_name)
    if result.status == "unavailable":
        raise StudioError(
            f"{recipe_name} did not run in run {run_id} ({result.reason}), so there is nothing to export",
            "run it on a machine that can, then export that run",
        )
    recipe = parse_recipe(tomllib.loads(result.recipe_toml), f"run {run_id}")
    request = store.request(run_id)
    check_target(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    say("opening the model")
    model = open_run_model(run)
    spec = get_spec(recipe.backend)
    building = target.parent / f".{target.name}{TEMP_MARK}{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        notes: list[str] = []
        packed: Packed | None = None
        pack_error = ""
        calibration = _calibration(recipe, request)
        ctx = BuildContext(
            model,
            recipe,
            cache,
            cast(Precision, result.precision),  # what ran, after any fallback
            calibration_texts=calibration.texts,
            calibration_pairs=calibration.pairs,
            report=lambda stage, done, total: say(stage),
            notes=notes,
        )
        say(f"writing the {spec.title} artifact")
        try:
            packed = pack(ctx, spec, building, [item.text for item in run.inputs[:8]])
        except Exception as error:
            pack_error = describe_failure(error)
            if result.ok:  # a recipe that ran must export: this is a problem to report, not to package
                if isinstance(error, StudioError):
                    raise
                raise StudioError(
                    f"cannot write the artifact of {recipe_name} ({pack_error})",
                    "clear the cache (`qstudio cache clear`) and export again, or re-run the recipe",
                ) from error
            log.info("no artifact for failed recipe %s: %s", recipe_name, pack_error)
        say("writing the tokenizer, labels and recipe")
        pad_id, pad_token = write_tokenizer(model, building / "tokenizer")
        labels = model.info.labels
        if labels:
            (building / "labels.json").write_text(
                json.dumps(labels, indent=1, ensure_ascii=False), encoding="utf-8"
            )
        (building / "recipe.toml").write_text(result.recipe_toml, encoding="utf-8")
        stop_ids: list[int] = []
        if model.is_causal_lm:
            stop_ids = write_generation_files(model, building)
        else:
            snippet = importlib.resources.files("studio.deploy").joinpath("standalone_predict.py")
            (building / SNIPPET).write_text(snippet.read_text(encoding="utf-8"), encoding="utf-8")
        contract = Contract(
            runtime=packed.runtime if packed else "onnxruntime",
            runtime_packages=packed.runtime_packages if packed else [],
            measured_with={
                p: run.libraries.get(p.removesuffix("-gpu"))
                for p in (packed.runtime_packages if packed else [])
            },
            artifact=packed.artifact if packed else "",
            onnx_source=packed.onnx_source if packed else None,
            device=packed.device if packed else recipe.device,
            providers=packed.providers if packed else [],
            task=model.info.task,
            inputs=packed.inputs if packed else [],
            outputs=packed.outputs if packed else [],
            output=model.info.output_name,
            dynamic_axes=packed.dynamic_axes if packed else {},
            opset=packed.opset if packed else None,
            format=packed.format if packed else "none",
            max_length=recipe.seq_len,
            pairs=run.evaluation.pairs,
            pad_id=pad_id,
            pad_token=pad_token,
            labels="labels.json" if labels else None,
            threads=recipe.threads,
            stop_token_ids=stop_ids,
        )
        (building / CONTRACT_FILE).write_text(contract.model_dump_json(indent=2), encoding="utf-8")
        say("recording the evaluation sample")
        eval_batch_size = int(request.get("settings", {}).get("eval_batch_size", 16))
        sample = sample_file(run, result, model, packed, sample_size, eval_batch_size)
        (building / SAMPLE_FILE).parent.mkdir()
        (building / SAMPLE_FILE).write_text(json.dumps(sample, ensure_ascii=False), encoding="utf-8")
        evidence = Evidence(
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            studio_version=studio.__version__,
            run_id=run_id,
            recipe=recipe_name,
            model={
                "name": run.model.name,
                "source": run.model.source,
                "path": run.model.path,
                "content_hash": run.model.content_hash,
                "architecture": run.model.architecture,
                "task": run.model.task,
                "parameters": run.model.parameters,
                "labels": len(run.model.labels),
            },
            contract=contract,
            quantization=quantization(recipe, result, run, notes),
            hardware=run.hardware.model_dump(mode="json"),
            libraries=run.libraries,
            measurements=measurements(run, result),
            thresholds=thresholds,
            files={},
            checks=[],
            ready_for_local_trial=Readiness(ready=False),
            ready_for_release=Readiness(ready=False),
        )
        (building / "README.md").write_text(render_readme(evidence, result.recipe_toml), encoding="utf-8")
        evidence.files = manifest(building)
        (building / EVIDENCE_FILE).write_text(evidence.model_dump_json(indent=2), encoding="utf-8")
        say("verifying: loading the export in a fresh process")
        evidence = verify_folder(building, python)
        if pack_error:
            for check in evidence.checks:
                if check.name == "artifact-present":
                    check.passed, check.detail = False, f"no artifact: {pack_error}"
            evidence.decide()
        (building / EVIDENCE_FILE).write_text(evidence.model_dump_json(indent=2), encoding="utf-8")
        _move_into_place(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return evidence
