"""Tokenizing texts into the named integer inputs every backend takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

Feeds = dict[str, np.ndarray]


def encode(
    tokenizer: Any,
    texts: Sequence[str],
    input_names: Sequence[str],
    max_length: int,
    pad_to_max: bool = False,
) -> Feeds:
    """int64 arrays for exactly the model's inputs; padding to `max_length` when timing fixed shapes."""
    encoded = tokenizer(
        list(texts),
        padding="max_length" if pad_to_max else True,
        truncation=True,
        max_length=max_length,
        return_tensors="np",
    )
    feeds = {}
    for name in input_names:
        if name in encoded:
            feeds[name] = encoded[name].astype(np.int64)
        elif name == "token_type_ids":
            feeds[name] = np.zeros_like(encoded["input_ids"], dtype=np.int64)
        else:
            raise KeyError(f"the tokenizer gives no '{name}' input")
    return feeds


def length_buckets(
    tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int
) -> Iterator[list[int]]:
    """Indices of texts in batches of similar length, so evaluation pads little and runs fast."""
    lengths = [
        len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    ]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
