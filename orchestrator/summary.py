"""summary.csv: one row per completed run in run order, then mean and std rows.

The format is the seed document's: ``run,seed,duration_s``, then every metric
any completed run logged, sorted by name; metrics with 6 decimals, durations
with 2. A metric a run did not log is an empty cell.

Values that are not numbers (a diverged seed's ``inf`` loss) are written as they
are, ``nan``, ``inf`` or ``-inf``, which pandas and Python's ``float`` read back.
The mean and std rows are over the finite values only: what pandas gives for
``frame[col][np.isfinite(frame[col])].mean()`` and ``.std()`` (ddof=1), so one
diverged seed does not turn the whole column into ``inf`` or ``nan``; std is 0
for a single finite value, and both are empty where a column has no finite
value at all: the non-finite rule of ``orchestrator.seed_table``, which every
command follows. How many runs were left out this way is told by the closing
lines of ``xorch launch``, by ``xorch status`` and by ``xorch summary``.

A study of variants writes ``run,variant,seed,duration_s,...``: per variant (in
the config's order) its completed rows, then its own ``mean`` and ``std`` rows
(``mean,wide,-,...``), every block with the same columns. Next to it,
``comparison.csv`` holds each variant against the reference
(``orchestrator.commands.compare.compare_variants``), rewritten with it.

The file is rewritten after every run, so the rewrite must stay cheap at 10,000
runs: a run's row text is formatted once and reused while its record object and
the columns are unchanged; mean and std come from one NumPy matrix.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np

from orchestrator.contract.atomic import atomic_write_text
from orchestrator.contract.paths import StudyPaths
from orchestrator.seed_table import describe
from orchestrator.state import RunRecord, StudyState

__all__ = [
    "format_number",
    "mean_std_line",
    "summary_text",
    "write_summary",
]

# id(record) -> (record, metric names, row text, row values)
_rows: dict[int, tuple[RunRecord, tuple[str, ...], str, list[float]]] = {}


def format_number(value: float, spec: str = ".6f") -> str:
    """``value`` in ``spec``; ``nan``, ``inf`` and ``-inf`` for the values that are not numbers."""
    return format(value, spec)  # Python spells them so in every format spec


def mean_std_line(name: str, values: Iterable[float]) -> str:
    """``val/loss: 0.41 ± 0.02 std (n=2; 1 run not finite: inf)``, over the finite values."""
    stats = describe(values)
    note = f"; {stats.not_finite.describe()}" if stats.not_finite.count else ""
    if not stats.n:
        return f"{name}: no finite value (n=0{note})"
    return f"{name}: {stats.mean:.6g} ± {stats.std:.6g} std (n={stats.n}{note})"


def summary_text(runs: list[RunRecord], variants: Iterable[str] = ()) -> str:
    """summary.csv's text for the completed ``runs`` (in blocks per variant, if any)."""
    names = tuple(sorted({name for r in runs for name in r.metrics}))
    columns = ("duration_s", *names)
    order = list(variants)
    if not order:
        header = ",".join(["run", "seed", *columns])
        lines = [header, *_block(runs, names, columns, ())]
        _forget_missing(runs)
        return "\n".join(lines) + "\n"
    lines = [",".join(["run", "variant", "seed", *columns])]
    for variant in order:
        mine = [r for r in runs if r.variant == variant]
        if mine:
            lines += _block(mine, names, columns, (variant,))
    _forget_missing(runs)
    return "\n".join(lines) + "\n"


def _block(
    runs: list[RunRecord], names: tuple[str, ...], columns: tuple[str, ...], label: tuple[str, ...]
) -> list[str]:
    """The rows of ``runs``, then their mean and std rows (``label`` after mean/std)."""
    rows = [_row(r, names) for r in runs]
    lines = [text for text, _ in rows]
    matrix = np.array([values for _, values in rows], dtype=float).reshape(len(runs), len(columns))
    # Missing cells are nan already; nan, inf and -inf values are left out the same way.
    matrix[~np.isfinite(matrix)] = math.nan
    with warnings.catch_warnings():  # a column with no finite value at all is simply empty
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(matrix, axis=0)
        counts = np.sum(~np.isnan(matrix), axis=0)
        std = np.where(
            counts > 1, np.nanstd(matrix, axis=0, ddof=1), np.where(counts, 0.0, math.nan)
        )
    for kind, stats in (("mean", mean), ("std", std)):
        cells = ("" if math.isnan(v) else _cell(v, c) for v, c in zip(stats, columns, strict=True))
        lines.append(",".join([kind, *label, "-", *cells]))
    return lines


def _row(record: RunRecord, names: tuple[str, ...]) -> tuple[str, list[float]]:
    hit = _rows.get(id(record))
    if hit is not None and hit[0] is record and hit[1] == names:
        return hit[2], hit[3]
    duration = record.duration_s
    logged = [record.metrics.get(n) for n in names]
    variant = [] if record.variant is None else [record.variant]
    cells = [str(record.index), *variant, str(record.seed), _cell(duration, "duration_s")]
    cells += [_cell(v, n) for v, n in zip(logged, names, strict=True)]
    text = ",".join(cells)
    values = [math.nan if v is None else v for v in (duration, *logged)]
    _rows[id(record)] = (record, names, text, values)
    return text, values


def _forget_missing(runs: list[RunRecord]) -> None:
    if len(_rows) > 2 * len(runs) + 16:
        live = {id(r) for r in runs}
        for key in [k for k in _rows if k not in live]:
            del _rows[key]


def _cell(value: float | None, column: str) -> str:
    """A value as summary.csv writes it: empty when not logged, ``nan``/``inf`` visibly."""
    if value is None:
        return ""
    return format_number(value, ".2f" if column == "duration_s" else ".6f")


def write_summary(paths: StudyPaths, state: StudyState) -> None:
    """summary.csv, and comparison.csv for a study of variants."""
    atomic_write_text(paths.summary, summary_text(state.completed, state.variant_configs))
    if state.variant_configs:
        from orchestrator.commands.compare import comparison_csv  # scipy: only for variants

        text = comparison_csv(state)
        if text is not None:
            atomic_write_text(paths.comparison, text)
