"""`qstudio tune`: the search space, the goal, and a state that survives kill -9 and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from studio.core.capability import assess
from studio.core.compare import bare_result
from studio.core.errors import StudioError
from studio.core.hardware import probe
from studio.core.model import open_model
from studio.core.recipe import builtin_recipes, resolve_recipe
from studio.core.results import Latency
from studio.core.tune import TuneGoal, best_of_run, judge, plan_trials, standing
from tests.core.test_cli import qstudio
from tests.fakes.nvml import FakeNvml

FAST = ["--warmup", "1", "--iterations", "3", "--seconds", "0", "--rounds", "0"]


def test_the_search_never_tries_a_greyed_recipe(tiny_classifier: Path) -> None:
    info = open_model(str(tiny_classifier)).info
    hardware = probe(FakeNvml.missing())
    trials = plan_trials(info, hardware)
    names = {t.name for t in trials}
    greyed = {r.name for r in builtin_recipes() if not assess(r, hardware, info).available}
    assert greyed and not names & greyed  # GPU recipes on this machine, LLM recipes for a classifier
    assert "torch-fp32" not in names  # the reference runs anyway
    assert "ort-int8-dynamic" in names and "ort-int8-dynamic-per-tensor" in names
    assert trials[0].mode == "dynamic"  # fastest-likely first


def _result(name: str, p50: float, agreement: float, accuracy: float, reference_p50: float = 10.0) -> object:
    """A measured result whose speed-up is against a reference timed at `reference_p50` in its own run."""
    base = bare_result(resolve_recipe("ort-int8-dynamic"), "ok", "")
    return base.model_copy(
        update={
            "recipe": name,
            "latency_ms": Latency(p50=p50, p90=p50, p99=p50, mean=p50),
            "speedup_vs_reference": reference_p50 / p50,
            "top1_agreement": agreement,
            "accuracy": accuracy,
        }
    )


def test_the_fastest_passing_trial_wins_and_the_closest_stands_in_when_none_passes() -> None:
    goal = TuneGoal()
    reference = _result("ref", 10.0, 1.0, 0.90)
    fast_bad = judge(_result("fast", 2.0, 0.95, 0.89), reference, goal)
    slow_good = judge(_result("slow", 5.0, 0.99, 0.90), reference, goal)
    assert not fast_bad.meets_goal and fast_bad.shortfall == {"agreement_points": 3.0}
    assert slow_good.meets_goal and slow_good.distance_to_goal == 0
    now = standing([fast_bad, slow_good])
    assert now.best is not None and now.best.name == "slow"
    assert set(now.pareto) == {"fast", "slow"}  # neither dominates the other
    strict = TuneGoal(min_agreement=0.999)
    closest = standing([judge(_result("a", 2.0, 0.95, 0.9), reference, strict),
                        judge(_result("b", 3.0, 0.99, 0.9), reference, strict)])  # fmt: skip
    assert closest.best is not None and closest.best.name == "b" and not closest.best.meets_goal
    assert closest.best.distance_to_goal == 0.9


def test_a_variant_must_beat_the_earlier_trial_by_more_than_noise() -> None:
    reference = _result("ref", 10.0, 1.0, 0.90)
    first = judge(_result("built-in", 5.0, 0.99, 0.90), reference, TuneGoal())
    near = judge(_result("built-in-t2", 4.9, 0.99, 0.90), reference, TuneGoal())  # 2% faster: a tie
    far = judge(_result("built-in-t4", 4.0, 0.99, 0.90), reference, TuneGoal())
    assert standing([first, near]).best.name == "built-in"
    assert standing([first, near, far]).best.name == "built-in-t4"
    # 20% faster, but its timing rounds disagreed by 50%: within the noise, the earlier trial stands
    noisy = far.model_copy(update={"result": far.result | {"latency_spread": 0.5}})
    assert standing([first, near, noisy]).best.name == "built-in"
    assert standing([first, near, noisy], "size").best.name == "built-in-t4"  # sizes are not timed


def test_the_winners_close_rivals_are_those_it_does_not_lead_beyond_noise() -> None:
    """They are timed again beside it in the refining run, so the final choice rests on shared rounds."""
    from studio.core.tune import rivals

    reference = _result("ref", 10.0, 1.0, 0.90)
    best = judge(_result("best", 5.0, 0.99, 0.90), reference, TuneGoal())
    tie = judge(_result("tie", 5.1, 0.99, 0.90), reference, TuneGoal())  # 2% slower
    faster = judge(_result("faster", 4.9, 0.99, 0.90), reference, TuneGoal())  # an earlier tie-winner's rival
    slower = judge(_result("slower", 6.0, 0.99, 0.90), reference, TuneGoal())  # 20% slower: clearly beaten
    failing = judge(_result("failing", 4.0, 0.90, 0.90), reference, TuneGoal())
    trials = [best, tie, faster, slower, failing]
    assert [t.name for t in rivals(trials, best)] == ["faster", "tie"]
    assert [t.name for t in rivals(trials, best, most=1)] == ["faster"]
    # The winner's own rounds disagreed by 50%: a 20% lead is noise, the slower trial is a rival too.
    noisy = best.model_copy(update={"result": best.result | {"latency_spread": 0.5}})
    assert [t.name for t in rivals(trials, noisy, most=3)] == ["faster", "tie", "slower"]


def test_trials_of_different_runs_are_ranked_by_their_speed_up_in_their_own_run() -> None:
    """A tune's stages are runs minutes apart. Here the machine was twice as slow during the second run:
    its reference took 20 ms instead of 10. "late" is faster relative to FP32 (2.5x against 2.0x) though
    its milliseconds are larger; the ranking follows the speed-ups, each timed beside its own reference."""
    from studio.core.tune import TuneState, objective_text

    reference = _result("ref", 10.0, 1.0, 0.90)
    early = judge(_result("early", 5.0, 0.99, 0.90, reference_p50=10.0), reference, TuneGoal())
    late = judge(_result("late", 8.0, 0.99, 0.90, reference_p50=20.0), reference, TuneGoal())
    assert early.objective_value == pytest.approx(0.5) and late.objective_value == pytest.approx(0.4)
    assert standing([early, late]).best.name == "late"
    assert objective_text(late.objective_value, "latency") == "2.50x FP32's speed"
    assert objective_text(61_440, "size") == "60.0 KB on disk"  # a tiny model's size, not "0.0 MB"
    # Each run's speed-ups share its own reference's rounds: across runs that reference noise adds to the
    # margin. References steady to 10%: a 25% lead stands; references whose rounds differed by 30%: a tie,
    # which the earlier trial wins.
    def runs(spread: float) -> list:
        return [early.model_copy(update={"run_id": 1, "reference_spread": spread}),
                late.model_copy(update={"run_id": 2, "reference_spread": spread})]  # fmt: skip

    assert standing(runs(0.10)).best.name == "late"
    assert standing(runs(0.30)).best.name == "early"
    throughput = judge(_result("late", 8.0, 0.99, 0.90, reference_p50=20.0), reference,
                       TuneGoal(objective="throughput"))  # fmt: skip
    assert throughput.objective_value == pytest.approx(-2.5)
    untimed = judge(_result("untimed", 8.0, 0.99, 0.90).model_copy(update={"speedup_vs_reference": None}),
                    reference, TuneGoal())  # fmt: skip
    assert untimed.objective_value is None and standing([untimed]).best is None  # no speed to rank by

    # A state written when objectives were milliseconds is re-judged from the trials' figures on resume.
    old = TuneState(goal=TuneGoal(), model="m", planned=["early", "late"],
                    trials=[early.model_copy(update={"objective_value": 5.0}),
                            late.model_copy(update={"objective_value": 8.0})])  # fmt: skip
    old.rejudge()
    assert [t.objective_value for t in old.trials] == pytest.approx([0.5, 0.4])
    assert old.best.name == "late"


def test_a_kld_budget_is_part_of_the_goal_when_set() -> None:
    reference = _result("ref", 10.0, 1.0, 0.90)
    drifting = _result("drift", 5.0, 0.99, 0.90).model_copy(update={"kl": 0.25})
    assert judge(drifting, reference, TuneGoal()).meets_goal  # no KLD budget: KL is not judged
    trial = judge(drifting, reference, TuneGoal(max_kld=0.1))
    assert not trial.meets_goal and trial.shortfall == {"kld_points": 15.0}  # hundredths of a nat


def test_the_fallback_starts_from_a_failing_quantized_trial_only_where_it_could_win() -> None:
    """Nothing passes: the closest ONNX Runtime INT8/INT4 trial. Something passes: only a failing trial
    faster than it (beyond a tie) is worth rescuing; torch recipes and earlier fallback steps never are."""
    from studio.cli.tune import _fallback_start
    from studio.core.tune import TuneState

    reference = _result("ref", 10.0, 1.0, 0.90)

    def trial(name: str, recipe: str, p50: float, agreement: float):
        result = _result(name, p50, agreement, 0.90).model_copy(
            update={"recipe_toml": resolve_recipe(recipe).to_toml()}
        )
        return judge(result, reference, TuneGoal())

    static = trial("ort-int8-static-minmax", "ort-int8-static-minmax", 4.0, 0.95)
    int4 = trial("ort-int4-weight-only", "ort-int4-weight-only", 3.0, 0.90)
    torchao = trial("torch-int8-dynamic", "torch-int8-dynamic", 1.0, 0.97)
    kept = trial("ort-int8-static-minmax-keep1-float", "ort-int8-static-minmax", 4.1, 0.97)

    def state(*trials):
        return TuneState(goal=TuneGoal(), model="m", planned=[t.name for t in trials], trials=list(trials))

    assert _fallback_start(state(static, int4, torchao, kept)).name == "ort-int8-static-minmax"  # closest
    slower_pass = trial("ort-fp32", "ort-fp32", 6.0, 1.0)
    assert _fallback_start(state(static, slower_pass)).name == "ort-int8-static-minmax"
    faster_pass = trial("ort-int8-dynamic", "ort-int8-dynamic", 3.0, 0.99)
    assert _fallback_start(state(static, int4, faster_pass)) is None  # none could beat it
    tie = trial("ort-int8-dynamic", "ort-int8-dynamic", 4.05, 0.99)
    assert _fallback_start(state(static, tie)) is None  # 1% faster is noise
    # Trials of different runs: the lead must also clear half of both runs' reference spreads.
    passing_run1 = trial("ort-int8-dynamic", "ort-int8-dynamic", 4.4, 0.99).model_copy(update={"run_id": 1})
    failing_run2 = static.model_copy(update={"run_id": 2})  # 10% faster, in another run

    def spreads(spread: float) -> list:
        return [passing_run1.model_copy(update={"reference_spread": spread}),
                failing_run2.model_copy(update={"reference_spread": spread})]  # fmt: skip

    assert _fallback_start(state(*spreads(0.05))).name == "ort-int8-static-minmax"
    assert _fallback_start(state(*spreads(0.30))) is None  # inside both references' noise


def test_once_a_fallback_step_holds_the_steps_after_it_are_dropped_from_the_plan() -> None:
    """Whatever stage ran after the fallback (the recipes expected slower, last), the tune that skipped
    the moot steps is finished, not stopped short of its plan."""
    from studio.core.tune import TuneState

    reference = _result("ref", 10.0, 1.0, 0.90)
    misses = judge(_result("s", 4.0, 0.95, 0.90), reference, TuneGoal())
    holds = judge(_result("s-keep1-float", 4.5, 0.99, 0.90), reference, TuneGoal())
    late = judge(_result("torch-int8-dynamic", 20.0, 0.99, 0.90), reference, TuneGoal())
    planned = ["s", "s-keep1-float", "s-keep2-float", "s-keep4-float", "torch-int8-dynamic"]
    state = TuneState(goal=TuneGoal(), model="m", planned=planned, trials=[misses, holds, late])
    state.drop_moot_steps()
    assert state.planned == ["s", "s-keep1-float", "torch-int8-dynamic"]
    still = TuneState(goal=TuneGoal(), model="m", planned=planned, trials=[misses, holds.model_copy(update={"meets_goal": False})])
    still.drop_moot_steps()
    assert still.planned == planned  # no step held: the rest of the fallback is still to run


def test_best_names_a_tunes_run_only() -> None:
    class PlainRuns:
        def request(self, run_id: int) -> dict:
            return {"model": "demo", "recipes": []}

    with pytest.raises(StudioError, match="run 7 is not a tune's run"):
        best_of_run(PlainRuns(), 7)


def _trials(path: Path) -> list[str]:
    try:
        return [t["recipe"] for t in json.loads(path.read_text())["trials"]]
    except (OSError, ValueError, KeyError):
        return []


def test_a_killed_tune_leaves_its_best_and_resumes_without_redoing_trials(
    tiny_classifier: Path, tiny_eval: Path, tiny_calibration: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "tune"
    command = [
        sys.executable, "-m", "studio.cli.main", "tune", "--model", str(tiny_classifier), "--eval", str(tiny_eval),
        "--calibration", str(tiny_calibration), "--out", str(folder), "--max-trials", "2", *FAST,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = folder / "tune.json"
    deadline = time.monotonic() + 300
    while len(_trials(state)) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the tune and its worker, mid-search
    process.wait()
    before = _trials(state)
    assert len(before) >= 1, before
    saved = json.loads(state.read_text())
    assert saved["best"]["recipe"] in before and (folder / "best.toml").read_text().startswith("name")
    assert {"run_id", "goal", "best", "pareto", "trials"} <= set(saved)
    assert {"latency_ms", "top1_agreement", "meets_goal", "distance_to_goal", "recipe_toml"} <= set(saved["best"])
    out = tmp_path / "resumed.json"
    resumed = qstudio("tune", "--resume", str(folder), "--max-trials", "2", "--json", str(out), *FAST, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    payload = json.loads(out.read_text())
    after = [t["recipe"] for t in payload["trials"]]
    assert after[: len(before)] == before and len(after) == 2  # finished trials kept, not run again
    assert payload["planned"][:2] == after
    assert f"{len(before)} of {len(payload['planned'])} trials done" in resumed.stderr
    assert payload["best"]["recipe"] in after and "export it: qstudio export" in resumed.stdout


def test_when_nothing_meets_the_goal_the_sensitive_nodes_are_kept_in_float(
    tiny_eval: Path, tiny_calibration: Path, tmp_path: Path
) -> None:
    """The fragile head of test_sensitivity breaks both static INT8 trials; the fallback step keeps
    the node sensitivity ranks worst in float, and that trial meets the goal."""
    from tests.core.test_sensitivity import FRAGILE, make_fragile

    model = make_fragile(tmp_path / "fragile")
    out = tmp_path / "tune.json"
    result = qstudio(
        "tune", "--model", str(model), "--eval", str(tiny_eval), "--calibration", str(tiny_calibration),
        "--recipe", "ort-int8-static-minmax", "--out", str(tmp_path / "t"), "--json", str(out), *FAST, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    names = [t["recipe"] for t in payload["trials"]]
    assert names[:2] == ["ort-int8-static-minmax", "ort-int8-static-minmax-per-tensor"]
    assert not any(t["meets_goal"] for t in payload["trials"][:2])
    # Of the closest: its embeddings in float first (an op type), then its worst node.
    assert names[2].startswith("ort-int8-static-minmax") and names[2].endswith("-keep-gather-float")
    gather = payload["trials"][2]
    assert not gather["meets_goal"] and tomllib.loads(gather["recipe_toml"])["exclude_ops"] == ["Gather"]
    assert names[3].startswith("ort-int8-static-minmax") and names[3].endswith("-keep1-float")
    best = payload["best"]
    assert best["meets_goal"] and "-keep" in best["recipe"] and FRAGILE in best["recipe_toml"]
    assert payload["best_builtin"]["recipe"] == "ort-int8-static-minmax"  # the closest of the built-ins
    report = (tmp_path / "t" / "report.html").read_text()
    assert "<svg" in report and f"qstudio export {best['run_id']} best" in report and best["recipe"] in report
    first_run = payload["state"]["run_ids"][0]
    assert best["run_id"] != first_run  # the fallback ran as its own run
    exported = qstudio("export", str(first_run), "best", "--to", str(tmp_path / "best"), "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["recipe"] == best["recipe"]


def test_the_winners_knobs_are_refined_and_runtime_knobs_reuse_its_artifact(
    monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, tiny_eval: Path, tiny_calibration: Path, tmp_path: Path,
    capsys,
) -> None:  # fmt: skip
    """The winner is re-measured in the refining run, so its variants share its timing rounds, and so is
    its close rival (here whichever other trial passes: which one is close is timing noise, `tune.rivals`
    has its own test), after it: the earlier trial still wins a tie."""
    from studio.core import tune

    monkeypatch.setattr(tune, "rivals", lambda trials, best, objective: [t for t in trials if t.name != best.name])
    out = tmp_path / "tune.json"
    code = _tune_in_process(
        monkeypatch, tmp_path, "--model", str(tiny_classifier), "--eval", str(tiny_eval), "--calibration",
        str(tiny_calibration), "--recipe", "ort-int8-dynamic", "--out", str(tmp_path / "t"), "--json", str(out), *FAST,
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out.read_text())
    names = [t["recipe"] for t in payload["trials"]]
    assert set(names[:2]) == {"ort-int8-dynamic", "ort-int8-dynamic-per-tensor"}
    refined = payload["trials"][2:]
    winner = refined[0]["recipe"].rsplit("-", 1)[0]  # every refinement is the winner's name and a knob
    rival = next(n for n in names[:2] if n != winner)
    assert names[:2] == [winner, rival]  # both re-measured, in that order
    assert f"timed again beside it, within its timing noise: {rival}" in capsys.readouterr().err
    from studio.core.tune import default_threads

    cores = os.cpu_count() or 1
    counts = {1, max(1, cores // 2), cores} - {default_threads(probe(FakeNvml.missing()))}  # 0 runs that many
    threads = [t for t in refined if not t["recipe"].endswith("-unfused")]
    assert {t["recipe"] for t in refined} == {f"{winner}-t{n}" for n in counts} | {f"{winner}-unfused"}
    assert {t["threads"] for t in threads} == counts
    refining = payload["state"]["run_ids"][1]
    assert len(set(payload["state"]["run_ids"])) == 2
    assert {t["run_id"] for t in payload["trials"]} == {refining}  # all four in the refining run's rounds
    assert all(t["from_cache"] for t in threads)  # threads are a runtime knob: the winner's artifact is reused
    unfused = next(t for t in refined if t["recipe"].endswith("-unfused"))
    assert not unfused["from_cache"] and "optimize_graph = false" in unfused["recipe_toml"]


def test_refinements_per_recipe_kind() -> None:
    from studio.core.tune import refine_trials

    machine = probe(FakeNvml.missing())
    cpu = machine.cpu.model_copy(update={"logical_cores": 8, "physical_cores": 4})
    hardware = machine.model_copy(update={"cpu": cpu})
    int4 = {r.name for r in refine_trials(resolve_recipe("ort-int4-weight-only"), hardware)}
    # threads 0 already runs 4 (one per physical core): 1 and 8 are the variants
    assert int4 == {f"ort-int4-weight-only-{s}" for s in ("t1", "t8", "unfused", "b64", "b128")}
    static = refine_trials(resolve_recipe("ort-int8-static-minmax"), hardware)
    calibrated = [r for r in static if r.name.endswith("-cal256")]
    assert len(calibrated) == 1 and calibrated[0].calibration.samples == 256


def test_recipes_expected_slower_than_fp32_on_this_cpu_are_tried_last_when_speed_is_the_goal(
    tiny_classifier: Path,
) -> None:
    """On an AVX2-only CPU torchao's dynamic INT8 and static QDQ INT8 are marked "expect slower than FP32
    here": still tried (marked is not greyed), but after the rest when the objective is speed."""
    info = open_model(str(tiny_classifier)).info
    hardware = probe(FakeNvml.missing())
    avx2 = hardware.model_copy(update={"cpu": hardware.cpu.model_copy(update={"flags": ["avx", "avx2", "fma"]})})
    names = [t.name for t in plan_trials(info, avx2)]
    slow = [n for n in names if n.startswith(("torch-int8-dynamic", "ort-int8-static"))]
    assert slow and names[-len(slow):] == slow, names
    assert names[0] == "ort-int8-dynamic"  # ORT's dynamic INT8 still gains on AVX2: first
    by_size = [t.name for t in plan_trials(info, avx2, objective="size")]
    assert by_size[0].startswith(("ort-int8-dynamic", "torch-int8-dynamic")) and set(by_size) == set(names)


