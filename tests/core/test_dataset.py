import json
from pathlib import Path

import pytest

from studio.core.dataset import label_indices, load_texts, split_for_calibration
from studio.core.errors import StudioError


def test_csv_and_jsonl_with_chosen_columns(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("utterance,intent\nhello,greeting\nrain?,weather\n")
    data = load_texts(csv_file, "utterance", "intent")
    assert data.texts == ["hello", "rain?"] and data.labels == ["greeting", "weather"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"sentence": t, "y": y}) for t, y in [("a b", "music"), ("c", "greeting")])
    )
    data = load_texts(jsonl, "sentence", "y")
    assert data.labels == ["music", "greeting"]


def test_missing_columns_and_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("sentence,label\nhello,greeting\n")
    with pytest.raises(StudioError, match="has no column 'text' \\(columns: sentence, label\\)"):
        load_texts(csv_file)
    with pytest.raises(StudioError, match="has no column 'intent'"):
        load_texts(csv_file, "sentence", "intent")
    with pytest.raises(StudioError, match="data file not found"):
        load_texts(tmp_path / "nope.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(StudioError, match="line 2 is not valid JSON"):
        load_texts(bad)


def test_labels_must_match_the_model(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("text,label\nhello,greeting\nhot?,temperature\n")
    data = load_texts(csv_file)
    with pytest.raises(
        StudioError, match="1 label\\(s\\) in d.csv are not labels of the model \\('temperature'\\)"
    ):
        label_indices(data, ["greeting", "weather", "music"])
    assert list(label_indices(load_texts(csv_file).subset([0], "x"), ["music", "greeting"])) == [1]


def test_numeric_labels_are_class_ids(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("text,label\na,0\nb,2\n")
    assert list(label_indices(load_texts(csv_file), ["x", "y", "z"])) == [0, 2]


def test_calibration_split_is_disjoint_and_seeded(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("text,label\n" + "\n".join(f"text {i},l" for i in range(50)))
    evaluation, calibration = split_for_calibration(load_texts(csv_file))
    assert len(calibration) == 10 and len(evaluation) == 40
    assert not set(evaluation.texts) & set(calibration.texts)
    assert split_for_calibration(load_texts(csv_file))[1].texts == calibration.texts
