"""The ledger: every change to the study's state is on disk when the call returns,
and a change whose save failed is not taken as made."""

from __future__ import annotations

import pytest

from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import StateWriteError
from orchestrator.ledger import Ledger
from orchestrator.state import Attempt, AttemptClass, RunRecord, RunStatus, StudyState
from orchestrator.state_store import load_state


def new_state() -> StudyState:
    runs = tuple(RunRecord(i, s, f"run_{i:02d}_seed{s}") for i, s in enumerate((10, 11)))
    return StudyState("fp", {"model": {}}, (10, 11), runs)


def test_each_change_is_saved_before_it_returns(tmp_path):
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, new_state())
    ledger.record_plan(ledger.state)
    assert load_state(paths) == ledger.state
    attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="x.log")
    ledger.start_attempt(0, attempt)
    assert load_state(paths).runs[0].status is RunStatus.RUNNING  # type: ignore[union-attr]
    done = Attempt(
        number=1, started_at=attempt.started_at, log="x.log", attempt_class=AttemptClass.COMPLETED
    )
    ledger.finish_attempt(0, done, {"val/loss": 0.25})
    saved = load_state(paths)
    assert saved == ledger.state and saved.runs[0].metrics == {"val/loss": 0.25}


def test_a_change_whose_save_failed_is_not_the_ledgers_state(tmp_path, monkeypatch):
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, new_state())
    ledger.record_plan(ledger.state)
    before = ledger.state

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("orchestrator.state_store.atomic_write_chunks", refuse)
    attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="x.log")
    with pytest.raises(StateWriteError):
        ledger.start_attempt(0, attempt)
    assert ledger.state is before and load_state(paths) == before


def _attempt(outcome: AttemptClass | None = None) -> Attempt:
    return Attempt(
        number=1, started_at="2026-01-01T00:00:00+00:00", log="x.log", attempt_class=outcome
    )


def test_a_verdict_recorded_later_is_saved_with_the_next_start(tmp_path):
    """The scheduler's one save per pass: the verdict waits in memory, and the
    next start (or a flush) puts both on disk in one save."""
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, new_state())
    ledger.record_plan(ledger.state)
    ledger.start_attempt(0, _attempt())
    ledger.finish_attempt(0, _attempt(AttemptClass.COMPLETED), {"val/loss": 0.25}, later=True)
    assert ledger.unsaved and ledger.state.runs[0].status is RunStatus.COMPLETED
    on_disk = load_state(paths)
    assert on_disk is not None and on_disk.runs[0].status is RunStatus.RUNNING
    ledger.start_attempt(1, _attempt())
    saved = load_state(paths)
    assert not ledger.unsaved and saved == ledger.state
    assert [r.status for r in saved.runs] == [RunStatus.COMPLETED, RunStatus.RUNNING]
    assert saved.runs[0].metrics == {"val/loss": 0.25}


@pytest.mark.parametrize("pending", [True, False])
def test_flush_saves_only_what_waits(tmp_path, pending):
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, new_state())
    ledger.record_plan(ledger.state)
    ledger.start_attempt(0, _attempt())
    if pending:
        ledger.finish_attempt(0, _attempt(AttemptClass.FAILED), later=True)
    before = paths.state.stat().st_ino  # every save replaces the file: a new inode
    assert ledger.flush() is ledger.state
    assert (paths.state.stat().st_ino != before) is pending
    assert load_state(paths) == ledger.state and not ledger.unsaved
