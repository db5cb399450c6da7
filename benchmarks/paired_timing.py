"""The studio's timing code against an independent loop, taking turns on one artifact a second apart.

    python benchmarks/paired_timing.py studio SPEC.json      (a server; `paired()` starts it)

Why: on the shared 2-core hosts the speed of one artifact drifts by 10-40% from one second to the next
(measured 2026-12-07 in one process: static INT8 block p50s of 26-40 ms, its ratio to ORT FP32 1.10-1.44
across consecutive 1-second blocks), so two harnesses timed minutes or even a round apart cannot be
compared to 5%. Here both stay loaded, each in its own process, and take turns in blocks of about
`block_seconds` (the order flips every pair), so the machine's drift falls on both alike; the figure is
the median over pairs of (studio block p50 / independent block p50).

The studio side is what its timing worker runs (`studio.core.worker.time_in_rounds`): every recipe's
predictor from `load_predictor` in one process, timed by the model kind's measurer (`time_calls` on the
padded timing feeds). The independent side is `benchmarks/time_artifact.py --serve`: a bare
`InferenceSession` with ONNX Runtime's default options (or the bare torch module) in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 2  # per block, both sides: the other process ran in between and cooled the caches


class Server:
    """A timing process that stays loaded and answers one block of calls per request."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._answer()  # {"ready": true} once loaded

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # libraries may print: the answer is the next JSON object
            if line.startswith("{"):
                return dict(json.loads(line))
        raise SystemExit(f"timing server {self.process.args!r} ended (exit {self.process.wait()})")

    def block(self, request: str) -> list[float]:
        assert self.process.stdin is not None
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        return list(self._answer()["ms"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def paired(
    spec: dict[str, Any],
    independent: dict[str, list[str]],
    pairs: int,
    block_seconds: float = 0.4,
    max_pairs: int = 120,
    half_width: float = 0.025,
) -> dict[str, dict[str, Any]]:
    """Per recipe of `spec["recipes"]` also in `independent` (time_artifact.py arguments): the block
    p50s of both sides, pair by pair, and the median of their ratios with a bootstrap 90% interval.
    After `pairs` pairs, 10 more at a time while that interval is wider than +-`half_width` (too wide
    to judge a 5% goal: static INT8 blocks swing between ~31 and ~41 ms within seconds), up to
    `max_pairs`."""
    names = [n for n in spec["recipes"] if n in independent]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    studio = Server([sys.executable, __file__, "studio", f.name])
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            script = str(Path(__file__).with_name("time_artifact.py"))
            other = Server([sys.executable, script, *independent[name], "--serve"])
            first = float(np.median(studio.block(f"{name} 3 {WARMUP}")))
            calls = int(np.clip(round(block_seconds * 1000 / first), 3, 20))
            sides: dict[str, list[float]] = {"studio": [], "independent": []}
            k, goal = 0, pairs
            while k < goal:
                for side in ("studio", "independent") if k % 2 == 0 else ("independent", "studio"):
                    ms = (
                        studio.block(f"{name} {calls} {WARMUP}")
                        if side == "studio"
                        else other.block(f"{calls} {WARMUP}")
                    )
                    sides[side].append(float(np.percentile(ms, 50)))
                k += 1
                if k == goal and goal < max_pairs:
                    low, high = _bootstrap_median(
                        np.asarray(sides["studio"]) / np.asarray(sides["independent"])
                    )
                    if (high - low) / 2 > half_width:
                        goal = min(max_pairs, goal + 10)
            other.close()
            ratios = np.asarray(sides["studio"]) / np.asarray(sides["independent"])
            low, high = _bootstrap_median(ratios)
            out[name] = {
                "pairs": k,
                "calls_per_block": calls,
                "studio_block_p50s": [round(v, 3) for v in sides["studio"]],
                "independent_block_p50s": [round(v, 3) for v in sides["independent"]],
                "ratio_median": round(float(np.median(ratios)), 3),
                "ratio_90_interval": [round(low, 3), round(high, 3)],
            }
            print(
                f"  {name}: studio / independent {out[name]['ratio_median']} [{low:.3f}, {high:.3f}], {k} pairs",
                flush=True,
            )
    finally:
        studio.close()
    return out


def _bootstrap_median(values: np.ndarray, draws: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(values, size=(draws, len(values)), replace=True), axis=1)
    return float(np.percentile(medians, 5)), float(np.percentile(medians, 95))


def serve_studio(spec_file: str) -> int:
    """Load every recipe's predictor as the studio's timing worker does; answer "NAME CALLS WARMUP"."""
    sys.path.insert(0, str(ROOT))
    from studio.core.quiet import quiet_torch_imports

    quiet_torch_imports()
    from studio.core import demo
    from studio.core.cache import ArtifactCache
    from studio.core.dataset import load_texts
    from studio.core.hardware import HardwareInfo
    from studio.core.kinds import kind_of
    from studio.core.loading import load_predictor
    from studio.core.measure import TimingPlan
    from studio.core.model import open_model
    from studio.core.paths import cache_dir
    from studio.core.recipe import parse_recipe
    from studio.core.settings import RunSettings

    spec = json.loads(Path(spec_file).read_text())
    model = open_model(spec["model"])
    hardware = HardwareInfo.model_validate(spec["hardware"])
    cache = ArtifactCache(cache_dir() / "artifacts")
    calibration = load_texts(demo.calibration_file(), label_column=None)
    recipes = {name: parse_recipe(tomllib.loads(text), name) for name, text in spec["recipes"].items()}
    predictors = {name: load_predictor(model, r, hardware, cache, calibration) for name, r in recipes.items()}
    measurer = kind_of(model.info.task).measurer(model, load_texts(demo.eval_file()), RunSettings())
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        name, calls, warmup = line.split()
        plan = TimingPlan(
            warmup=int(warmup), min_iterations=int(calls), min_seconds=0.0, max_iterations=int(calls)
        )
        measurer.settings = RunSettings(timing=plan)
        timing = measurer.time(predictors[name], recipes[name], name)
        print(json.dumps({"ms": [timing["latency_ms"]["p50"]]}), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["studio"]:
        sys.exit(serve_studio(sys.argv[2]))
    print(__doc__)
    sys.exit(2)
