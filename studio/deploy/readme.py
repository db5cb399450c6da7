"""The export folder's README: what is there, how to install and call it, what was measured."""

from __future__ import annotations

from studio.core.units import human_bytes
from studio.deploy.evidence import Contract, Evidence

_TOKENIZE = """tokenizer = Tokenizer.from_file("tokenizer/tokenizer.json")
tokenizer.enable_truncation(max_length={max_length})
tokenizer.enable_padding(pad_id={pad_id}, pad_token={pad_token!r})
encodings = tokenizer.encode_batch({batch})
feeds = {{
{feeds}
}}
"""
_COLUMNS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}

# Per runtime: its imports, then the lines that load the artifact and compute `output` from `feeds`.
_RUN = {
    "onnxruntime": (
        "import onnxruntime as ort",
        """session = ort.InferenceSession("{artifact}", providers={providers!r})
output = session.run(["{output}"], feeds)[0]
""",
    ),
    "torch": (
        "import torch",
        """module = torch.export.load("{artifact}").module()
with torch.inference_mode():
    output = module(**{{name: torch.from_numpy(array).to("{device}") for name, array in feeds.items()}})
output = output.float().cpu().numpy()
""",
    ),
    "tensorrt": (
        "import predict  # TensorRT binds device buffers by name: see load_tensorrt() in predict.py",
        """output = predict.Model().run(feeds)
""",
    ),
}

_CLASSIFY = """labels = json.load(open("labels.json", encoding="utf-8"))
print(labels[int(output[0].argmax())])
"""
_EMBED = """mask = feeds["attention_mask"][..., None]
embedding = (output * mask).sum(axis=1) / mask.sum(axis=1)
embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
print(embedding.shape)
"""


PAIR_EXAMPLE = ("a man is playing a guitar on stage", "a person is making music")


def snippet(contract: Contract, text: str = "what is the weather in paris") -> str:
    """A minimal, runnable inference example for the folder's runtime (run from the folder); a
    text-pair model's example encodes a (text, pair) tuple."""
    names = [spec.name for spec in contract.inputs]
    feeds = "\n".join(
        f'    "{name}": np.array([e.{_COLUMNS.get(name, name)} for e in encodings], dtype=np.int64),'
        for name in names
    )
    runtime_import, run = _RUN[contract.runtime]
    imports = [
        "import json",
        "",
        "import numpy as np",
        runtime_import,
        "from tokenizers import Tokenizer",
        "",
    ]
    if contract.task != "text-classification":
        imports = imports[2:]
    parts = [
        "\n".join(imports),
        _TOKENIZE.format(
            max_length=contract.max_length,
            pad_id=contract.pad_id,
            pad_token=contract.pad_token,
            batch=repr([PAIR_EXAMPLE]) if contract.pairs else repr([text]),
            feeds=feeds,
        ),
        run.format(
            artifact=contract.artifact,
            providers=contract.providers or ["CPUExecutionProvider"],
            output=contract.output,
            device=contract.device,
        ),
        _CLASSIFY if contract.task == "text-classification" else _EMBED,
    ]
    return "\n".join(parts)


_GENERATE = """import importlib.util
import sys

import onnxruntime as ort
from tokenizers import Tokenizer


def local(name):  # this folder's ort_lm.py (KV-cache runner) and greedy.py (decoding loop)
    sys.dont_write_bytecode = True  # an edited greedy.py is never hidden by a stale .pyc
    spec = importlib.util.spec_from_file_location(name, f"{{name}}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tokenizer = Tokenizer.from_file("tokenizer/tokenizer.json")
model = local("ort_lm").OrtCausalLM(ort.InferenceSession("{artifact}", providers={providers!r}))
logits, tokens = local("greedy").greedy(model, tokenizer.encode("{text}").ids, 32, set({stop!r}))
print(tokenizer.decode(tokens))
"""


def generation_snippet(contract: Contract, text: str = "The capital of France is") -> str:
    """Greedy generation with only onnxruntime, numpy and tokenizers (run from the folder)."""
    return _GENERATE.format(
        artifact=contract.artifact,
        providers=contract.providers or ["CPUExecutionProvider"],
        text=text,
        stop=contract.stop_token_ids,
    )


def _tensors(contract: Contract) -> list[str]:
    rows = ["| tensor | name | dtype | shape |", "|---|---|---|---|"]
    for kind, specs in (("input", contract.inputs), ("output", contract.outputs)):
        rows += [f"| {kind} | `{s.name}` | {s.dtype} | {s.shape} |" for s in specs]
    return rows


