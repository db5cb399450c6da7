"""Shared fixtures: an isolated studio home, tiny models built from configs, a fake NVML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"

from tests.fakes.nvml import FakeNvml
from tests.fakes.tiny import build_tiny, tiny_texts, write_csv
from tests.fakes.tiny_lm import build_tiny_lm, write_passages, write_prompts
from tests.fakes.tiny_nli import build_tiny_nli, nli_rows, write_pairs_csv

# The longest chains start first: with two test processes the suite ends when the busier one does, and
# the installer test (a bundle built from scratch, 15+ minutes) or the demo-llm group scheduled last
# would run alone at the end.
LONGEST_FIRST = ("tests/packaging/test_installers.py", "tests/slow/test_demo_llm.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


@pytest.fixture(scope="session", autouse=True)
def studio_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own user data and artifact cache."""
    home = tmp_path_factory.mktemp("qstudio-home")
    os.environ["QSTUDIO_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny-encoder"), classifier=False)


@pytest.fixture(scope="session")
def tiny_nli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-label premise/hypothesis classifier whose labels need both texts."""
    return build_tiny_nli(tmp_path_factory.mktemp("tiny-nli"))


@pytest.fixture(scope="session")
def tiny_nli_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """premise, hypothesis, label columns; 60 rows (12 are held out for calibration)."""
    return write_pairs_csv(tmp_path_factory.mktemp("nli-data") / "nli.csv", nli_rows(60, seed=7))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_passages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_passages(tmp_path_factory.mktemp("lm-data") / "passages.txt")


@pytest.fixture(scope="session")
def tiny_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prompts(tmp_path_factory.mktemp("lm-prompts") / "prompts.txt")


@pytest.fixture(scope="session")
def tiny_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "eval.csv", tiny_texts(48, seed=7))


@pytest.fixture(scope="session")
def tiny_calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("calib") / "calibration.csv", tiny_texts(24, seed=11))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier exported by the studio, in a folder with its tokenizer and config."""
    import shutil

    from studio.core.model import open_model

    folder = tmp_path_factory.mktemp("tiny-onnx")
    for name in (
        "vocab.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "config.json",
    ):
        if (tiny_classifier / name).exists():
            shutil.copy(tiny_classifier / name, folder / name)
    open_model(tiny_classifier).export_onnx(folder / "model.onnx")
    return folder / "model.onnx"


@pytest.fixture
def fake_nvml():
    """Build a fake NVML: `fake_nvml("t4")`, `fake_nvml()` for a machine without the driver."""

    def make(*cards: str) -> FakeNvml:
        return FakeNvml.with_cards(*cards) if cards else FakeNvml.missing()

    return make
