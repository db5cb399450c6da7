"""Run this exported model: `python predict.py "first text" "second text"`; a text-pair model (NLI,
cross-encoder) takes each input's second text with `--pair`: `python predict.py "premise" --pair
"hypothesis"`.

Copied into every export folder as `predict.py`. It needs numpy, the `tokenizers` library and the
model's runtime (named in deploy.json and README.md), nothing of Quantization Studio: this file is the
inference code the studio verified, so a deployer can start from it. It must stay standalone.

`--check SAMPLE --report OUT` runs the texts of SAMPLE one at a time and writes what came out, with
the third-party packages this process imported; `qstudio verify` compares that with the studio's own
measurements.
"""

from __future__ import annotations

import sys

_LOADED_BEFORE = set(sys.modules)

import argparse  # noqa: E402 - imports after taking stock of what was loaded before
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], np.ndarray]


class TextEncoder:
    """The tokenizer as the studio used it: truncation to max_length, padding to the longest text."""

    def __init__(self, folder: Path, contract: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / contract["tokenizer"] / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=contract["max_length"])
        self.tokenizer.enable_padding(pad_id=contract["pad_id"], pad_token=contract["pad_token"])
        self.names = [spec["name"] for spec in contract["inputs"]]

    def __call__(self, texts: list[str], pairs: list[str] | None = None) -> Feeds:
        """Each text with its pair, when given, encoded together (separator and token types as trained)."""
        encodings = self.tokenizer.encode_batch(list(zip(texts, pairs, strict=True)) if pairs else texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise SystemExit(f"the model needs inputs the tokenizer does not give: {', '.join(missing)}")
        return {name: np.asarray(columns[name], dtype=np.int64) for name in self.names}


def load_onnxruntime(folder: Path, contract: dict[str, Any]) -> tuple[Runner, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if contract["threads"]:
        options.intra_op_num_threads = contract["threads"]
    providers = contract["providers"] or ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(folder / contract["artifact"]), options, providers=providers)
    if providers[0] not in session.get_providers():  # ONNX Runtime falls back to the CPU silently
        raise SystemExit(
            f"{providers[0]} is not available in this onnxruntime ({ort.__version__}); "
            "install the build with that execution provider (e.g. onnxruntime-gpu)"
        )
    names = [i.name for i in session.get_inputs()]
    output = contract["output"]

    def run(feeds: Feeds) -> np.ndarray:
        result: np.ndarray = session.run([output], {name: feeds[name] for name in names})[0]
        return result

    return run, f"onnxruntime {ort.__version__}"


def load_torch(folder: Path, contract: dict[str, Any]) -> tuple[Runner, str]:
    import torch

    if contract["threads"]:
        torch.set_num_threads(contract["threads"])
    module = torch.export.load(str(folder / contract["artifact"])).module()
    device = contract["device"]

    def run(feeds: Feeds) -> np.ndarray:
        tensors = {name: torch.from_numpy(array).to(device) for name, array in feeds.items()}
        with torch.inference_mode():
            output = module(**tensors)
        result: np.ndarray = output.float().cpu().numpy()
        return result

    return run, f"torch {torch.__version__}"


def load_tensorrt(folder: Path, contract: dict[str, Any]) -> tuple[Runner, str]:
    """Deserialize the engine; device buffers are torch CUDA tensors, bound by name."""
    import tensorrt as trt
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine((folder / contract["artifact"]).read_bytes())
    if engine is None:
        raise SystemExit(
            "TensorRT could not load the engine: engines only run on the GPU model and TensorRT version "
            f"they were built with; rebuild it from {contract['onnx_source']}"
        )
    context = engine.create_execution_context()
    output = contract["output"]

    def run(feeds: Feeds) -> np.ndarray:
        tensors = {name: torch.from_numpy(array).to("cuda") for name, array in feeds.items()}
        for name, tensor in tensors.items():
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        shape = tuple(context.get_tensor_shape(output))
        dtype = torch.float16 if engine.get_tensor_dtype(output) == trt.DataType.HALF else torch.float32
        result = torch.empty(shape, dtype=dtype, device="cuda")
        context.set_tensor_address(output, result.data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        array: np.ndarray = result.float().cpu().numpy()
        return array

    return run, f"tensorrt {trt.__version__}"


LOADERS = {"onnxruntime": load_onnxruntime, "torch": load_torch, "tensorrt": load_tensorrt}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings as the studio compares encoders: masked mean, then L2-normalised."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    result: np.ndarray = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return result


class Model:
    def __init__(self, folder: Path = HERE) -> None:
        self.contract = json.loads((folder / "deploy.json").read_text(encoding="utf-8"))
        self.encode = TextEncoder(folder, self.contract)
        labels = self.contract["labels"]
        self.labels: list[str] = json.loads((folder / labels).read_text(encoding="utf-8")) if labels else []
        self.run, self.runtime = LOADERS[self.contract["runtime"]](folder, self.contract)

    def outputs(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Class probabilities for a classifier; pooled, normalised embeddings for an encoder."""
        feeds = self.encode(texts, pairs)
        raw = np.asarray(self.run(feeds), dtype=np.float32)
        if self.contract["task"] == "text-classification":
            return softmax(raw.astype(np.float64))
        return mean_pooled(raw, feeds["attention_mask"])

    def top_k(
        self, texts: list[str], k: int = 5, pairs: list[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        return [self.ranked(row, k) for row in self.outputs(texts, pairs)]

    def ranked(self, probabilities: np.ndarray, k: int) -> list[tuple[str, float]]:
        return [(self.labels[j], float(probabilities[j])) for j in np.argsort(-probabilities)[:k]]


def third_party_imports() -> list[str]:
    """Top-level packages this process imported after start-up, standard library left out."""
    new = {name.split(".")[0] for name in set(sys.modules) - _LOADED_BEFORE}
    return sorted(name for name in new if name not in sys.stdlib_module_names and not name.startswith("_"))


def check(sample_file: Path, report_file: Path, folder: Path) -> None:
    sample = json.loads(sample_file.read_text(encoding="utf-8"))
    started = time.perf_counter()
    model = Model(folder)
    load_seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "runtime": model.runtime,
        "load_seconds": round(load_seconds, 3),
    }
    # The studio evaluated in batches padded to their longest text; some runtimes' results depend on
    # the batch (dynamic INT8 scales activations per batch), so the sample is re-run in those batches,
    # and also one text at a time, as a server without batching would call it.
    texts: list[str] = sample["texts"]
    pairs: list[str] | None = sample.get("pairs")
    chunks = sample.get("batches") or [[text] for text in texts]
    chunk_pairs = sample.get("batch_pairs") or ([[pair] for pair in pairs] if pairs else [None] * len(chunks))
    batches = [
        model.outputs(batch, batch_pairs) for batch, batch_pairs in zip(chunks, chunk_pairs, strict=True)
    ]
    positions = sample.get("positions") or [[i, 0] for i in range(len(texts))]
    as_measured = [batches[b][row] for b, row in positions]
    one_by_one = [model.outputs([text], [pairs[i]] if pairs else None)[0] for i, text in enumerate(texts)]
    if model.contract["task"] == "text-classification":
        k = max(1, int(sample.get("k", 5)))
        report["topk"] = [model.ranked(row, k) for row in as_measured]
        report["topk_single"] = [model.ranked(row, k) for row in one_by_one]
    else:
        report["embeddings"] = [row.tolist() for row in as_measured]
        report["embeddings_single"] = [row.tolist() for row in one_by_one]
    report["imported"] = third_party_imports()
    report_file.write_text(json.dumps(report), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="Predict with the exported model.")
    parser.add_argument("texts", nargs="*", help="texts to classify or embed")
    parser.add_argument(
        "--pair",
        action="append",
        metavar="TEXT",
        help="the second text of each input, in order (text-pair models: hypothesis, passage)",
    )
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--check", type=Path, metavar="SAMPLE", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check:
        check(args.check, args.report, HERE)
        return
    if not args.texts:
        parser.error("give at least one text")
    pairs: list[str] | None = args.pair
    if pairs is not None and len(pairs) != len(args.texts):
        parser.error(f"{len(args.texts)} texts and {len(pairs)} --pair texts: give one --pair per text")
    model = Model()
    if model.contract.get("pairs") and pairs is None:
        parser.error("this model reads text pairs: give each text's second text with --pair")
    shown = [{"text": t} | ({"pair": pairs[i]} if pairs else {}) for i, t in enumerate(args.texts)]
    if model.contract["task"] == "text-classification":
        for item, top in zip(shown, model.top_k(args.texts, args.top_k, pairs), strict=True):
            print(json.dumps(item | {"top": [[label, round(p, 4)] for label, p in top]}))
    else:
        for item, vector in zip(shown, model.outputs(args.texts, pairs), strict=True):
            print(json.dumps(item | {"embedding": [round(float(x), 6) for x in vector]}))


if __name__ == "__main__":
    main()
