"""An adaptive study's state changes, which the ledger records: the next seeds
of the sequence stored at creation added as runs (one per variant each, never
past max), and why no more are added. The rule that decides is
``orchestrator.adaptive``."""

from __future__ import annotations

import dataclasses

from orchestrator.contract.paths import run_dir_name
from orchestrator.state import RunRecord, StudyState

__all__ = ["add_seeds", "with_stop"]


def add_seeds(state: StudyState, count: int) -> tuple[StudyState, list[int]]:
    """The next ``count`` seeds of the stored sequence (never past max), one run
    per variant each; returns the new state and the new runs' indices."""
    adaptive = state.adaptive
    assert adaptive is not None
    start = len(state.seeds)
    new = adaptive.sequence[start : min(start + count, adaptive.rule.max_seeds)]
    names: list[str | None] = [*state.variant_configs] or [None]
    runs = list(state.runs)
    for position, seed in enumerate(new, start):
        for variant in names:
            name = run_dir_name(position, seed, len(adaptive.sequence), variant)
            runs.append(RunRecord(index=len(runs), seed=seed, dir=name, variant=variant))
    updated = dataclasses.replace(
        state,
        seeds=state.seeds + tuple(new),
        runs=tuple(runs),
        adaptive=dataclasses.replace(adaptive, stopped=None),
    )
    return updated, list(range(len(state.runs), len(runs)))


def with_stop(state: StudyState, reason: str) -> StudyState:
    """The state that says why no more seeds are added."""
    assert state.adaptive is not None
    return dataclasses.replace(state, adaptive=dataclasses.replace(state.adaptive, stopped=reason))
