"""Sweep benchmark: the same recipes on the demo model as one local run and as a sweep through a local Ray
instance, both on warm artifacts, to measure what a Ray task costs on top of the studio's own worker.

    python benchmarks/cluster_sweep.py [--recipes ort-fp32,ort-int8-dynamic,torch-int8-dynamic] [--limit 100]

1. `qstudio run` once, untimed: builds the artifacts into a fresh studio home, so neither timed pass quantizes.
2. `qstudio run` again (one worker process per recipe, one after the other): wall time.
3. `qstudio sweep` on a local Ray instance started by the command (its start-up included): wall time, and
   per task the seconds the worker reported (prepare, load, evaluate, time) against the task's share.
Writes `benchmarks/results/cluster.json` and the table between the markers in `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from readme_section import write_section  # noqa: E402

from studio.core.hardware import probe  # noqa: E402


def qstudio(args: list[str], env: dict[str, str], mark: str = "") -> tuple[float, float | None]:
    """Wall seconds of the command, and when it printed a line starting with `mark` (stderr)."""
    started = time.perf_counter()
    seen = None
    with subprocess.Popen(
        [sys.executable, "-m", "studio.cli.main", *args], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        for line in process.stderr:
            if mark and seen is None and line.startswith(mark):
                seen = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"qstudio {' '.join(args)} exited {process.returncode}")
    return time.perf_counter() - started, seen


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="ort-fp32,ort-int8-dynamic,torch-int8-dynamic")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cluster.json"))
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    home = tempfile.mkdtemp(prefix="qstudio-bench-cluster-")
    env = {**os.environ, "QSTUDIO_HOME": home, "HF_HUB_OFFLINE": "1"}
    common = ["--limit", str(args.limit), "--rounds", "0", "--seconds", "1", "--iterations", "10"]
    run_args = ["run", "--model", "demo", *(x for r in recipes for x in ("--recipe", r)), *common]
    qstudio([*run_args, "--json", f"{home}/warm.json"], env)
    local, _ = qstudio([*run_args, "--json", f"{home}/local.json"], env)
    sweep, ready = qstudio(
        [
            "sweep",
            "--models",
            "demo",
            "--recipes",
            ",".join(recipes),
            *common,
            "--json",
            f"{home}/sweep.json",
        ],
        env,
        mark="cluster:",  # Ray started and every node probed
    )
    startup = ready or 0.0
    local_run = json.loads(Path(f"{home}/local.json").read_text())
    swept = json.loads(Path(f"{home}/sweep.json").read_text())["results"]
    worker_local = sum(sum(r["seconds"].values()) for r in local_run["results"])
    tasks = len(swept)
    hardware = probe()
    payload = {
        "cpu": hardware.cpu.model,
        "cpu_flags": hardware.cpu.flags,
        "logical_cores": hardware.cpu.logical_cores,
        "recipes": recipes,
        "tasks": tasks,
        "local_wall_s": round(local, 1),
        "sweep_wall_s": round(sweep, 1),
        "worker_seconds_local": round(worker_local, 1),
        "ray_startup_and_probe_s": round(startup, 1),
        "overhead_per_task_s": round((sweep - startup - local) / tasks, 2),
        "statuses": [r["status"] for r in swept],
        "nodes": sorted({r["node"] for r in swept}),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=1))
    isa = [f for f in hardware.cpu.flags if f.startswith(("avx", "amx", "fma"))]
    table = (
        f"{hardware.cpu.model}, {hardware.cpu.logical_cores} logical cores ({' '.join(isa)}); demo model, "
        f"{', '.join(recipes)} and the FP32 reference ({tasks} tasks), {args.limit} inputs, warm artifacts.\n\n"
        "| how | wall s | per task s |\n|---|---|---|\n"
        f"| `qstudio run` (one worker per recipe, in turn) | {local:.1f} | {local / tasks:.1f} |\n"
        f"| `qstudio sweep` (local Ray instance, start-up included) | {sweep:.1f} | {sweep / tasks:.1f} |\n"
        f"| of which: Ray start-up and node probes | {startup:.1f} | |\n"
        f"| overhead per task (sweep - start-up - run) / tasks | | {(sweep - startup - local) / tasks:+.1f} |"
    )
    write_section("cluster", table)
    print(table)
    return 0 if set(payload["statuses"]) == {"ok"} else 1


if __name__ == "__main__":
    sys.exit(main())
