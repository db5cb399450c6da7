"""Models the studio can quantize: the packaged demos, a local Hugging Face folder, an ONNX or a GGUF file.

`open_model` checks the input and reads the model card (architecture, parameters, labels, size) without
loading weights; the torch module and the FP32 ONNX export are built only when a backend asks for them.
A GGUF file is dequantized once into an FP32 Hugging Face folder in the artifact cache (its weights are
the FP32 reference), so every worker of a run loads that folder instead of dequantizing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from studio.core import demo
from studio.core.errors import StudioError
from studio.core.types import Task

log = logging.getLogger(__name__)

Source = Literal["demo", "demo-llm", "huggingface", "onnx", "gguf"]
DEMOS = ("demo", "demo-llm")
ONNX_OPSET = 17
LM_ONNX_OPSET = 18  # optimum's minimum for decoder models with past key values
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


class ModelInfo(BaseModel):
    """The model card shown in the GUI and stored with every run."""

    name: str
    source: Source
    path: str
    architecture: str
    model_type: str
    task: Task
    parameters: int
    labels: list[str]
    size_bytes: int
    content_hash: str
    input_names: list[str]
    output_name: str
    # The card of a causal language model (None for other kinds, or where the file does not say).
    layers: int | None = None
    hidden_size: int | None = None
    context_length: int | None = None
    vocab_size: int | None = None
    dtype: str | None = None  # on disk: float32, bfloat16, or the GGUF quantization (e.g. Q4_1)
    chat_template: bool | None = None
    notes: list[str] = []

    @property
    def ref(self) -> str:
        """What `open_model` takes to open this model again: "demo", "demo-llm" or its path."""
        return self.source if self.source in DEMOS else self.path


def quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers.utils import import_utils
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    # transformers imports scikit-learn (installed for the demo's head) on first use of its tokenizers and
    # models, only for assisted generation, which the studio never uses: 1.5 s of every worker's start.
    if hasattr(import_utils, "_sklearn_available"):
        import_utils._sklearn_available = False


DIGESTS_FILE = "file-digests.json"


def _file_digest(path: Path, known: dict[str, str]) -> str:
    """sha256 of a file, remembered by path, size, mtime and inode: every worker of a run opens the model
    again, and re-reading gigabytes of weights per recipe would cost more than the recipe."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    if key not in known:
        with path.open("rb") as handle:
            known[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return known[key]


def hash_files(paths: Iterable[Path]) -> str:
    """A content hash of files (names and bytes), the model part of every cache key."""
    from studio.core.paths import cache_dir

    store = cache_dir() / DIGESTS_FILE
    try:
        known: dict[str, str] = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    before = len(known)
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(_file_digest(path, known)))
    if len(known) != before:  # written atomically; a concurrent writer at worst costs a re-hash later
        tmp = store.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, store)
    return digest.hexdigest()


def _folder_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)]


def _count_safetensors(files: list[Path]) -> int:
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(file), framework="np") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                total += int(np.prod(handle.get_slice(key).get_shape()))
    return total


