"""summary.csv: one row per completed run in run order, then mean and std rows.

The format is the seed document's: ``run,seed,duration_s``, then every metric
any completed run logged, sorted by name; metrics with 6 decimals, durations
with 2; std is the sample standard deviation (ddof=1), and 0 for a single run.
A metric a run did not log is an empty cell, and mean and std skip it.

The file is rewritten after every run, so the rewrite must stay cheap at 10,000
runs: a run's row text is formatted once and reused while its record object and
the columns are unchanged; mean and std come from one NumPy matrix.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from orchestrator.atomic import atomic_write_text
from orchestrator.paths import StudyPaths
from orchestrator.state import RunRecord, StudyState

__all__ = ["summary_text", "write_summary"]

# id(record) -> (record, metric names, row text, row values)
_rows: dict[int, tuple[RunRecord, tuple[str, ...], str, list[float]]] = {}


def summary_text(runs: list[RunRecord]) -> str:
    names = tuple(sorted({name for r in runs for name in r.metrics}))
    columns = ("duration_s", *names)
    rows = [_row(r, names) for r in runs]
    lines = [",".join(["run", "seed", *columns]), *(text for text, _ in rows)]
    matrix = np.array([values for _, values in rows], dtype=float).reshape(len(runs), len(columns))
    with warnings.catch_warnings():  # a column with no value at all is simply empty
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(matrix, axis=0)
        counts = np.sum(~np.isnan(matrix), axis=0)
        std = np.where(
            counts > 1, np.nanstd(matrix, axis=0, ddof=1), np.where(counts, 0.0, math.nan)
        )
    for label, stats in (("mean", mean), ("std", std)):
        cells = (_cell(v, c) for v, c in zip(stats, columns, strict=True))
        lines.append(",".join([label, "-", *cells]))
    _forget_missing(runs)
    return "\n".join(lines) + "\n"


def _row(record: RunRecord, names: tuple[str, ...]) -> tuple[str, list[float]]:
    hit = _rows.get(id(record))
    if hit is not None and hit[0] is record and hit[1] == names:
        return hit[2], hit[3]
    duration = record.duration_s if record.duration_s is not None else math.nan
    values = [duration, *(record.metrics.get(n, math.nan) for n in names)]
    cells = [str(record.index), str(record.seed), _cell(duration, "duration_s")]
    cells += [_cell(v, n) for v, n in zip(values[1:], names, strict=True)]
    text = ",".join(cells)
    _rows[id(record)] = (record, names, text, values)
    return text, values


def _forget_missing(runs: list[RunRecord]) -> None:
    if len(_rows) > 2 * len(runs) + 16:
        live = {id(r) for r in runs}
        for key in [k for k in _rows if k not in live]:
            del _rows[key]


def _cell(value: float | None, column: str) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:.2f}" if column == "duration_s" else f"{value:.6f}"


def write_summary(paths: StudyPaths, state: StudyState) -> None:
    atomic_write_text(paths.summary, summary_text(state.completed))
