"""``xorch rerun DIR RUN...``: completed runs of a study reopened to run again.

The names are checked against the saved state before anything is taken or
written (a run the study lacks: one line, exit 2, nothing touched). Then, under
the study's launcher lock (never while a launch runs it): the state reopened
and saved, the runs' folders moved aside, summary.csv rewritten without them.
The next ``xorch launch CONFIG --resume`` trains them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.contract.paths import StudyPaths
from orchestrator.ledger import Ledger
from orchestrator.locks import launcher_lock
from orchestrator.rerun import RunChoice, RunName, Targets, move_aside_reopened, rerun_targets
from orchestrator.state import StudyState
from orchestrator.state_store import load_study_state
from orchestrator.summary import write_summary

__all__ = ["RerunResult", "rerun_runs"]

WHERE = "xorch rerun"


@dataclass(frozen=True)
class RerunResult:
    """What ``xorch rerun`` did: the runs reopened (index, seed), the folders
    moved aside (from, to, relative to the study), the named runs left as they
    were (index, status)."""

    reopened: tuple[tuple[int, int], ...]
    moved: tuple[tuple[str, str], ...]
    not_completed: tuple[tuple[int, str], ...]


def rerun_runs(study_dir: Path, names: tuple[RunName, ...]) -> RerunResult:
    paths = StudyPaths(study_dir)
    rerun_targets(load_study_state(paths), RunChoice(names=names), WHERE)  # before the lock
    with launcher_lock(paths):
        state = load_study_state(paths)  # again: a launch may have ended in between
        targets = rerun_targets(state, RunChoice(names=names), WHERE)
        ledger = Ledger(paths, state)
        if targets.reopen:
            ledger.reopen(targets.reopen)
        moved = move_aside_reopened(paths, ledger.state)
        if targets.reopen and paths.summary.exists():
            write_summary(paths, ledger.state)
    return _result(paths, ledger.state, targets, moved)


def _result(
    paths: StudyPaths, state: StudyState, targets: Targets, moved: list[tuple[Path, Path]]
) -> RerunResult:
    return RerunResult(
        reopened=tuple((i, state.runs[i].seed) for i in targets.reopen),
        moved=tuple(
            (str(a.relative_to(paths.root)), str(b.relative_to(paths.root))) for a, b in moved
        ),
        not_completed=targets.not_completed,
    )
