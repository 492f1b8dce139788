"""Statistics over seeds: describe a study's final metrics (``xorch summary``).

Comparing studies is ``compare.py`` over ``inference.py``.

A study of variants is described per variant (``variant_metric_stats``): one
row per (metric, variant), metrics sorted and variants in the config's order,
each over that variant's completed runs only, so its mean and std are the ones
of the variant's block in summary.csv. Pooling the variants would average
several configs into a number that describes none of them.

Only completed runs count, and a metric's sample is the values its completed
runs logged (a run that did not log it is left out, not counted as zero).

Conventions, chosen so the numbers agree with summary.csv and with scipy:

- Values that are not numbers (nan, inf, -inf: a diverged seed) are left out of
  every statistic and counted instead, in ``not_finite`` (a column of its own,
  and a note under the table): ``n``, mean, std and the rest are over the finite
  values, exactly as summary.csv's mean and std rows are. A metric with no
  finite value at all has ``n`` 0 and nan statistics.
- ``std`` is the sample standard deviation (ddof=1); it is 0.0 for a single
  run, as summary.csv prints it, and exactly 0.0 when all values are equal.
- ``sem`` is ``std / sqrt(n)``; the 95% interval is ``mean ± t(0.975, n-1) * sem``.
  For a single run ``sem``, ``ci_low`` and ``ci_high`` are nan: one value says
  nothing about how far the mean may be off, and a zero-width (mean, mean)
  interval would read as certainty.

scipy is imported inside the functions that need it, so that importing this
module (for instance by the CLI, to list its options) stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from orchestrator.errors import XorchError
from orchestrator.state import RunRecord, StudyState
from orchestrator.summary import NotFinite, split_finite
from orchestrator.tables import Cell, render_rows

__all__ = [
    "STATS_COLUMNS",
    "VARIANT_STATS_COLUMNS",
    "MetricStats",
    "VariantMetricStats",
    "describe",
    "render_stats",
    "render_variant_stats",
    "study_metric_stats",
    "variant_metric_stats",
]

STATS_COLUMNS: tuple[str, ...] = (
    "metric", "n", "mean", "std", "sem", "ci_low", "ci_high", "min", "median", "max",
    "not_finite",
)  # fmt: skip

VARIANT_STATS_COLUMNS: tuple[str, ...] = (STATS_COLUMNS[0], "variant", *STATS_COLUMNS[1:])

_CONFIDENCE = 0.95
_UPPER_QUANTILE = 0.5 + _CONFIDENCE / 2  # 0.975: two-sided interval


@dataclass(frozen=True)
class MetricStats:
    """One metric over the completed runs of a study: ``n`` finite values, and
    the runs whose value was nan or inf, left out of every number here."""

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


@dataclass(frozen=True)
class VariantMetricStats:
    """One metric over the completed runs of one variant."""

    metric: str
    variant: str
    stats: MetricStats


# --------------------------------------------------------------------------- statistics


def describe(values: Iterable[float]) -> MetricStats:
    """Count, mean, spread, 95% t interval and five-number-ish summary of the
    finite ``values``; nan and inf are counted in ``not_finite`` instead."""
    given = list(values)
    if not given:
        raise XorchError("cannot describe a metric with no values")
    finite, not_finite = split_finite(float(v) for v in given)
    data = np.asarray(finite, dtype=float)
    n = int(data.size)
    if n == 0:
        nan = math.nan
        return MetricStats(0, nan, nan, nan, nan, nan, nan, nan, nan, not_finite)
    mean = float(np.mean(data))
    if n == 1:
        std, sem, ci_low, ci_high = 0.0, math.nan, math.nan, math.nan
    else:
        from scipy import stats

        # Equal values have no spread; numpy would report rounding noise (~1e-17).
        std = 0.0 if np.min(data) == np.max(data) else float(np.std(data, ddof=1))
        sem = std / math.sqrt(n)
        half_width = float(stats.t.ppf(_UPPER_QUANTILE, n - 1)) * sem
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


def study_metric_stats(
    state: StudyState, metrics: Sequence[str] | None = None
) -> list[tuple[str, MetricStats]]:
    """``(metric, stats)`` over the completed runs; every logged metric, sorted, by default.

    Raises XorchError when there is no completed run or a named metric was never
    logged by one.
    """
    runs = state.completed
    if not runs:
        raise XorchError("the study has no completed run yet: there is nothing to describe")
    values = _metric_values(runs, finite_only=False)
    names = _choose(metrics, sorted(values), "logged by the completed runs")
    return [(name, describe(values[name])) for name in names]


def variant_metric_stats(
    state: StudyState, metrics: Sequence[str] | None = None
) -> list[VariantMetricStats]:
    """One row per (metric, variant) of a study of variants; metrics as in
    ``study_metric_stats`` (every metric any variant logged, sorted, by default).

    A variant with no completed run (yet) that logged the metric gets ``n`` 0 and
    nan statistics, so a partial study shows every variant.
    """
    runs = state.completed
    if not runs:
        raise XorchError("the study has no completed run yet: there is nothing to describe")
    names = _choose(metrics, sorted(_metric_values(runs, finite_only=False)),
                    "logged by the completed runs")  # fmt: skip
    per_variant = {
        v: _metric_values([r for r in runs if r.variant == v], finite_only=False)
        for v in state.variant_configs
    }
    rows = []
    for name in names:
        for variant, values in per_variant.items():
            stats = describe(values[name]) if name in values else _NO_VALUES
            rows.append(VariantMetricStats(name, variant, stats))
    return rows


_NO_VALUES = MetricStats(0, *(math.nan,) * 8)


def _metric_values(runs: Sequence[RunRecord], finite_only: bool = True) -> dict[str, list[float]]:
    """Each metric's values, in run order, from the runs that logged it; only the
    finite ones unless ``finite_only`` is False (describe counts the others)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for name, value in run.metrics.items():
            number = float(value)
            if finite_only and not math.isfinite(number):
                continue
            values.setdefault(name, []).append(number)
    return values


