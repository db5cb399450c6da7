"""Time one artifact in a fresh process, so no other runtime's threads or caches get in the way.

    python benchmarks/time_artifact.py onnx PATH --calls 40
    python benchmarks/time_artifact.py torch-fp32|torch-int8-dynamic demo --calls 40
    python benchmarks/time_artifact.py onnx PATH --serve    (benchmarks/paired_timing.py drives it)

Prints one JSON object: {"ms": [per-call milliseconds]}. With --serve it stays loaded and answers each
line "CALLS WARMUP" on stdin with such an object (a block of calls), until stdin closes. The feeds are the demo's first evaluation
utterance padded to 128 tokens, batch 1; sessions use ONNX Runtime's default options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("onnx", "torch-fp32", "torch-int8-dynamic"))
    parser.add_argument("path")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help="answer blocks of calls asked on stdin")
    args = parser.parse_args()

    from studio.backends.torch_runtime import quiet_torch_imports
    from studio.core import demo
    from studio.core.dataset import load_texts
    from studio.core.inputs import encode
    from studio.core.model import open_model

    quiet_torch_imports()
    model = open_model("demo")
    text = load_texts(demo.eval_file()).texts[0]
    feeds = encode(model.tokenizer, [text], model.info.input_names, 128, pad_to_max=True)
    if args.kind == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(args.path, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run() -> object:
            return session.run(["logits"], {n: feeds[n] for n in names})
    else:
        import torch

        from studio.backends.base import BuildContext
        from studio.backends.registry import get_spec
        from studio.core.cache import ArtifactCache
        from studio.core.paths import cache_dir
        from studio.core.recipe import resolve_recipe

        recipe = resolve_recipe(args.kind)
        ctx = BuildContext(model, recipe, ArtifactCache(cache_dir() / "artifacts"), recipe.precision)
        backend = get_spec(recipe.backend).load()
        module = backend.load(ctx, backend.prepare(ctx)).module  # type: ignore[attr-defined]
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

        def run() -> object:
            with torch.inference_mode():
                return module(**tensors).logits

    def block(calls: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            run()
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            run()
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    if not args.serve:
        print(json.dumps({"ms": block(args.calls, args.warmup)}))
        return 0
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        calls, warmup = (int(x) for x in line.split())
        print(json.dumps({"ms": block(calls, warmup)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
