"""How a launch saves its state: runner_state.json whole while it is small,
then a line of runner_state.journal per save (``state_journal`` has the format
and why), whole again when the journal has grown to a quarter of the file, when
a save changes more than run records, and when the launch ends."""

from __future__ import annotations

import dataclasses
import secrets

from orchestrator.contract.paths import StudyPaths
from orchestrator.state import RunRecord, StudyState
from orchestrator.state_journal import append_runs
from orchestrator.state_store import RunTexts, save_state

__all__ = ["COMPACT_AT", "JOURNAL_FROM_BYTES", "StateWriter"]

JOURNAL_FROM_BYTES = 1 << 20  # run records under this size: the file is always written whole
COMPACT_AT = 4  # written whole again once the journal is 1/COMPACT_AT of the file

# What a journal line may change of a run: nothing that places it in the study.
_PLACE = ("index", "seed", "variant", "fold", "dir")


class StateWriter:
    """Saves one launch's state: whole, or one journal line (see the module)."""

    def __init__(self, paths: StudyPaths) -> None:
        self.paths = paths
        self.texts = RunTexts()
        self._base: StudyState | None = None  # the state of the last save
        self._token: str | None = None  # the last whole file's journal token
        self._whole_bytes = 0
        self._journal_bytes = 0

    def save(self, state: StudyState, whole: bool = False) -> None:
        """Save ``state``; ``whole``: as one file, whatever its size. Raises
        StateWriteError, and the next save is then whole: a failed append may
        have left part of a line, which would end every later line's replay."""
        changed = None if whole else self._changed_runs(state)
        try:
            if changed is None:
                self._save_whole(state)
            elif changed:
                self._append(changed)
        except BaseException:
            self._token = None
            raise
        self._base = state

    def close(self) -> None:
        """The journal folded into a whole file (the end of a launch)."""
        if self._base is not None and self._journal_bytes:
            self._save_whole(self._base)

    def _changed_runs(self, state: StudyState) -> list[RunRecord] | None:
        """The runs to append, or None when the save must be whole."""
        base = self._base
        if base is None or self._token is None or len(state.runs) != len(base.runs):
            return None
        if self._journal_bytes * COMPACT_AT >= self._whole_bytes:
            return None
        for field in dataclasses.fields(state):
            if field.name == "runs":
                continue
            now, before = getattr(state, field.name), getattr(base, field.name)
            if now is not before and now != before:
                return None
        changed = [new for new, old in zip(state.runs, base.runs, strict=True) if new is not old]
        for new in changed:
            old = base.runs[new.index]
            if any(getattr(new, key) != getattr(old, key) for key in _PLACE):
                return None
        return changed

    def _save_whole(self, state: StudyState) -> None:
        size = sum(len(self.texts.data(r)) + 2 for r in state.runs)
        token = secrets.token_hex(8) if size >= JOURNAL_FROM_BYTES else None
        save_state(self.paths, state, self.texts, journal=token)
        self._token, self._whole_bytes, self._journal_bytes = token, size, 0

    def _append(self, changed: list[RunRecord]) -> None:
        assert self._token is not None
        self._journal_bytes += append_runs(self.paths, self._token, map(self.texts.text, changed))
