"""`qstudio` as a user runs it: real subprocesses, exit codes, one-line errors, the --json contract."""

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

FAST = ["--warmup", "1", "--iterations", "3", "--seconds", "0", "--rounds", "0", "--quiet"]


def qstudio(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_version_and_help() -> None:
    from studio import __version__

    lines = qstudio("--version").stdout.strip().splitlines()
    assert lines[0] == f"Quantization Studio {__version__}"
    assert "onnxruntime 1." in lines[1] and "torch 2." in lines[1]
    assert lines[2].startswith("user data: ") and lines[3].startswith("artifact cache: ")
    assert "probe" in qstudio("--help").stdout


def test_probe_json_has_hardware_and_capability_matrix() -> None:
    result = qstudio("probe", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["hardware"]["cpu"]["logical_cores"] >= 1
    assert payload["hardware"]["gpu_status"].startswith(("ok", "not available: "))
    names = {row["recipe"] for row in payload["recipes"]}
    assert {"torch-fp32", "ort-int8-dynamic", "ort-cuda-fp16"} <= names
    assert all(row["available"] or row["reason"] for row in payload["recipes"])


def test_recipes_json_lists_builtins() -> None:
    recipes = json.loads(qstudio("recipes", "--json").stdout)
    static = next(r for r in recipes if r["name"] == "ort-int8-static-minmax")
    assert static["calibration"] == {"method": "minmax", "samples": 128} and static["available"]


def test_run_writes_the_documented_json(tiny_classifier: Path, tiny_eval: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = qstudio(
        "run",
        "--model",
        str(tiny_classifier),
        "--eval",
        str(tiny_eval),
        "--recipe",
        "ort-int8-dynamic",
        "--recipe",
        "ort-int8-static-minmax",
        "--json",
        str(out),
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    assert set(payload) >= {"model", "hardware", "results", "inputs", "evaluation"}
    assert [r["recipe"] for r in payload["results"]] == [
        "torch-fp32",
        "ort-int8-dynamic",
        "ort-int8-static-minmax",
    ]
    for r in payload["results"]:
        for key in (
            "recipe",
            "backend",
            "precision",
            "status",
            "reason",
            "latency_ms",
            "throughput",
            "size_bytes",
            "peak_rss_bytes",
            "accuracy",
            "top1_agreement",
            "kl",
            "cosine",
            "speedup_vs_reference",
            "flags",
            "topk",
        ):
            assert key in r, key
        assert set(r["latency_ms"]) >= {"p50", "p90", "p99"}
    # held-out calibration: eval and calibration texts never overlap
    assert payload["evaluation"]["calibration_count"] > 0
    assert payload["evaluation"]["count"] + payload["evaluation"]["calibration_count"] == 48
    # the table and side-by-side top-k are printed
    assert "speed-up" in result.stdout and "ort-int8-dynamic" in result.stdout


def _assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("qstudio: ") and fragment in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_inputs_give_one_line_and_exit_2(tmp_path: Path, tiny_classifier: Path, tiny_eval: Path) -> None:
    _assert_one_line_error(qstudio("run", "--model", str(tmp_path / "nope")), "model not found")
    _assert_one_line_error(qstudio("run", "--model", str(tmp_path)), "has no config.json")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file at all")
    _assert_one_line_error(qstudio("info", str(corrupt)), "is not a valid ONNX model")
    _assert_one_line_error(
        qstudio("run", "--model", str(tiny_classifier), "--recipe", "nope"), "no recipe named 'nope'"
    )
    bad_recipe = tmp_path / "bad.toml"
    bad_recipe.write_text('name = "b"\nbackend = "ort-fp32"\nprecision = "fp9"\n')
    _assert_one_line_error(
        qstudio("run", "--model", str(tiny_classifier), "--recipe", str(bad_recipe)),
        "field 'precision' has invalid value 'fp9': allowed: fp32, fp16",
    )
    wrong_labels = tmp_path / "wrong.csv"
    wrong_labels.write_text("text,label\nhello,positive\n")
    _assert_one_line_error(
        qstudio("run", "--model", str(tiny_classifier), "--eval", str(wrong_labels)),
        "are not labels of the model ('positive')",
    )
    # --debug shows the traceback instead
    debug = qstudio("--debug", "run", "--model", str(tmp_path / "nope"))
    assert "Traceback" in debug.stderr


def test_recipe_needing_a_gpu_reports_and_exits_2(
    tiny_classifier: Path, tiny_eval: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    result = qstudio(
        "run",
        "--model",
        str(tiny_classifier),
        "--eval",
        str(tiny_eval),
        "--recipe",
        "ort-fp32",
        "--recipe",
        "ort-cuda-fp16",
        "--json",
        str(out),
        *FAST,
    )
    assert result.returncode == 2
    assert "qstudio: recipe ort-cuda-fp16 is not available here: needs an NVIDIA GPU" in result.stderr
    payload = json.loads(out.read_text())  # what did run is kept
    statuses = {r["recipe"]: r["status"] for r in payload["results"]}
    assert statuses == {"torch-fp32": "ok", "ort-fp32": "ok", "ort-cuda-fp16": "unavailable"}


def test_unsupported_operator_is_a_clear_failure(tmp_path: Path, tiny_eval: Path) -> None:
    """A graph with an operator ONNX Runtime does not implement fails with a message that names it."""
    graph = helper.make_graph(
        [helper.make_node("FancyPooling", ["input_ids"], ["logits"], domain="com.example")],
        "g",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    folder = tmp_path / "custom"
    folder.mkdir()
    onnx.save(model, folder / "model.onnx")
    from tests.fakes.tiny import build_tiny

    build_tiny(tmp_path / "tok", train_steps=0)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_bytes((tmp_path / "tok" / name).read_bytes())
    result = qstudio(
        "run",
        "--model",
        str(folder / "model.onnx"),
        "--eval",
        str(tiny_eval),
        "--label-column",
        "",
        "--recipe",
        "ort-int8-dynamic",
        *FAST,
    )
    assert result.returncode == 1
    assert "the FP32 reference failed" in result.stdout + result.stderr or "failed" in result.stdout
    assert "operator is not supported" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["recipes"], ["info", "demo"]])
def test_commands_run_without_qt(command: list[str]) -> None:
    result = qstudio(*command, "--json", env={"PYTHONPATH": ""})
    assert result.returncode in (0, 2), result.stderr


def test_history_show_rerun_report_and_cache(tiny_classifier: Path, tiny_eval: Path, tmp_path: Path) -> None:
    env = {"QSTUDIO_HOME": str(tmp_path / "home")}
    first = qstudio("run", "--model", str(tiny_classifier), "--eval", str(tiny_eval), "--recipe", "ort-int8-dynamic",
                    "--json", str(tmp_path / "a.json"), *FAST, env=env)
    assert first.returncode == 0, first.stderr
    run_id = json.loads((tmp_path / "a.json").read_text())["run_id"]
    history = qstudio("history", env=env)
    assert f"{run_id} " in history.stdout and "finished" in history.stdout and "2/2" in history.stdout
    show = qstudio("show", str(run_id), env=env)
    assert show.returncode == 0 and "ort-int8-dynamic" in show.stdout
    rerun = qstudio("rerun", str(run_id), "--json", str(tmp_path / "b.json"), "--quiet", env=env)
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads((tmp_path / "b.json").read_text())
    assert again["run_id"] == run_id + 1
    assert [r["recipe"] for r in again["results"]] == ["torch-fp32", "ort-int8-dynamic"]
    assert again["results"][1]["from_cache"] is True
    for fmt in ("html", "csv", "json"):
        out = tmp_path / f"report.{fmt}"
        result = qstudio("report", str(run_id), "--format", fmt, "--out", str(out), env=env)
        assert result.returncode == 0 and out.stat().st_size > 500
    listing = qstudio("cache", "list", env=env)
    assert "ort-int8-dynamic" in listing.stdout and "cap" in listing.stdout
    cleared = qstudio("cache", "clear", env=env)
    assert "cache cleared" in cleared.stdout
    assert "0 entries" in qstudio("cache", env=env).stdout
    _assert_one_line_error(qstudio("show", "999", env=env), "no run 999 in the history")


def test_sweep_without_ray_says_how_to_install_it(monkeypatch, capsys):
    import sys

    from studio.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    assert main(["sweep", "--models", "demo"]) == 2
    assert "pip install 'quantization-studio[cluster]'" in capsys.readouterr().err


def test_sweep_to_an_address_where_nothing_listens_fails_at_once(capsys, tiny_classifier):
    pytest.importorskip("ray")
    from studio.cli.main import main

    assert main(["sweep", "--models", str(tiny_classifier), "--recipes", "ort-fp32", "--address", "127.0.0.1:9"]) == 2
    assert "nothing answers at 127.0.0.1:9" in capsys.readouterr().err
