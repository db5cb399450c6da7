"""Model kinds: one module each behind `base.ModelKind` / `base.Measurer`; `kind_of` picks one by task."""

from __future__ import annotations

from studio.core.kinds.base import Column, Evaluation, Measurer, ModelKind
from studio.core.kinds.causal_lm import CausalLMKind
from studio.core.kinds.text import ClassifierKind, EncoderKind

KINDS: dict[str, ModelKind] = {kind.task: kind for kind in (ClassifierKind(), EncoderKind(), CausalLMKind())}


def kind_of(task: str) -> ModelKind:
    """The kind of a model whose card says `task`."""
    return KINDS[task]


__all__ = ["KINDS", "Column", "Evaluation", "Measurer", "ModelKind", "kind_of"]
