"""The recipe search behind `qstudio tune`: which trials to try, whether a trial meets the user's goal,
and the search's state on disk after every trial.

Trials are recipes (the built-ins this machine can run for the model's kind, and knob variants of them)
measured by the run engine like any other run, so a trial that crashes costs only itself. The state
file is rewritten atomically after each trial: a search that is cancelled, killed or out of budget
still leaves its best recipe (or, when nothing meets the goal, the closest one and how far it is).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from studio.core.capability import assess
from studio.core.hardware import HardwareInfo
from studio.core.isa import likely_slower
from studio.core.model import ModelInfo
from studio.core.recipe import Recipe, builtin_recipes
from studio.core.results import RecipeResult
from studio.core.units import human_bytes

Objective = Literal["latency", "throughput", "size", "memory"]
STATE_FILE = "tune.json"
EPSILON = 1e-9  # a drop of exactly the allowed points (0.90 -> 0.89 is 1.0000000000000009) still passes
BEST_FILE = "best.toml"
REPORT_FILE = "report.html"
# Trials whose objectives differ by less than this share are a tie, which the earlier trial wins (the
# built-in before its variants, the winner before its refinements): timing noise does not pick a recipe.
TIE = 0.03

# Fastest-likely first, as INC's `auto` orders its search: INT8 kernels, then INT4, FP16, FP32 runtimes.
_ORDER = {("int8", "dynamic"): 0, ("int4", "weight-only"): 1, ("int8", "static"): 2, ("fp16", "none"): 3}


class TuneGoal(BaseModel):
    """What a trial must keep (against the FP32 reference) and what the search minimises."""

    max_accuracy_drop: float = 1.0  # points of task accuracy (classifiers with labels)
    min_agreement: float = 0.98  # top-1 agreement; for a causal LM, same top-1 over the scored tokens
    max_perplexity_rise: float = 0.10  # causal LMs: relative
    # Mean KL(FP32 || trial) over the scored tokens, llama.cpp's "Mean KLD" (causal LMs; a classifier's KL
    # over its labels where the user asks for it). None: not part of the goal.
    max_kld: float | None = None
    objective: Objective = "latency"


class Trial(BaseModel):
    """One measured recipe: its figures as `qstudio run` reports them, and its standing against the goal."""

    name: str
    recipe_toml: str
    status: str
    reason: str = ""
    meets_goal: bool = False
    distance_to_goal: float | None = None  # points short of the goal (0 when met); None: did not run
    shortfall: dict[str, float] = Field(default_factory=dict)
    objective_value: float | None = None  # smaller is better (throughput is negated)
    run_id: int | None = None  # the recorded run it was measured in (`qstudio export RUN NAME`)
    reference_spread: float | None = None  # how far that run's reference's timing rounds disagreed
    result: dict[str, Any] = Field(default_factory=dict)  # the RecipeResult, without its top-k

    def flat(self) -> dict[str, Any]:
        """As `--json` shows it: the run result's keys, with the trial's standing."""
        return self.result | {
            "recipe": self.name,
            "recipe_toml": self.recipe_toml,
            "status": self.status,
            "reason": self.reason,
            "meets_goal": self.meets_goal,
            "distance_to_goal": self.distance_to_goal,
            "shortfall": self.shortfall,
            "objective_value": self.objective_value,
            "run_id": self.run_id,
            "reference_spread": self.reference_spread,
        }


class TuneState(BaseModel):
    """Everything `qstudio tune --json` promises, rewritten after each trial."""

    run_ids: list[int] = Field(default_factory=list)
    goal: TuneGoal
    model: str
    planned: list[str]  # trial names in the order they are tried
    trials: list[Trial] = Field(default_factory=list)
    reference: dict[str, Any] = Field(default_factory=dict)
    best: Trial | None = None
    best_builtin: Trial | None = None
    pareto: list[str] = Field(default_factory=list)
    finished: bool = False
    stopped_by: str = ""  # "", "budget", "max-trials", "cancelled"

    @property
    def run_id(self) -> int | None:
        return self.run_ids[-1] if self.run_ids else None

    def done(self) -> set[str]:
        return {trial.name for trial in self.trials}

    def rejudge(self) -> None:
        """Objective values, best, Pareto front and best built-in from the trials' figures, by this
        version's rules (`objective_value`, `standing`): a state saved by an earlier version resumes right."""
        for trial in self.trials:
            if trial.status == "ok" and trial.result:
                measured = RecipeResult.model_validate(trial.result)
                trial.objective_value = objective_value(measured, self.goal.objective)
        now = standing(self.trials, self.goal.objective)
        self.best, self.pareto, self.best_builtin = now.best, now.pareto, now.best_builtin

    def drop_moot_steps(self) -> None:
        """Once a fallback step (a "-keep" trial) holds the goal, the steps planned after it are moot (the
        fewer nodes in float, the better): a tune that skipped them is finished, and a resume skips them."""
        if any(t.meets_goal and "-keep" in t.name for t in self.trials):
            done = self.done()
            self.planned = [n for n in self.planned if n in done or "-keep" not in n]

    def payload(self) -> dict[str, Any]:
        """The documented keys (run_id, goal, best, pareto, trials) and, under `state`, what resume reads."""
        return {
            "run_id": self.run_id,
            "goal": self.goal.model_dump(mode="json"),
            "best": self.best.flat() if self.best else None,
            "best_builtin": self.best_builtin.flat() if self.best_builtin else None,
            "pareto": self.pareto,
            "trials": [trial.flat() for trial in self.trials],
            "planned": self.planned,
            "finished": self.finished,
            "stopped_by": self.stopped_by,
            "state": self.model_dump(mode="json"),
        }

    def save(self, folder: Path) -> None:
        """tune.json and best.toml, each written whole or not at all (a kill -9 leaves the last good one)."""
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / STATE_FILE, json.dumps(self.payload(), indent=1))
        if self.best is not None:
            _atomic_write(folder / BEST_FILE, self.best.recipe_toml)
        from studio.core.tune_report import tune_html

        _atomic_write(folder / REPORT_FILE, tune_html(self))

    @classmethod
    def load(cls, folder: Path) -> TuneState:
        from studio.core.errors import StudioError

        path = folder / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StudioError(
                f"cannot resume from {folder}: {error}", "pass the folder a tune wrote"
            ) from None
        return cls.model_validate(data["state"])


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def plan_trials(
    model: ModelInfo,
    hardware: HardwareInfo,
    only: list[Recipe] | None = None,
    objective: Objective = "latency",
) -> list[Recipe]:
    """The search space on this machine: every built-in recipe for the model's kind (or the `only` ones)
    that can run here (greyed ones are never tried), fastest-likely first, plus per-channel flipped for
    the INT8 ones. When speed is the objective, a recipe the catalogue expects to run slower than FP32 on
    this CPU (torchao's dynamic INT8 without VNNI, static QDQ INT8 on AVX2 ...) is tried last: it is still
    tried, but a budget is spent on the likely winners first. The FP32 reference runs anyway: no trial."""
    from studio.core.compare import reference_recipe

    reference = reference_recipe(model).artifact_fields()
    trials: list[tuple[bool, Recipe]] = []
    for recipe in only if only is not None else builtin_recipes(model.task):
        if recipe.artifact_fields() == reference or not recipe.suits(model.task):
            continue
        if not assess(recipe, hardware, model).available:
            continue
        late = expected_slower(recipe, hardware, model, objective)
        trials.append((late, recipe))
        if recipe.precision == "int8" and recipe.mode in ("static", "dynamic"):
            current, flipped = (
                ("per-channel", "per-tensor") if recipe.per_channel else ("per-tensor", "per-channel")
            )
            said = f"{current} weights"  # the built-in's description names its granularity: say the variant's
            title = recipe.title
            description = (
                title.replace(said, f"{flipped} weights") if said in title else f"{title}, {flipped} weights"
            )
            trials.append(
                (
                    late,
                    recipe.model_copy(
                        update={
                            "name": f"{recipe.name}-{flipped}",
                            "per_channel": not recipe.per_channel,
                            "description": description,
                        }
                    ),
                )
            )
    ordered = sorted(trials, key=lambda t: (t[0], _ORDER.get((t[1].precision, t[1].mode), 9)))
    return [recipe for _, recipe in ordered]


