"""runner_state.json: its schema, the allowed status changes, load and save.

This is the only module that changes a run's status, and only along
``TRANSITIONS``. The state is immutable: every change returns a new
``StudyState``, which the scheduler saves at once. Saving validates, keeps the
previous file as ``runner_state.json.bak`` and replaces the file atomically
under a short lock; loading refuses a broken file or a newer schema without
touching it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from orchestrator.atomic import atomic_write_text
from orchestrator.errors import StateError, StateWriteError
from orchestrator.locks import state_lock
from orchestrator.paths import StudyPaths

__all__ = [
    "SCHEMA_VERSION",
    "Attempt",
    "AttemptClass",
    "RunRecord",
    "RunStatus",
    "StudyState",
    "load_state",
    "now_iso",
    "save_state",
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
    RunStatus.COMPLETED: frozenset(),
}


class AttemptClass(str, enum.Enum):
    """How one attempt ended. Exactly one per finished attempt."""

    COMPLETED = "completed"
    FAILED = "failed"  # a Python exception in the child
    CUDA_OOM = "cuda_oom"
    OOM_KILLED = "oom_killed"
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
    outcome: AttemptClass | None = None  # None while it runs
    reason: str = ""
    exit_code: int | None = None
    signal: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    resumed_from: str | None = None
    slot: str | None = None  # e.g. gpu0#2 or cpu#1
    gpu: str | None = None  # the child's CUDA_VISIBLE_DEVICES


@dataclass(frozen=True)
class RunRecord:
    index: int
    seed: int
    dir: str
    status: RunStatus = RunStatus.PENDING
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    failure: AttemptClass | None = None
    attempts: tuple[Attempt, ...] = ()

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


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
        return self._with_run(
            record,
            RunStatus.RUNNING,
            started_at=record.started_at or attempt.started_at,
            ended_at=None,
            attempts=(*record.attempts, attempt),
        )

    def record_pid(self, index: int, pid: int, create_time: float | None) -> StudyState:
        """Fill in the child's pid once it exists (status stays running)."""
        record = self.runs[index]
        attempt = dataclasses.replace(record.attempts[-1], pid=pid, pid_create_time=create_time)
        updated = dataclasses.replace(record, attempts=(*record.attempts[:-1], attempt))
        return dataclasses.replace(
            self, runs=(*self.runs[:index], updated, *self.runs[index + 1 :])
        )

    def finish_attempt(
        self, index: int, finished: Attempt, metrics: Mapping[str, float] | None = None
    ) -> StudyState:
        assert finished.outcome is not None, "a finished attempt has an outcome"
        record = self.runs[index]
        attempts = (*record.attempts[:-1], finished)
        status = finished.outcome.run_status
        return self._with_run(
            record,
            status,
            attempts=attempts,
            ended_at=finished.ended_at,
            duration_s=round(sum(a.duration_s or 0.0 for a in attempts), 3),
            metrics=dict(metrics or {}) if status is RunStatus.COMPLETED else {},
            exit_code=finished.exit_code,
            failure=None if status is RunStatus.COMPLETED else finished.outcome,
        )

    # -- questions ----------------------------------------------------------------

    def with_status(self, *statuses: RunStatus) -> list[RunRecord]:
        return [r for r in self.runs if r.status in statuses]

    @property
    def completed(self) -> list[RunRecord]:
        return self.with_status(RunStatus.COMPLETED)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- (de)serialising


def state_to_json(state: StudyState) -> str:
    return json.dumps(_plain(dataclasses.asdict(state)), indent=1) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def state_from_payload(payload: Any) -> StudyState:
    """Build and check a state from parsed JSON; raises ValueError/TypeError/KeyError."""
    if not isinstance(payload, dict):
        raise ValueError("top level is not an object")
    runs = tuple(_record(r) for r in payload["runs"])
    state = StudyState(
        config_fingerprint=str(payload["config_fingerprint"]),
        training_config=dict(payload["training_config"]),
        seeds=tuple(int(s) for s in payload["seeds"]),
        runs=runs,
        created_at=str(payload["created_at"]),
        schema_version=int(payload["schema_version"]),
        summary_metrics=tuple(str(m) for m in payload.get("summary_metrics", ("val/loss",))),
    )
    if [r.index for r in runs] != list(range(len(runs))):
        raise ValueError("run indexes are not 0..n-1")
    if tuple(r.seed for r in runs) != state.seeds:
        raise ValueError("run seeds do not match the seed list")
    return state


def _record(payload: Mapping[str, Any]) -> RunRecord:
    attempts = tuple(
        Attempt(**{**a, "outcome": AttemptClass(a["outcome"]) if a.get("outcome") else None})
        for a in payload.get("attempts", ())
    )
    failure = payload.get("failure")
    return RunRecord(
        **{
            **payload,
            "status": RunStatus(payload["status"]),
            "failure": AttemptClass(failure) if failure else None,
            "metrics": {str(k): float(v) for k, v in payload.get("metrics", {}).items()},
            "attempts": attempts,
        }
    )


# Migrations from older schema versions: {old_version: function(payload) -> payload}.
MIGRATIONS: dict[int, Any] = {}


def load_state(paths: StudyPaths) -> StudyState | None:
    """The saved state, None when there is none. Never modifies the file."""
    try:
        text = paths.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {paths.state}: {exc.strerror}") from None
    recover = (
        f"; the previous good state is {paths.state_backup}: check it and copy it over "
        f"{paths.state.name} to recover"
        if paths.state_backup.exists()
        else "; move it aside to start the study over"
    )
    try:
        payload = json.loads(text)
        version = payload.get("schema_version") if isinstance(payload, dict) else None
        if not isinstance(version, int):
            raise ValueError("schema_version is missing")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{paths.state} has schema_version {version}, newer than this xorch "
                f"understands ({SCHEMA_VERSION}); upgrade xorch to resume it"
            )
        while version < SCHEMA_VERSION:
            payload = MIGRATIONS[version](payload)
            version = payload["schema_version"]
        return state_from_payload(payload)
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StateError(f"{paths.state} is damaged ({exc}){recover}") from None


def save_state(paths: StudyPaths, state: StudyState) -> None:
    """Validate, back up the previous file, replace atomically. Raises StateWriteError."""
    text = state_to_json(state)
    state_from_payload(json.loads(text))  # never write what we could not read back
    try:
        with state_lock(paths):
            try:
                previous = paths.state.read_bytes()
            except FileNotFoundError:
                previous = None
            if previous is not None:
                atomic_write_text(paths.state_backup, previous.decode("utf-8"))
            atomic_write_text(paths.state, text)
    except OSError as exc:
        raise StateWriteError(
            f"could not write {paths.state} ({exc.strerror or exc}); the previous state is "
            "intact. Free disk space or fix permissions, then resume with --resume"
        ) from None
