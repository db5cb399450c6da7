"""Tiny BERT models built from a config, trained for a few seconds, for the fast test path.

They are real transformers models (export, fusion and quantization all run on them), small enough
that a whole comparison takes seconds. A short training makes their decisions clear-cut, so that
quantization noise does not flip them and agreement checks mean something.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

LABELS = ["greeting", "weather", "music"]
TEMPLATES = {
    "greeting": ["hello there {x}", "hi {x} good morning", "hey {x} how are you", "good evening {x}"],
    "weather": [
        "will it rain in {x} today",
        "what is the weather in {x}",
        "is it sunny in {x}",
        "forecast for {x} tomorrow",
    ],
    "music": [
        "play some {x} music",
        "put on a {x} song",
        "start my {x} playlist",
        "i want to hear {x} tunes",
    ],
}
FILLERS = ["paris", "friend", "jazz", "london", "rock", "team", "berlin", "pop", "madrid", "folk"]


def tiny_texts(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = LABELS[i % len(LABELS)]
        rows.append((rng.choice(TEMPLATES[label]).format(x=rng.choice(FILLERS)), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _vocab() -> list[str]:
    words = sorted(
        {w for templates in TEMPLATES.values() for t in templates for w in t.split() if w != "{x}"}
        | set(FILLERS)
    )
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *letters, *("##" + c for c in letters)]
    return list(dict.fromkeys(tokens))


def wordpiece_tokenizer(folder: Path, vocab: list[str]) -> Any:
    """A lower-casing WordPiece tokenizer over `vocab`, its vocab.txt written into `folder`."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)


def train_classifier(model: Any, batch: Any, target: Any, steps: int) -> None:
    """A few seconds of full-batch AdamW, so the tiny model's decisions are clear-cut; leaves it in eval mode."""
    import torch

    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, target)
        loss.backward()
        optimiser.step()
    model.eval()


def tiny_bert_config(vocab_size: int, labels: list[str]) -> Any:
    """BERT at 2 layers, hidden 32, 2 heads: real graphs (export, fusion, quantization) in seconds."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )


def build_tiny(folder: Path, classifier: bool = True, train_steps: int = 60) -> Path:
    """Save a tiny BERT (2 layers, hidden 32) with its tokenizer into `folder`."""
    import torch
    from transformers import BertForSequenceClassification, BertModel

    tokenizer = wordpiece_tokenizer(folder, _vocab())
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = tiny_bert_config(len(_vocab()), LABELS)
    if not classifier:
        BertModel(config).eval().save_pretrained(folder)
        return folder
    model = BertForSequenceClassification(config)
    rows = tiny_texts(96, seed=1)
    batch = tokenizer([t for t, _ in rows], padding=True, return_tensors="pt")
    train_classifier(model, batch, torch.tensor([LABELS.index(label) for _, label in rows]), train_steps)
    model.save_pretrained(folder)
    return folder