class Model:
    """An opened model: its card, tokenizer, and (lazily) a torch module and an FP32 ONNX file."""

    def __init__(self, info: ModelInfo, folder: Path) -> None:
        self.info = info
        self.folder = folder

    # -- what backends need ---------------------------------------------------------------------------
    @property
    def has_torch(self) -> bool:
        return self.info.source != "onnx"

    @property
    def is_causal_lm(self) -> bool:
        return self.info.task == "text-generation"

    @property
    def fp32_bytes(self) -> int:
        """What the FP32 weights take: the files on disk, or four bytes a parameter for a GGUF file."""
        if self.info.source in ("gguf", "demo-llm"):
            return self.info.parameters * 4
        return self.info.size_bytes

    @cached_property
    def weights_folder(self) -> Path:
        """The Hugging Face folder transformers loads: the model's own, or a GGUF file's dequantized copy."""
        if self.info.source in ("gguf", "demo-llm"):
            from studio.core.gguf import dequantized_folder

            return dequantized_folder(Path(self.info.path), self.info.content_hash)
        return self.folder

    @cached_property
    def tokenizer(self) -> Any:
        quiet_transformers()
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.weights_folder)
        except (OSError, ValueError) as error:
            raise StudioError(
                f"no usable tokenizer in {self.folder} ({str(error).splitlines()[0]})",
                "put the tokenizer files (tokenizer.json or vocab.txt, tokenizer_config.json) next to the model",
            ) from None

    def torch_module(self) -> Any:
        """A fresh FP32 torch module in eval mode whose forward takes the tokenizer's outputs."""
        quiet_transformers()
        if self.info.source == "onnx":
            raise StudioError(
                f"{self.info.name} is an ONNX file, and this recipe needs a PyTorch model",
                "open the Hugging Face folder it was exported from, or pick an ONNX Runtime recipe",
            )
        if self.info.source == "demo":
            return demo.build_demo_classifier()
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

        loader = {
            "text-classification": AutoModelForSequenceClassification,
            "text-generation": AutoModelForCausalLM,
        }.get(self.info.task, AutoModel)
        try:
            import torch

            model = loader.from_pretrained(self.weights_folder, dtype=torch.float32)
        except (OSError, ValueError) as error:
            raise StudioError(
                f"cannot load the weights of {self.folder} ({str(error).splitlines()[0]})",
                "check that the folder holds model.safetensors or pytorch_model.bin",
            ) from None
        return model.eval()

    def export_onnx(self, output: Path) -> None:
        """Export the FP32 model to `output` (named inputs and outputs): optimum's ONNX exporter, or
        torch.onnx for a family optimum does not know; `exporter.txt` beside it says which ran.

        A causal LM is exported with its past key values (`text-generation-with-past`), so one graph serves
        prefill and each decode step; config, generation config and tokenizer land next to it."""
        if self.info.source == "onnx":
            raise StudioError("the model is an ONNX file already", "use it as it is")
        if self.is_causal_lm:
            self._export_causal_lm(output)
            return
        from studio.core.onnx_export import export_encoder

        note = export_encoder(self, output, ONNX_OPSET)
        output.with_name("exporter.txt").write_text(note, encoding="utf-8")

    def _export_causal_lm(self, output: Path) -> None:
        from optimum.exporters.onnx import main_export

        try:
            main_export(
                str(self.weights_folder),
                output=str(output.parent),
                task="text-generation-with-past",
                opset=LM_ONNX_OPSET,
                library_name="transformers",
                device="cpu",
                do_validation=False,
            )
        except (KeyError, ValueError) as error:
            first = str(error).strip().splitlines()[0][:200]
            raise StudioError(
                f"optimum cannot export '{self.info.model_type}' language models to ONNX ({first})",
                "use the torch recipes for this model",
            ) from None
        if not output.is_file():
            raise StudioError(
                f"optimum's export wrote no {output.name}", "use the torch recipes for this model"
            )

    # -- turning raw outputs into predictions --------------------------------------------------------
    def postprocess(self, output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits as they are; for an encoder, mean-pooled and L2-normalised embeddings."""
        output = np.asarray(output, dtype=np.float32)
        if self.info.task == "text-classification":
            return output
        mask = attention_mask[..., None].astype(np.float32)
        pooled = (output * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norm: np.ndarray = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return norm

    def onnx_source(self) -> Path:
        """The ONNX file of an ONNX model."""
        return Path(self.info.path)


# -- opening ------------------------------------------------------------------------------------------
def open_model(ref: str | Path) -> Model:
    """Open `ref`: "demo", "demo-llm", a Hugging Face model folder, an .onnx or a .gguf file.

    Raises StudioError on bad input."""
    if str(ref) == "demo":
        return _open_demo()
    if str(ref) == "demo-llm":
        from studio.core import gguf

        return gguf.open_demo_llm()
    path = Path(ref).expanduser()
    if not path.exists():
        raise StudioError(
            f"model not found: {path}",
            "pass a local Hugging Face model folder, an .onnx or .gguf file, 'demo' or 'demo-llm'",
        )
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            from studio.core import gguf

            return gguf.open_gguf(path)
        if path.suffix.lower() != ".onnx":
            raise StudioError(
                f"{path.name} is neither an .onnx or .gguf file nor a folder",
                "pass a Hugging Face model folder, an .onnx or a .gguf file",
            )
        return _open_onnx(path)
    if not (path / "config.json").is_file():
        onnx_files = sorted(path.glob("*.onnx"))
        if onnx_files:
            return _open_onnx(onnx_files[0])
        gguf_files = sorted(path.glob("*.gguf"))
        if gguf_files:
            from studio.core import gguf

            return gguf.open_gguf(gguf_files[0])
        raise StudioError(
            f"{path} has no config.json, so it is not a Hugging Face model folder",
            "pick the folder that holds config.json and the weights, an .onnx or a .gguf file",
        )
    return _open_hf(path)


def _open_demo() -> Model:
    _, _, labels = demo.load_head()
    encoder = demo.encoder_dir()
    files = demo.demo_files()
    head_params = len(labels) * (384 + 1)
    info = ModelInfo(
        name="MiniLM-L6 intent classifier (demo)",
        source="demo",
        path=str(encoder),
        architecture="BertModel + mean pooling + L2 norm + logistic regression",
        model_type="bert",
        task="text-classification",
        parameters=_count_safetensors([encoder / "model.safetensors"]) + head_params,
        labels=labels,
        size_bytes=sum(f.stat().st_size for f in files if f.suffix in (".safetensors", ".joblib")),
        content_hash=hash_files(files),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_name="logits",
    )
    return Model(info, encoder)


NLI_LABELS = {"entailment", "contradiction", "not_entailment"}
PAIR_NOTE = (
    "its labels are an NLI model's: evaluate it on text pairs (--pair-column, or the second text in the "
    "window's data picker), or it sees half of every input"
)


def _open_hf(folder: Path) -> Model:
    quiet_transformers()
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        MODEL_MAPPING_NAMES,
    )

    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as error:
        first = str(error).splitlines()[0]
        raise StudioError(
            f"unsupported or unreadable model config in {folder} ({first[:200]})",
            "the studio loads transformers encoder models (BERT, RoBERTa, DistilBERT, ...) and ONNX files",
        ) from None
    model_type = getattr(config, "model_type", "")
    architectures = list(getattr(config, "architectures", None) or [])
    is_classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    if any(a.endswith(CAUSAL_SUFFIXES) for a in architectures):
        from studio.core.causal_lm_card import open_causal_lm_folder

        return open_causal_lm_folder(folder, config)
    if is_classifier and model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        task: Task = "text-classification"
        id2label = getattr(config, "id2label", {}) or {}
        labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]
    elif model_type in MODEL_MAPPING_NAMES and not any(
        a.endswith(("ForConditionalGeneration", "ForSeq2SeqLM")) for a in architectures
    ):
        task = "feature-extraction"
        labels = []
    else:
        raise StudioError(
            f"unsupported architecture {architectures or model_type!r} in {folder}",
            "the studio handles sequence-classification models, plain encoders (feature extraction) and "
            "causal language models (*ForCausalLM)",
        )
    files = _folder_files(folder)
    weights = [f for f in files if f.suffix in (".safetensors", ".bin")]
    if not weights:
        raise StudioError(
            f"{folder} has a config.json but no weights", "add model.safetensors or pytorch_model.bin"
        )
    safetensors = [f for f in weights if f.suffix == ".safetensors"]
    parameters = _count_safetensors(safetensors) if safetensors else 0
    input_names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0) and model_type not in ("roberta", "xlm-roberta", "distilbert"):
        input_names.append("token_type_ids")
    info = ModelInfo(
        name=folder.name,
        source="huggingface",
        path=str(folder),
        architecture=architectures[0] if architectures else type(config).__name__.replace("Config", "Model"),
        model_type=model_type,
        task=task,
        parameters=parameters,
        labels=labels,
        size_bytes=sum(f.stat().st_size for f in weights),
        content_hash=hash_files(files),
        input_names=input_names,
        output_name="logits" if task == "text-classification" else "last_hidden_state",
        notes=[PAIR_NOTE] if {label.lower() for label in labels} & NLI_LABELS else [],
    )
    return Model(info, folder)


def _open_onnx(path: Path) -> Model:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto) if path.stat().st_size < 2**31 else onnx.checker.check_model(
            str(path)
        )
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudioError(
            f"{path.name} is not a valid ONNX model ({first[:160]})",
            "re-export it, or check that the download finished",
        ) from None
    graph = proto.graph
    initializer_names = {init.name for init in graph.initializer}
    input_names = [i.name for i in graph.input if i.name not in initializer_names]
    outputs = [o.name for o in graph.output]
    if "input_ids" not in input_names:
        raise StudioError(
            f"{path.name} has no 'input_ids' input (it has {', '.join(input_names)})",
            "the studio quantizes text models exported with named inputs (input_ids, attention_mask ...)",
        )
    output_name = next((n for n in ("logits", "last_hidden_state") if n in outputs), outputs[0])
    task: Task = "feature-extraction" if output_name == "last_hidden_state" else "text-classification"
    labels: list[str] = []
    config_file = path.parent / "config.json"
    config: dict[str, Any] = json.loads(config_file.read_text()) if config_file.exists() else {}
    if task == "text-classification":
        id2label = config.get("id2label") or {}
        dims = next(o for o in graph.output if o.name == output_name).type.tensor_type.shape.dim
        width = dims[-1].dim_value if dims and dims[-1].dim_value else len(id2label)
        labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(width)]
    parameters = sum(int(np.prod(init.dims)) for init in graph.initializer)
    data_files = [path] + [p for p in path.parent.glob(path.name + "*") if p != path and p.is_file()]
    info = ModelInfo(
        name=path.name,
        source="onnx",
        path=str(path),
        architecture=(config.get("architectures") or [f"ONNX graph ({len(graph.node)} nodes)"])[0],
        model_type=str(config.get("model_type", "onnx")),
        task=task,
        parameters=parameters,
        labels=labels,
        size_bytes=sum(p.stat().st_size for p in data_files),
        content_hash=hash_files(data_files),
        input_names=input_names,
        output_name=output_name,
    )
    return Model(info, path.parent)
