"""A tune's report: the goal, the best trial beside the best built-in recipe, the Pareto chart and every
trial, as one HTML file (inline SVG, no scripts) that `qstudio tune` rewrites after each trial."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from studio.core.svg import Point, scatter_chart

if TYPE_CHECKING:
    from studio.core.tune import Trial, TuneState

STYLE = """body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f0f3f8; } td:first-child, th:first-child { text-align: left; }
tr.meets td { background: #e6f4ea; } tr.best td { font-weight: bold; } tr.failed td { color: #888; }
pre { background: #f6f6f6; padding: 8px; } code { background: #f3f3f3; padding: 1px 4px; }"""


def latency_p50(row: dict[str, Any]) -> float | None:
    """A trial's (or the reference's) p50 latency from its JSON, None when it was not timed."""
    latency = row.get("latency_ms")
    return float(latency["p50"]) if isinstance(latency, dict) else None


def speedup(row: dict[str, Any]) -> float | None:
    """A trial's speed-up against the FP32 reference timed in its own run: what the tune ranks by."""
    value = row.get("speedup_vs_reference")
    return float(value) if value else None


def speed_axis(language: bool) -> str:
    """The tune charts' x axis: the speed-up the ranking uses (trials of different runs compare)."""
    return f"{'decode ' if language else ''}speed-up vs FP32 (x, in its own run)"


def is_language(reference: dict[str, Any]) -> bool:
    """Whether a tune's reference (its JSON) is a causal LM's: judged on same top-1, KLD and perplexity."""
    return reference.get("perplexity") is not None


def axis_names(language: bool) -> tuple[str, str]:
    """What a trial's p50 and agreement are called for the model's kind."""
    return ("decode ms per token", "same top-1") if language else ("latency p50 (ms)", "top-1 agreement")


def goal_text(goal: Any, language: bool) -> str:
    """The goal in words, as the tune judges it for the model's kind."""
    kld = "" if goal.max_kld is None else f", mean KLD at most {goal.max_kld:g}"
    if language:
        return (
            f"same top-1 as FP32 on at least {goal.min_agreement:.1%} of the scored tokens, perplexity at most "
            f"{goal.max_perplexity_rise:.0%} above FP32's{kld}"
        )
    return (
        f"at most {goal.max_accuracy_drop:g} accuracy points below FP32, top-1 agreement at least "
        f"{goal.min_agreement:.1%}{kld}"
    )


def quality_loss(row: dict[str, Any], reference: dict[str, Any]) -> str:
    """Accuracy points below FP32, or a causal LM's perplexity rise, as a table cell."""
    if is_language(reference):
        ppl, base = row.get("perplexity"), reference.get("perplexity")
        return "–" if ppl is None or not base else f"{round(ppl / base - 1, 3) + 0.0:+.1%}"  # no "-0.0%"
    accuracy, base = row.get("accuracy"), reference.get("accuracy")
    return "–" if accuracy is None or base is None else f"{(base - accuracy) * 100:.1f}"


def _cell(value: Any, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _row(trial: Trial, reference: dict[str, Any], best: str | None) -> str:
    r = trial.result
    size = r.get("size_bytes")
    verdict = (
        "meets"
        if trial.meets_goal
        else (
            ", ".join(f"{v:g} {k.replace('_', ' ')} short" for k, v in trial.shortfall.items())
            or escape(trial.reason[:120])
            or trial.status
        )
    )
    css = " ".join(
        c for c in ("meets" if trial.meets_goal else "", "best" if trial.name == best else "",
                    "failed" if trial.status != "ok" else "") if c
    )  # fmt: skip
    cells = (
        escape(trial.name),
        trial.status,
        str(r.get("threads") or "default"),
        _cell(latency_p50(r), ".2f"),
        _cell(r.get("speedup_vs_reference"), ".2f", "×"),
        _cell(r.get("latency_spread"), ".0%"),
        _cell(r.get("top1_agreement"), ".1%"),
        quality_loss(r, reference),
        _cell(r.get("kl"), ".4f"),
        _cell(size / 2**20 if size else None, ".1f"),
        verdict,
    )
    return f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _side_by_side(state: TuneState) -> str:
    latency, agreement = axis_names(is_language(state.reference))
    rows = []
    for title, trial in (("tune's best", state.best), ("best built-in recipe", state.best_builtin)):
        if trial is None:
            rows.append(f"<tr><td>{title}</td><td colspan=5>none ran</td></tr>")
            continue
        r = trial.result
        rows.append(
            f"<tr><td>{title}</td><td>{escape(trial.name)}</td><td>{_cell(latency_p50(r), '.2f')}</td>"
            f"<td>{_cell(r.get('speedup_vs_reference'), '.2f', '×')}</td><td>{_cell(r.get('top1_agreement'), '.1%')}</td>"
            f"<td>{'yes' if trial.meets_goal else 'no'}</td></tr>"
        )
    return (
        f"<table><tr><th></th><th>recipe</th><th>{latency}</th><th>× FP32</th><th>{agreement}</th><th>meets goal</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def tune_html(state: TuneState) -> str:
    goal = state.goal
    reference = state.reference
    language = is_language(reference)
    latency, agreement = axis_names(language)
    best = state.best.name if state.best else None
    points = [
        Point(t.name, x, float(t.result["top1_agreement"]), on_front=t.name in state.pareto)
        for t in state.trials
        if t.status == "ok"
        and (x := speedup(t.result)) is not None
        and t.result.get("top1_agreement") is not None
    ]
    if reference:
        points.insert(0, Point(str(reference.get("recipe", "FP32")), 1.0, 1.0, reference=True))
    axis = speed_axis(language)
    chart = scatter_chart(
        points, axis, f"{agreement} with FP32", f"Trials: {agreement} against speed-up", x_unit="x FP32"
    )
    status = (
        "finished" if state.finished else (f"stopped ({state.stopped_by})" if state.stopped_by else "running")
    )
    export = (
        f"<p>Deploy it: <code>qstudio export {state.best.run_id} best --to DIR</code></p>"
        if state.best and state.best.run_id is not None
        else ""
    )
    best_toml = f"<h2>best.toml</h2><pre>{escape(state.best.recipe_toml)}</pre>" if state.best else ""
    headers = ("trial", "status", "threads", latency, "× FP32", "rounds differ", agreement,
               "ΔPPL" if language else "accuracy drop (points)", "KL", "size MB", "goal")  # fmt: skip
    table = (
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
        + "".join(_row(t, reference, best) for t in state.trials) + "</table>"
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tune — {escape(state.model)}</title>
<style>{STYLE}</style></head><body>
<h1>Tune — {escape(state.model)}</h1>
<p>{len(state.trials)} of {len(state.planned)} trials, {status}; runs {", ".join(map(str, state.run_ids)) or "–"}.
Goal: {goal_text(goal, language)}; optimising {goal.objective}.
Speed figures are the median of interleaved timing rounds with the reference; a speed-up is against the
reference at the same threads, batch and length.</p>
<h2>Best, beside the best built-in recipe</h2>
{_side_by_side(state)}
{export}
<h2>Pareto front</h2>
<p>{", ".join(escape(n) for n in state.pareto) or "–"}</p>
{chart}
<h2>Trials</h2>
{table}
{best_toml}
</body></html>
"""
