"""A causal LM exported with past key values (optimum's `text-generation-with-past`), run on ONNX Runtime.

Self-contained on purpose (numpy and onnxruntime only): the studio measures LLM recipes with this
class, and an export copies this very file next to its `predict.py`, so what the deployer runs is what
was measured. Inputs are bound by name (`input_ids`, `attention_mask` and `position_ids` where the graph
has them, `past_key_values.N.key/value`); each step's `present.N.*` outputs are fed back as OrtValues,
so the cache never round-trips through numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PAST = "past_key_values."
PRESENT = "present."
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(bfloat16)": np.float32}


class OrtCausalLM:
    """Full-sequence logits, prefill and single decode steps over one InferenceSession."""

    def __init__(self, session: Any) -> None:
        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        if "input_ids" not in inputs or "logits" not in outputs:
            raise ValueError(
                f"not a causal LM graph: it needs an input_ids input and a logits output "
                f"(inputs: {', '.join(inputs)}; outputs: {', '.join(outputs)})"
            )
        self.past_names = [name for name in inputs if name.startswith(PAST)]
        self.present_names = [PRESENT + name[len(PAST) :] for name in self.past_names]
        missing = [name for name in self.present_names if name not in outputs]
        if missing:
            raise ValueError(f"the graph has past inputs without matching outputs: {', '.join(missing[:3])}")
        self.cache_shapes = {}
        for name in self.past_names:
            shape = inputs[name].shape  # [batch, heads, past_sequence, head_dim], batch and past symbolic
            if len(shape) != 4 or not isinstance(shape[1], int) or not isinstance(shape[3], int):
                raise ValueError(f"{name} has shape {shape}; expected [batch, heads, past, head_dim]")
            self.cache_shapes[name] = (shape[1], shape[3], DTYPES.get(inputs[name].type, np.float32))
        self.has_mask = "attention_mask" in inputs
        self.has_positions = "position_ids" in inputs
        self.output_names = ["logits", *self.present_names]

    def _feeds(self, input_ids: np.ndarray, past: int) -> dict[str, np.ndarray]:
        batch, length = input_ids.shape
        feeds = {"input_ids": input_ids.astype(np.int64)}
        if self.has_mask:
            feeds["attention_mask"] = np.ones((batch, past + length), dtype=np.int64)
        if self.has_positions:
            feeds["position_ids"] = np.tile(np.arange(past, past + length, dtype=np.int64), (batch, 1))
        return feeds

    def _empty_cache(self, batch: int) -> dict[str, np.ndarray]:
        return {
            name: np.zeros((batch, heads, 0, dim), dtype=dtype)
            for name, (heads, dim, dtype) in self.cache_shapes.items()
        }

    def logits(self, input_ids: np.ndarray) -> np.ndarray:
        """[batch, tokens] -> [batch, tokens, vocab] float32, from an empty cache."""
        feeds = {**self._feeds(input_ids, 0), **self._empty_cache(input_ids.shape[0])}
        result: np.ndarray = self.session.run(["logits"], feeds)[0].astype(np.float32, copy=False)
        return result

    def _continue(
        self, input_ids: np.ndarray, cache: tuple[dict[str, Any], int] | None
    ) -> tuple[np.ndarray, Any]:
        import onnxruntime as ort

        past, length = cache if cache is not None else ({}, 0)
        feeds = {
            name: ort.OrtValue.ortvalue_from_numpy(value)
            for name, value in self._feeds(input_ids, length).items()
        }
        if cache is None:
            feeds.update({n: ort.OrtValue.ortvalue_from_numpy(v) for n, v in self._empty_cache(1).items()})
        else:
            feeds.update(past)
        outputs = self.session.run_with_ort_values(self.output_names, feeds)
        presents = {
            PAST + name[len(PRESENT) :]: value
            for name, value in zip(self.present_names, outputs[1:], strict=True)
        }
        logits = outputs[0].numpy()[0, -1].astype(np.float32)
        return logits, (presents, length + input_ids.shape[1])

    def start(self, input_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        """Prefill [1, tokens]: the last position's logits and the cache."""
        return self._continue(input_ids, None)

    def step(self, token: int, cache: Any) -> tuple[np.ndarray, Any]:
        return self._continue(np.asarray([[token]], dtype=np.int64), cache)
