"""Statistics over seeds: describe a study's final metrics (``xorch summary``).

Comparing studies is ``compare.py`` over ``inference.py``.

A study of variants is described per variant (``variant_metric_stats``): one
row per (metric, variant), metrics sorted and variants in the config's order,
each over that variant's completed runs only, so its mean and std are the ones
of the variant's block in summary.csv. Pooling the variants would average
several configs into a number that describes none of them.

Only completed runs count, and a metric's sample is the values its completed
runs logged (a run that did not log it is left out, not counted as zero).

The numbers are ``orchestrator.seed_table.describe`` over the study's seed
table, so they agree with summary.csv and every other command: values that are
not numbers (nan, inf, -inf: a diverged seed) are left out of every statistic
and counted in ``not_finite`` (a column of its own, and a note under the
table); a metric with no finite value at all has ``n`` 0 and nan statistics.

A study with folds gets two more columns, ``between_seeds`` and ``between_folds``
(``orchestrator.fold_spread``): the std of the seed means and of the fold means,
so the spread that seeds make and the one the splits make are read apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import XorchError
from orchestrator.fold_spread import fold_spread
from orchestrator.seed_table import NO_VALUES, MetricStats, seed_table
from orchestrator.state import StudyState
from orchestrator.tables import Cell, render_rows

__all__ = [
    "SPREAD_COLUMNS",
    "STATS_COLUMNS",
    "VARIANT_STATS_COLUMNS",
    "SummaryTable",
    "VariantMetricStats",
    "render_stats",
    "render_summary",
    "render_variant_stats",
    "study_metric_stats",
    "summary_table",
    "variant_metric_stats",
    "with_fold_spread",
]

STATS_COLUMNS: tuple[str, ...] = (
    "metric", "n", "mean", "std", "sem", "ci_low", "ci_high", "min", "median", "max",
    "not_finite",
)  # fmt: skip

VARIANT_STATS_COLUMNS: tuple[str, ...] = (STATS_COLUMNS[0], "variant", *STATS_COLUMNS[1:])


@dataclass(frozen=True)
class SummaryTable:
    """What ``xorch summary`` shows: its columns, one record per row, and the notes on
    the values left out (said under the plain table)."""

    columns: tuple[str, ...]
    records: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class VariantMetricStats:
    """One metric over the completed runs of one variant."""

    metric: str
    variant: str
    stats: MetricStats


# --------------------------------------------------------------------------- statistics


def study_metric_stats(
    state: StudyState, metrics: Sequence[str] | None = None
) -> list[tuple[str, MetricStats]]:
    """``(metric, stats)`` over the completed runs; every logged metric, sorted, by default.

    Raises XorchError when there is no completed run or a named metric was never
    logged by one.
    """
    if not state.completed:
        raise XorchError("the study has no completed run yet: there is nothing to describe")
    table = seed_table(state)
    names = _choose(metrics, table.metrics(), "logged by the completed runs")
    return [(name, table.describe(name)) for name in names]


def variant_metric_stats(
    state: StudyState, metrics: Sequence[str] | None = None
) -> list[VariantMetricStats]:
    """One row per (metric, variant) of a study of variants; metrics as in
    ``study_metric_stats`` (every metric any variant logged, sorted, by default).

    A variant with no completed run (yet) that logged the metric gets ``n`` 0 and
    nan statistics, so a partial study shows every variant.
    """
    if not state.completed:
        raise XorchError("the study has no completed run yet: there is nothing to describe")
    table = seed_table(state)
    names = _choose(metrics, table.metrics(), "logged by the completed runs")
    rows = []
    for name in names:
        for variant in state.variant_configs:
            logged = name in table.metrics(variant, every_variant=False)
            stats = table.describe(name, variant) if logged else NO_VALUES
            rows.append(VariantMetricStats(name, variant, stats))
    return rows


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


def summary_table(state: StudyState, metrics: Sequence[str] | None = None) -> SummaryTable:
    """``xorch summary``'s table of ``state``: per (metric, variant) for a study of
    variants, per metric otherwise (``metrics`` as in ``study_metric_stats``)."""
    if state.variant_configs:
        table = variant_stats_table(variant_metric_stats(state, metrics))
    else:
        table = stats_table(study_metric_stats(state, metrics))
    return with_fold_spread(state, table) if state.folds is not None else table


SPREAD_COLUMNS = ("between_seeds", "between_folds")


def with_fold_spread(state: StudyState, table: SummaryTable) -> SummaryTable:
    """``table`` with the between-seed and between-fold std of each row's metric
    (and variant), for a study with folds."""
    values = seed_table(state)
    with_variant = "variant" in table.columns
    records = []
    for record in table.records:
        metric = str(record[0])
        variant = str(record[1]) if with_variant else None
        spread = fold_spread(values.by_fold(metric, variant))
        records.append((*record, spread.between_seeds, spread.between_folds))
    return SummaryTable((*table.columns, *SPREAD_COLUMNS), tuple(records), table.notes)


def stats_table(rows: Sequence[tuple[str, MetricStats]]) -> SummaryTable:
    """``rows`` from study_metric_stats under STATS_COLUMNS."""
    records = tuple(
        (name, s.n, s.mean, s.std, s.sem, s.ci_low, s.ci_high, s.min, s.median, s.max,
         s.not_finite.count)
        for name, s in rows
    )  # fmt: skip
    notes = tuple(f"{name}: {s.not_finite.describe()}" for name, s in rows if s.not_finite.count)
    return SummaryTable(STATS_COLUMNS, records, notes)


def variant_stats_table(rows: Sequence[VariantMetricStats]) -> SummaryTable:
    """``rows`` from variant_metric_stats: STATS_COLUMNS with ``variant`` second."""
    records = tuple(
        (r.metric, r.variant, s.n, s.mean, s.std, s.sem, s.ci_low, s.ci_high, s.min, s.median,
         s.max, s.not_finite.count)
        for r in rows
        for s in (r.stats,)
    )  # fmt: skip
    notes = tuple(
        f"{r.metric} ({r.variant}): {r.stats.not_finite.describe()}"
        for r in rows
        if r.stats.not_finite.count
    )
    return SummaryTable(VARIANT_STATS_COLUMNS, records, notes)


def render_summary(table: SummaryTable, fmt: str = "table") -> str:
    """``table`` as ``fmt`` (one of FORMATS), ending in a newline; the plain table is
    followed by a line per note: people read it, so say which values were left out."""
    text = render_rows(table.columns, table.records, fmt)
    if fmt == "table":
        text += "".join(f"{note}; left out of the statistics\n" for note in table.notes)
    return text


def render_stats(rows: Sequence[tuple[str, MetricStats]], fmt: str = "table") -> str:
    """``rows`` from study_metric_stats as ``fmt`` (one of FORMATS), ending in a newline."""
    return render_summary(stats_table(rows), fmt)


def render_variant_stats(rows: Sequence[VariantMetricStats], fmt: str = "table") -> str:
    """``rows`` from variant_metric_stats as ``fmt``: STATS_COLUMNS with ``variant`` second."""
    return render_summary(variant_stats_table(rows), fmt)
