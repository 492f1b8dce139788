"""One table of per-seed values, built once from a study's completed runs, and
the one ``describe`` every command's numbers come from.

Each row is (variant, fold, metric, seed, value); ``finite`` says whether the
value is a number a statistic may use. A row's ``key`` is its seed, or in a study
with folds its ``FoldSeed`` (fold, seed): every mapping ``seed -> value`` the
commands build is keyed by it, so two variants pair on (fold, seed), the fold
being a block like the seed. ``finite`` says whether the
**The non-finite rule**, the same for
summary.csv, ``xorch summary``, ``compare``, comparison.csv, ``power``, the
plots, the report, adaptive seeds and the closing lines: nan, inf and -inf (a
diverged seed) are left out of every statistic, counted (``NotFinite``) and
said beside the numbers; ``n`` is the count of finite values. In a paired
comparison a seed is dropped from both sides when either side is not finite
(``orchestrator.inference.contrast``).

``describe`` gives ``n``, mean, std (ddof=1; 0.0 for one value and exactly 0.0
when all values are equal), ``sem = std / sqrt(n)``, the Student t 95% interval
``mean ± t(0.975, n-1) * sem`` (nan for one value: one value says nothing about
how far the mean may be off), min, median and max of the finite values.
scipy is imported only when an interval is computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from orchestrator.state import RunRecord, StudyState

__all__ = [
    "CONFIDENCE",
    "FoldSeed",
    "MetricStats",
    "NotFinite",
    "SeedTable",
    "SeedValue",
    "describe",
    "from_runs",
    "seed_table",
    "split_finite",
]

CONFIDENCE = 0.95

SeedValues = dict[int, float]


@dataclass(frozen=True)
class NotFinite:
    """How many values of one metric were nan, inf and -inf: left out of every statistic."""

    nan: int = 0
    inf: int = 0
    neg_inf: int = 0

    @property
    def count(self) -> int:
        return self.nan + self.inf + self.neg_inf

    def describe(self) -> str:
        """``1 run not finite: inf``, ``3 runs not finite: 2 nan, 1 -inf``; "" if none."""
        if not self.count:
            return ""
        kinds = [(self.nan, "nan"), (self.inf, "inf"), (self.neg_inf, "-inf")]
        parts = [name if n == self.count else f"{n} {name}" for n, name in kinds if n]
        runs = "run" if self.count == 1 else "runs"
        return f"{self.count} {runs} not finite: {', '.join(parts)}"


def split_finite(values: Iterable[float]) -> tuple[list[float], NotFinite]:
    """The finite values, in order, and a count of the others."""
    finite: list[float] = []
    nan = inf = neg_inf = 0
    for value in values:
        if math.isfinite(value):
            finite.append(value)
        elif math.isnan(value):
            nan += 1
        elif value > 0:
            inf += 1
        else:
            neg_inf += 1
    return finite, NotFinite(nan, inf, neg_inf)


@dataclass(frozen=True)
class MetricStats:
    """One metric over a group's seeds: ``n`` finite values, and the values that
    were nan or inf, left out of every number here."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    min: float
    median: float
    max: float
    not_finite: NotFinite = field(default_factory=NotFinite)

    @property
    def half_width(self) -> float:
        """Half the width of the 95% t interval (nan below two values)."""
        return (self.ci_high - self.ci_low) / 2


NO_VALUES = MetricStats(0, *(math.nan,) * 8)


def describe(values: Iterable[float], interval: bool = True) -> MetricStats:
    """The statistics of the finite ``values`` (see the module's rule); without
    ``interval`` the t interval is left nan and scipy is not imported (the
    closing lines of a launch need mean and std only)."""
    finite, not_finite = split_finite(float(v) for v in values)
    data = np.asarray(finite, dtype=float)
    n = int(data.size)
    if n == 0:
        nan = math.nan
        return MetricStats(0, nan, nan, nan, nan, nan, nan, nan, nan, not_finite)
    mean = float(np.mean(data))
    if n == 1:
        std, sem, ci_low, ci_high = 0.0, math.nan, math.nan, math.nan
    else:
        # Equal values have no spread; numpy would report rounding noise (~1e-17).
        std = 0.0 if np.min(data) == np.max(data) else float(np.std(data, ddof=1))
        sem = std / math.sqrt(n)
        ci_low = ci_high = math.nan
        if interval:
            from scipy import stats

            half_width = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sem
            ci_low, ci_high = mean - half_width, mean + half_width
    return MetricStats(
        n=n,
        mean=mean,
        std=std,
        sem=sem,
        ci_low=ci_low,
        ci_high=ci_high,
        min=float(np.min(data)),
        median=float(np.median(data)),
        max=float(np.max(data)),
        not_finite=not_finite,
    )


