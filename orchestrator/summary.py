"""summary.csv: one row per completed run in run order, then mean and std rows.

The format is the seed document's: ``run,seed,duration_s``, then every metric
any completed run logged, sorted by name; metrics with 6 decimals, durations
with 2. A metric a run did not log is an empty cell. Two columns close each
row, ``representative`` and ``best_run``: ``*`` on those runs (per variant,
``orchestrator.representative``), empty elsewhere and on the mean and std rows.

Values that are not numbers (a diverged seed's ``inf`` loss) are written as they
are, ``nan``, ``inf`` or ``-inf``, which pandas and Python's ``float`` read back.
The mean and std rows are over the finite values only: what pandas gives for
``frame[col][np.isfinite(frame[col])].mean()`` and ``.std()`` (ddof=1), so one
diverged seed does not turn the whole column into ``inf`` or ``nan``; std is 0
for a single finite value, and both are empty where a column has no finite
value at all: the non-finite rule of ``orchestrator.seed_table``, which every
command follows. How many runs were left out this way is told by the closing
lines of ``xorch launch``, by ``xorch status`` and by ``xorch summary``.

A study with folds (``experiments_runner.folds``) has a ``fold`` column before
``seed``; after the mean and std rows over all of a block's runs (``mean,-,-,...``)
come a mean and a std row per fold (``mean,2,-,...``). Every file xorch writes
has ``epochs_trained`` and ``best_checkpoint_path`` before the mark columns: what
each run's child reported (empty when it did not say).

A study of variants writes ``run,variant,seed,duration_s,...``: per variant (in
the config's order) its completed rows, then its own ``mean`` and ``std`` rows
(``mean,wide,-,...``), every block with the same columns. Next to it,
``comparison.csv`` holds each variant against the reference
(``orchestrator.commands.compare.compare_variants``): after the first run that
can be compared, then at most every ``COMPARISON_EVERY_S`` (``SummaryWriter``),
and in full at the end of every launch.

summary.csv is rewritten after every run, so the rewrite must stay cheap at
10,000 runs and 500 variants: a run's row text is formatted once and reused
while the values it shows (index, variant, seed, duration, the columns'
metrics) are unchanged, a cache keyed by those values, so it cannot hand one
run's row to another; the runs are grouped by variant once, and each variant's
block (rows, mean and std from one NumPy matrix) is reused while its rows'
values are unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping

import numpy as np

from orchestrator.contract.atomic import atomic_write_text
from orchestrator.contract.paths import StudyPaths
from orchestrator.representative import standouts
from orchestrator.seed_table import describe
from orchestrator.state import RunRecord, StudyState
from orchestrator.tracker_study import log_study_figures

__all__ = [
    "COMPARISON_EVERY_S",
    "SummaryWriter",
    "comparison_due",
    "format_number",
    "mean_std_line",
    "summary_text",
    "write_summary",
]


# comparison.csv is rewritten at most this often while a launch runs, and at its end.
COMPARISON_EVERY_S = 30.0


def format_number(value: float, spec: str = ".6f") -> str:
    """``value`` in ``spec``; ``nan``, ``inf`` and ``-inf`` for the values that are not numbers."""
    return format(value, spec)  # Python spells them so in every format spec


def mean_std_line(name: str, values: Iterable[float]) -> str:
    """``val/loss: 0.41 ± 0.02 std (n=2; 1 run not finite: inf)``, over the finite values."""
    stats = describe(values, interval=False)
    note = f"; {stats.not_finite.describe()}" if stats.not_finite.count else ""
    if not stats.n:
        return f"{name}: no finite value (n=0{note})"
    return f"{name}: {stats.mean:.6g} ± {stats.std:.6g} std (n={stats.n}{note})"


# The last two columns: ``*`` on the representative and on the best run
# (``orchestrator.representative``; per variant), empty elsewhere.
MARK_COLUMNS = ("representative", "best_run")
# Before them: what each run's child reported (empty when it did not say).
RUN_COLUMNS = ("epochs_trained", "best_checkpoint_path")
Marks = tuple[Collection[int], Collection[int]]  # run indices: representative, best


def summary_text(
    runs: list[RunRecord], variants: Iterable[str] = (), marks: Marks | None = None
) -> str:
    """summary.csv's text for the completed ``runs`` (in blocks per variant, if any);
    with ``marks`` (as ``write_summary`` gives them), the columns ``epochs_trained``,
    ``best_checkpoint_path`` and the two mark columns. A study with folds has a
    ``fold`` column before ``seed``, and per-fold mean and std rows after each block's."""
    names = tuple(sorted(set().union(*map(_metrics_of, runs))))
    columns = ("duration_s", *names)
    tail = (*RUN_COLUMNS, *MARK_COLUMNS) if marks is not None else ()
    fold = ("fold",) if set(map(_fold_of, runs)) - {None} else ()
    order = list(variants)
    # The mark cells of the marked runs, made once for the whole file.
    mark_of = None if marks is None else {i: _marks(i, marks) for i in {*marks[0], *marks[1]}}
    if not order:
        header = ",".join(["run", *fold, "seed", *columns, *tail])
        lines = [header, *_marked(runs, _block(runs, names, columns, ()), mark_of, ())]
        return "\n".join(lines) + "\n"
    lines = [",".join(["run", "variant", *fold, "seed", *columns, *tail])]
    by_variant: dict[str | None, list[RunRecord]] = {}
    for r in runs:  # grouped once: not once per variant (issue 23, 500 variants)
        by_variant.setdefault(r.variant, []).append(r)
    for variant in order:
        mine = by_variant.get(variant)
        if mine:
            lines += _marked(mine, _block(mine, names, columns, (variant,)), mark_of, (variant,))
    return "\n".join(lines) + "\n"


