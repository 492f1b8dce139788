"""``xorch export --to wandb``: a study as W&B offline runs.

Always offline (``mode="offline"``, as ``WANDB_MODE=offline``): the runs are
written under ``DIR/wandb/offline-run-*`` and ``wandb sync`` uploads them when
the user chooses. Project and group are the study's name, ``job_type`` the
variant (``study`` for a study of one config), the name the run's folder; the
config is the run's config with an ``xorch`` block (seed, variant, status,
index); the history has one row per epoch (step = epoch) and the summary the
final metrics. A failed or interrupted run finishes with exit code 1, which W&B
shows as failed. One more run per variant, named ``summary``, carries the
aggregate of ``xorch summary`` in its W&B summary.

Each run's id is stable, derived from the study's key and the run's folder.
Exporting again removes that id's offline folder first and writes it anew,
so ``wandb sync`` of the folder never sends a run twice. Imported only by
``commands.export`` once wandb is known to be installed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import wandb

from orchestrator.commands.export_study import (
    ExportRun,
    MetricSeries,
    RunOutcome,
    StudyExport,
)
from orchestrator.contract.paths import wandb_offline_runs
from orchestrator.errors import XorchError

__all__ = ["epoch_rows", "export_wandb", "wandb_run_id"]


def export_wandb(study: StudyExport, directory: Path) -> tuple[int, int]:
    """Write ``study``'s runs under ``directory``; (runs created, runs rewritten)."""
    try:
        return _export(study, directory)
    except wandb.errors.Error as exc:  # W&B's own refusals (a name it does not take...)
        raise XorchError(f"wandb: {str(exc).strip().splitlines()[0]}") from None


def _export(study: StudyExport, directory: Path) -> tuple[int, int]:
    directory.mkdir(parents=True, exist_ok=True)
    created = rewritten = 0
    for run in study.runs:
        run_id = wandb_run_id(run.key)
        if _forget(directory, run_id):
            rewritten += 1
        else:
            created += 1
        config = {**run.config, "xorch": _identity(study, run)}
        started = _start(study, run.variant, run.dir, run_id, directory, config)
        for epoch, row in epoch_rows(run.series):
            started.log(row, step=epoch)
        started.summary.update(dict(run.final))
        failed = run.outcome in (RunOutcome.FAILED, RunOutcome.KILLED)
        started.finish(exit_code=1 if failed else 0)
    for variant in study.variants or (None,):
        name = "summary" if variant is None else f"{variant}/summary"
        run_id = wandb_run_id(f"{study.key}/{name}")
        _forget(directory, run_id)
        values = {k: v for row in study.aggregates_of(variant) for k, v in row.values().items()}
        identity = {"study": study.name, "variant": variant, "kind": "summary"}
        started = _start(study, variant, name, run_id, directory, {"xorch": identity})
        started.summary.update(values)
        started.finish(exit_code=0)
    return created, rewritten


def wandb_run_id(key: str) -> str:
    """A W&B run id (letters and digits) that is the same on every export of ``key``."""
    return "xorch" + hashlib.sha256(key.encode()).hexdigest()[:20]


def epoch_rows(series: Iterable[MetricSeries]) -> list[tuple[int, dict[str, float]]]:
    """The series as W&B history rows: one per epoch, in epoch order, each with the
    metrics logged at that epoch."""
    rows: dict[int, dict[str, float]] = {}
    for one in series:
        for epoch, value in one.points:
            rows.setdefault(epoch, {})[one.name] = value
    return sorted(rows.items())


def _identity(study: StudyExport, run: ExportRun) -> dict[str, Any]:
    return {"study": study.name, "seed": run.seed, "variant": run.variant, "fold": run.fold,
            "status": run.status, "index": run.index, "dir": run.dir}  # fmt: skip


def _start(
    study: StudyExport,
    variant: str | None,
    name: str,
    run_id: str,
    directory: Path,
    config: Mapping[str, Any],
) -> Any:  # wandb's Run
    settings = wandb.Settings(
        mode="offline", silent=True, console="off", disable_git=True, save_code=False,
        x_disable_stats=True, x_disable_machine_info=True,
    )  # fmt: skip
    return wandb.init(
        project=study.name, group=study.name, job_type=variant or "study", name=name,
        id=run_id, dir=str(directory), config=dict(config), resume="allow", settings=settings,
    )  # fmt: skip


def _forget(directory: Path, run_id: str) -> bool:
    """Remove an earlier export of ``run_id``; whether there was one."""
    earlier = wandb_offline_runs(directory, run_id)
    for folder in earlier:
        shutil.rmtree(folder)
    return bool(earlier)
