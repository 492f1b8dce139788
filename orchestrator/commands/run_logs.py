"""A completed run's CSVLogger logs read back per epoch, for the plots.

A run's per-epoch value of a metric is the last one logged in that epoch. A
resumed run has one ``version_N`` log per child start: they are merged in
version order, and an epoch found in a later version replaces that whole epoch
of the earlier ones (the retried epoch is the one that counted). A metric logged
more than once in an epoch is step-level (``RunCurves.step_level``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from orchestrator.contract.bounded import read_head_and_tail
from orchestrator.contract.limits import MAX_CSV_BYTES
from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.state import RunRecord

__all__ = ["RunCurves", "run_curves", "run_epoch_metrics"]


@dataclass(frozen=True)
class RunCurves:
    """One completed run's per-epoch metrics (index: epoch) and its step-level names."""

    label: str
    epochs: pd.DataFrame
    step_level: frozenset[str]
    variant: str | None = None


def run_epoch_metrics(run_dir: Path) -> pd.DataFrame:
    """One run's metrics per epoch, all its CSVLogger versions merged.

    Index: epoch (int, sorted); one float column per metric; NaN where a metric
    was not logged in an epoch. Empty when the run has no readable log.
    """
    return _read_run(RunPaths(Path(run_dir)))[0]


def _read_run(run: RunPaths) -> tuple[pd.DataFrame, frozenset[str]]:
    merged = pd.DataFrame()
    step_level: set[str] = set()
    # A logger of the user's own writes under its own name (lightning-hydra-
    # template's csv logger: csv/version_N): its logs, when xorch's are absent.
    for path in run.csv_metric_logs() or run.any_csv_metric_logs():
        log = _read_log(path)
        if log is None:
            continue
        epochs, many = log
        step_level |= many
        # Later versions win for a whole epoch: drop it from what came before.
        kept = merged.drop(index=epochs.index, errors="ignore")
        merged = epochs if kept.empty else pd.concat([kept, epochs])
    return merged.sort_index(), frozenset(step_level)


def _read_log(path: Path) -> tuple[pd.DataFrame, set[str]] | None:
    """Per-epoch values of one metrics.csv (its header and last ``MAX_CSV_BYTES``)
    and the metrics logged more than once an epoch."""
    try:
        text = read_head_and_tail(path, MAX_CSV_BYTES).decode("utf-8")
        # A crash can cut the last line short: skip such a line, keep the rest.
        raw = pd.read_csv(io.StringIO(text), on_bad_lines="skip")
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    if "epoch" not in raw.columns:
        return None
    values = raw.drop(columns=["epoch", "step"], errors="ignore").apply(
        pd.to_numeric, errors="coerce"
    )
    values["epoch"] = pd.to_numeric(raw["epoch"], errors="coerce")
    values = values.dropna(subset=["epoch"])
    if values.empty:
        return None
    values["epoch"] = values["epoch"].astype(int)
    grouped = values.groupby("epoch")
    per_epoch = grouped.last()  # the last non-null value of each column in each epoch
    counts = grouped.count().max()
    many = {str(name) for name, count in counts.items() if count > 1}
    per_epoch.index = per_epoch.index.astype(int)
    return per_epoch.astype(float), many


def run_curves(paths: StudyPaths, run: RunRecord) -> RunCurves:
    epochs, step_level = _read_run(paths.run(run.dir))
    return RunCurves(f"run {run.index} (seed {run.seed})", epochs, step_level, run.variant)