_index_of = operator.attrgetter("index")
_metrics_of = operator.attrgetter("metrics")
_fold_of = operator.attrgetter("fold")


def _marked(
    runs: list[RunRecord],
    block: tuple[str, ...],
    mark_of: Mapping[int, str] | None,
    label: tuple[str, ...],
) -> tuple[str, ...]:
    """A block's lines with what each run reported and the mark columns (``*``
    where chosen, empty on mean and std). The block's text is cached without
    them, so a mark that moves costs no format; and each label's last marked
    lines are kept with the block and the mark cells they were made from: the
    same block object holds the same records (``_block``), so with the same
    cells the lines are the same (500 variants of 20 seeds: 10,000 rows not
    formatted again after each run, issue 23)."""
    if mark_of is None:
        return block
    cells = tuple(map(mark_of.get, map(_index_of, runs), itertools.repeat(",,")))
    last = _last_marked.get(label)
    if last is not None and last[0] is block and last[1] == cells:
        return last[2]
    rows = [text + _reported(r) + cell for r, text, cell in zip(runs, block, cells, strict=False)]
    lines = (*rows, *(f"{line},,,," for line in block[len(runs) :]))
    _last_marked[label] = (block, cells, lines)
    return lines


def _reported(run: RunRecord) -> str:
    """``,2,run_00_seed7/last.ckpt``: the epochs trained and the best checkpoint."""
    epochs = "" if run.epochs_trained is None else str(run.epochs_trained)
    return f",{epochs},{_csv_text(run.best_checkpoint_path or '')}"


def _csv_text(text: str) -> str:
    """A text cell, quoted as CSV wants when it holds a comma, a quote or a newline."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _marks(index: int, marks: Marks) -> str:
    """``,*,`` for the representative run, ``,,*`` for the best, ``,*,*`` for both."""
    return "".join("," + ("*" if index in chosen else "") for chosen in marks)


# What one row shows: index, variant, fold, seed, duration, the logged metrics, their names.
_RowKey = tuple[
    int, str | None, int | None, int, float | None, tuple[float | None, ...], tuple[str, ...]
]


def _block(
    runs: list[RunRecord], names: tuple[str, ...], columns: tuple[str, ...], label: tuple[str, ...]
) -> tuple[str, ...]:
    """The rows of ``runs``, then their mean and std rows (``label`` after mean/std).
    Each label's last block is kept with its records (immutable objects): the same
    records give the same block, found without reading a value, and a block that
    gained or changed a run reuses the rows of the records it kept, so a run's
    summary costs what changed, not the whole study (issue 20: 2,000 runs; issue
    23: 500 variants). One block per label: the cache cannot grow with the runs."""
    last = _last_block.get(label)
    if last is not None and last.names != names:
        last = None
    if last is not None and _same_records(last.records, runs):
        return last.lines
    # The kept block holds its records, so their ids cannot be another record's.
    kept = {} if last is None else dict(zip(map(id, last.records), last.rows, strict=True))
    rows = []
    for r in runs:
        row = kept.get(id(r))
        if row is None:
            logged = tuple(map(r.metrics.get, names))
            row = _row((r.index, r.variant, r.fold, r.seed, r.duration_s, logged, names))
        rows.append(row)
    lines = _format_block(rows, [r.fold for r in runs], columns, label)
    _last_block[label] = _KeptBlock(tuple(runs), tuple(rows), names, lines)
    return lines


def _same_records(kept: tuple[RunRecord, ...], runs: list[RunRecord]) -> bool:
    return len(kept) == len(runs) and all(map(operator.is_, kept, runs))


@dataclasses.dataclass(frozen=True)
class _KeptBlock:
    """A label's last block: its records, their rows (text, values), the metric
    names, and its lines."""

    records: tuple[RunRecord, ...]
    rows: tuple[tuple[str, tuple[float, ...]], ...]
    names: tuple[str, ...]
    lines: tuple[str, ...]


def _format_block(
    rows: list[tuple[str, tuple[float, ...]]],
    folds: list[int | None],
    columns: tuple[str, ...],
    label: tuple[str, ...],
) -> tuple[str, ...]:
    lines = [text for text, _ in rows]
    matrix = np.array([values for _, values in rows], dtype=float).reshape(len(rows), len(columns))
    # Missing cells are nan already; nan, inf and -inf values are left out the same way.
    matrix[~np.isfinite(matrix)] = math.nan
    with_folds = any(f is not None for f in folds)
    lines += _mean_std(matrix, columns, [*label, *(("-",) if with_folds else ())])
    for fold in sorted({f for f in folds if f is not None}):
        chosen = np.array([f == fold for f in folds])
        lines += _mean_std(matrix[chosen], columns, [*label, str(fold)])
    return tuple(lines)


def _mean_std(matrix: np.ndarray, columns: tuple[str, ...], label: list[str]) -> list[str]:
    """The mean and std rows of ``matrix``'s finite cells (nan: left out)."""
    with warnings.catch_warnings():  # a column with no finite value at all is simply empty
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(matrix, axis=0)
        counts = np.sum(~np.isnan(matrix), axis=0)
        std = np.where(
            counts > 1, np.nanstd(matrix, axis=0, ddof=1), np.where(counts, 0.0, math.nan)
        )
    lines = []
    for kind, stats in (("mean", mean), ("std", std)):
        cells = ("" if math.isnan(v) else _cell(v, c) for v, c in zip(stats, columns, strict=True))
        lines.append(",".join([kind, *label, "-", *cells]))
    return lines


