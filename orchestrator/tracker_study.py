"""The study's figures in its MLflow parent runs: after each run that ends,
every parent run (the study's, or each variant's) gets the current n, mean,
std and 95% t interval of each metric, the numbers of summary.csv, logged at
step n so MLflow's charts show them settle as seeds come in.

The runs made the parent runs (``worker.trackers``) and named them, with the
tracking URI, in mlflow_parents.json; a study without that file is not an
MLflow study and nothing is imported. MLflow imports no torch (a test checks
it), so the parent may import it; it does so lazily, only here.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.tracking import read_mlflow_parents
from orchestrator.seed_table import seed_table
from orchestrator.state import RunStatus, StudyState

__all__ = ["GroupFigures", "log_study_figures", "study_figures"]


@dataclass(frozen=True)
class GroupFigures:
    """One parent run's figures: metric name -> value, and whether its runs are done."""

    figures: Mapping[str, float]
    done: bool


def study_figures(state: StudyState) -> dict[str, GroupFigures]:
    """Group ("" for a study of one config, else the variant) -> its figures:
    ``<metric>.n``, ``.mean``, ``.std``, ``.ci_low``, ``.ci_high`` (finite ones only)."""
    table = seed_table(state)
    groups: list[str | None] = list(state.variant_configs) or [None]
    found: dict[str, GroupFigures] = {}
    for group in groups:
        figures: dict[str, float] = {}
        for metric in table.metrics(group, every_variant=False):
            stats = table.describe(metric, group)
            values = {"n": float(stats.n), "mean": stats.mean, "std": stats.std,
                      "ci_low": stats.ci_low, "ci_high": stats.ci_high}  # fmt: skip
            figures.update({f"{metric}.{k}": v for k, v in values.items() if math.isfinite(v)})
        runs = [r for r in state.runs if r.variant == group]
        done = all(r.status not in (RunStatus.PENDING, RunStatus.RUNNING) for r in runs)
        found[group or ""] = GroupFigures(figures, done)
    return found


def log_study_figures(paths: StudyPaths, state: StudyState) -> None:
    """Log ``study_figures`` into the parent runs that mlflow_parents.json names;
    nothing when it names none. A tracker that cannot be reached costs a
    warning line, never the study."""
    named = read_mlflow_parents(paths)
    if named is None:
        return
    uri, parents = named.tracking_uri, named.parents
    from filelock import FileLock

    try:
        # The runs' lock: one writer of a SQLite store at a time (worker.trackers).
        with FileLock(str(paths.mlflow_lock)):
            _log(uri, parents, study_figures(state), len(state.completed))
    except Exception as exc:  # the tracker's own errors, whatever their class
        print(
            f"xorch: warning: MLflow: the study's figures were not logged: {exc}", file=sys.stderr
        )


def _log(uri: str, parents: Mapping[str, str], found: Mapping[str, GroupFigures], n: int) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    # xorch's console is not MLflow's: its INFO lines (the store's schema) stay out.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    for group, run_id in parents.items():
        if group not in found:
            continue
        figures = found[group]
        metrics = [Metric(key, value, now, n) for key, value in sorted(figures.figures.items())]
        if metrics:
            client.log_batch(run_id, metrics=metrics)
        client.update_run(run_id, status="FINISHED" if figures.done else "RUNNING")
