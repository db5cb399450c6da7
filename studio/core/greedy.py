"""Greedy decoding over any causal LM with a KV cache (`start` = prefill, `step` = one token).

Self-contained on purpose (numpy only): the studio measures continuations with it, and an export copies
this file next to its `predict.py`, so a deployer generates exactly as the studio measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def greedy(lm: Any, ids: list[int], new_tokens: int, stop: set[int]) -> tuple[np.ndarray, list[int]]:
    """The next-token logits after `ids` and up to `new_tokens` greedy tokens (stopping after one in `stop`)."""
    logits, cache = lm.start(np.asarray([ids], dtype=np.int64))
    first = logits
    out: list[int] = []
    for position in range(new_tokens):
        token = int(np.argmax(logits))
        out.append(token)
        if token in stop or position == new_tokens - 1:
            break
        logits, cache = lm.step(token, cache)
    return first, out
