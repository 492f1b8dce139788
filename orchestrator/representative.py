"""The representative run and the best run of a study (per variant), pure.

The representative run is the completed run whose value of
``representative_metric`` (default: the first of ``summary_metrics``) is closest
to the mean of the finite values; the best run is the one with the best value
by the metric's goal (``goal:``, else min for a loss or an error, else max).
Non-finite values (a diverged seed) are left out, as everywhere
(``seed_table``). A tie goes to the lower run index, so the choice does not
move between saves. ``state_store`` writes both into runner_state.json on every
save and ``summary`` marks them with ``*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.state import StudyState

__all__ = [
    "ChosenRun",
    "Pick",
    "Standouts",
    "metric_goal",
    "pick_runs",
    "standout_lines",
    "standouts",
]


def metric_goal(metric: str, goals: Mapping[str, str]) -> str:
    """``min`` or ``max``: the study's ``goal:`` for ``metric``, else ``min`` for a
    loss or an error (by name), ``max`` for anything else."""
    if metric in goals:
        return goals[metric]
    lowered = metric.lower()
    return "min" if "loss" in lowered or "error" in lowered else "max"


@dataclass(frozen=True)
class Pick:
    """Run indices: the representative and the best; None without a finite value."""

    representative: int | None
    best: int | None


def pick_runs(values: Sequence[tuple[int, float]], goal: str) -> Pick:
    """Over (run index, value) pairs in run order: the run closest to the mean of
    the finite values, and the best one by ``goal``; ties to the first."""
    finite = [(index, value) for index, value in values if math.isfinite(value)]
    if not finite:
        return Pick(None, None)
    mean = sum(value / len(finite) for _, value in finite)  # no overflow near the float max
    representative = min(finite, key=lambda pair: abs(pair[1] - mean))[0]
    choose = min if goal == "min" else max
    return Pick(representative, choose(finite, key=lambda pair: pair[1])[0])


@dataclass(frozen=True)
class ChosenRun:
    index: int
    seed: int
    value: float
    fold: int | None = None  # in a study with folds

    @property
    def place(self) -> str:
        """``seed 8``, or ``fold 1, seed 8`` in a study with folds."""
        return f"seed {self.seed}" if self.fold is None else f"fold {self.fold}, seed {self.seed}"


@dataclass(frozen=True)
class Standouts:
    """One variant's (None: the study's) representative and best run on ``metric``."""

    variant: str | None
    metric: str
    goal: str
    representative: ChosenRun | None
    best: ChosenRun | None


def standouts(state: StudyState) -> tuple[Standouts, ...]:
    """Per variant, in the study's order (one entry for a study of one config).
    Each save and each summary.csv asks, after every run: the last answer is
    kept with the very tuple of runs it was asked about (immutable, like its
    records), which answers a second question without a pass over 10,000
    runs; and each group's pick is kept with the values it came from, so a run
    costs one pass over the runs and the pick of its own group (500 variants:
    issue 23)."""
    metric = state.representative_metric or state.summary_metrics[0]
    goal = metric_goal(metric, state.goal)
    groups: list[str | None] = [*state.variant_configs] or [None]
    asked = (metric, goal, tuple(groups))
    if _last and _last[0] is state.runs and _last[1] == asked:
        return _last[2]
    values: dict[str | None, list[tuple[int, float]]] = {variant: [] for variant in groups}
    for r in state.completed:  # one pass, not one per variant
        if metric in r.metrics and r.variant in values:
            values[r.variant].append((r.index, r.metrics[metric]))
    if len(_picks) > 2 * len(groups) + 16:
        _picks.clear()  # another study's groups
    result = []
    for variant in groups:
        pick = _pick(variant, tuple(values[variant]), goal)
        representative, best = (_chosen(state, i, metric) for i in (pick.representative, pick.best))
        result.append(Standouts(variant, metric, goal, representative, best))
    # The runs are held, not their id: an id is reused once its object is gone.
    _last[:] = [state.runs, asked, tuple(result)]
    return _last[2]


def _pick(variant: str | None, values: tuple[tuple[int, float], ...], goal: str) -> Pick:
    """``pick_runs``, kept per group with the values and goal it came from (nan
    never equals itself: a miss, never a wrong answer)."""
    kept = _picks.get(variant)
    if kept is not None and kept[0] == (goal, values):
        return kept[1]
    pick = pick_runs(values, goal)
    _picks[variant] = ((goal, values), pick)
    return pick


# The last answer of ``standouts``: the runs tuple it was asked about, (metric,
# goal, groups), the answer (one entry); and each group's last pick.
_last: list[Any] = []
_picks: dict[str | None, tuple[tuple[str, tuple[tuple[int, float], ...]], Pick]] = {}


def _chosen(state: StudyState, index: int | None, metric: str) -> ChosenRun | None:
    if index is None:
        return None
    record = state.runs[index]
    return ChosenRun(index, record.seed, record.metrics[metric], record.fold)


def standout_lines(state: StudyState) -> list[str]:
    """``representative run 1 (seed 8, val/loss 8.5); best run 0 (seed 7, val/loss 7.5,
    lower is better)``, one line per variant (``wide: ...``); none before a run completed."""
    lines = []
    for s in standouts(state):
        if s.representative is None or s.best is None:
            continue
        rep, best = s.representative, s.best
        way = "lower" if s.goal == "min" else "higher"
        line = (
            f"representative run {rep.index} ({rep.place}, {s.metric} {rep.value:.6g}); "
            f"best run {best.index} ({best.place}, {s.metric} {best.value:.6g}, "
            f"{way} is better)"
        )
        lines.append(line if s.variant is None else f"{s.variant}: {line}")
    return lines