def _choose(requested: Sequence[str] | None, available: list[str], where: str) -> list[str]:
    if requested is None:
        return available
    if isinstance(requested, str):  # a bare "val/loss" would otherwise become letters
        requested = [requested]
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise XorchError(
            f"metric {', '.join(unknown)} is not {where}; available: {', '.join(available)}"
        )
    return list(dict.fromkeys(requested))  # keep the caller's order, drop repeats


# --------------------------------------------------------------------------- rendering


def render_stats(rows: Sequence[tuple[str, MetricStats]], fmt: str = "table") -> str:
    """``rows`` from study_metric_stats as ``fmt`` (one of FORMATS), ending in a newline."""
    records: list[list[Cell]] = [
        [name, s.n, s.mean, s.std, s.sem, s.ci_low, s.ci_high, s.min, s.median, s.max,
         s.not_finite.count]
        for name, s in rows
    ]  # fmt: skip
    text = render_rows(STATS_COLUMNS, records, fmt)
    if fmt == "table":  # people read the table: say which values were left out, and why
        notes = [f"{name}: {s.not_finite.describe()}" for name, s in rows if s.not_finite.count]
        text += _left_out(notes)
    return text


def render_variant_stats(rows: Sequence[VariantMetricStats], fmt: str = "table") -> str:
    """``rows`` from variant_metric_stats as ``fmt``: STATS_COLUMNS with ``variant`` second."""
    records: list[list[Cell]] = [
        [r.metric, r.variant, s.n, s.mean, s.std, s.sem, s.ci_low, s.ci_high, s.min, s.median,
         s.max, s.not_finite.count]
        for r in rows
        for s in (r.stats,)
    ]  # fmt: skip
    text = render_rows(VARIANT_STATS_COLUMNS, records, fmt)
    if fmt == "table":
        notes = [
            f"{r.metric} ({r.variant}): {r.stats.not_finite.describe()}"
            for r in rows
            if r.stats.not_finite.count
        ]
        text += _left_out(notes)
    return text


def _left_out(notes: Sequence[str]) -> str:
    return "".join(f"{note}; left out of the statistics\n" for note in notes)
