"""A tiny NLI model (premise/hypothesis, 3 labels) built from a config and trained for seconds.

Its label depends on both texts: a hypothesis about something else is neutral; one that restates the
premise's thing and colour is entailed, unless the premise says "not" (contradiction). A run that fed
the premise alone cannot tell neutral from the rest, so accuracy proves the pair reached the model.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from tests.fakes.tiny import tiny_bert_config, train_classifier, wordpiece_tokenizer

LABELS = ["entailment", "neutral", "contradiction"]
COLOURS = ["red", "blue", "green"]
THINGS = ["car", "house", "door", "kite", "boat", "shirt"]
PLACES = ["near the river", "in the city", "by the sea", "at home"]
OTHER = ["someone is singing", "it is raining today", "the shop is closed", "a bird flies away"]


def nli_rows(count: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(premise, hypothesis, label) rows, the labels in turn."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = LABELS[i % len(LABELS)]
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        negated = label == "contradiction" or (label == "neutral" and rng.random() < 0.5)
        premise = f"the {thing} {rng.choice(PLACES)} is {'not ' if negated else ''}{colour}"
        hypothesis = rng.choice(OTHER) if label == "neutral" else f"the {thing} is {colour}"
        rows.append((premise, hypothesis, label))
    return rows


def write_pairs_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["premise", "hypothesis", "label"])
        writer.writerows(rows)
    return path


def _vocab() -> list[str]:
    words = {"the", "is", "not", *COLOURS, *THINGS}
    words |= {w for phrase in PLACES + OTHER for w in phrase.split()}
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *letters, *("##" + c for c in letters)]
    return list(dict.fromkeys(tokens))


def build_tiny_nli(folder: Path, train_steps: int = 80) -> Path:
    """Save a tiny BERT pair classifier (2 layers, hidden 32, token types) with its tokenizer."""
    import torch
    from transformers import BertForSequenceClassification

    tokenizer = wordpiece_tokenizer(folder, _vocab())
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = tiny_bert_config(len(_vocab()), LABELS)
    model = BertForSequenceClassification(config)
    rows = nli_rows(192, seed=1)
    batch = tokenizer([p for p, _, _ in rows], [h for _, h, _ in rows], padding=True, return_tensors="pt")
    train_classifier(model, batch, torch.tensor([LABELS.index(label) for _, _, label in rows]), train_steps)
    model.save_pretrained(folder)
    return folder
