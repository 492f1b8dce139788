"""runner_state.journal: a big study's saves appended as the runs they changed.

After every save the state read back from disk (the whole file with its
journal replayed) is the ledger's state; the whole file is rewritten when the
journal has grown, when more than run records change, after a failed save and
at the end of a launch; what a crash can leave (a torn last line, lines of an
earlier whole file, a damaged line) is read as the saves that returned. The
size from which a study journals is lowered here so that a study of a few runs
journals; one test keeps the real size with a study of 3,000 runs."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from orchestrator import state_writer
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import StateError, StateWriteError
from orchestrator.ledger import Ledger
from orchestrator.state import Attempt, AttemptClass, RunRecord, RunStatus, StudyState
from orchestrator.state_journal import JOURNAL_KEY
from orchestrator.state_store import load_backup, load_state


def study(runs: int, completed: int = 0) -> StudyState:
    """``runs`` runs, the first ``completed`` of them completed."""
    seeds = tuple(range(100, 100 + runs))
    records = tuple(RunRecord(i, s, f"run_{i:04d}_seed{s}") for i, s in enumerate(seeds))
    done = attempt(1, AttemptClass.COMPLETED)
    records = tuple(
        dataclasses.replace(r, status=RunStatus.COMPLETED, metrics={"val/loss": 0.5 + r.index},
                            attempts=(done,)) if r.index < completed else r
        for r in records
    )  # fmt: skip
    return StudyState("fp", {"model": {"lr": 0.1}}, seeds, records, summary_metrics=("val/loss",))


def attempt(number: int = 1, outcome: AttemptClass | None = None) -> Attempt:
    return Attempt(
        number=number,
        started_at="2026-01-01T00:00:00+00:00",
        log=f"attempt_{number}.log",
        attempt_class=outcome,
        duration_s=None if outcome is None else 1.5,
    )


@pytest.fixture
def journaling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every study journals, however small."""
    monkeypatch.setattr(state_writer, "JOURNAL_FROM_BYTES", 1)


def planned(tmp_path, runs: int = 40) -> tuple[StudyPaths, Ledger]:
    """A study's folder and its ledger, the plan saved (whole)."""
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, study(runs))
    ledger.record_plan(ledger.state)
    return paths, ledger


def whole_file(paths: StudyPaths) -> dict:
    return json.loads(paths.state.read_text())


def journal_lines(paths: StudyPaths) -> list[dict]:
    if not paths.state_journal.exists():
        return []
    return [json.loads(line) for line in paths.state_journal.read_text().splitlines()]


def test_a_save_appends_the_changed_run_and_leaves_the_whole_file(tmp_path, journaling):
    paths, ledger = planned(tmp_path)
    before = paths.state.read_bytes()
    token = whole_file(paths)[JOURNAL_KEY]
    ledger.start_attempt(3, attempt())
    assert paths.state.read_bytes() == before
    (line,) = journal_lines(paths)
    assert line["base"] == token and [r["index"] for r in line["runs"]] == [3]
    assert load_state(paths) == ledger.state
    ledger.finish_attempt(3, attempt(1, AttemptClass.COMPLETED), {"val/loss": 0.5})
    assert len(journal_lines(paths)) == 2
    saved = load_state(paths)
    assert saved == ledger.state and saved.runs[3].metrics == {"val/loss": 0.5}


def test_a_small_study_writes_the_file_whole_as_before(tmp_path):
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, study(3))
    ledger.record_plan(ledger.state)
    ledger.start_attempt(0, attempt())
    assert JOURNAL_KEY not in whole_file(paths) and not paths.state_journal.exists()
    assert whole_file(paths)["runs"][0]["status"] == "running"


def test_a_study_of_3000_runs_journals_at_the_real_size(tmp_path):
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, study(3000, completed=2990))
    ledger.record_plan(ledger.state)
    assert paths.state.stat().st_size >= state_writer.JOURNAL_FROM_BYTES
    assert JOURNAL_KEY in whole_file(paths)
    ledger.start_attempt(2999, attempt())
    assert len(journal_lines(paths)) == 1 and load_state(paths) == ledger.state