class FoldSeed(int):
    """One run's place in a study with folds, (fold, seed), as the key of a mapping
    seed -> value: an int ((fold + 1) * 2**32 + seed; seeds are below 2**31, and
    no key equals a plain seed), so every such mapping keeps its type, and two
    runs are paired exactly when fold and seed agree. Printed ``42 (fold 1)``."""

    __slots__ = ()

    def __new__(cls, fold: int, seed: int) -> FoldSeed:
        return super().__new__(cls, ((fold + 1) << 32) | seed)

    @property
    def fold(self) -> int:
        return (int(self) >> 32) - 1

    @property
    def seed(self) -> int:
        return int(self) & 0xFFFFFFFF

    def __str__(self) -> str:
        return f"{self.seed} (fold {self.fold})"

    __repr__ = __str__


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

    @property
    def key(self) -> int:
        """The seed, or (fold, seed) as a ``FoldSeed`` in a study with folds."""
        return self.seed if self.fold is None else FoldSeed(self.fold, self.seed)


@dataclass(frozen=True)
class SeedTable:
    """Every completed run's metric values, in run order; ``variants`` in the config's order."""

    rows: tuple[SeedValue, ...]
    variants: tuple[str, ...] = ()

    def metrics(self, variant: str | None = None, every_variant: bool = True) -> list[str]:
        """Logged metrics, sorted: every run's, or ``variant``'s alone if not ``every_variant``."""
        return sorted({r.metric for r in self.rows if every_variant or r.variant == variant})

    def values(self, metric: str, variant: str | None = None) -> SeedValues:
        """seed -> value (finite or not) of ``metric`` for ``variant``."""
        return {r.key: r.value for r in self.rows if r.metric == metric and r.variant == variant}

    def finite(self, metric: str, variant: str | None = None) -> SeedValues:
        """seed -> value of the finite values only."""
        return {s: v for s, v in self.values(metric, variant).items() if math.isfinite(v)}

    def describe(self, metric: str, variant: str | None = None) -> MetricStats:
        return describe(self.values(metric, variant).values())

    def group(self, variant: str | None = None) -> dict[str, SeedValues]:
        """metric -> seed -> value of one variant (``None``: the study's own runs)."""
        out: dict[str, SeedValues] = {}
        for r in self.rows:
            if r.variant == variant:
                out.setdefault(r.metric, {})[r.key] = r.value
        return out

    def every_run(self) -> dict[str, SeedValues]:
        """metric -> seed -> value over every row, whatever its variant (a later row wins)."""
        out: dict[str, SeedValues] = {}
        for r in self.rows:
            out.setdefault(r.metric, {})[r.key] = r.value
        return out

    def groups(self) -> dict[str, dict[str, SeedValues]]:
        """variant -> metric -> seed -> value, every variant (one without runs is empty)."""
        return {v: self.group(v) for v in self.variants}

    def by_fold(self, metric: str, variant: str | None = None) -> dict[tuple[int, int], float]:
        """(fold, seed) -> value of ``metric`` for ``variant``, in a study with folds."""
        return {
            (r.fold, r.seed): r.value
            for r in self.rows
            if r.metric == metric and r.variant == variant and r.fold is not None
        }

    def not_finite_note(self, metric: str, variant: str | None = None) -> str:
        """``1 non-finite: seed 7 inf``; "" when every value is finite."""
        bad = [(s, v) for s, v in self.values(metric, variant).items() if not math.isfinite(v)]
        if not bad:
            return ""
        named = ", ".join(f"seed {s} {v}" for s, v in bad)
        return f"{len(bad)} non-finite: {named}"


def seed_table(state: StudyState) -> SeedTable:
    """The table of ``state``'s completed runs."""
    return from_runs(state.completed, tuple(state.variant_configs))


def from_runs(runs: Sequence[RunRecord], variants: tuple[str, ...] = ()) -> SeedTable:
    """The table of the completed ``runs``."""
    rows = tuple(
        SeedValue(run.variant, run.fold, name, run.seed, float(value))
        for run in runs
        for name, value in run.metrics.items()
    )
    return SeedTable(rows, variants)
