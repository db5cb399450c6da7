"""Exporting an encoder or classifier to ONNX: optimum-onnx's exporter where it knows the family, else
torch's own (`torch.onnx.export`), which traces most BERT-like encoders just as well.

The export says which exporter ran (the recipes' notes show it). An export that failed with both is
remembered per model (by content hash) in the cache, so from then on the model's ONNX recipes are
greyed with the reason as soon as it is opened, instead of each failing at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.paths import cache_dir

OPTIMUM = "optimum"
TORCH = "torch.onnx"
FAILURES_FILE = "onnx-export-failures.json"


def _failures() -> dict[str, str]:
    path = cache_dir() / FAILURES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remembered_failure(content_hash: str) -> str:
    """Why this model could not be exported to ONNX last time ("" when it never failed)."""
    return _failures().get(content_hash, "")


def remember_failure(content_hash: str, reason: str) -> None:
    failures = _failures() | {content_hash: reason}
    (cache_dir() / FAILURES_FILE).write_text(json.dumps(failures, indent=1), encoding="utf-8")


class NoOptimumExporter(Exception):
    """optimum-onnx has no ONNX config for this family and task."""


def export_with_optimum(module: Any, model_type: str, task: str, output: Path, opset: int) -> None:
    import optimum.exporters.onnx.model_configs  # noqa: F401 - registers the ONNX configs
    from optimum.exporters.onnx import export
    from optimum.exporters.tasks import TasksManager

    try:
        constructor = TasksManager.get_exporter_config_constructor(
            "onnx", model_type=model_type, task=task, library_name="transformers"
        )
    except (KeyError, ValueError) as error:
        raise NoOptimumExporter(str(error)) from None
    export(module, constructor(module.config), output, opset=opset)


def export_with_torch(
    module: Any, example: dict[str, Any], output_name: str, output: Path, opset: int
) -> None:
    """The TorchScript-based exporter with the studio's input and output names, batch and length dynamic."""
    import torch

    names = list(example)

    class NamedOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            outputs = self.model(**dict(zip(names, tensors, strict=True)))
            result: torch.Tensor = (
                outputs[output_name] if isinstance(outputs, dict) else getattr(outputs, output_name)
            )
            return result

    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in names}
    axes[output_name] = (
        {0: "batch_size"} if output_name == "logits" else {0: "batch_size", 1: "sequence_length"}
    )
    with torch.inference_mode():
        torch.onnx.export(
            NamedOutput().eval(),
            tuple(torch.from_numpy(example[name]) for name in names),
            str(output),
            input_names=names,
            output_names=[output_name],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


def export_encoder(model: Any, output: Path, opset: int) -> str:
    """Export `model` (a studio Model of an encoder or classifier): optimum first, torch.onnx where
    optimum has no exporter for the family or fails. Returns which exporter ran and why; a failure of
    both is remembered and reported in one line."""
    from studio.core.inputs import encode

    info = model.info
    module = model.torch_module()
    why = ""
    try:
        export_with_optimum(module, info.model_type, info.task, output, opset)
        return f"exported to ONNX with {OPTIMUM}"
    except NoOptimumExporter:
        why = f"optimum-onnx has no ONNX exporter for '{info.model_type}'"
    except Exception as error:  # optimum knows the family but failed on this model: torch may not
        why = f"optimum's export failed ({_first_line(error)})"
    try:
        example = encode(model.tokenizer, ["a short text", "another text to export"], info.input_names, 16)
        export_with_torch(module, example, info.output_name, output, opset)
    except Exception as error:
        reason = (
            f"no ONNX export for '{info.model_type}': {why}, and torch.onnx failed ({_first_line(error)})"
        )
        remember_failure(info.content_hash, reason)
        raise StudioError(
            reason, "use the torch recipes for this model, or export it yourself and open the .onnx file"
        ) from None
    return f"exported to ONNX with {TORCH} ({why})"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