# label (the variant, or () in a study of one config) -> its last block
_last_block: dict[tuple[str, ...], _KeptBlock] = {}
# label -> its last block's lines, the mark cells of its runs, and the marked lines
_last_marked: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}


def _row(key: _RowKey) -> tuple[str, tuple[float, ...]]:
    if 0 in key[5] or key[4] == 0:  # 0.0 == -0.0, but they print apart
        return _format_row(*key)
    return _cached_row(*key)


def _format_row(
    index: int,
    variant: str | None,
    fold: int | None,
    seed: int,
    duration: float | None,
    logged: tuple[float | None, ...],
    names: tuple[str, ...],
) -> tuple[str, tuple[float, ...]]:
    """One run's row of summary.csv and its values (nan where not logged)."""
    cells = [str(index), *(() if variant is None else (variant,))]
    cells += [*(() if fold is None else (str(fold),)), str(seed)]
    cells.append(_cell(duration, "duration_s"))
    cells += [_cell(v, n) for v, n in zip(logged, names, strict=True)]
    return ",".join(cells), tuple(math.nan if v is None else v for v in (duration, *logged))


# A row is a pure function of its values, so it is cached on them, not on a
# record's id: two records with equal values share one row, a record that changed
# misses (nan never equals itself: a miss, never a wrong row). Sized past
# MAX_RUNS, so a 10,000-run study formats each row once while it is unchanged.
_cached_row = functools.lru_cache(maxsize=1 << 17)(_format_row)


def _cell(value: float | None, column: str) -> str:
    """A value as summary.csv writes it: empty when not logged, ``nan``/``inf`` visibly."""
    if value is None:
        return ""
    return format_number(value, ".2f" if column == "duration_s" else ".6f")


def summary_marks(state: StudyState) -> Marks:
    """The runs summary.csv marks: each group's representative, each group's best."""
    chosen = standouts(state)
    return (
        {s.representative.index for s in chosen if s.representative},
        {s.best.index for s in chosen if s.best},
    )


def write_summary(paths: StudyPaths, state: StudyState, comparison: bool = True) -> bool:
    """summary.csv, and (``comparison``) comparison.csv for a study of variants;
    whether comparison.csv was written (not before the reference has a run)."""
    rows = summary_text(state.completed, state.variant_configs, summary_marks(state))
    atomic_write_text(paths.summary, rows, durable=False)  # rebuilt from the state
    if not (comparison and state.variant_configs):
        return False
    from orchestrator.commands.compare import comparison_csv  # scipy: only for variants

    text = comparison_csv(state)
    if text is not None:
        atomic_write_text(paths.comparison, text, durable=False)  # rebuilt from the state
    return text is not None


def comparison_due(last: float | None, now: float, every_s: float = COMPARISON_EVERY_S) -> bool:
    """Whether comparison.csv is rewritten now: the first time, then every ``every_s``."""
    return last is None or now - last >= every_s


class SummaryWriter:
    """The files a launch rewrites after each run: summary.csv every time, and
    comparison.csv once it can be written, then at most every
    ``COMPARISON_EVERY_S`` (every variant's bootstrap and tests cost seconds at
    500 variants: issue 23). The launch writes both in full at its end
    (``study._finish``), so the last comparison.csv has every run."""

    def __init__(self, paths: StudyPaths, clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = paths
        self.clock = clock
        self._compared_at: float | None = None

    def after_run(self, state: StudyState) -> None:
        now = self.clock()
        if write_summary(self.paths, state, comparison_due(self._compared_at, now)):
            self._compared_at = now
        log_study_figures(self.paths, state)  # MLflow's parent runs, in an MLflow study