def expected_slower(recipe: Recipe, hardware: HardwareInfo, model: ModelInfo, objective: Objective) -> bool:
    """Whether, with speed as the objective, the catalogue expects `recipe` to run no faster than FP32 on
    this CPU (its notice says so): the search tries such recipes last."""
    speed = objective in ("latency", "throughput")
    return speed and likely_slower(assess(recipe, hardware, model).notice)


def refine_trials(best: Recipe, hardware: HardwareInfo) -> list[Recipe]:
    """The knobs of the best passing recipe, tried once it is known (INC's "tune the winner" step): thread
    counts (runtime only: its artifact is reused), graph fusion off for ONNX Runtime recipes, for INT4
    larger blocks, for static INT8 twice the calibration samples. Each variant is named for what it
    changes."""
    cores = max(1, hardware.cpu.logical_cores)
    variants: list[Recipe] = []

    def add(suffix: str, description: str, **update: Any) -> None:
        variants.append(
            best.model_copy(
                update={
                    "name": f"{best.name}-{suffix}",
                    "description": f"{best.title}, {description}",
                    **update,
                }
            )
        )

    if best.device == "cpu":
        # threads = 0 is the runtimes' default, one per physical core: that count again is no variant.
        running = best.threads or default_threads(hardware)
        counts = sorted({1, max(1, cores // 2), cores} - {running})
        for count in counts:
            add(f"t{count}", f"{count} thread{'s' if count > 1 else ''}", threads=count)
    encoder = "text-generation" not in best.tasks  # an LLM graph is fused by ORT at load time, not offline
    if best.backend.startswith("ort-") and best.optimize_graph and encoder:  # fusion can cost accuracy
        add("unfused", "graph not fused", optimize_graph=False)
    if best.mode == "weight-only" and best.backend == "ort-int4":
        for block in (64, 128):
            if block > best.block_size:
                add(f"b{block}", f"blocks of {block}", block_size=block)
        if best.device == "cpu" and best.accuracy_level not in (None, 4):  # None is 4 on CPU already
            add("acc4", "INT8 compute (accuracy level 4)", accuracy_level=4)
    if best.mode == "static" and best.calibration is not None and best.calibration.samples < 1024:
        samples = best.calibration.samples * 2
        add(f"cal{samples}", f"{samples} calibration samples",
            calibration=best.calibration.model_copy(update={"samples": samples}))  # fmt: skip
    return variants


def default_threads(hardware: HardwareInfo) -> int:
    """How many threads ONNX Runtime and torch use when a recipe leaves `threads` at 0: one per physical core."""
    return hardware.cpu.physical_cores or hardware.cpu.logical_cores or 1


def objective_value(result: RecipeResult, objective: Objective) -> float | None:
    """Smaller is better. Speed is relative to the FP32 reference timed in the trial's own run (in its
    interleaved rounds): latency is the time per input (a causal LM: per decoded token) as a share of the
    reference's, 1 / speed-up, and throughput the negated speed-up. A tune's stages are separate runs,
    minutes apart; on a machine whose speed drifts between them, absolute milliseconds would compare
    moments, not recipes. None when no speed-up was measured (the trial cannot be ranked by speed)."""
    if objective in ("latency", "throughput"):
        speedup = result.speedup_vs_reference
        if not speedup:
            return None
        return 1.0 / speedup if objective == "latency" else -speedup
    return _size_or_memory(result, objective)


def objective_text(value: float | None, objective: str) -> str:
    """An objective value as a user reads it: a speed-up against FP32, or a size (a tiny model's in KB)."""
    if value is None:
        return "not measured"
    if objective == "latency":
        return f"{1 / value:.2f}x FP32's speed"
    if objective == "throughput":
        return f"{-value:.2f}x FP32's throughput"
    return f"{human_bytes(value)} {'on disk' if objective == 'size' else 'peak memory'}"


def _size_or_memory(result: RecipeResult, objective: str) -> float | None:
    value = result.size_bytes if objective == "size" else result.peak_rss_bytes
    return float(value) if value is not None else None


def judge(result: RecipeResult, reference: RecipeResult, goal: TuneGoal) -> Trial:
    """A result as a trial: meets the goal or not, and by how many points it falls short."""
    shortfall: dict[str, float] = {}
    if result.ok:
        if result.top1_agreement is not None and result.top1_agreement < goal.min_agreement - EPSILON:
            shortfall["agreement_points"] = round((goal.min_agreement - result.top1_agreement) * 100, 3)
        if result.accuracy is not None and reference.accuracy is not None:
            drop = (reference.accuracy - result.accuracy) * 100
            if drop > goal.max_accuracy_drop + EPSILON:
                shortfall["accuracy_points"] = round(drop - goal.max_accuracy_drop, 3)
        if result.perplexity is not None and reference.perplexity:
            rise = result.perplexity / reference.perplexity - 1
            if rise > goal.max_perplexity_rise + EPSILON:
                shortfall["perplexity_points"] = round((rise - goal.max_perplexity_rise) * 100, 3)
        if goal.max_kld is not None and result.kl is not None and result.kl > goal.max_kld + EPSILON:
            shortfall["kld_points"] = round((result.kl - goal.max_kld) * 100, 3)  # hundredths of a nat
    return Trial(
        name=result.recipe,
        recipe_toml=result.recipe_toml,
        status=result.status,
        reason=result.reason,
        meets_goal=result.ok and not shortfall,
        distance_to_goal=round(sum(shortfall.values()), 3) if result.ok else None,
        shortfall=shortfall,
        objective_value=objective_value(result, goal.objective) if result.ok else None,
        reference_spread=reference.latency_spread,
        result=result.model_dump(mode="json", exclude={"topk", "continuations", "continuation_tokens"}),
    )


@dataclass(frozen=True)
class Standing:
    best: Trial | None
    pareto: list[str]
    best_builtin: Trial | None = None  # the same choice among the built-in recipes only: what the tune beats


def _margin(trial: Trial, objective: Objective, other: Trial | None = None) -> float:
    """How much faster than `other` `trial` must be to count as faster: the tie margin, or half of how far
    its timing rounds disagreed when that is more (on a noisy machine a 6% lead inside a 36% spread is
    noise). Trials of different runs have each their speed-up against their own run's reference, whose
    noise does not cancel between them as it does within a run: half of each reference's spread is added
    (a torch FP32 reference whose rounds differ by 29% moves every speed-up of its run). Sizes and memory
    are not timed: the tie margin only."""
    if objective not in ("latency", "throughput"):
        return TIE
    margin = max(TIE, float(trial.result.get("latency_spread") or 0.0) / 2)
    if other is not None and other.run_id != trial.run_id:
        margin = max(margin, ((trial.reference_spread or 0.0) + (other.reference_spread or 0.0)) / 2)
    return margin


def leads(trial: Trial, other: Trial, objective: Objective = "latency") -> bool:
    """Whether `trial` beats `other` by more than timing noise (`_margin`); untimed trials lead nothing."""
    if trial.objective_value is None or other.objective_value is None:
        return False
    value = other.objective_value
    return trial.objective_value < value - abs(value) * _margin(trial, objective, other)


def rivals(trials: list[Trial], best: Trial, objective: Objective = "latency", most: int = 2) -> list[Trial]:
    """The passing trials `best` does not lead beyond timing noise, fastest first (at most `most`). They go
    into the refining run with it: re-measured there, `best`'s speed-up is of another run than theirs, and
    the choice between figures that close would rest on two references' noise instead of shared rounds."""
    close = [
        t
        for t in trials
        if t.meets_goal
        and t.name != best.name
        and t.objective_value is not None
        and not leads(best, t, objective)
    ]
    return sorted(close, key=lambda t: t.objective_value or 0.0)[:most]


def _best(ran: list[Trial], objective: Objective = "latency") -> Trial | None:
    """The fastest of those meeting the goal (an earlier one wins a tie, see `_margin`), else the
    closest to it."""
    passing = [t for t in ran if t.meets_goal]
    if passing:
        fastest = min(passing, key=lambda t: t.objective_value or 0.0)
        value = fastest.objective_value or 0.0
        return next(
            t
            for t in passing
            if (t.objective_value or 0.0) <= value + abs(value) * _margin(fastest, objective, t)
        )
    if ran:
        return min(ran, key=lambda t: (t.distance_to_goal or 0.0, t.objective_value or 0.0))
    return None


def standing(trials: list[Trial], objective: Objective = "latency") -> Standing:
    """The best trial (the fastest of those meeting the goal, else the closest to it) and the Pareto front
    of objective against agreement among the trials that ran."""
    ran = [t for t in trials if t.status == "ok" and t.objective_value is not None]
    builtin = {r.name for r in builtin_recipes()}

    def agreement(t: Trial) -> float:
        return float(t.result.get("top1_agreement") or 0.0)

    pareto = [
        t.name
        for t in ran
        if not any(
            (o.objective_value or 0.0) <= (t.objective_value or 0.0)
            and agreement(o) >= agreement(t)
            and ((o.objective_value or 0.0) < (t.objective_value or 0.0) or agreement(o) > agreement(t))
            for o in ran
        )
    ]
    return Standing(_best(ran, objective), pareto, _best([t for t in ran if t.name in builtin], objective))


def parse_budget(text: str | None) -> float | None:
    """'15m', '90s', '1h' or plain seconds; None for no budget."""
    from studio.core.errors import StudioError

    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise StudioError(f"budget '{text}' is not a duration", "write e.g. 15m, 90s or 1h") from None


def best_of_run(store: Any, run_id: int) -> tuple[int, str]:
    """`qstudio export RUN best`: the run and name of the best trial of the tune that recorded run `run_id`."""
    from studio.core.errors import StudioError

    folder = store.request(run_id).get("tune_dir")
    if not folder:
        raise StudioError(
            f"run {run_id} is not a tune's run, so it has no best trial",
            f"name a recipe of it (see `qstudio history {run_id}`)",
        )
    state = TuneState.load(Path(folder))
    if state.best is None or state.best.run_id is None:
        raise StudioError(f"the tune in {folder} has no measured trial yet", "resume it or run it again")
    return state.best.run_id, state.best.name
