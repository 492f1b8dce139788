"""runner_state.json's schema and the allowed status changes.

This is the only module that changes a run's status, and only along
``TRANSITIONS``. The state is immutable: every change returns a new
``StudyState``, which the scheduler saves at once (``state_store``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "AdaptiveRule",
    "AdaptiveSeeds",
    "Attempt",
    "AttemptClass",
    "FoldSpec",
    "RunOutcome",
    "RunRecord",
    "RunStatus",
    "StudyState",
    "now_iso",
]

SCHEMA_VERSION = 1


class RunStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING}),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.INTERRUPTED}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.INTERRUPTED: frozenset({RunStatus.RUNNING}),
    # Only ``StudyState.reopen`` takes this way back (``xorch rerun``, ``overwrite``):
    # a completed run is run again from scratch, its attempts kept as history.
    RunStatus.COMPLETED: frozenset({RunStatus.PENDING}),
}


class AttemptClass(str, enum.Enum):
    """How one attempt ended. Exactly one per finished attempt."""

    COMPLETED = "completed"
    FAILED = "failed"  # a Python exception in the child
    CONFIG_ERROR = "config_error"  # the run could not be built from the config
    CUDA_OOM = "cuda_oom"
    OOM_KILLED = "oom_killed"  # the kernel killed it for memory (with evidence)
    KILLED = "killed"  # SIGKILL from outside xorch, with no sign of memory pressure
    SIGNAL = "signal"
    TIMEOUT = "timeout"
    HANG = "hang"
    INTERRUPTED = "interrupted"
    NO_METRICS = "no_metrics"

    @property
    def run_status(self) -> RunStatus:
        if self is AttemptClass.COMPLETED:
            return RunStatus.COMPLETED
        if self is AttemptClass.INTERRUPTED:
            return RunStatus.INTERRUPTED
        return RunStatus.FAILED


@dataclass(frozen=True)
class Attempt:
    """One child process's try at a run."""

    number: int
    started_at: str
    log: str
    pid: int | None = None
    pid_create_time: float | None = None
    host: str = field(default_factory=socket.gethostname)
    # None while it runs. Kept in runner_state.json under the key "outcome"
    # (state_schema.ATTEMPT_JSON_KEYS): renaming the key would need schema v2 and a
    # migration for nothing a user sees.
    attempt_class: AttemptClass | None = None
    reason: str = ""
    exit_code: int | None = None
    signal: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    resumed_from: str | None = None
    slot: str | None = None  # e.g. gpu0#2 or cpu#1
    gpu: str | None = None  # the child's CUDA_VISIBLE_DEVICES
    job_id: str | None = None  # the Slurm job, for executor: slurm


@dataclass(frozen=True)
class RunRecord:
    """One run of the study. ``duration_s``, ``failure``, ``started_at``,
    ``ended_at`` and ``exit_code`` are read off its attempts (properties;
    runner_state.json still holds them under their keys, written by
    ``state_store`` and ignored on loading)."""

    index: int
    seed: int
    dir: str
    status: RunStatus = RunStatus.PENDING
    metrics: Mapping[str, float] = field(default_factory=dict)
    attempts: tuple[Attempt, ...] = ()
    variant: str | None = None  # None in a study of one config
    fold: int | None = None  # None in a study without folds
    # What the completed run's child said (metrics.json; None when it did not say):
    # the epochs it trained, and its ModelCheckpoint's best checkpoint (else last.ckpt).
    epochs_trained: int | None = None
    best_checkpoint_path: str | None = None

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    # Cached on the record (frozen: a changed run is a new record): summary.csv
    # and each save read every run's, 10,000 of them in a big study.
    @functools.cached_property
    def duration_s(self) -> float | None:
        """The time of this round's attempts together (a rerun's time is its own);
        None before any."""
        if not self.attempts:
            return None
        return round(sum(a.duration_s or 0.0 for a in _this_round(self.attempts)), 3)

    @functools.cached_property
    def failure(self) -> AttemptClass | None:
        """The class of the last attempt that ended, unless it completed (a retry
        in flight keeps the one before it; a reopened run has none); None before
        any ended."""
        ended = [a.attempt_class for a in self.attempts if a.attempt_class is not None]
        if self.status is RunStatus.COMPLETED or not ended:
            return None
        return None if ended[-1] is AttemptClass.COMPLETED else ended[-1]

    @property
    def started_at(self) -> str | None:
        """When the first attempt started; None before any."""
        return self.attempts[0].started_at if self.attempts else None

    @property
    def ended_at(self) -> str | None:
        """When the last attempt ended; None while one runs (or before any)."""
        last = self.current_attempt
        return last.ended_at if last is not None and last.attempt_class is not None else None

    @property
    def exit_code(self) -> int | None:
        """The exit code of the last attempt that ended (a retry in flight keeps
        the one before it); None before any ended."""
        for attempt in reversed(self.attempts):
            if attempt.attempt_class is not None:
                return attempt.exit_code
        return None


