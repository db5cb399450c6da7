"""Interleaved timing rounds: the reference and every recipe timed in turn, in one process, several times.

Each recipe's own worker times it at a different moment, so a neighbour's load shifts one recipe's figure
and not another's. Here every round times all of them back to back (each round in a rotated order), a
speed-up is the ratio of two figures taken in the same round, and the figure reported is the median over
rounds. How far the rounds disagree (the spread) and how much CPU other processes took meanwhile say
whether a figure can be trusted.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.kinds.base import Measurer, Timing
from studio.core.measure import TimingPlan
from studio.core.settings import RunSettings

NOISY_SPREAD = 0.10  # rounds whose p50s differ by more than this (relative to their median): noisy
BUSY_SHARE = 0.25  # other processes used more than this share of all CPUs while timing: a busy machine


def round_settings(settings: RunSettings) -> RunSettings:
    """One round's share of the run's timing plan: the rounds together cost about one plan per recipe."""
    plan, rounds = settings.timing, max(1, settings.timing.rounds)
    per_round = TimingPlan(
        warmup=plan.warmup,  # caches go cold between recipes: each round warms up again, fully
        min_iterations=max(3, math.ceil(plan.min_iterations / rounds)),
        min_seconds=plan.min_seconds / rounds,
        max_iterations=plan.max_iterations,
        rounds=plan.rounds,
    )
    return settings.model_copy(
        update={"timing": per_round, "decode_rounds": max(1, math.ceil(settings.decode_rounds / rounds))}
    )


class OtherLoad:
    """The share of all CPUs that processes other than this one and its parent used while the block ran.

    The parent is the engine (in the window, the GUI itself): its sampling is part of the measurement."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._ours = [psutil.Process()]
        parent = self._ours[0].parent()
        if parent is not None:
            self._ours.append(parent)
        self.share = 0.0

    def _busy(self) -> float:
        times = self._psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        return float(sum(times) - idle)

    def _own(self) -> float:
        total = 0.0
        for process in self._ours:
            try:
                t = process.cpu_times()
            except self._psutil.Error:  # the parent went away: nothing more of ours to count
                continue
            total += t.user + t.system
        return total

    def __enter__(self) -> OtherLoad:
        self._start = (self._busy(), self._own(), time.monotonic())
        return self

    def __exit__(self, *_: object) -> None:
        busy, own, wall = self._busy(), self._own(), time.monotonic()
        seconds = (wall - self._start[2]) * (os.cpu_count() or 1)
        if seconds > 0:
            others = (busy - self._start[0]) - (own - self._start[1])
            self.share = min(1.0, max(0.0, others / seconds))


@dataclass
class Entry:
    """One thing timed each round: a recipe's predictor, or the reference at one recipe's shape."""

    key: str
    recipe: Any
    predictor: Any


@dataclass
class Rounds:
    """Per entry key, its timing in every round; per round, the share of the CPUs others used."""

    timings: dict[str, list[Timing]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)


def interleave(
    measurer: Measurer,
    entries: list[Entry],
    rounds: int,
    report: Callable[[int, int], None] = lambda done, total: None,
) -> Rounds:
    """Time every entry once per round; round r starts at entry r (mod n), so no entry always goes first."""
    out = Rounds({e.key: [] for e in entries})
    for r in range(rounds):
        report(r, rounds)
        with OtherLoad() as load:
            for entry in _rotated(entries, r):
                out.timings[entry.key].append(measurer.time(entry.predictor, entry.recipe, entry.key))
        out.load.append(round(load.share, 3))
    report(rounds, rounds)
    return out


def _rotated(entries: list[Entry], offset: int) -> Iterator[Entry]:
    n = len(entries)
    for i in range(n):
        yield entries[(i + offset) % n]


def median_fields(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over rounds of every numeric field (nested dicts such as latency_ms field by field);
    a field missing or None in any round stays None."""
    out: dict[str, Any] = {}
    for name, first in rows[0].items():
        values = [row.get(name) for row in rows]
        if isinstance(first, dict):
            out[name] = median_fields([v for v in values if isinstance(v, dict)])
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[name] = float(np.median([float(v) for v in values if v is not None]))
        else:
            out[name] = None
    return out


def spread(timings: list[Timing]) -> float | None:
    """(max - min) / median of the rounds' p50 latencies; None with fewer than two rounds."""
    p50s = [t["latency_ms"]["p50"] for t in timings if t.get("latency_ms")]
    if len(p50s) < 2:
        return None
    middle = float(np.median(p50s))
    return float((max(p50s) - min(p50s)) / middle) if middle > 0 else None


def combined_speed(
    measurer: Measurer, timings: list[Timing], reference: list[Timing] | None
) -> dict[str, Any]:
    """A recipe's speed fields from its rounds: each round's fields (speed-ups against the reference of the
    same round), then the median of each field over the rounds."""
    per_round = [measurer.speed_fields(t, reference[i] if reference else None) for i, t in enumerate(timings)]
    return median_fields(per_round)
