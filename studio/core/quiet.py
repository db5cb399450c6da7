"""Quieting libraries that log what is noise for the studio's users."""

from __future__ import annotations

import logging


def quiet_torch_imports() -> None:
    """torchao logs every optional CUDA kernel it cannot load on a CPU machine; that is noise here."""
    for name in ("torchao", "torch._dynamo", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
