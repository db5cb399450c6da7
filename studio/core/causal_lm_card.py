"""The card of a causal language model in a Hugging Face folder, checked before any weight is loaded.

Sharded checkpoints are checked against their index, so a missing shard is named at open time and not
after a minute of loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _first(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    text = getattr(config, "text_config", None)  # multimodal wrappers keep the LM's sizes one level down
    return _first(text, *names) if text is not None and text is not config else None


def _check_shards(folder: Path) -> None:
    for name in INDEX_FILES:
        index = folder / name
        if not index.is_file():
            continue
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as error:
            raise StudioError(f"{index.name} in {folder} is not a valid shard index ({error})") from None
        missing = sorted({shard for shard in weight_map.values() if not (folder / shard).is_file()})
        if missing:
            raise StudioError(
                f"{folder.name} is missing {len(missing)} weight shard(s) named in {index.name}: "
                f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}",
                "download the missing files (or the whole folder) again",
            )


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text()).get("chat_template")) if config.is_file() else False
    except ValueError:
        return False


def open_causal_lm_folder(folder: Path, config: Any) -> Any:
    from studio.core.model import Model, ModelInfo, _count_safetensors, _folder_files, hash_files

    files = _folder_files(folder)
    weights = [f for f in files if f.suffix in (".safetensors", ".bin")]
    if not weights:
        raise StudioError(
            f"{folder} has a config.json but no weights", "add model.safetensors or pytorch_model.bin"
        )
    _check_shards(folder)
    safetensors = [f for f in weights if f.suffix == ".safetensors"]
    architectures = list(getattr(config, "architectures", None) or [])
    dtype = getattr(config, "torch_dtype", None) or getattr(config, "dtype", None)
    info = ModelInfo(
        name=folder.name,
        source="huggingface",
        path=str(folder),
        architecture=architectures[0],
        model_type=str(getattr(config, "model_type", "")),
        task="text-generation",
        parameters=_count_safetensors(safetensors) if safetensors else 0,
        labels=[],
        size_bytes=sum(f.stat().st_size for f in weights),
        content_hash=hash_files(files),
        input_names=["input_ids", "attention_mask"],
        output_name="logits",
        layers=_first(config, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=_first(config, "hidden_size", "n_embd", "d_model"),
        context_length=_first(config, "max_position_embeddings", "n_positions", "max_sequence_length"),
        vocab_size=_first(config, "vocab_size"),
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else None,
        chat_template=_has_chat_template(folder),
    )
    return Model(info, folder)
