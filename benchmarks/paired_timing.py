"""The studio's timing code against an independent loop, taking turns on one artifact a second apart.

    python benchmarks/paired_timing.py check [--results cpu.json] [RECIPE ...]
        (the latest demo run in this QSTUDIO_HOME's history, or cpu_recipes.py's run, and its cached artifacts)
    python benchmarks/paired_timing.py studio SPEC.json      (a server; `paired()` starts it)

Why: on the shared 2-core hosts the speed of one artifact drifts by 10-40% from one second to the next
(measured 2026-12-07 in one process: static INT8 block p50s of 26-40 ms, its ratio to ORT FP32 1.10-1.44
across consecutive 1-second blocks), so two harnesses timed minutes or even a round apart cannot be
compared to 5%. Here both stay loaded, each in its own process, and take turns in blocks of about
`block_seconds` (the order flips every pair), so the machine's drift falls on both alike; the figure is
the median over pairs of (studio block p50 / independent block p50), pooled over several fresh pairs of
processes per artifact (sessions).

The studio side is what its timing worker runs (`studio.core.worker.time_in_rounds`): the recipe's
predictor from `load_predictor`, timed by the model kind's measurer (`time_calls` on the padded timing
feeds); the worker holds every recipe of the run, a session here only the one it times. The
independent side is `benchmarks/time_artifact.py --serve`: a bare `InferenceSession` with ONNX Runtime's
default options (or the bare torch module) in a fresh process.
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

    def ready(self) -> Server:
        self._answer()  # {"ready": true} once loaded
        return self

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
    pairs: int = 12,
    sessions: int = 3,
    max_sessions: int = 6,
    block_seconds: float = 0.4,
    half_width: float = 0.025,
) -> dict[str, dict[str, Any]]:
    """Per recipe of `spec["recipes"]` also in `independent` (time_artifact.py arguments): the block
    p50s of both sides, pair by pair, session by session, and the median of the per-pair ratios with a
    bootstrap 90% interval.

    A session is a fresh process on each side (the studio's loading only that recipe) and `pairs` pairs
    of blocks. Within one pair of processes the ratio can sit 6-7% off for the whole session (an
    artifact's speed depends on where its process's memory landed; 2026-12-07 runs put a different
    recipe there each time), so `sessions` fresh pairs of processes are averaged, and one more at a
    time while the interval (sessions resampled, then pairs within them) is wider than +-`half_width`,
    up to `max_sessions`."""
    out: dict[str, dict[str, Any]] = {}
    for name in [n for n in spec["recipes"] if n in independent]:
        one = {**spec, "recipes": {name: spec["recipes"][name]}}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(one, f)
        script = str(Path(__file__).with_name("time_artifact.py"))
        runs: list[dict[str, list[float]]] = []
        goal = sessions
        while len(runs) < goal:
            studio = Server([sys.executable, __file__, "studio", f.name])
            other = Server([sys.executable, script, *independent[name], "--serve"])
            try:
                runs.append(_session(name, studio.ready(), other.ready(), pairs, block_seconds))
            finally:
                studio.close()
                other.close()
            if len(runs) == goal and goal < max_sessions:
                low, high = _bootstrap_median([_ratios(r) for r in runs])
                if (high - low) / 2 > half_width:
                    goal += 1
        Path(f.name).unlink()
        per_session = [_ratios(r) for r in runs]
        low, high = _bootstrap_median(per_session)
        out[name] = {
            "sessions": len(runs),
            "pairs": sum(len(r) for r in per_session),
            "studio_block_p50s": [[round(v, 3) for v in r["studio"]] for r in runs],
            "independent_block_p50s": [[round(v, 3) for v in r["independent"]] for r in runs],
            "session_ratio_medians": [round(float(np.median(r)), 3) for r in per_session],
            "ratio_median": round(float(np.median(np.concatenate(per_session))), 3),
            "ratio_90_interval": [round(low, 3), round(high, 3)],
        }
        print(
            f"  {name}: studio / independent {out[name]['ratio_median']} [{low:.3f}, {high:.3f}], "
            f"sessions {out[name]['session_ratio_medians']}",
            flush=True,
        )
    return out


def _session(
    name: str, studio: Server, other: Server, pairs: int, block_seconds: float
) -> dict[str, list[float]]:
    """`pairs` turns of a block on each side, the order flipping every pair: the block p50s."""
    first = float(np.median(studio.block(f"{name} 3 {WARMUP}")))
    calls = int(np.clip(round(block_seconds * 1000 / first), 3, 20))
    sides: dict[str, list[float]] = {"studio": [], "independent": []}
    for k in range(pairs):
        for side in ("studio", "independent") if k % 2 == 0 else ("independent", "studio"):
            ms = (
                studio.block(f"{name} {calls} {WARMUP}")
                if side == "studio"
                else other.block(f"{calls} {WARMUP}")
            )
            sides[side].append(float(np.percentile(ms, 50)))
    return sides


def _ratios(session: dict[str, list[float]]) -> np.ndarray:
    return np.asarray(session["studio"]) / np.asarray(session["independent"])


def _bootstrap_median(sessions: list[np.ndarray], draws: int = 2000) -> tuple[float, float]:
    """90% interval of the pooled median: sessions drawn with replacement, then pairs within each, so
    a session that sat off as a whole widens the interval as it should."""
    rng = np.random.default_rng(0)
    medians = np.empty(draws)
    for d in range(draws):
        picked = rng.integers(len(sessions), size=len(sessions))
        medians[d] = np.median(
            np.concatenate([rng.choice(sessions[i], size=len(sessions[i])) for i in picked])
        )
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


def run_spec(run: Any, names: set[str] | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What `paired` needs for a studio run of the demo: its recipes and, per recipe, the arguments of
    `time_artifact.py` for the same artifact (the ONNX file from the studio's cache, or the torch module)."""
    from studio.core.cache import ArtifactCache
    from studio.core.paths import cache_dir

    files = {
        entry.meta.get("recipe"): entry.path / "model.onnx"
        for entry in ArtifactCache(cache_dir() / "artifacts").entries()
        if (entry.path / "model.onnx").exists()
    }
    independent: dict[str, list[str]] = {}
    for r in run.results:
        if not r.ok or (names and r.recipe not in names):
            continue
        if r.backend.startswith("ort-") and r.recipe in files:
            independent[r.recipe] = ["onnx", str(files[r.recipe])]
        elif r.recipe in ("torch-fp32", "torch-int8-dynamic"):
            independent[r.recipe] = [r.recipe, "demo"]
    spec = {
        "model": "demo",
        "hardware": run.hardware.model_dump(mode="json"),
        "recipes": {r.recipe: r.recipe_toml for r in run.results if r.recipe in independent},
    }
    return spec, independent


def check(args: list[str]) -> int:
    """Pair the studio's timing with the independent loop on a run's cached artifacts, no new run."""
    sys.path.insert(0, str(ROOT))
    from studio.core.paths import data_dir
    from studio.core.results import RunResult
    from studio.core.store import RunStore

    if args[:1] == ["--results"]:
        payload = json.loads(Path(args[1]).read_text())["run"]
        run, source, args = RunResult.model_validate({**payload, "inputs": []}), args[1], args[2:]
    else:
        store = RunStore(data_dir() / "history.sqlite")
        latest = next((r for r in store.runs() if r.model_path == "demo"), None)
        if latest is None:
            raise SystemExit("no run of the demo in this studio home: `qstudio run --model demo` first")
        run, source = store.load(latest.id), f"run {latest.id}"
    spec, independent = run_spec(run, set(args))
    print(f"{source}: {', '.join(independent)}", flush=True)
    keep = ("ratio_median", "ratio_90_interval", "session_ratio_medians", "pairs")
    result = {name: {k: m[k] for k in keep} for name, m in paired(spec, independent).items()}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["studio"]:
        sys.exit(serve_studio(sys.argv[2]))
    if sys.argv[1:2] == ["check"]:
        sys.exit(check(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
