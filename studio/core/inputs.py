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
    pairs: Sequence[str] | None = None,
) -> Feeds:
    """int64 arrays for exactly the model's inputs; padding to `max_length` when timing fixed shapes.

    With `pairs`, each text and its pair are encoded together as the family was trained (its separator
    and, where it has them, token type ids); truncation takes from the longer of the two first.
    """
    encoded = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
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


def pick(values: Sequence[str] | None, indices: Sequence[int]) -> list[str] | None:
    """The pairs (or any optional column) of a batch's texts; None stays None."""
    return None if values is None else [values[i] for i in indices]


def length_buckets(
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    pairs: Sequence[str] | None = None,
) -> Iterator[list[int]]:
    """Indices of texts in batches of similar length, so evaluation pads little and runs fast."""
    encoded = tokenizer(
        list(texts), list(pairs) if pairs is not None else None, truncation=True, max_length=max_length
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
