"""The study ledger: the one holder of a launch's current state.

Every change to the state goes through a method here, and each of them saves
before it returns, so no change can be made and left unsaved, with one
exception: a finished attempt may be recorded ``later`` (``finish_attempt(...,
later=True)``), and is then saved with the next change or by ``flush``. The
scheduler does so for the verdicts of one pass of its loop, so that a finished
attempt and the start of the next one cost one save, not two (issue 20: each
save is two fsyncs). What is on disk meanwhile is the state before the verdict:
the attempt ``running``, which a ``--resume`` after a ``kill -9`` settles from
the attempt's own files (``recovery``), as it settles an attempt whose child
ended just before the parent died.

The ledger also owns the writer (``state_writer``) that keeps a save of 10,000
runs cheap: run texts encoded once, and a big study's saves appended to a
journal; the state lock is taken by each save. What
a change means (which status follows) stays in ``orchestrator.state``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.adaptive import add_seeds, with_stop
from orchestrator.contract.paths import StudyPaths
from orchestrator.rerun import reopen_runs
from orchestrator.state import Attempt, RunOutcome, StudyState
from orchestrator.state_writer import StateWriter

__all__ = ["Ledger", "Settled"]

# One settled run: its index, the finished attempt, the metrics it left (or None).
# A run settled at recovery: its index, its finished attempt, its metrics, what it reported.
Settled = tuple[int, Attempt, Mapping[str, float] | None, RunOutcome | None]


class Ledger:
    """The current state of the study in ``paths``, saved on every change."""

    def __init__(self, paths: StudyPaths, state: StudyState) -> None:
        self.paths = paths
        self._state = state
        self._writer = StateWriter(paths)
        self._unsaved = False  # a finished attempt recorded ``later``, not on disk yet

    @property
    def state(self) -> StudyState:
        """The current state: what is on disk, and any finished attempt recorded later."""
        return self._state

    @property
    def unsaved(self) -> bool:
        return self._unsaved

    def _save(self, state: StudyState) -> StudyState:
        self._writer.save(state)
        self._state = state  # only once it is on disk
        self._unsaved = False
        return state

    def flush(self) -> StudyState:
        """Save what was recorded ``later``; nothing when all is on disk."""
        return self._save(self._state) if self._unsaved else self._state

    def close(self) -> StudyState:
        """Save what was recorded ``later`` and leave runner_state.json whole (no
        journal after it: the end of a launch)."""
        state = self.flush()
        self._writer.close()
        return state

    def record_plan(self, state: StudyState) -> StudyState:
        """The planned state (random seeds included), saved before any run starts."""
        return self._save(state)

    def start_attempt(self, index: int, attempt: Attempt) -> StudyState:
        return self._save(self._state.start_attempt(index, attempt))

    def finish_attempt(
        self,
        index: int,
        finished: Attempt,
        metrics: Mapping[str, float] | None = None,
        outcome: RunOutcome | None = None,
        later: bool = False,
    ) -> StudyState:
        """The attempt's verdict; ``later``: saved with the next change or ``flush``
        (the scheduler's one save per pass), not now."""
        state = self._state.finish_attempt(index, finished, metrics, outcome)
        if not later:
            return self._save(state)
        self._state, self._unsaved = state, True
        return state

    def reopen(self, indices: Sequence[int]) -> StudyState:
        """Completed runs to run again (``xorch rerun``), all in one save; their
        folders are moved aside only after it (``rerun.move_aside_reopened``)."""
        return self._save(reopen_runs(self._state, indices))

    def settle(self, settled: Iterable[Settled]) -> StudyState:
        """Runs a dead parent left running, finished all at once: one save."""
        state = self._state
        for index, finished, metrics, outcome in settled:
            state = state.finish_attempt(index, finished, metrics, outcome)
        return self._save(state) if state is not self._state or self._unsaved else state

    def add_seeds(self, count: int) -> list[int]:
        """The next ``count`` adaptive seeds' runs, on record before they start;
        returns their indices."""
        state, added = add_seeds(self._state, count)
        self._save(state)
        return added

    def stop_adding(self, reason: str) -> StudyState:
        """Record why no more adaptive seeds follow (saved once per reason)."""
        assert self._state.adaptive is not None
        if self._state.adaptive.stopped == reason:
            return self.flush()
        return self._save(with_stop(self._state, reason))