def test_every_save_reads_back_through_compactions_and_the_close(tmp_path, journaling):
    """A random walk of a launch's changes: what is on disk is always the ledger's
    state; the journal is folded into a new whole file when it reaches a quarter
    of it, and ``close`` leaves no journal."""
    rng = random.Random(7)
    paths = StudyPaths(tmp_path)
    ledger = Ledger(paths, study(30))
    ledger.record_plan(ledger.state)
    tokens = {whole_file(paths)[JOURNAL_KEY]}
    for step in range(400):
        index = rng.randrange(30)
        run = ledger.state.runs[index]
        number = len(run.attempts)
        if run.attempts and run.attempts[-1].attempt_class is None:
            outcome = rng.choice([AttemptClass.COMPLETED, AttemptClass.FAILED])
            metrics = {"val/loss": rng.random()} if outcome is AttemptClass.COMPLETED else None
            later = rng.random() < 0.5
            ledger.finish_attempt(index, attempt(number, outcome), metrics, later=later)
        elif run.status.value != "completed":
            ledger.start_attempt(index, attempt(number + 1))
        if ledger.unsaved and rng.random() < 0.5:
            ledger.flush()
        if not ledger.unsaved:
            assert load_state(paths) == ledger.state, step
        tokens.add(whole_file(paths)[JOURNAL_KEY])
    assert len(tokens) > 3  # compacted along the way
    ledger.close()
    assert not paths.state_journal.exists()
    assert load_state(paths) == ledger.state


def test_a_change_of_more_than_runs_writes_the_file_whole(tmp_path, journaling):
    paths, ledger = planned(tmp_path)
    ledger.start_attempt(0, attempt())
    assert journal_lines(paths)
    token = whole_file(paths)[JOURNAL_KEY]
    reopened = dataclasses.replace(ledger.state, compare_to=None, summary_metrics=("val/acc",))
    ledger.record_plan(reopened)
    assert whole_file(paths)[JOURNAL_KEY] != token and not paths.state_journal.exists()
    assert load_state(paths) == reopened


def test_a_torn_last_line_is_a_save_that_never_returned(tmp_path, journaling):
    paths, ledger = planned(tmp_path)
    ledger.start_attempt(1, attempt())
    saved = ledger.state
    ledger.start_attempt(2, attempt())
    text = paths.state_journal.read_bytes()
    paths.state_journal.write_bytes(text[: text.rindex(b"\n", 0, len(text) - 1) + 1] + text[-40:-1])
    assert load_state(paths) == saved


def test_lines_of_an_earlier_whole_file_are_skipped(tmp_path, journaling):
    """A crash between a whole write and the journal's removal leaves the old lines."""
    paths, ledger = planned(tmp_path)
    ledger.start_attempt(4, attempt())
    old_lines = paths.state_journal.read_bytes()
    ledger.close()
    paths.state_journal.write_bytes(old_lines.replace(b'"running"', b'"failed"'))
    assert load_state(paths) == ledger.state


def test_a_damaged_line_ends_the_replay_and_the_backup_is_the_last_whole_file(tmp_path, journaling):
    paths, ledger = planned(tmp_path)
    plan = ledger.state
    ledger.start_attempt(5, attempt())
    first = ledger.state
    ledger.start_attempt(6, attempt())
    ledger.start_attempt(7, attempt())
    lines = paths.state_journal.read_bytes().split(b"\n")
    paths.state_journal.write_bytes(b"\n".join([lines[0], b"{not json", *lines[2:]]))
    assert load_state(paths) == first
    ledger.close()
    assert load_backup(paths) == plan  # the whole file before the close: no journal


def test_after_a_failed_append_the_next_save_is_whole(tmp_path, journaling, monkeypatch):
    """A failed append may leave half a line: no later line may follow it."""
    paths, ledger = planned(tmp_path)
    before = ledger.state

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("orchestrator.contract.atomic.os.fsync", full_disk)
        with pytest.raises(StateWriteError, match="No space left"):
            ledger.start_attempt(0, attempt())
    assert ledger.state is before
    ledger.start_attempt(8, attempt())
    assert not paths.state_journal.exists()  # whole: the half line went with the journal
    assert load_state(paths) == ledger.state and ledger.state.runs[0].attempts == ()


def test_a_journal_that_cannot_be_read_is_one_line_naming_it(tmp_path, journaling):
    paths, ledger = planned(tmp_path)
    ledger.start_attempt(0, attempt())
    paths.state_journal.unlink()
    paths.state_journal.mkdir()
    with pytest.raises(StateError, match=r"runner_state.journal cannot be read \(Is a directory\)"):
        load_state(paths)
