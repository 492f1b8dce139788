"""summary.csv: one row per completed run in run order, then mean and std rows.

The format is the seed document's: ``run,seed,duration_s``, then every metric
any completed run logged, sorted by name; metrics with 6 decimals, durations
with 2; std is the sample standard deviation (ddof=1), and 0 for a single run.
"""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.atomic import atomic_write_text
from orchestrator.paths import StudyPaths
from orchestrator.state import RunRecord, StudyState

__all__ = ["summary_frame", "summary_text", "write_summary"]


def summary_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """Completed runs as numbers: index ``run``, columns seed, duration_s, metrics..."""
    names = sorted({name for r in runs for name in r.metrics})
    rows = [
        {"run": r.index, "seed": r.seed, "duration_s": r.duration_s, **dict(r.metrics)}
        for r in runs
    ]
    frame = pd.DataFrame(rows, columns=["run", "seed", "duration_s", *names])
    return frame.set_index("run")


def summary_text(runs: list[RunRecord]) -> str:
    frame = summary_frame(runs)
    values = frame.drop(columns=["seed"]).astype(float)
    mean = values.mean()
    std = values.std(ddof=1) if len(values) > 1 else values.mean() * 0.0
    lines = [",".join(["run", "seed", *values.columns])]
    for run, row in frame.iterrows():
        cells = [str(run), str(int(row["seed"]))]
        cells += [_cell(row[c], c) for c in values.columns]
        lines.append(",".join(cells))
    for label, stats in (("mean", mean), ("std", std)):
        lines.append(",".join([label, "-", *(_cell(stats[c], c) for c in values.columns)]))
    return "\n".join(lines) + "\n"


def _cell(value: float, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.2f}" if column == "duration_s" else f"{value:.6f}"


def write_summary(paths: StudyPaths, state: StudyState) -> None:
    atomic_write_text(paths.summary, summary_text(state.completed))
