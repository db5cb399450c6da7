"""Generate text with this exported language model: `python predict.py "The capital of France is"`.

Copied into the export folder of a causal LM as `predict.py`, next to `ort_lm.py` (the KV-cache runner)
and `greedy.py` (the decoding loop): the files the studio measured with. It needs numpy, the `tokenizers` library and onnxruntime, nothing of
Quantization Studio or transformers. Decoding is greedy, as the studio measured it.

`--check SAMPLE --report OUT` runs the sample prompts and writes each one's next-token top-k and greedy
continuation, with the third-party packages this process imported; `qstudio verify` compares them with
the studio's own.
"""

from __future__ import annotations

import sys

_LOADED_BEFORE = set(sys.modules)
# No byte-code caches in the folder: a module edited within the same second and to the same size would
# otherwise run from its stale cache, and the folder's files are what this script must run.
sys.dont_write_bytecode = True

import argparse  # noqa: E402 - imports after taking stock of what was loaded before
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def _local(name: str) -> Any:
    """A module file of this folder (run with `python -I`, the script's folder is not on sys.path)."""
    path = HERE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise SystemExit(f"{name}.py is missing from {HERE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def show_token(text: str) -> str:
    """A token as the studio's tables show it: spaces, newlines and tabs made visible."""
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


class LanguageModel:
    def __init__(self, folder: Path = HERE) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.contract = json.loads((folder / "deploy.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(folder / self.contract["tokenizer"] / "tokenizer.json"))
        options = ort.SessionOptions()
        if self.contract["threads"]:
            options.intra_op_num_threads = self.contract["threads"]
        providers = self.contract["providers"] or ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(folder / self.contract["artifact"]), options, providers=providers)
        if providers[0] not in session.get_providers():
            raise SystemExit(f"{providers[0]} is not available in this onnxruntime ({ort.__version__})")
        self.model = _local("ort_lm").OrtCausalLM(session)
        self.greedy = _local("greedy").greedy
        self.runtime = f"onnxruntime {ort.__version__}"
        stop = self.contract.get("stop_token_ids") or []
        self.stop = {int(t) for t in stop}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer.encode(text).ids
        return ids

    def generate(self, ids: list[int], new_tokens: int) -> tuple[np.ndarray, list[int]]:
        first, tokens = self.greedy(self.model, ids, new_tokens, self.stop)
        return first, tokens

    def top_k(self, logits: np.ndarray, k: int) -> list[tuple[str, float]]:
        shifted = logits.astype(np.float64) - logits.max()
        probabilities = np.exp(shifted) / np.exp(shifted).sum()
        order = np.argsort(-probabilities)[:k]
        return [(self.display(int(j)), float(probabilities[j])) for j in order]

    def display(self, token: int) -> str:
        text = self.tokenizer.decode([token], skip_special_tokens=False)
        if "\ufffd" in text:
            text = self.tokenizer.id_to_token(token) or text
        return show_token(text)

    def text(self, tokens: list[int]) -> str:
        decoded: str = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return decoded


def third_party_imports() -> list[str]:
    new = {name.split(".")[0] for name in set(sys.modules) - _LOADED_BEFORE}
    return sorted(name for name in new if name not in sys.stdlib_module_names and not name.startswith("_"))


def check(sample_file: Path, report_file: Path, folder: Path) -> None:
    sample = json.loads(sample_file.read_text(encoding="utf-8"))
    started = time.perf_counter()
    model = LanguageModel(folder)
    report: dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "runtime": model.runtime,
        "load_seconds": round(time.perf_counter() - started, 3),
        "topk": [],
        "continuations": [],
        "token_ids_match": [],
    }
    k = int(sample.get("k", 5))
    for prompt, ids in zip(sample["texts"], sample["prompt_ids"], strict=True):
        own = model.encode(prompt)
        report["token_ids_match"].append(own == ids)
        first, tokens = model.generate(ids, int(sample["new_tokens"]))
        report["topk"].append(model.top_k(first, k))
        report["continuations"].append(tokens)
    report["imported"] = third_party_imports()
    report_file.write_text(json.dumps(report), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate text with the exported language model (greedy).")
    parser.add_argument("prompts", nargs="*", help="prompts to continue")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=5, help="also print the next-token top-k")
    parser.add_argument("--check", type=Path, metavar="SAMPLE", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check:
        check(args.check, args.report, HERE)
        return
    if not args.prompts:
        parser.error("give at least one prompt")
    model = LanguageModel()
    for prompt in args.prompts:
        first, tokens = model.generate(model.encode(prompt), args.max_new_tokens)
        top = [[token, round(p, 4)] for token, p in model.top_k(first, args.top_k)]
        print(
            json.dumps(
                {"prompt": prompt, "next": top, "continuation": model.text(tokens)}, ensure_ascii=False
            )
        )


if __name__ == "__main__":
    main()
