"""Adaptive seeds: ``n_runs: {min: 5, max: 40, until: {metric: val/F1Score, ci_halfwidth: 0.002}}``.

A **precision target** for an estimate. The study runs ``min`` seeds, then adds
seeds until the Student t 95% interval of the mean of ``until.metric`` over the
completed runs is at most ``ci_halfwidth`` either side of the mean, or ``max``
seeds have been tried. It is not a stopping rule for a significance test: it
looks only at the width of one interval, never at a difference between
variants or at a p-value, so it cannot stop "when the result looks
significant". (Stopping a test once p < 0.05 inflates false positives: every
look is another chance for noise to cross the line.)

The interval it stops on is narrower than a 95% one, since a study tends to
stop when its spread happens to look small: by simulation
(scripts/sim_adaptive.py, README) it holds the true mean about 91% of the time
for a normal metric and 80-88% for a skewed one (a loss with rare bad seeds).

- The ``max`` seeds are drawn once, when the study is created, and stored in
  runner_state.json (``adaptive.sequence``); the seeds run are always its first
  ones, so a resume or a replay adds exactly the seeds a straight run would.
- Variants: every variant runs on every seed (so comparisons stay paired), and
  a seed is added for all of them until every variant's interval meets the
  target. One rule over all variants, never a seed for one variant only.
- Only completed runs with a finite value count. A run that failed for good
  still used its seed: ``max`` bounds the seeds tried, so a study whose runs
  keep failing ends at ``max`` instead of drawing forever; while fewer than
  ``min`` values are in, a failed seed is replaced.
- With several slots, seeds are added to fill the free slots while others
  still run, so a study may end up to (slots - 1) seeds past the point where
  the target was first met; with one slot it adds one seed at a time.

``next_step`` is the rule as a pure function of the values; ``study_step``
feeds it from a state; the scheduler calls ``study_step`` when its queue is
empty and a slot is free, and ``add_seeds`` or ``with_stop`` (``adaptive_state``,
re-exported here) records the answer. The ``n_runs`` mapping is parsed into an
``AdaptiveRule`` by ``adaptive_spec``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from orchestrator.adaptive_state import add_seeds, with_stop
from orchestrator.state import AdaptiveRule, RunStatus, StudyState

__all__ = [
    "Action",
    "AdaptiveRule",
    "Precision",
    "Step",
    "add_seeds",
    "compared",
    "describe_rule",
    "next_step",
    "precision",
    "study_step",
    "with_stop",
]

# --------------------------------------------------------------------------- a description


def describe_rule(rule: AdaptiveRule) -> str:
    """One line for ``xorch validate`` and ``xorch status``."""
    return (
        f"adaptive seeds: {rule.min_seeds} to {rule.max_seeds}, until the 95% CI of "
        f"{rule.metric}'s mean is within ±{rule.ci_halfwidth:g}"
    )


# --------------------------------------------------------------------------- the rule


def compared(halfwidth: float, target: float) -> tuple[str, str]:
    """The half-width and the target as printed side by side, so that the printed
    comparison reads as the real one: the target as configured (6 significant
    digits, more where it needs them to be exact), the half-width with 3
    significant digits, more where 3 would make ``0.0187 <= 0.01868`` of a
    half-width of 0.018675. Equal values print alike."""
    target_text = next(
        (t for t in (f"{target:.{p}g}" for p in range(6, 18)) if float(t) == target),
        repr(target),
    )
    if halfwidth == target or not math.isfinite(halfwidth):
        return (target_text if halfwidth == target else f"{halfwidth:g}"), target_text
    below = halfwidth <= target
    for digits in range(3, 18):
        text = f"{halfwidth:.{digits}g}"
        if (Decimal(text) <= Decimal(target_text)) == below:
            return text, target_text
    return repr(halfwidth), target_text  # 17 digits always tell two doubles apart


class Action(str, enum.Enum):
    MORE = "more"  # add seeds now
    WAIT = "wait"  # runs in flight decide it
    STOP = "stop"  # no more seeds: the target is met or max is reached


@dataclass(frozen=True)
class Precision:
    """The worst group's figures: its count of values and its interval's half-width."""

    n: int  # the fewest finite values of any group
    halfwidth: float  # the widest group's; inf where a group has fewer than 2 values
    widest: str | None = None  # that group's name (a variant), None for one config

    def text(self, target: float | None = None) -> str:
        """``ci_halfwidth 0.0031``; given the ``target`` it is compared with, as
        many digits as the comparison needs to read true (``compared``)."""
        if math.isfinite(self.halfwidth):
            if target is None:
                return f"ci_halfwidth {self.halfwidth:.3g}"
            return f"ci_halfwidth {compared(self.halfwidth, target)[0]}"
        return f"ci_halfwidth n/a ({self.n} value{'s' if self.n != 1 else ''})"


@dataclass(frozen=True)
class Step:
    action: Action
    seeds: int  # how many seeds to add (MORE only)
    reason: str
    precision: Precision


def precision(groups: Mapping[str | None, Sequence[float]]) -> Precision:
    """Each group's t interval of the mean (``seed_table.describe``: finite
    values only, scipy's t quantile); the widest one decides."""
    # numpy is imported here: the config loader imports this module and must stay light.
    from orchestrator.seed_table import describe

    found: list[Precision] = []
    for name, values in groups.items():
        n, half = 0, math.inf
        if values:
            described = describe(values)
            n = described.n
            if n >= 2:
                half = described.half_width
        found.append(Precision(n=n, halfwidth=half, widest=name))
    if not found:
        return Precision(n=0, halfwidth=math.inf)
    widest = max(found, key=lambda p: p.halfwidth)  # the first of equals
    return Precision(min(p.n for p in found), widest.halfwidth, widest.widest)


