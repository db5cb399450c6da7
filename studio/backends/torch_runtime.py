"""Running a torch module the way the ONNX backends run a session: named inputs in, named output out."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from studio.backends.base import Feeds
from studio.core.quiet import quiet_torch_imports

__all__ = ["quiet_torch_imports"]  # re-exported for the backends

log = logging.getLogger(__name__)


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


class TorchCausalLM:
    """A transformers causal LM as the studio's `LanguageModel`: full-sequence logits, prefill, one step.

    The KV cache is transformers' own (returned by the model, handed back on the next step)."""

    def __init__(self, module: Any, threads: int, device: str = "cpu") -> None:
        self.module = module
        self.threads = threads
        self.device = device

    def logits(self, input_ids: np.ndarray) -> np.ndarray:
        import torch

        set_threads(self.threads)
        tensor = torch.as_tensor(input_ids, dtype=torch.long).to(self.device)
        with torch.inference_mode():
            outputs = self.module(input_ids=tensor, use_cache=False)
        result: np.ndarray = outputs.logits.float().cpu().numpy()
        return result

    def start(self, input_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._continue(input_ids, None)

    def step(self, token: int, cache: Any) -> tuple[np.ndarray, Any]:
        return self._continue(np.asarray([[token]], dtype=np.int64), cache)

    def _continue(self, input_ids: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        import torch

        set_threads(self.threads)
        tensor = torch.as_tensor(input_ids, dtype=torch.long).to(self.device)
        with torch.inference_mode():
            outputs = self.module(input_ids=tensor, past_key_values=cache, use_cache=True)
        return outputs.logits[0, -1].float().cpu().numpy(), outputs.past_key_values


def torch_predictor(ctx: Any, module: Any, device: str = "cpu") -> Any:
    """The predictor a torch backend hands the run: by the model's kind, a LanguageModel or a Predictor."""
    if ctx.model.is_causal_lm:
        return TorchCausalLM(module, ctx.recipe.threads, device)
    return TorchPredictor(
        module, ctx.model.info.input_names, ctx.model.info.output_name, ctx.recipe.threads, device
    )


def lm_head_filter(ctx: Any) -> Any:
    """torchao's filter: every Linear, but a causal LM's output projection only when the recipe asks."""
    import torch

    keep_float = ctx.model.is_causal_lm and not ctx.recipe.quantize_lm_head

    def wanted(module: Any, fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and not (keep_float and fqn.split(".")[-1] == "lm_head")

    return wanted