@dataclass(frozen=True)
class FoldSpec:
    """``folds: {n, key}``: every seed runs every fold ``0..n-1``; the fold index is
    set in the training config at the dotted ``key`` (None: a command study, which
    gets it as ``{fold}`` / ``XORCH_FOLD`` only)."""

    n: int
    key: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """What a completed attempt's child reported besides its metrics."""

    epochs_trained: int | None = None
    best_checkpoint_path: str | None = None


@dataclass(frozen=True)
class AdaptiveRule:
    """``n_runs: {min, max, until: {metric, ci_halfwidth}}``: seeds are added until
    the 95% t interval of ``metric``'s mean is at most ``ci_halfwidth`` either side
    (``orchestrator.adaptive``)."""

    min_seeds: int
    max_seeds: int
    metric: str
    ci_halfwidth: float


@dataclass(frozen=True)
class AdaptiveSeeds:
    """An adaptive study's rule (the latest launch's) and its seed sequence, drawn
    once when the study was created: the seeds it runs are always a prefix of
    ``sequence``, so a resume or a replay adds the same seeds a straight run would."""

    rule: AdaptiveRule
    sequence: tuple[int, ...]
    stopped: str | None = None  # why no more seeds are added; None while it may add more


@dataclass(frozen=True)
class StudyState:
    config_fingerprint: str
    training_config: Mapping[str, Any]
    seeds: tuple[int, ...]
    runs: tuple[RunRecord, ...]
    created_at: str = field(default_factory=lambda: now_iso())
    schema_version: int = SCHEMA_VERSION
    # The latest launch's summary_metrics, for ``xorch status`` (may change on resume).
    summary_metrics: tuple[str, ...] = ("val/loss",)
    # A study of variants: name -> its whole training config, in the config's order
    # (each is fingerprinted on resume); the reference; metric -> "min" | "max".
    # All empty for a study of one config, whose file then has no such keys.
    variant_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    compare_to: str | None = None
    goal: Mapping[str, str] = field(default_factory=dict)
    adaptive: AdaptiveSeeds | None = None  # None unless n_runs is a mapping
    # experiments_runner.representative_metric; None: the first of summary_metrics.
    representative_metric: str | None = None
    folds: FoldSpec | None = None  # None: a study without folds, whose file has no such key

    # -- the only code that changes a run's status --------------------------------

    def _with_run(self, record: RunRecord, status: RunStatus, **changes: Any) -> StudyState:
        current = self.runs[record.index]
        if status not in TRANSITIONS[current.status]:
            change = f"{current.status.value} -> {status.value}"
            raise RuntimeError(f"run {record.index}: status {change} is not allowed")
        updated = dataclasses.replace(current, status=status, **changes)
        runs = (*self.runs[: record.index], updated, *self.runs[record.index + 1 :])
        return dataclasses.replace(self, runs=runs)

    def start_attempt(self, index: int, attempt: Attempt) -> StudyState:
        record = self.runs[index]
        return self._with_run(record, RunStatus.RUNNING, attempts=(*record.attempts, attempt))

    def finish_attempt(
        self,
        index: int,
        finished: Attempt,
        metrics: Mapping[str, float] | None = None,
        outcome: RunOutcome | None = None,
    ) -> StudyState:
        assert finished.attempt_class is not None, "a finished attempt has a class"
        record = self.runs[index]
        attempts = (*record.attempts[:-1], finished)
        status = finished.attempt_class.run_status
        done = status is RunStatus.COMPLETED
        said = outcome if outcome is not None and done else RunOutcome()
        return self._with_run(
            record,
            status,
            attempts=attempts,
            metrics=dict(metrics or {}) if done else {},
            epochs_trained=said.epochs_trained,
            best_checkpoint_path=said.best_checkpoint_path,
        )

    def reopen(self, index: int) -> StudyState:
        """Completed run ``index`` is to run again from scratch: pending, without its
        metrics, its attempts kept as history (``orchestrator.rerun``)."""
        return self._with_run(
            self.runs[index],
            RunStatus.PENDING,
            metrics={},
            epochs_trained=None,
            best_checkpoint_path=None,
        )

    # -- questions ----------------------------------------------------------------

    def with_status(self, *statuses: RunStatus) -> list[RunRecord]:
        return [r for r in self.runs if r.status in statuses]

    @property
    def completed(self) -> list[RunRecord]:
        return self.with_status(RunStatus.COMPLETED)


def _this_round(attempts: tuple[Attempt, ...]) -> tuple[Attempt, ...]:
    """The attempts since the run was last reopened: those after the last
    completed one before the newest (a rerun's time is its own)."""
    for position in range(len(attempts) - 2, -1, -1):
        if attempts[position].attempt_class is AttemptClass.COMPLETED:
            return attempts[position + 1 :]
    return attempts


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")
