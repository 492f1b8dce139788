"""``xorch export --to mlflow``: a study into an MLflow tracking store.

One experiment named after the study; one parent run per study (per variant in
a study of variants) with the aggregate of ``xorch summary`` as metrics
(``val/loss/mean``, ``/std``, ``/ci_low``, ``/ci_high``, ``/n``), and one child
run per study run, nested under it (``mlflow.parentRunId``), named by its
folder, tagged ``xorch.seed``, ``xorch.variant``, ``xorch.status``, with the
run's config as dotted params and its curves with step = epoch.

Exporting again finds every run by its tag ``xorch.id`` (stable: the study's
key and the run's folder) before creating one, and adds only the params and
metric points the run lacks, so a second export duplicates nothing and an
export of a running study is completed by the next one. Imported only by
``commands.export`` once mlflow is known to be installed.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from alembic.util.exc import CommandError
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.commands.export_study import (
    ExportRun,
    MetricSeries,
    RunOutcome,
    StudyExport,
    flatten,
)
from orchestrator.errors import XorchError

__all__ = ["ID_TAG", "export_mlflow", "param_key"]

ID_TAG = "xorch.id"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for a nested run
# MLflow 3's UI opens an experiment without this tag on its GenAI pages (traces),
# where these runs do not show; with it, on the run list.
KIND_TAG = "mlflow.experimentKind"
MAX_PARAM_CHARS = 6000  # MLflow 3's limit on a param's value
MAX_KEY_CHARS = 250  # and on a name
BATCH = 100  # MLflow's limit on params per log_batch

STATUSES = {
    RunOutcome.FINISHED: RunStatus.FINISHED,
    RunOutcome.FAILED: RunStatus.FAILED,
    RunOutcome.KILLED: RunStatus.KILLED,
    RunOutcome.RUNNING: RunStatus.RUNNING,
}


def export_mlflow(study: StudyExport, uri: str) -> tuple[int, int]:
    """Write ``study`` to the store at ``uri``; (runs created, runs found and updated)."""
    for name in ("mlflow", "alembic"):  # the store's table creation talks at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = MlflowClient(tracking_uri=uri)
    except (MlflowException, SQLAlchemyError, CommandError) as exc:
        # A damaged SQLite file, or one whose tables another process is creating
        # at this moment (alembic's CommandError: its version row is not there yet).
        raise XorchError(
            f"mlflow at {uri}: the store cannot be opened ({_first_line(exc)}); "
            "give another --uri, or wait if another MLflow process is creating it"
        ) from None
    try:
        return _Export(client, study).write()
    except MlflowException as exc:
        raise XorchError(f"mlflow at {uri}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Export:
    def __init__(self, client: MlflowClient, study: StudyExport) -> None:
        self.client = client
        self.study = study
        found = client.get_experiment_by_name(study.name)
        self.experiment = (
            found.experiment_id
            if found
            else client.create_experiment(study.name, tags={KIND_TAG: "custom_model_development"})
        )
        self.created = 0
        self.updated = 0
        self.fresh: set[str] = set()

    def write(self) -> tuple[int, int]:
        study = self.study
        for variant in study.variants or (None,):
            runs = [run for run in study.runs if run.variant == variant]
            parent = self._parent(variant, runs)
            for run in runs:
                self._child(run, parent)
        return self.created, self.updated

    def _find_or_create(self, xorch_id: str, name: str, tags: dict[str, str], start: int) -> str:
        found = self.client.search_runs(
            [self.experiment], filter_string=f"tags.`{ID_TAG}` = '{xorch_id}'", max_results=1
        )
        if found:
            self.updated += 1
            run_id: str = found[0].info.run_id
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            return run_id
        self.created += 1
        run = self.client.create_run(
            self.experiment, start_time=start, tags={**tags, ID_TAG: xorch_id}, run_name=name
        )
        self.fresh.add(run.info.run_id)  # nothing logged yet: no history to look up
        return str(run.info.run_id)

    def _parent(self, variant: str | None, runs: Sequence[ExportRun]) -> str:
        study = self.study
        xorch_id = study.key if variant is None else f"{study.key}/{variant}"
        name = study.name if variant is None else f"{study.name}/{variant}"
        tags = {"xorch.study": study.name, "xorch.kind": "study", "xorch.runs": str(len(runs))}
        if variant is not None:
            tags["xorch.variant"] = variant
        starts = [_ms(run.started_at) for run in runs if run.started_at]
        run_id = self._find_or_create(xorch_id, name, tags, min(starts, default=_now_ms()))
        aggregates = study.aggregates_of(variant)
        series = [MetricSeries(n, ((0, v),)) for row in aggregates for n, v in row.values().items()]
        self._log_new_metrics(run_id, series, refresh=True)
        busy = any(run.outcome is RunOutcome.RUNNING for run in runs)
        ends = [_ms(run.ended_at) for run in runs if run.ended_at]
        self._set_status(
            run_id, RunStatus.RUNNING if busy else RunStatus.FINISHED, max(ends or [0])
        )
        return run_id

    def _child(self, run: ExportRun, parent: str) -> None:
        tags = {PARENT_TAG: parent, "xorch.study": self.study.name, "xorch.dir": run.dir,
                "xorch.seed": str(run.seed), "xorch.status": run.status,
                "xorch.index": str(run.index)}  # fmt: skip
        if run.variant is not None:
            tags["xorch.variant"] = run.variant
        if run.fold is not None:
            tags["xorch.fold"] = str(run.fold)
        start = _ms(run.started_at) if run.started_at else _now_ms()
        run_id = self._find_or_create(run.key, run.dir, tags, start)
        self._log_new_params(run_id, _params(run))
        self._log_new_metrics(run_id, run.series, refresh=False)
        self._set_status(run_id, STATUSES[run.outcome], _ms(run.ended_at) if run.ended_at else 0)

    def _log_new_params(self, run_id: str, params: dict[str, str]) -> None:
        have = {} if run_id in self.fresh else self.client.get_run(run_id).data.params
        new = [Param(k, v) for k, v in params.items() if k not in have]
        for first in range(0, len(new), BATCH):
            self.client.log_batch(run_id, params=new[first : first + BATCH])

    def _log_new_metrics(self, run_id: str, series: Iterable[MetricSeries], refresh: bool) -> None:
        """Log the points a run lacks. ``refresh``: a point's value may change (the
        aggregate of a study that went on): log it again when it differs from the
        latest value at that step."""
        stamp = _now_ms()
        new: list[Metric] = []
        for one in series:
            history = (
                [] if run_id in self.fresh else self.client.get_metric_history(run_id, one.name)
            )
            logged = {(m.step, _same(m.value)) for m in history}
            latest = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
            for step, value in one.points:
                if (step, _same(value)) in logged and (
                    not refresh or _same(latest[step]) == _same(value)
                ):
                    continue
                new.append(Metric(one.name, value, stamp, step))
        for first in range(0, len(new), 1000):
            self.client.log_batch(run_id, metrics=new[first : first + 1000])

    def _set_status(self, run_id: str, status: int, end_ms: int) -> None:
        name = RunStatus.to_string(status)
        if status == RunStatus.RUNNING:
            self.client.update_run(run_id, status=name)
        else:
            self.client.set_terminated(run_id, status=name, end_time=end_ms or _now_ms())


def param_key(name: str) -> str:
    """A dotted config key as an MLflow param name: a character MLflow refuses (``*``,
    ``[``...) becomes ``_``, and a name that is no plain path (``a//b``) has ``_`` for ``/``."""
    key = re.sub(r"[^\w\-. :/]", "_", name)[:MAX_KEY_CHARS]
    return key if posixpath.normpath(key) == key else key.replace("/", "_")


def _params(run: ExportRun) -> dict[str, str]:
    """The run's config as dotted params, with seed and variant; values cut to MLflow's limit."""
    params = {param_key(k): str(v)[:MAX_PARAM_CHARS] for k, v in flatten(run.config).items()}
    params["xorch.seed"] = str(run.seed)
    if run.variant is not None:
        params["xorch.variant"] = run.variant
    return params


def _same(value: float) -> float | str:
    """A value as compared between exports: NaN equal to NaN."""
    return "nan" if value != value else value


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)
