"""Tiny sequence classifiers of every encoder family users bring, built from configs, trained for seconds.

Each family keeps what makes it itself (DeBERTa-v2's relative-position buckets, ALBERT's factorised
embeddings and shared layers, MPNet's relative attention bias, ModernBERT's rotary and local attention,
RoBERTa's offset positions and no token types) at hidden size 32, so export, fusion and quantization
meet the family's real graph in a few seconds. All share the tiny intent vocabulary (a WordPiece
tokenizer): the graph, not the tokenizer, is what differs between families for quantization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.tiny import LABELS, _vocab, tiny_texts, train_classifier, wordpiece_tokenizer

COMMON: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "pad_token_id": 0,
}


def _configs(vocab_size: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """family -> (transformers config class, its arguments)."""
    base = {**COMMON, "vocab_size": vocab_size, "max_position_embeddings": 130}
    return {
        "bert": ("BertConfig", base),
        "distilbert": (
            "DistilBertConfig",
            {"vocab_size": vocab_size, "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64,
             "max_position_embeddings": 130, "pad_token_id": 0},
        ),
        "roberta": ("RobertaConfig", {**base, "type_vocab_size": 1}),
        "deberta-v2": (
            "DebertaV2Config",
            {**base, "type_vocab_size": 0, "relative_attention": True, "position_buckets": 16,
             "max_relative_positions": -1, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False},
        ),
        "electra": ("ElectraConfig", {**base, "embedding_size": 32}),
        "albert": ("AlbertConfig", {**base, "embedding_size": 16}),
        "mpnet": ("MPNetConfig", base),  # its bucket function assumes the default 32 buckets
        "xlm-roberta": ("XLMRobertaConfig", {**base, "type_vocab_size": 1}),
        "ernie": ("ErnieConfig", base),  # optimum-onnx has no exporter for it: torch.onnx exports it
        "modernbert": (
            "ModernBertConfig",
            {**COMMON, "vocab_size": vocab_size, "max_position_embeddings": 128, "global_attn_every_n_layers": 2,
             "local_attention": 16, "bos_token_id": 2, "eos_token_id": 3, "sep_token_id": 3, "cls_token_id": 2},
        ),
    }


def available_families() -> list[str]:
    """The families this transformers version has (ModernBERT arrived in 4.48)."""
    import transformers

    vocab = len(_vocab())
    return [family for family, (config, _) in _configs(vocab).items() if hasattr(transformers, config)]


def build_family(family: str, folder: Path, train_steps: int = 60) -> Path:
    """Save a tiny `family` classifier over the intent labels, with the shared tokenizer, into `folder`."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    tokenizer = wordpiece_tokenizer(folder, _vocab())
    if family in ("roberta", "xlm-roberta", "distilbert", "mpnet", "modernbert", "deberta-v2"):
        tokenizer.model_input_names = ["input_ids", "attention_mask"]  # families without token types
    tokenizer.save_pretrained(folder)
    config_class, arguments = _configs(len(_vocab()))[family]
    config = getattr(transformers, config_class)(
        **arguments,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    rows = tiny_texts(96, seed=1)
    batch = tokenizer([t for t, _ in rows], padding=True, return_tensors="pt")
    train_classifier(model, batch, torch.tensor([LABELS.index(label) for _, label in rows]), train_steps)
    model.save_pretrained(folder)
    return folder
