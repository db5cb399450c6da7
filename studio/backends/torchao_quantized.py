"""torchao-quantized torch modules: the quantized state dict is the cached artifact.

Loading re-applies the same config to a fresh module and assigns the stored tensors (torchao's quantized
tensors are subclasses, so the weights-only unpickler refuses them; the file is the studio's own cache
entry). A causal LM's `lm_head` stays in float unless the recipe sets `quantize_lm_head`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.backends.base import Artifact, BuildContext, Predictor, artifact_size
from studio.backends.torch_runtime import lm_head_filter, quiet_torch_imports, torch_predictor
from studio.core.errors import StudioError

WEIGHTS = "model.pt"


def conv1d_as_linear(module: Any) -> int:
    """Swap transformers' Conv1D (GPT-2's projections: a Linear with its weight transposed) for nn.Linear,
    so torchao, which quantizes Linear layers, sees them. Returns how many were swapped."""
    import torch
    from transformers.pytorch_utils import Conv1D

    swaps = [(name, child) for name, child in module.named_modules() if isinstance(child, Conv1D)]
    for name, conv in swaps:
        linear = torch.nn.Linear(conv.weight.shape[0], conv.nf, bias=conv.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.T)
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        parent_name, _, attribute = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attribute, linear)
    return len(swaps)


class TorchaoBackend:
    """One torchao config applied to every Linear; subclasses name the config and the cache step."""

    step = ""
    title = ""

    def config(self) -> Any:
        raise NotImplementedError

    def quantized_module(self, ctx: BuildContext) -> Any:
        quiet_torch_imports()
        from torchao.quantization import quantize_

        module = ctx.model.torch_module()
        conv1d_as_linear(module)
        wanted = lm_head_filter(ctx)
        count = sum(wanted(m, name) for name, m in module.named_modules())
        if not count:
            raise StudioError(
                f"{self.title} found no Linear layer to quantize in this model", "use an ONNX Runtime recipe"
            )
        quantize_(module, self.config(), filter_fn=wanted)
        return module

    def prepare(self, ctx: BuildContext) -> Artifact:
        def build(folder: Path) -> None:
            import torch

            ctx.report(f"quantize ({self.title})", 0, 1)
            torch.save(self.quantized_module(ctx).state_dict(), folder / WEIGHTS)

        folder, cached = ctx.cache.get_or_build(
            ctx.cache_key(step=self.step), build, step=self.step, recipe=ctx.recipe.name
        )
        return Artifact(folder / WEIGHTS, artifact_size(folder), from_cache=cached)

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        import torch

        assert artifact.path is not None
        ctx.report("load quantized weights", 0, 1)
        module = self.quantized_module(ctx)
        state = torch.load(artifact.path, weights_only=False, map_location="cpu")
        module.load_state_dict(state, assign=True)
        predictor: Predictor = torch_predictor(ctx, module)
        return predictor
