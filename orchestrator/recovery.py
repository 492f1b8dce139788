"""Recovery at launch: settling the runs a dead parent left 'running'."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.console import Reporter
from orchestrator.contract.environment import run_mark
from orchestrator.contract.paths import RunPaths, StudyPaths, study_relative
from orchestrator.contract.records import Heartbeat, RunResult, file_problem
from orchestrator.launchers.base import ChildProcess, Launcher
from orchestrator.launchers.local import stop_process_group
from orchestrator.ledger import Ledger, Settled
from orchestrator.liveness import still_running
from orchestrator.run_processes import end_run_processes
from orchestrator.state import Attempt, AttemptClass, RunOutcome, RunRecord, RunStatus, now_iso

__all__ = ["settle_stale_runs"]


def settle_stale_runs(
    ledger: Ledger, reporter: Reporter, grace_period: float, launcher: Launcher
) -> list[tuple[int, ChildProcess]]:
    """Runs that a dead parent left 'running': a cluster job is watched again
    (it may still run, or have finished meanwhile) and returned to be reattached;
    otherwise adopt a result the child finished, or stop a child that outlived
    its parent and record it interrupted (all settled in one save)."""
    paths = ledger.paths
    reattach: list[tuple[int, ChildProcess]] = []
    settled: list[Settled] = []
    for record in ledger.state.with_status(RunStatus.RUNNING):
        attempt = record.current_attempt
        assert attempt is not None
        if attempt.job_id is not None and launcher.reattaches_jobs:
            reattach.append((record.index, launcher.attach(attempt.job_id, paths.run(record.dir))))
            continue
        finished, result = _settled_attempt(record, paths, reporter, grace_period)
        said = reported_outcome(result, paths.root) if result else None
        settled.append((record.index, finished, result.metrics if result else None, said))
        outcome = finished.attempt_class
        assert outcome is not None
        reporter.say(f"run {record.index} seed {record.seed}: was running, now {outcome.value}")
    ledger.settle(settled)
    return reattach


def _settled_attempt(
    record: RunRecord, paths: StudyPaths, reporter: Reporter, grace_period: float
) -> tuple[Attempt, RunResult | None]:
    """The stale attempt of ``record`` finished from what its run folder shows."""
    attempt = record.current_attempt
    assert attempt is not None
    run = paths.run(record.dir)
    result, problem = RunResult.read_noting(run.metrics)
    if result is not None:
        outcome = AttemptClass.COMPLETED
        reason = "; ".join(filter(None, ["finished while the parent was away", result.note]))
        ended = _file_time(run.metrics)  # the child's last act: its end, not ours
    else:
        outcome, reason = AttemptClass.INTERRUPTED, "the parent died during this attempt"
        if problem:
            reason += f"; {file_problem(run.metrics, problem)}"
        beat = Heartbeat.read(run.heartbeat)
        ended = beat.time if beat is not None else None  # its last sign of life
        if still_running(attempt.pid, attempt.pid_create_time, attempt.host):
            assert attempt.pid is not None
            reporter.say(f"run {record.index}: stopping its child {attempt.pid} left running")
            stop_process_group(attempt.pid, grace_period)
    _end_left_behind(record, run, reporter, grace_period)
    duration = _seconds_since(attempt.started_at, ended)
    finished = dataclasses.replace(
        attempt,
        attempt_class=outcome,
        reason=reason,
        ended_at=_iso(ended) if ended is not None and duration is not None else now_iso(),
        duration_s=duration,
        # A run that finished while the parent was away says in metrics.json
        # whether it resumed from a checkpoint.
        resumed_from=study_relative(result.resumed_from, paths.root)
        if result is not None
        else attempt.resumed_from,
    )
    return finished, result


def _end_left_behind(
    record: RunRecord, run: RunPaths, reporter: Reporter, grace_period: float
) -> None:
    """End what the run's processes left when their parent died: a grandchild
    in its own session or reparented to init outlives the program (which died
    by its parent-death signal). Any process still marked with this run's
    folder is of one of its attempts."""
    ended = end_run_processes(run_mark(run.root), None, grace_period)
    if ended:
        reporter.say(f"run {record.index}: ended {ended} process(es) its attempt left running")


def _file_time(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, timezone.utc)
        .astimezone()
        .isoformat(timespec="milliseconds")
    )


def _seconds_since(started_at: str, ended: float | None) -> float | None:
    """The attempt's length from its recorded start to ``ended`` (a Unix time);
    None when either is unknown or they disagree (a clock that went back)."""
    if ended is None:
        return None
    try:
        started = datetime.fromisoformat(started_at).timestamp()
    except ValueError:
        return None
    return round(ended - started, 3) if ended >= started else None


def reported_outcome(result: RunResult, root: Path) -> RunOutcome:
    """What a finished run's metrics.json says besides its metrics, its checkpoint
    study-relative as runner_state.json keeps paths."""
    return RunOutcome(result.epochs_trained, study_relative(result.best_checkpoint_path, root))