def _measured(evidence: Evidence) -> list[str]:
    m = evidence.measurements
    rows = ["| measurement | value |", "|---|---|"]
    if m.latency_ms:
        rows.append(
            f"| latency p50 / p90 / p99 | {m.latency_ms['p50']:.2f} / {m.latency_ms['p90']:.2f} / "
            f"{m.latency_ms['p99']:.2f} ms (batch {m.batch_size} x {m.seq_len} tokens, "
            f"{m.threads or 'default'} threads) |"
        )
    if m.speedup_vs_fp32:
        rows.append(f"| speed-up vs FP32 | {m.speedup_vs_fp32:.2f}x |")
    if m.size_bytes:
        rows.append(f"| size | {human_bytes(m.size_bytes)} |")
    if m.accuracy is not None:
        drop = (
            f" ({m.accuracy_drop_points:+.2f} points vs FP32)" if m.accuracy_drop_points is not None else ""
        )
        rows.append(f"| task accuracy | {m.accuracy:.1%}{drop} |")
    if m.decode_tokens_per_s is not None:
        rows.append(f"| decode | {m.decode_tokens_per_s:.1f} tokens/s (batch 1, greedy) |")
    if m.prefill_ms:
        rows.append(
            f"| prefill of {m.seq_len} tokens p50 / p99 | {m.prefill_ms['p50']:.1f} / {m.prefill_ms['p99']:.1f} ms |"
        )
    if m.perplexity is not None:
        against = f" (FP32: {m.reference_perplexity:.3f})" if m.reference_perplexity else ""
        rows.append(f"| perplexity | {m.perplexity:.3f}{against} |")
    if m.top1_agreement is not None:
        what = "same next-token top-1 as FP32" if m.perplexity is not None else "top-1 agreement with FP32"
        rows.append(f"| {what} | {m.top1_agreement:.1%} |")
    if m.kl_vs_fp32 is not None:
        rows.append(f"| KL(FP32 ‖ this) | {m.kl_vs_fp32:.5f} |")
    if m.cosine_vs_fp32 is not None:
        rows.append(f"| cosine to FP32 | {m.cosine_vs_fp32:.5f} |")
    if m.status != "ok":
        rows.append(f"| status | **{m.status}**: {m.reason} |")
    return rows


def render_readme(evidence: Evidence, recipe_toml: str) -> str:
    contract = evidence.contract
    quant = evidence.quantization
    gpu = evidence.hardware.get("gpus") or []
    on_gpu = contract.device.startswith("cuda") and gpu
    where = gpu[0].get("name", "GPU") if on_gpu else evidence.hardware.get("cpu", {}).get("model", "CPU")
    packages = " ".join(
        # the measured version without its local build tag (2.13.0+cpu -> 2.13.0), which pip cannot resolve
        f"{name}=={version.split('+')[0]}" if version else name
        for name, version in contract.measured_with.items()
    )
    flags = [f"- **{f['severity']}** {f['code']}: {f['message']}" for f in evidence.measurements.flags]
    language = contract.task == "text-generation"
    example = (
        'python predict.py "The capital of France is" --max-new-tokens 32'
        if language
        else f'python predict.py "{PAIR_EXAMPLE[0]}" --pair "{PAIR_EXAMPLE[1]}"'
        if contract.pairs
        else 'python predict.py "what is the weather in paris"'
    )
    lines = [
        f"# {evidence.model['name']}: {evidence.recipe}",
        "",
        f"Exported by Quantization Studio {evidence.studio_version} from run {evidence.run_id} on "
        f"{evidence.exported_at}. {quant.backend}, {quant.precision.upper()} ({quant.mode}), "
        f"measured on {where}.",
        "",
        "Whether it is ready for a local trial and for release, and why, is in `evidence.json`",
        "(`ready_for_local_trial`, `ready_for_release`); `qstudio verify .` re-checks this folder.",
        "",
        "## Files",
        "",
        f"- `{contract.artifact}`: {contract.format}"
        + (f", built from `{contract.onnx_source}`" if contract.onnx_source else ""),
        "- `tokenizer/`: the tokenizer (`tokenizer.json` is all the code below reads)",
        *(["- `labels.json`: class names, index = output position"] if contract.labels else []),
        "- `recipe.toml`: the recipe that made it",
        "- `predict.py`: inference code the studio ran in a fresh process to verify this export",
        *(
            [
                "- `ort_lm.py`, `greedy.py`: the KV-cache runner and decoding loop `predict.py` uses (the studio's own)"
            ]
            if language
            else []
        ),
        *(["- `generation_config.json`: the model's generation defaults"] if language else []),
        "- `deploy.json`: the contract below, machine-readable",
        "- `evidence.json`: quantization parameters, hardware, measurements, checks, file hashes",
        "- `verification/sample.json`: evaluation texts and the studio's predictions for them",
        "",
        "## Install and run",
        "",
        "```sh",
        f"pip install numpy tokenizers {packages}".rstrip(),
        example,
        "```",
        "",
        "## Minimal inference",
        "",
        "```python",
        (generation_snippet(contract) if language else snippet(contract)).rstrip(),
        "```",
        "",
        "## Contract",
        "",
        *_tensors(contract),
        "",
        f"Dynamic axes: {contract.dynamic_axes or 'none'}. Opset: {contract.opset or 'n/a'}. "
        f"Texts are truncated to {contract.max_length} tokens. Runtime: {contract.runtime} on "
        f"{contract.device}" + (f", providers {contract.providers}" if contract.providers else "") + ".",
        "",
        "## Quantization",
        "",
        f"Mode {quant.mode}, precision {quant.precision}"
        + (
            f" (asked for {quant.requested_precision})"
            if quant.requested_precision != quant.precision
            else ""
        )
        + (
            f", calibration {quant.calibration_method} on {quant.calibration_samples} texts"
            if quant.calibration_method
            else ""
        )
        + f", per-channel {'yes' if quant.per_channel else 'no'}, fused graph {'yes' if quant.fused_graph else 'no'}"
        + (f", excluded operators {quant.excluded_ops}" if quant.excluded_ops else "")
        + (f", excluded nodes {quant.excluded_nodes}" if quant.excluded_nodes else "")
        + ".",
        "",
        "```toml",
        recipe_toml.rstrip(),
        "```",
        "",
        "## What the run measured",
        "",
        *_measured(evidence),
        "",
        *(["Flags:", "", *flags, ""] if flags else []),
    ]
    return "\n".join(lines)
