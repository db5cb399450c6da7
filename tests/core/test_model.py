import json
from pathlib import Path

import onnx
import pytest

from studio.core.errors import StudioError
from studio.core.model import open_model


def test_open_hf_classifier(tiny_classifier: Path) -> None:
    info = open_model(tiny_classifier).info
    assert info.source == "huggingface"
    assert info.task == "text-classification"
    assert info.architecture == "BertForSequenceClassification"
    assert info.labels == ["greeting", "weather", "music"]
    assert 0 < info.parameters < 200_000
    assert info.size_bytes > 0 and len(info.content_hash) == 64
    assert info.input_names == ["input_ids", "attention_mask", "token_type_ids"]


def test_open_hf_encoder_is_feature_extraction(tiny_encoder: Path) -> None:
    info = open_model(tiny_encoder).info
    assert info.task == "feature-extraction"
    assert info.labels == [] and info.output_name == "last_hidden_state"


def test_open_onnx_reads_labels_from_config_next_to_it(tiny_onnx: Path) -> None:
    model = open_model(tiny_onnx)
    assert model.info.source == "onnx" and not model.has_torch
    assert model.info.labels == ["greeting", "weather", "music"]
    assert model.info.parameters > 0
    with pytest.raises(StudioError, match="needs a PyTorch model"):
        model.torch_module()


def test_content_hash_follows_content(tiny_classifier: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_classifier, copy)
    assert open_model(copy).info.content_hash == open_model(tiny_classifier).info.content_hash
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    (copy / "config.json").write_text(json.dumps(config))
    assert open_model(copy).info.content_hash != open_model(tiny_classifier).info.content_hash


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing", "model not found: "),
        (lambda p: p, "has no config.json, so it is not a Hugging Face model folder"),
        (
            lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt",
            "is neither an .onnx or .gguf file nor a folder",
        ),
    ],
)
def test_bad_model_paths(tmp_path: Path, make, expected: str) -> None:
    with pytest.raises(StudioError, match=expected):
        open_model(make(tmp_path))


def test_corrupt_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf" * 10)
    with pytest.raises(StudioError, match="broken.onnx is not a valid ONNX model"):
        open_model(bad)


def test_truncated_onnx(tiny_onnx: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny_onnx.read_bytes()[: tiny_onnx.stat().st_size // 3])
    with pytest.raises(StudioError, match="not a valid ONNX model"):
        open_model(cut)


def test_unsupported_architecture(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "made-up-arch", "architectures": ["Nope"]})
    )
    with pytest.raises(StudioError, match="unsupported or unreadable model config"):
        open_model(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]})
    )
    with pytest.raises(StudioError, match="unsupported architecture"):
        open_model(tmp_path)


def test_folder_without_weights(tiny_classifier: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_classifier / "config.json").read_text())
    with pytest.raises(StudioError, match="has a config.json but no weights"):
        open_model(tmp_path)


def test_onnx_without_text_inputs(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixels"], ["out"])],
        "g",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "image.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(StudioError, match="has no 'input_ids' input"):
        open_model(path)


def test_file_digests_are_remembered_and_follow_changes(tmp_path, monkeypatch):
    import hashlib

    from studio.core.model import hash_files

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a" * 1000)
    first = hash_files([weights])
    reads = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a, **k: reads.append(1) or real(*a, **k))
    assert hash_files([weights]) == first and reads == [], "an unchanged file is not read again"
    weights.write_bytes(b"b" * 1000)  # same size, new content
    assert hash_files([weights]) != first and reads == [1]
