"""Export benchmark: every CPU recipe of a demo run exported, verified in a fresh process, re-verified.

    python benchmarks/export_demo.py [--recipes a,b]  (default: every built-in CPU recipe) [--out benchmarks/results/export.json]

Runs `qstudio run` on the demo (full evaluation set, short timing), then `qstudio export` and
`qstudio verify` per recipe, as a user would, in an isolated studio home. Records the wall time of each
command, the folder's size, the verification (top-1 reproduced in the measured batches, probability
difference, and the same served one text at a time) and the two verdicts with their reasons. Writes
`benchmarks/results/export.json` and the table between the markers in `benchmarks/README.md`.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from readme_section import write_section  # noqa: E402


def cpu_recipes() -> list[str]:
    """Every built-in CPU recipe."""
    from studio.core.recipe import builtin_recipes

    return [recipe.name for recipe in builtin_recipes("text-classification") if recipe.device == "cpu"]


def qstudio(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "studio.cli.main", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )
    return done, time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="", help="comma-separated; default: every built-in CPU recipe")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export.json")
    args = parser.parse_args()
    recipes = args.recipes.split(",") if args.recipes else cpu_recipes()
    with tempfile.TemporaryDirectory(prefix="qstudio-export-bench-") as scratch:
        env = {**os.environ, "QSTUDIO_HOME": str(Path(scratch) / "home"), "HF_HUB_OFFLINE": "1"}
        run_args = [arg for name in recipes for arg in ("--recipe", name)]
        done, run_seconds = qstudio(
            "run", *run_args, "--iterations", "10", "--seconds", "1", "--quiet", "--json", "-", env=env
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        run = json.loads(done.stdout)
        rows: list[dict[str, Any]] = []
        for name in recipes:
            target = Path(scratch) / "exports" / name
            exported, export_seconds = qstudio(
                "export", str(run["run_id"]), name, "--to", str(target), "--json", env=env
            )
            if exported.returncode != 0:
                rows.append({"recipe": name, "error": exported.stderr.strip().splitlines()[-1]})
                continue
            evidence = json.loads(exported.stdout)
            verified, verify_seconds = qstudio("verify", str(target), "--json", env=env)
            again = json.loads(verified.stdout)
            rows.append(
                {
                    "recipe": name,
                    "export_seconds": round(export_seconds, 2),
                    "verify_seconds": round(verify_seconds, 2),
                    "folder_bytes": folder_bytes(target),
                    "artifact": evidence["contract"]["artifact"],
                    "runtime": evidence["verification"]["runtime_version"],
                    "verification": evidence["verification"],
                    "ready_for_local_trial": evidence["ready_for_local_trial"],
                    "ready_for_release": evidence["ready_for_release"],
                    "verify_exit": verified.returncode,
                    "verify_agrees": [c["passed"] for c in again["checks"]]
                    == [c["passed"] for c in evidence["checks"]],
                }
            )
            print(f"{name}: export {export_seconds:.1f} s, verify {verify_seconds:.1f} s", flush=True)
    result = {
        "machine": f"{os.cpu_count()} logical cores",
        "run_seconds": round(run_seconds, 1),
        "evaluation_inputs": len(run["inputs"]),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    lines = [
        "| recipe | export s | verify s | folder MB | reproduced (measured batches) | one text at a time | local trial | release |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['recipe']} | failed: {row['error']} | | | | | | |")
            continue
        v = row["verification"]
        release = row["ready_for_release"]
        lines.append(
            f"| {row['recipe']} | {row['export_seconds']:.1f} | {row['verify_seconds']:.1f} | "
            f"{row['folder_bytes'] / 1e6:.1f} | top-1 {v['top1_matches']}/{v['samples']}, "
            f"max dp {v['max_probability_diff']:.4f} | top-1 changes {v['single_text_top1_changes']}, "
            f"max dp {v['single_text_max_probability_diff']:.4f} | "
            f"{'yes' if row['ready_for_local_trial']['ready'] else 'no'} | "
            f"{'yes' if release['ready'] else 'no: ' + '; '.join(release['reasons'])} |"
        )
    table = "\n".join(lines)
    print(table)
    write_section("export-table", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