def next_step(
    rule: AdaptiveRule,
    groups: Mapping[str | None, Sequence[float]],
    seeds_tried: int,
    seeds_in_flight: int = 0,
    seeds_failed: int = 0,
    free_slots: int = 1,
    runs_per_seed: int = 1,
) -> Step:
    """What the study does next, from the completed values of each group (one
    group per variant; ``None`` for a study of one config).

    ``seeds_tried``: seeds given runs so far; ``seeds_in_flight``: those with a
    run still to finish; ``seeds_failed``: those with a run that failed for good."""
    found = precision(groups)
    of_every = " for every variant" if len(groups) > 1 else ""
    lost = f" ({seeds_failed} failed)" if seeds_failed else ""
    final = Action.WAIT if seeds_in_flight else Action.STOP
    width, target = found.text(rule.ci_halfwidth), compared(found.halfwidth, rule.ci_halfwidth)[1]
    if found.n >= rule.min_seeds and found.halfwidth <= rule.ci_halfwidth:
        reason = f"{width} <= {target}{of_every} after {found.n} seeds{lost}"
        return Step(final, 0, reason, found)
    widest = f" (widest: {found.widest})" if of_every and found.widest else ""
    if seeds_tried >= rule.max_seeds:
        reason = f"reached max {rule.max_seeds} seeds{lost}, {width}{widest}"
        if math.isfinite(found.halfwidth):
            reason += f" > {target}"
        return Step(final, 0, reason, found)
    short = rule.min_seeds - found.n - seeds_in_flight  # values still missing for min
    if found.n < rule.min_seeds and short <= 0:
        return Step(Action.WAIT, 0, f"{found.n} of min {rule.min_seeds} seeds in", found)
    if found.n < rule.min_seeds:
        why = f"{found.n} of min {rule.min_seeds} seeds in{lost}"
    else:
        why = f"{width} > {target}{widest} after {found.n} seeds{lost}"
    fill = -(-free_slots // max(1, runs_per_seed))  # enough seeds for every free slot
    count = min(max(short, fill, 1), rule.max_seeds - seeds_tried)
    return Step(Action.MORE, count, why, found)


# --------------------------------------------------------------------------- a study


def study_step(state: StudyState, free_slots: int = 1) -> Step:
    """``next_step`` for a state whose queue is empty: a run that is neither
    completed nor running nor pending failed for good."""
    adaptive = state.adaptive
    assert adaptive is not None, "only a study with adaptive seeds has a next seed"
    rule = adaptive.rule
    names: list[str | None] = [*state.variant_configs] or [None]
    from orchestrator.seed_table import seed_table

    table = seed_table(state)
    groups = {name: list(table.values(rule.metric, name).values()) for name in names}
    in_flight: set[int] = set()
    failed: set[int] = set()
    for record in state.runs:
        if record.status is RunStatus.COMPLETED:
            continue
        if record.status is RunStatus.FAILED:
            failed.add(record.seed)
        else:
            in_flight.add(record.seed)
    return next_step(
        rule,
        groups,
        seeds_tried=len(state.seeds),
        seeds_in_flight=len(in_flight),
        seeds_failed=len(failed - in_flight),
        free_slots=free_slots,
        runs_per_seed=len(names),
    )
