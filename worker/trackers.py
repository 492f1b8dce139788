"""The study's configured loggers, given the run's identity and closed at the
end of every attempt.

Which arguments a logger gets is decided in ``orchestrator.contract.tracking``
(pure); here is the IO around it: the MLflow experiment, parent run and this
run's own MLflow run (kept in the run folder, so a later attempt continues
it), and ``closing_loggers``, the one place where an attempt's loggers are
flushed and closed, however it ends. Lightning finalizes its loggers at the end
of ``fit`` but never ends a W&B run (W&B's own exit hook does that, which a
fork server's run skips: it leaves through ``os._exit``), and a failed or
stopped run must show as such in its tracker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.contract.atomic import atomic_write_json, atomic_write_text
from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.contract.tracking import (
    RunIdentity,
    Tracker,
    identity_arguments,
    read_mlflow_parents,
    read_mlflow_run_id,
    tracker_of,
)

__all__ = ["AttemptOutcome", "closing_loggers", "logger_arguments", "start_mlflow_run"]

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own tag for a nested run


def logger_arguments(
    class_path: str, arguments: Mapping[str, Any], identity: RunIdentity | None
) -> dict[str, Any]:
    """A logger entry's arguments with the run's identity in them (MLflow's
    with its parent run and, for a later attempt, its own run id)."""
    tracker = tracker_of(class_path)
    if identity is None or tracker is None:
        return dict(arguments)
    found = identity_arguments(tracker, identity, arguments, os.environ)
    if tracker is Tracker.MLFLOW and "run_id" not in arguments:
        found.update(_mlflow_links(identity, found))
    return found


def _mlflow_links(identity: RunIdentity, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """This run's MLflow run id when an earlier attempt made it; otherwise the
    tag that nests the run under the study's (the variant's) parent run."""
    own = read_mlflow_run_id(RunPaths(Path(identity.study_dir) / identity.run_dir))
    if own is not None:
        return {"run_id": own}
    parent = _parent_run(identity, str(arguments["tracking_uri"]), arguments["experiment_name"])
    return {"tags": {**dict(arguments.get("tags") or {}), PARENT_RUN_TAG: parent}}


def _parent_run(identity: RunIdentity, uri: str, experiment_name: str) -> str:
    """The parent run of the study (of the run's variant), made by its first run.
    Under the study's lock: parallel runs would each make one, and SQLite's
    schema is created on first use."""
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    study = StudyPaths(Path(identity.study_dir))
    group = identity.variant or ""
    with FileLock(str(study.mlflow_lock)):
        known = _parents(study, uri)
        if group in known:
            return known[group]
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name)
        # MLflow 3's UI opens an experiment without this tag on its GenAI pages, not
        # on the run list (as orchestrator.commands.export_mlflow's experiments).
        kind = {"mlflow.experimentKind": "custom_model_development"}
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(experiment_name, tags=kind)
        )
        tags = {"mlflow.runName": group or identity.study, "xorch.study": identity.study}
        if group:
            tags["variant"] = group
        run = client.create_run(experiment_id, tags=tags)
        known[group] = run.info.run_id
        # The parent (orchestrator.tracker_study) logs the study's figures there.
        atomic_write_json(study.mlflow_parents, {"tracking_uri": uri, "parents": known})
        return run.info.run_id


def _parents(study: StudyPaths, uri: str) -> dict[str, str]:
    """The parent runs made so far in the store at ``uri`` (group -> run id)."""
    found = read_mlflow_parents(study)
    return dict(found.parents) if found is not None and found.tracking_uri == uri else {}


def start_mlflow_run(loggers: list[Any], identity: RunIdentity | None) -> None:
    """Make (or reopen) each MLflow logger's run now and keep its id in the run
    folder, so a later attempt, or the study resumed, continues the same run."""
    if identity is None:
        return
    from filelock import FileLock

    study = StudyPaths(Path(identity.study_dir))
    for logger in loggers:
        if tracker_of(f"{type(logger).__module__}.{type(logger).__name__}") is not Tracker.MLFLOW:
            continue
        with FileLock(str(study.mlflow_lock)):  # one writer of the SQLite store at a time
            client = logger.experiment
            client.update_run(logger.run_id, status="RUNNING")  # a later attempt: running again
        atomic_write_text(study.run(identity.run_dir).mlflow_run_id, f"{logger.run_id}\n")


@dataclass
class AttemptOutcome:
    """How the attempt ended, filled in by the code inside ``closing_loggers``."""

    metrics: dict[str, float] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def closing_loggers(
    trainer_logger: Any, identity: RunIdentity | None, lead: bool = True
) -> Iterator[AttemptOutcome]:
    """The Trainer's ``logger`` argument (a list, one logger or False), each
    logger closed when the block ends, as completed, failed (an exception) or
    stopped (Lightning's SIGTERM exit, a KeyboardInterrupt). ``lead``: the
    process that opens MLflow's run (DDP's rank 0)."""
    loggers = _as_list(trainer_logger)
    outcome = AttemptOutcome()
    try:
        if lead:
            start_mlflow_run(loggers, identity)
        yield outcome
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))
        _close_all(loggers, "killed" if stopped else "failed", outcome, identity)
        raise
    _close_all(loggers, "success", outcome, identity)


def _as_list(loggers: Any) -> list[Any]:
    if isinstance(loggers, list):
        return loggers
    return [] if loggers is False or loggers is None else [loggers]


def _close_all(
    loggers: list[Any], status: str, outcome: AttemptOutcome, identity: RunIdentity | None
) -> None:
    for logger in loggers:
        # A logger that cannot close must not hide the run's own outcome.
        with contextlib.suppress(Exception):
            _close(logger, status, outcome, identity)


def _close(logger: Any, status: str, outcome: AttemptOutcome, identity: RunIdentity | None) -> None:
    tracker = tracker_of(f"{type(logger).__module__}.{type(logger).__name__}")
    if tracker is Tracker.TENSORBOARD and status == "success" and identity is not None:
        # The HParams tab: the run's identity and model hparams with its final metrics.
        hparams = {**_scalars(outcome.hparams), **identity.values()}
        logger.log_hyperparams(hparams, {f"final/{k}": v for k, v in outcome.metrics.items()})
    if tracker is Tracker.MLFLOW:
        status = {"success": "FINISHED", "failed": "FAILED", "killed": "KILLED"}[status]
    logger.finalize(status)
    if tracker is Tracker.WANDB and getattr(logger, "_experiment", None) is not None:
        # W&B's run ends here, its data written, whatever way the process leaves.
        logger._experiment.finish(exit_code=0 if status == "success" else 1)


def _scalars(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool))}
