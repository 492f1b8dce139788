"""Statistics over seeds: describe a study's final metrics (``xorch summary``).

Comparing studies is ``compare.py`` over ``inference.py``.

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

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from orchestrator.errors import XorchError
from orchestrator.state import RunRecord, StudyState
from orchestrator.summary import NotFinite, split_finite
from orchestrator.tables import aligned_lines

__all__ = [
    "FORMATS",
    "STATS_COLUMNS",
    "MetricStats",
    "describe",
    "render_stats",
    "study_metric_stats",
]

FORMATS: tuple[str, ...] = ("table", "markdown", "latex", "csv", "json")

STATS_COLUMNS: tuple[str, ...] = (
    "metric", "n", "mean", "std", "sem", "ci_low", "ci_high", "min", "median", "max",
    "not_finite",
)  # fmt: skip

Cell: TypeAlias = "str | int | float"

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
    text = _render(STATS_COLUMNS, records, fmt)
    if fmt == "table":  # people read the table: say which values were left out, and why
        notes = [f"{name}: {s.not_finite.describe()}" for name, s in rows if s.not_finite.count]
        if notes:
            text += "".join(f"{note}; left out of the statistics\n" for note in notes)
    return text


def _render(header: Sequence[str], records: Sequence[Sequence[Cell]], fmt: str) -> str:
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise XorchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writer(header, records)


def _human(cell: Cell) -> str:
    """A cell for people: 6 significant digits; ``n/a`` where a value is undefined."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, int):
        return str(cell)
    if math.isnan(cell):
        return "n/a"
    return f"{cell:.6g}"


def _table(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    rows = [list(header), *([_human(c) for c in r] for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    rows.insert(1, ["-" * w for w in widths])
    # Names read best left-aligned, numbers right-aligned so their digits line up.
    return "\n".join(aligned_lines(rows, numbers_right=True)) + "\n"


def _markdown(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|"
    body = [line([_human(c) for c in r]) for r in records]
    return "\n".join([line(header), rule, *body]) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    # One pass over the characters, so the braces of \textbackslash{} are not escaped again.
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return " & ".join(_latex_escape(c) for c in cells) + r" \\"

    spec = "l" + "r" * (len(header) - 1)
    body = [line([_human(c) for c in r]) for r in records]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\hline", line(header), r"\hline", *body]
    return "\n".join([*lines, r"\hline", r"\end{tabular}"]) + "\n"


def _machine(cell: Cell) -> str | int | float | None:
    """A cell for programs: full precision; None (empty in CSV, null in JSON) for nan/inf."""
    if isinstance(cell, float) and not math.isfinite(cell):
        return None
    return cell


def _csv(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    # repr of a float is its shortest exact form, so the numbers read back unchanged;
    # an empty cell is what summary.csv writes for "no value" too.
    writer.writerows([["" if v is None else v for v in map(_machine, r)] for r in records])
    return buffer.getvalue()


def _json(header: Sequence[str], records: Sequence[Sequence[Cell]]) -> str:
    objects = [dict(zip(header, map(_machine, r), strict=True)) for r in records]
    # allow_nan=False: the output must be strict JSON that any parser accepts.
    return json.dumps(objects, indent=2, allow_nan=False) + "\n"


_WRITERS: Mapping[str, Callable[[Sequence[str], Sequence[Sequence[Cell]]], str]] = {
    "table": _table,
    "markdown": _markdown,
    "latex": _latex,
    "csv": _csv,
    "json": _json,
}
