"""Time one causal-LM recipe's artifact in a fresh process: prefill, time to first token, decode tokens/s.

    python benchmarks/time_lm_artifact.py RECIPE [--model demo-llm] [--tokens 128] [--prefill 256]

The artifact comes from the studio's cache (built there by the studio's run); the timing loop here is
independent of the studio's measurer: greedy decoding of `--tokens` tokens after the first prompt, and
`--prefill` tokens of the evaluation text. Prints one JSON object with the samples and the process's
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_rss() -> int:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux keeps that across
    fork and exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", help="a built-in recipe name or a .toml file")
    parser.add_argument("--model", default="demo-llm")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prefill", type=int, default=256)
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()

    import numpy as np

    from studio.backends.base import BuildContext
    from studio.backends.registry import get_spec
    from studio.backends.torch_runtime import quiet_torch_imports
    from studio.core.cache import ArtifactCache
    from studio.core.dataset import load_prompts, read_passages
    from studio.core.model import open_model
    from studio.core.paths import cache_dir, resources_dir
    from studio.core.recipe import resolve_recipe

    quiet_torch_imports()
    model = open_model(args.model)
    recipe = resolve_recipe(args.recipe)
    ctx = BuildContext(model, recipe, ArtifactCache(cache_dir() / "artifacts"), recipe.precision)
    backend = get_spec(recipe.backend).load()
    started = time.perf_counter()
    lm: Any = backend.load(ctx, backend.prepare(ctx))  # a causal LM predictor: start() and step()
    load_s = time.perf_counter() - started
    tokenizer = model.tokenizer
    prompt = tokenizer(load_prompts(resources_dir() / "demo" / "llm_prompts.txt")[0])["input_ids"]
    text = " ".join(read_passages(resources_dir() / "demo" / "llm_eval.txt")[:20])
    window = np.asarray([tokenizer(text)["input_ids"][: args.prefill]], dtype=np.int64)

    def decode() -> tuple[float, float]:
        begin = time.perf_counter()
        logits, cache = lm.start(np.asarray([prompt], dtype=np.int64))
        token = int(np.argmax(logits))
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        for _ in range(args.tokens):
            logits, cache = lm.step(token, cache)
            token = int(np.argmax(logits))
        return first, args.tokens / (time.perf_counter() - begin)

    decode()  # warm-up
    prefill = []
    for _ in range(args.calls):
        begin = time.perf_counter()
        lm.start(window)
        prefill.append((time.perf_counter() - begin) * 1000)
    ttft, rate = decode()
    peak = peak_rss()
    print(
        json.dumps(
            {
                "prefill_ms": prefill,
                "ttft_ms": ttft * 1000,
                "tokens_per_s": rate,
                "peak_rss": peak,
                "load_s": load_s,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
