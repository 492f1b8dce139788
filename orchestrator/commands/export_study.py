"""What ``xorch export`` hands a tracker: a study read into frozen values.

``read_export`` reads a study folder without disturbing it (no lock, nothing
written, as ``orchestrator.api`` reads one): each started run with its seed,
variant, status, config (its run_spec.json), final metrics and per-epoch curves
(``run_logs.run_curves``, the reader of ``xorch plot`` and ``api.curves()``),
and the study's aggregate per metric (and variant) from ``summary_cmd``, the
numbers of ``xorch summary``. The tracker modules only write these values.

A run that never started (pending) has no folder and nothing to show: it is
left out, and a later export adds it. The pure parts (``flatten``,
``changed_keys``, ``metric_points``, ``study_key``) are tested with tables.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.commands.run_logs import run_curves
from orchestrator.commands.status import run_status_label
from orchestrator.commands.summary_cmd import study_metric_stats, variant_metric_stats
from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.records import RunSpec
from orchestrator.state import RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_study_state, study_folder

__all__ = [
    "Aggregate",
    "ExportRun",
    "MetricSeries",
    "RunOutcome",
    "StudyExport",
    "changed_keys",
    "flatten",
    "metric_points",
    "read_export",
    "study_key",
]


class RunOutcome(str, enum.Enum):
    """A run's status as trackers know it (MLflow's FINISHED / FAILED / KILLED / RUNNING)."""

    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"  # interrupted: stopped by the user or a dead parent, resumable
    RUNNING = "running"


OUTCOMES: Mapping[RunStatus, RunOutcome] = {
    RunStatus.COMPLETED: RunOutcome.FINISHED,
    RunStatus.FAILED: RunOutcome.FAILED,
    RunStatus.INTERRUPTED: RunOutcome.KILLED,
    RunStatus.RUNNING: RunOutcome.RUNNING,
}


@dataclass(frozen=True)
class MetricSeries:
    """One metric of one run: (epoch, value) points in epoch order."""

    name: str
    points: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class ExportRun:
    """One started run as every tracker shows it."""

    key: str  # stable across exports: the study's key and the run's folder
    dir: str  # the run's folder in the study (``base/run_00_seed1``): its name in a tracker
    index: int
    seed: int
    variant: str | None
    fold: int | None  # None in a study without folds
    status: str  # as ``xorch status`` says it: completed, or the failure class
    outcome: RunOutcome
    config: Mapping[str, Any]  # the run's run_spec.json config; the study's when unreadable
    hparams: Mapping[str, str | int | float]  # seed, variant, the keys variants change
    final: Mapping[str, float]  # its final metrics (metrics.json), as summary.csv has them
    series: tuple[MetricSeries, ...]  # curves, with the final values at the last epoch
    started_at: str | None
    ended_at: str | None


@dataclass(frozen=True)
class Aggregate:
    """One metric (of one variant) over the completed runs, as ``xorch summary`` has it."""

    metric: str
    variant: str | None
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def values(self) -> dict[str, float]:
        """``val/loss/mean`` ... ``val/loss/n``: the names the trackers log."""
        figures = {"mean": self.mean, "std": self.std, "ci_low": self.ci_low,
                   "ci_high": self.ci_high, "n": float(self.n)}  # fmt: skip
        return {f"{self.metric}/{name}": value for name, value in figures.items()}


@dataclass(frozen=True)
class StudyExport:
    """A study read for export: its name, stable key, runs and aggregate."""

    name: str
    key: str
    root: Path
    variants: tuple[str, ...]  # empty for a study of one config
    runs: tuple[ExportRun, ...]
    aggregates: tuple[Aggregate, ...]
    left_out: int  # runs not started yet

    def aggregates_of(self, variant: str | None) -> tuple[Aggregate, ...]:
        return tuple(row for row in self.aggregates if row.variant == variant)


def read_export(folder: Path | str) -> StudyExport:
    """The study in ``folder`` as it is now (a running one too); StateError for no study."""
    root = study_folder(folder)
    paths = StudyPaths(root)
    state = load_study_state(paths)
    key = study_key(state)
    changes = changed_keys(state.variant_configs)
    runs = tuple(
        _export_run(paths, state, record, key, changes)
        for record in state.runs
        if record.status is not RunStatus.PENDING and record.attempts
    )
    left_out = len(state.runs) - len(runs)
    return StudyExport(root.name, key, root, tuple(state.variant_configs), runs,
                       _aggregates(state), left_out)  # fmt: skip


def study_key(state: StudyState) -> str:
    """12 hex digits naming this study wherever its folder is moved: its creation time
    and config fingerprint, which no resume or rerun changes."""
    text = f"{state.created_at}\0{state.config_fingerprint}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _export_run(
    paths: StudyPaths, state: StudyState, record: RunRecord, key: str, changes: tuple[str, ...]
) -> ExportRun:
    run = paths.run(record.dir)
    try:
        config: Mapping[str, Any] = RunSpec.load(run.run_spec).config
    except (OSError, ValueError, TypeError):  # gone or damaged: the config it was given
        config = state.variant_configs.get(record.variant or "", state.training_config)
    flat = flatten(config)
    # RunRecord.fold arrives with studies of folds (k-fold x seeds); absent, no fold.
    fold: int | None = getattr(record, "fold", None)
    hparams: dict[str, str | int | float] = {"seed": record.seed}
    if record.variant is not None:
        hparams["variant"] = record.variant
    if fold is not None:
        hparams["fold"] = fold
    hparams.update({name: _hparam(flat.get(name)) for name in changes})
    final = {name: float(value) for name, value in sorted(record.metrics.items())}
    attempts = record.attempts
    return ExportRun(
        key=f"{key}/{record.dir}",
        dir=record.dir,
        index=record.index,
        seed=record.seed,
        variant=record.variant,
        fold=fold,
        status=run_status_label(record),
        outcome=OUTCOMES[record.status],
        config=config,
        hparams=hparams,
        final=final,
        series=metric_points(run_curves(paths, record).epochs, final),
        started_at=attempts[0].started_at if attempts else None,
        ended_at=record.ended_at,
    )


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (``model.init_args.lr``); lists are one value."""
    flat: dict[str, Any] = {}
    for name, value in config.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def changed_keys(variant_configs: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """The dotted keys whose value differs between the variants' configs, sorted
    (a key only some variants have counts as changed); none for one config."""
    flats = [flatten(config) for config in variant_configs.values()]
    if len(flats) < 2:
        return ()
    names = sorted({name for flat in flats for name in flat})
    return tuple(
        name
        for name in names
        if len({_hparam(flat[name]) if name in flat else None for flat in flats}) > 1
    )


def _hparam(value: Any) -> str | int | float:
    """A config value as one hparam: numbers stay numbers, the rest JSON text."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return value
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def metric_points(epochs: pd.DataFrame, final: Mapping[str, float]) -> tuple[MetricSeries, ...]:
    """Each metric's series, sorted by name: its curve (``epochs``: index epoch, a
    column per metric, NaN where not logged) and, where the final value is not the
    curve's last point, the final value at the last epoch (step 0 without a curve),
    so a tracker's "latest value" is the one summary.csv has."""
    last_epoch = int(epochs.index.max()) if not epochs.empty else 0
    series = []
    for name in sorted({*map(str, epochs.columns), *final}):
        points: list[tuple[int, float]] = []
        if name in epochs.columns:
            column = epochs[name].dropna()
            points = [(int(e), float(v)) for e, v in column.items()]  # type: ignore[call-overload]
        if name in final and not _ends_with(points, last_epoch, final[name]):
            points.append((last_epoch, final[name]))
        series.append(MetricSeries(name, tuple(points)))
    return tuple(series)


def _ends_with(points: Iterable[tuple[int, float]], epoch: int, value: float) -> bool:
    last = list(points)[-1:] or [(-1, math.nan)]
    step, logged = last[0]
    same = logged == value or (math.isnan(logged) and math.isnan(value))
    return step == epoch and same


def _aggregates(state: StudyState) -> tuple[Aggregate, ...]:
    """The summary's rows (none before a run completed): per (metric, variant) in a
    study of variants, per metric otherwise."""
    if not state.completed:
        return ()
    if state.variant_configs:
        return tuple(
            Aggregate(row.metric, row.variant, row.stats.n, row.stats.mean, row.stats.std,
                      row.stats.ci_low, row.stats.ci_high)
            for row in variant_metric_stats(state)
        )  # fmt: skip
    return tuple(
        Aggregate(name, None, s.n, s.mean, s.std, s.ci_low, s.ci_high)
        for name, s in study_metric_stats(state)
    )
