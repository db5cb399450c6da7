"""Tiny causal language models (Llama-style and GPT-2-style) built from configs, trained for a second.

A byte-level BPE tokenizer is trained on a templated corpus, and the model learns it well enough that
its next-token choices are clear-cut: quantization noise then does not flip them, so same-top-1 and KLD
checks mean something, while a broken backend still shows.
"""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the teacher", "our team"]
VERBS = ["sat on", "ran to", "looked at", "walked past", "jumped over"]
OBJECTS = ["the mat", "the park", "the river", "the house", "the tree"]


def tiny_sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        subject, verb, obj = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)
        out.append(f"{subject} {verb} {obj} and then {subject} went home.")
    return out


def write_passages(path: Path, count: int = 24, seed: int = 3) -> Path:
    """A .txt evaluation file: passages of three sentences, separated by blank lines."""
    sentences = tiny_sentences(count * 3, seed)
    passages = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
    path.write_text("\n\n".join(passages) + "\n")
    return path


def write_prompts(path: Path) -> Path:
    path.write_text("the cat sat on\nmy friend ran to the\nour team looked at the house and then\n")
    return path


def build_tiny_lm(folder: Path, family: str = "llama", train_steps: int = 80) -> Path:
    """Save a tiny causal LM (2 layers, hidden 64 for Llama, 32 for GPT-2) and its tokenizer into `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    folder.mkdir(parents=True, exist_ok=True)
    texts = tiny_sentences(400)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    if family == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,  # head size 16: onnxruntime's GroupQueryAttention needs a multiple of 16
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=0,
            eos_token_id=0,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
    else:
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=512,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = GPT2LMHeadModel(config)
    ids = [torch.tensor(x) for x in tokenizer(texts[:200])["input_ids"]]
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(train_steps):
        batch = torch.nn.utils.rnn.pad_sequence(random.Random(step).sample(ids, 32), batch_first=True)
        loss = model(input_ids=batch, labels=batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
