"""Evaluation and calibration texts: CSV or JSONL files with a text column and, optionally, a second
text column (pairs: premise/hypothesis, query/passage) and a label column."""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import StudioError


@dataclass(frozen=True)
class TextSet:
    """Texts with their gold labels (None where the file has no labels).

    `pairs` holds each text's second text for models that take two (NLI, cross-encoders), None for
    single texts; a subset keeps each pair with its text. For a causal language model the texts are
    passages (perplexity and fidelity run over them) and `prompts` are what the side-by-side tables
    show; None means "the passages' first sentences".
    """

    texts: list[str]
    labels: list[str] | None
    source: str
    prompts: list[str] | None = None
    prompts_source: str = ""
    pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int], source: str) -> TextSet:
        labels = [self.labels[i] for i in indices] if self.labels is not None else None
        pairs = [self.pairs[i] for i in indices] if self.pairs is not None else None
        return replace(
            self, texts=[self.texts[i] for i in indices], labels=labels, source=source, pairs=pairs
        )

    def with_prompts(self, prompts: list[str] | None, source: str) -> TextSet:
        return replace(self, prompts=prompts, prompts_source=source)


def _read_rows(path: Path) -> list[dict[str, object]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise StudioError(
                    f"{path.name} line {number} is not valid JSON ({error.msg})", "fix that line"
                ) from None
            if not isinstance(row, dict):
                raise StudioError(
                    f"{path.name} line {number} is not a JSON object", "write one object per line"
                )
            rows.append(row)
        return rows
    if path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
            return list(csv.DictReader(handle, dialect=dialect))
    raise StudioError(
        f"{path.name}: unknown data format '{path.suffix}'", "use a .csv, .tsv, .jsonl or .txt file"
    )


def read_passages(path: Path) -> list[str]:
    """A .txt file's passages: paragraphs separated by blank lines, each joined into one line."""
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def load_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise StudioError(f"prompt file not found: {path}", "pass a text file with one prompt per line")
    prompts = [line.rstrip("\r") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise StudioError(f"{path.name} has no prompts", "write one prompt per line")
    return prompts


def data_columns(path: str | Path) -> list[str]:
    """The columns of a CSV/TSV/JSONL file (the first row's keys), for a picker; [] for a .txt file."""
    path = Path(path).expanduser()
    if path.suffix.lower() == ".txt":
        return []
    if not path.is_file():
        raise StudioError(f"data file not found: {path}", "pass a .csv, .jsonl or .txt file of texts")
    rows = _read_rows(path)
    return [str(column) for column in rows[0]] if rows else []


def _column(path: Path, rows: list[dict[str, object]], column: str, option: str) -> list[str]:
    columns = list(rows[0].keys())
    if column not in columns:
        raise StudioError(
            f"{path.name} has no column '{column}' (columns: {', '.join(map(str, columns))})",
            f"choose the column with {option}",
        )
    values = [str(row.get(column) or "").strip() for row in rows]
    empty = [i for i, value in enumerate(values) if not value]
    if empty:
        raise StudioError(
            f"{path.name}: row {empty[0] + 1} has an empty '{column}'", "remove or fill empty rows"
        )
    return values


def load_texts(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    pair_column: str | None = None,
) -> TextSet:
    """Read texts (with their pairs and labels, when asked for and present) from a CSV/TSV/JSONL file,
    or a .txt file's passages."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise StudioError(f"data file not found: {path}", "pass a .csv, .jsonl or .txt file of texts")
    if path.suffix.lower() == ".txt":
        passages = read_passages(path)
        if not passages:
            raise StudioError(f"{path.name} has no text", "write passages separated by blank lines")
        return TextSet(passages, None, str(path))
    rows = _read_rows(path)
    if not rows:
        raise StudioError(f"{path.name} has no rows", "add at least one text")
    columns = list(rows[0].keys())
    texts = _column(path, rows, text_column, "--text-column")
    pairs = _column(path, rows, pair_column, "--pair-column") if pair_column else None
    labels = None
    if label_column and label_column in columns:
        labels = [str(row.get(label_column, "")).strip() for row in rows]
    elif label_column and label_column != "label":
        raise StudioError(
            f"{path.name} has no column '{label_column}' (columns: {', '.join(map(str, columns))})",
            "choose the label column with --label-column",
        )
    return TextSet(texts, labels, str(path), pairs=pairs)


def label_indices(data: TextSet, model_labels: list[str]) -> np.ndarray | None:
    """Map gold labels to the model's class indices; refuse labels the model does not know."""
    if data.labels is None or not model_labels:
        return None
    index = {label: i for i, label in enumerate(model_labels)}
    unknown = sorted({label for label in data.labels if label not in index})
    if not unknown:
        return np.array([index[label] for label in data.labels], dtype=np.int64)
    # Numeric labels are accepted as class ids when none of them is a label name.
    if all(label.isdigit() for label in data.labels) and all(int(x) < len(model_labels) for x in data.labels):
        return np.array([int(label) for label in data.labels], dtype=np.int64)
    sample = ", ".join(repr(label) for label in unknown[:5])
    known = ", ".join(repr(label) for label in model_labels[:5])
    raise StudioError(
        f"{len(unknown)} label(s) in {Path(data.source).name} are not labels of the model ({sample}"
        f"{' ...' if len(unknown) > 5 else ''}); the model has {len(model_labels)} labels ({known} ...)",
        "check --label-column, or relabel the file with the model's label names (see `qstudio info`)",
    )


def split_for_calibration(
    data: TextSet, fraction: float = 0.2, limit: int = 256, seed: int = 0
) -> tuple[TextSet, TextSet]:
    """Hold out a seeded part of `data` for calibration, so calibration and evaluation never overlap.

    Fewer than 5 texts are all kept for evaluation; static recipes then ask for a calibration file.
    """
    if len(data) < 5:
        empty = data.subset([], f"{data.source} (too small to hold texts out for calibration)")
        return data, empty
    count = min(limit, max(1, int(len(data) * fraction)))
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    calibration = sorted(order[:count])
    evaluation = sorted(order[count:])
    return (
        data.subset(evaluation, data.source),
        data.subset(calibration, f"{data.source} (held out for calibration)"),
    )


def request_data(
    request: dict[str, Any], say: Callable[[str], None] = lambda _: None
) -> tuple[TextSet, TextSet]:
    """Evaluation and calibration texts as a run's request names them (the demo's own by default).

    The CLI, re-runs and exports of recorded runs all read a request this way, so a static recipe is
    calibrated on the same texts every time. A causal LM (`task` "text-generation") defaults to the
    language-model demo's passages and prompts instead of the intent set.
    """
    if request.get("task") == "text-generation":
        return _language_data(request, say)
    from studio.core import demo

    label_column = request.get("label_column") or None
    text_column, pair_column = request.get("text_column", "text"), request.get("pair_column") or None
    if request.get("eval"):
        data = load_texts(request["eval"], text_column, label_column, pair_column)
    else:
        if request["model"] != "demo":
            say("no evaluation file: measuring fidelity to FP32 on the demo's texts, without task accuracy")
            label_column = None
        data = load_texts(demo.eval_file(), "text", label_column)
    if request.get("limit"):
        data = data.subset(list(range(min(request["limit"], len(data)))), data.source)
    if request.get("calibration"):
        calibration = load_texts(request["calibration"], text_column, None, pair_column)
    elif not request.get("eval"):
        calibration = load_texts(demo.calibration_file(), "text", None)
    else:
        data, calibration = split_for_calibration(data)
        say(f"no calibration file: {len(calibration)} texts of the evaluation file are held out for it")
    return data, calibration


def _language_data(request: dict[str, Any], say: Callable[[str], None]) -> tuple[TextSet, TextSet]:
    from studio.core.paths import resources_dir

    demo_folder = resources_dir() / "demo"
    if request.get("eval"):
        data = load_texts(request["eval"], request.get("text_column", "text"), None)
        prompts_file = request.get("prompts")
    else:
        if request["model"] != "demo-llm":
            say("no evaluation file: measuring perplexity and fidelity on the language-model demo's passages")
        data = load_texts(demo_folder / "llm_eval.txt", "text", None)
        prompts_file = request.get("prompts") or demo_folder / "llm_prompts.txt"
    if prompts_file:
        data = data.with_prompts(load_prompts(prompts_file), str(prompts_file))
    if request.get("limit"):
        data = data.subset(list(range(min(request["limit"], len(data)))), data.source)
    if request.get("calibration"):
        calibration = load_texts(request["calibration"], request.get("text_column", "text"), None)
    else:
        data, calibration = split_for_calibration(data)
        say(f"no calibration file: {len(calibration)} passages of the evaluation text are held out for it")
    return data, calibration
