"""Reports: CSV/JSON contents, and the HTML rendered in headless Chromium and looked at."""

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from studio.backends.registry import REGISTRY
from studio.core.cache import ArtifactCache
from studio.core.compare import RunSettings, compare
from studio.core.dataset import load_texts
from studio.core.hardware import probe
from studio.core.measure import TimingPlan
from studio.core.model import open_model
from studio.core.paths import cache_dir
from studio.core.recipe import parse_recipe, resolve_recipe
from studio.core.report import render
from studio.core.results import pareto_front
from studio.core.store import RunStore
from tests.fakes.backends import MISLABELLED
from tests.fakes.nvml import FakeNvml

FAST = RunSettings(timing=TimingPlan(warmup=1, min_iterations=3, min_seconds=0.0, rounds=0))


@pytest.fixture(scope="module")
def stored_run(tiny_classifier, tiny_eval, tiny_calibration, tmp_path_factory):
    REGISTRY[MISLABELLED.name] = MISLABELLED
    try:
        recipes = [resolve_recipe("ort-int8-dynamic"), resolve_recipe("ort-cuda-fp16"),
                   parse_recipe({"name": "mislabelled", "backend": MISLABELLED.name, "precision": "fp32"})]
        run = compare(open_model(tiny_classifier), recipes, load_texts(tiny_eval),
                      load_texts(tiny_calibration, label_column=None), probe(FakeNvml.missing()),
                      ArtifactCache(cache_dir() / "artifacts"), FAST)
    finally:
        del REGISTRY[MISLABELLED.name]
    store = RunStore(tmp_path_factory.mktemp("history") / "h.sqlite")
    run_id = store.begin_run(run, {"model": "x"})
    for position, result in enumerate(run.results):
        store.add_result(run_id, position, result)
    store.finish_run(run_id, "finished")
    return store.load(run_id)


def test_csv_has_a_row_per_recipe(stored_run) -> None:
    rows = list(csv.DictReader(io.StringIO(render(stored_run, "csv"))))
    assert [r["recipe"] for r in rows] == ["torch-fp32", "ort-int8-dynamic", "ort-cuda-fp16", "mislabelled"]
    assert rows[2]["status"] == "unavailable" and "NVIDIA GPU" in rows[2]["reason"]
    assert "low-agreement" in rows[3]["flags"]
    assert float(rows[1]["p50_ms"]) > 0


def test_json_round_trips(stored_run) -> None:
    payload = json.loads(render(stored_run, "json"))
    assert payload["run_id"] == stored_run.run_id and len(payload["results"]) == 4
    assert payload["results"][1]["topk"][0][0][0] in ("greeting", "weather", "music")


def test_html_is_self_contained_and_complete(stored_run) -> None:
    html = render(stored_run, "html")
    for needle in ("<h2>Hardware</h2>", "<h2>Model</h2>", "<h2>Recipes</h2>", "Latency p50 per recipe",
                   "Latency against accuracy", "Pareto front", "Top-k predictions side by side", 'class="differs"',
                   "qstudio run --model", f"qstudio rerun {stored_run.run_id}", "SUSPECT", "treat this as a bug"):
        assert needle in html, needle
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_pareto_front() -> None:
    from studio.core.results import Latency, RecipeResult

    def result(name: str, p50: float, accuracy: float) -> RecipeResult:
        return RecipeResult(recipe=name, backend="b", precision="fp32", requested_precision="fp32", mode="none",
                            device="cpu", status="ok", batch_size=1, seq_len=8, threads=1,
                            latency_ms=Latency(p50=p50, p90=p50, p99=p50, mean=p50), accuracy=accuracy)

    results = [result("fast-bad", 1, 0.5), result("slow-good", 10, 0.9), result("dominated", 12, 0.8),
               result("middle", 5, 0.85)]
    assert {r.recipe for r in pareto_front(results)} == {"fast-bad", "slow-good", "middle"}


def test_html_renders_in_headless_chromium(stored_run, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("QSTUDIO_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (CI installs Debian's chromium)")
        pytest.skip("Debian's chromium is not installed")
    page = tmp_path / "report.html"
    page.write_text(render(stored_run, "html"))
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    from PySide6.QtGui import QColor, QImage

    image = QImage(str(shot))
    assert image.width() == 1400 and image.height() == 2000
    pixels = [QColor(image.pixel(x, y)) for x in range(0, 1400, 7) for y in range(0, 2000, 7)]
    ink = sum(1 for c in pixels if c.lightness() < 128)
    bars = sum(1 for c in pixels if (c.red(), c.green(), c.blue()) == (0x33, 0x66, 0xCC))
    suspect = sum(1 for c in pixels if (c.red(), c.green(), c.blue()) == (0xFD, 0xE2, 0xE1))
    assert ink > 500, "the page is blank"
    assert bars > 20, "the latency chart did not render"
    assert suspect > 20, "the suspect recipe and disagreeing cells are not marked"
    target = os.environ.get("QSTUDIO_SCREENSHOTS")
    if target:
        shutil.copy(shot, Path(target) / "report.png")
