"""One table of per-seed values, built once from a study's completed runs.

Each row is (variant, fold, metric, seed, value); ``finite`` says whether the
value is a number a statistic may use. The rule for the others (nan, inf,
-inf), meant for every reader of this table: they are left out of every
statistic, counted, and named by seed (``not_finite_note``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.state import RunRecord, StudyState

__all__ = ["SeedTable", "SeedValue", "seed_table"]


@dataclass(frozen=True)
class SeedValue:
    """One metric's value for one seed of one variant (``None``: a study of one config)."""

    variant: str | None
    fold: int | None
    metric: str
    seed: int
    value: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)


@dataclass(frozen=True)
class SeedTable:
    """Every completed run's metric values, in run order."""

    rows: tuple[SeedValue, ...]

    def metrics(self) -> list[str]:
        """Every metric any completed run logged, sorted."""
        return sorted({row.metric for row in self.rows})

    def values(self, metric: str, variant: str | None = None) -> dict[int, float]:
        """seed -> value (finite or not) of ``metric`` for ``variant``."""
        return {r.seed: r.value for r in self.rows if r.metric == metric and r.variant == variant}

    def finite(self, metric: str, variant: str | None = None) -> dict[int, float]:
        """seed -> value of the finite values only."""
        return {s: v for s, v in self.values(metric, variant).items() if math.isfinite(v)}

    def not_finite_note(self, metric: str, variant: str | None = None) -> str:
        """``1 non-finite: seed 7 inf``; "" when every value is finite."""
        bad = [(s, v) for s, v in self.values(metric, variant).items() if not math.isfinite(v)]
        if not bad:
            return ""
        named = ", ".join(f"seed {s} {v}" for s, v in bad)
        return f"{len(bad)} non-finite: {named}"


def seed_table(state: StudyState) -> SeedTable:
    """The table of ``state``'s completed runs."""
    return _from_runs(state.completed)


def _from_runs(runs: Sequence[RunRecord]) -> SeedTable:
    rows = tuple(
        SeedValue(run.variant, None, name, run.seed, float(value))
        for run in runs
        for name, value in run.metrics.items()
    )
    return SeedTable(rows)
