"""The study ledger: the one holder of a launch's current state.

Every change to the state goes through a method here, and each of them saves
before it returns, so no change can be made and left unsaved. The ledger also
owns the cache of run texts that keeps a save of 10,000 runs cheap; the state
lock is taken by each save (``state_store.save_state``). What a change means
(which status follows) stays in ``orchestrator.state``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.adaptive import add_seeds, with_stop
from orchestrator.contract.paths import StudyPaths
from orchestrator.rerun import reopen_runs
from orchestrator.state import Attempt, RunOutcome, StudyState
from orchestrator.state_store import RunTexts, save_state

__all__ = ["Ledger", "Settled"]

# One settled run: its index, the finished attempt, the metrics it left (or None).
# A run settled at recovery: its index, its finished attempt, its metrics, what it reported.
Settled = tuple[int, Attempt, Mapping[str, float] | None, RunOutcome | None]


class Ledger:
    """The current state of the study in ``paths``, saved on every change."""

    def __init__(self, paths: StudyPaths, state: StudyState) -> None:
        self.paths = paths
        self._state = state
        self._texts = RunTexts()

    @property
    def state(self) -> StudyState:
        return self._state

    def _save(self, state: StudyState) -> StudyState:
        save_state(self.paths, state, self._texts)
        self._state = state  # only once it is on disk
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
    ) -> StudyState:
        return self._save(self._state.finish_attempt(index, finished, metrics, outcome))

    def reopen(self, indices: Sequence[int]) -> StudyState:
        """Completed runs to run again (``xorch rerun``), all in one save; their
        folders are moved aside only after it (``rerun.move_aside_reopened``)."""
        return self._save(reopen_runs(self._state, indices))

    def settle(self, settled: Iterable[Settled]) -> StudyState:
        """Runs a dead parent left running, finished all at once: one save."""
        state = self._state
        for index, finished, metrics, outcome in settled:
            state = state.finish_attempt(index, finished, metrics, outcome)
        return self._save(state) if state is not self._state else state

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
            return self._state
        return self._save(with_stop(self._state, reason))