def _tune_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> int:
    """`qstudio tune` in this process, so that the hardware it sees and its engine can be faked; the
    engine's workers are real processes, with the test backends registered in them."""
    from studio.backends.registry import REGISTRY
    from studio.cli.main import main
    from studio.core import engine
    from tests.core.test_engine import TEST_BACKENDS
    from tests.fakes import backends

    monkeypatch.setenv("QSTUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(REGISTRY, backends.HANGING.name, backends.HANGING)
    real = engine.RunEngine
    if isinstance(real, type):  # not patched by an earlier call of this test
        monkeypatch.setattr(engine, "RunEngine", lambda **kw: real(test_backends=TEST_BACKENDS, **kw))
    return main(["tune", *args, "--quiet"])


def test_a_budget_spent_during_a_trial_stops_it_and_a_resume_would_run_it_again(
    monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, tiny_eval: Path, tmp_path: Path, capsys
) -> None:
    """A trial that would never end (a quantizer stuck in native code) is stopped when the budget is
    spent, not recorded as a trial (so `--resume` runs it), and the tune ends with what it has."""
    hang = tmp_path / "hang.toml"
    hang.write_text('name = "hang"\nbackend = "test-hang"\nprecision = "fp32"\n')
    started = time.monotonic()
    code = _tune_in_process(
        monkeypatch, tmp_path, "--model", str(tiny_classifier), "--eval", str(tiny_eval), "--recipe", str(hang),
        "--budget", "30s", "--out", str(tmp_path / "t"), *FAST,
    )  # fmt: skip
    assert code == 0 and time.monotonic() - started < 75  # the budget, the worker's stop, the summary
    assert "the budget is spent: stopping hang (a resume runs it again)" in capsys.readouterr().err
    payload = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert payload["trials"] == [] and payload["planned"] == ["hang"] and payload["stopped_by"] == "budget"


def test_recipes_expected_slower_here_run_in_a_last_stage(
    monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, tiny_eval: Path, tmp_path: Path, capsys
) -> None:
    """On an AVX2-only CPU torchao's dynamic INT8 is expected slower than FP32: it is planned, but runs
    in a stage of its own after the others (and after their refinement and fallback, which a goal no trial
    can meet skips here). Stopped by its trial cap, the tune resumes to the end."""
    from studio.core import hardware

    real = hardware.probe

    def avx2(*args, **kwargs):
        found = real(FakeNvml.missing())
        return found.model_copy(update={"cpu": found.cpu.model_copy(update={"flags": ["avx", "avx2", "fma"]})})

    monkeypatch.setattr(hardware, "probe", avx2)
    code = _tune_in_process(
        monkeypatch, tmp_path, "--model", str(tiny_classifier), "--eval", str(tiny_eval), "--min-agreement", "1.01",
        "--recipe", "torch-int8-dynamic", "--recipe", "ort-fp16", "--out", str(tmp_path / "t"), "--max-trials", "2",
        *FAST,
    )  # fmt: skip
    assert code == 0
    assert "last, the recipes expected no faster than FP32 here: torch-int8-dynamic" in capsys.readouterr().err
    stopped = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert [t["recipe"] for t in stopped["trials"]] == ["ort-fp16", "torch-int8-dynamic"]
    assert stopped["stopped_by"] == "max-trials" and not stopped["finished"]
    # Resumed, what stopped it before (the trial cap) does not stop it again: it runs the rest and ends.
    assert _tune_in_process(monkeypatch, tmp_path, "--resume", str(tmp_path / "t"), *FAST) == 0
    request = json.loads((tmp_path / "t" / "request.json").read_text())
    assert request["tune_late"] == ["torch-int8-dynamic", "torch-int8-dynamic-per-channel"]
    payload = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert [t["recipe"] for t in payload["trials"]] == ["ort-fp16", *request["tune_late"]]
    assert len(payload["state"]["run_ids"]) == 3 and payload["finished"] and not payload["stopped_by"]


def test_a_granularity_variant_says_its_own_granularity(tiny_classifier: Path) -> None:
    """"ort-int8-dynamic-per-tensor" must not be described as having per-channel weights."""
    trials = {t.name: t for t in plan_trials(open_model(str(tiny_classifier)).info, probe(FakeNvml.missing()))}
    variant = trials["ort-int8-dynamic-per-tensor"]
    assert not variant.per_channel and "per-tensor weights" in variant.title
    assert "per-channel" not in variant.title, variant.title
