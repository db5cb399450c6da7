"""Running a torch module the way the ONNX backends run a session: named inputs in, named output out."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from studio.backends.base import Feeds

log = logging.getLogger(__name__)


def quiet_torch_imports() -> None:
    """torchao logs every optional CUDA kernel it cannot load on a CPU machine; that is noise here."""
    for name in ("torchao", "torch._dynamo", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def set_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def named_output(outputs: Any, name: str) -> Any:
    """One output of a transformers model, whether it returned a dict or a ModelOutput."""
    return outputs[name] if isinstance(outputs, dict) else getattr(outputs, name)


class TorchPredictor:
    """Calls a transformers module under inference mode and returns its `output_name` as float32 numpy."""

    def __init__(
        self, module: Any, input_names: list[str], output_name: str, threads: int, device: str = "cpu"
    ) -> None:
        self.module = module
        self.input_names = input_names
        self.output_name = output_name
        self.threads = threads
        self.device = device

    def __call__(self, feeds: Feeds) -> np.ndarray:
        import torch

        set_threads(self.threads)
        tensors = {
            name: torch.from_numpy(feeds[name]).to(self.device) for name in self.input_names if name in feeds
        }
        with torch.inference_mode():
            outputs = self.module(**tensors)
        result: np.ndarray = named_output(outputs, self.output_name).float().cpu().numpy()
        return result
