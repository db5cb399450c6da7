"""bitsandbytes through transformers: LLM.int8 (int8 weights with outlier decomposition) and NF4 (4-bit
NormalFloat weights; compute dtype and double quantization from the recipe). Both need an NVIDIA GPU and a CUDA build of torch.

The model's Linear layers are swapped for bitsandbytes' with transformers' `replace_with_bnb_linear`
(the classifier head stays in float, as transformers does for output layers), the FP32 weights are
loaded into them, and moving the model to the GPU quantizes them.
"""

from __future__ import annotations

from studio.backends.base import Artifact, BuildContext, Predictor
from studio.backends.torch_cuda import cuda_device
from studio.backends.torch_runtime import torch_predictor

HEADS = ["classifier", "score", "pooler"]  # left in float
BITS = {"int8": 1.0, "int4": 0.5}
COMPUTE_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


class BitsAndBytes:
    def prepare(self, ctx: BuildContext) -> Artifact:
        return Artifact(None, int(ctx.model.info.parameters * BITS[ctx.precision]))

    def load(self, ctx: BuildContext, artifact: Artifact) -> Predictor:
        import torch
        from transformers import BitsAndBytesConfig
        from transformers.integrations import replace_with_bnb_linear

        device = cuda_device(ctx)
        skip = [*HEADS, *([] if ctx.recipe.quantize_lm_head else ["lm_head"])]
        compute = getattr(torch, COMPUTE_DTYPES[ctx.recipe.compute_dtype])
        if ctx.precision == "int8":
            config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        else:
            config = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=ctx.recipe.double_quant,
                llm_int8_skip_modules=skip,
            )
        ctx.report("quantize on the GPU (bitsandbytes)", 0, 1)
        module = ctx.model.torch_module()
        state = module.state_dict()
        module = replace_with_bnb_linear(module, modules_to_not_convert=skip, quantization_config=config)
        module.load_state_dict(state, strict=False)
        module = module.to(device)  # bitsandbytes quantizes the weights as they move to the GPU
        if ctx.precision == "int4":
            module = module.to(compute)
        return torch_predictor(ctx, module, str(device))
