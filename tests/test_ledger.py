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

    monkeypatch.setattr("orchestrator.state_store.atomic_write_text", refuse)
    attempt = Attempt(number=1, started_at="2026-01-01T00:00:00+00:00", log="x.log")
    with pytest.raises(StateWriteError):
        ledger.start_attempt(0, attempt)
    assert ledger.state is before and load_state(paths) == before
