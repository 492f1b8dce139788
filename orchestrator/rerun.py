"""Running completed runs again: ``experiments_runner.overwrite`` and ``xorch rerun``.

Which runs a request names is a pure function over the state (``rerun_targets``);
a name that is no run of the study is a ``RerunError`` before anything changes.
The state is reopened first and saved (``StudyState.reopen``: pending, attempts
kept), and only then is each reopened run's folder moved aside
(``run_03_seed7.old-1``). A reopened run whose folder is still in place is one
whose move a killed xorch never made: every launch makes it before any run
starts (``move_aside_reopened``), so a resume never trains in, or resumes from
the checkpoint of, the run it was asked to redo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.contract.paths import StudyPaths, aside_path
from orchestrator.errors import ConfigError, XorchError
from orchestrator.state import AttemptClass, RunRecord, RunStatus, StudyState

__all__ = [
    "ASIDE_LABEL",
    "RerunError",
    "RunChoice",
    "RunName",
    "Targets",
    "move_aside_reopened",
    "parse_overwrite",
    "parse_run_names",
    "reopen_runs",
    "rerun_targets",
]

ASIDE_LABEL = "old"  # run_03_seed7 -> run_03_seed7.old-1
_VARIANT_RUN = re.compile(r"(?P<variant>[^/\s]+)/(?P<position>\d+)")

# A run named by its index in the state (``3``) or, in a study of variants, by
# its variant and its seed's position, as its folder shows it (``wide/2``).
RunName = int | tuple[str, int]


class RerunError(XorchError):
    """A run to rerun that the study does not have (exit 2, nothing changed)."""


@dataclass(frozen=True)
class RunChoice:
    """The runs a rerun names: every completed one, or those listed."""

    every: bool = False
    names: tuple[RunName, ...] = ()


@dataclass(frozen=True)
class Targets:
    """The runs to reopen, and the named ones that have not completed (they run
    on the next launch anyway), each with its status."""

    reopen: tuple[int, ...]
    not_completed: tuple[tuple[int, str], ...] = ()


def parse_run_names(items: Iterable[Any], where: str) -> tuple[RunName, ...]:
    """``[3, "wide/2"]`` (or the command line's strings ``"3"``) -> run names."""
    names: list[RunName] = []
    for item in items:
        text = str(item).strip() if not isinstance(item, bool) else ""
        match = _VARIANT_RUN.fullmatch(text)
        if text.isascii() and text.isdigit():
            names.append(int(text))
        elif match:
            names.append((match["variant"], int(match["position"])))
        else:
            raise ConfigError(
                f"{where}: {item!r} is not a run; name a run by its index (3) or, "
                "in a study of variants, by variant/index (wide/2)"
            )
    return tuple(dict.fromkeys(names))


def parse_overwrite(value: Any) -> RunChoice | None:
    """``experiments_runner.overwrite``: false (None), true, or a list of runs."""
    where = "experiments_runner.overwrite"
    if value is None or value is False:
        return None
    if value is True:
        return RunChoice(every=True)
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be true, or a list of runs like [3, 5] or [wide/2]")
    return RunChoice(names=parse_run_names(value, where))


def rerun_targets(state: StudyState, choice: RunChoice, where: str) -> Targets:
    """The runs ``choice`` reopens in ``state``; a RerunError names the first
    run that the study does not have, and the fix."""
    if choice.every:
        return Targets(tuple(r.index for r in state.completed))
    indices = [_index_of(state, name, where) for name in choice.names]
    runs = [state.runs[i] for i in dict.fromkeys(indices)]
    return Targets(
        tuple(r.index for r in runs if r.status is RunStatus.COMPLETED),
        tuple((r.index, _status_word(r)) for r in runs if r.status is not RunStatus.COMPLETED),
    )


def reopen_runs(state: StudyState, indices: Sequence[int]) -> StudyState:
    for index in indices:
        state = state.reopen(index)
    return state


def move_aside_reopened(paths: StudyPaths, state: StudyState) -> list[tuple[Path, Path]]:
    """Move the folder of each reopened run that is still in place aside (a free
    ``.old-N`` name, never over anything); returns (from, to) per move."""
    moved = []
    for record in state.runs:
        if not _reopened(record):
            continue
        folder = paths.run(record.dir).root
        if not folder.exists():
            continue  # moved by an earlier launch, or never made
        target = aside_path(folder, ASIDE_LABEL)
        os.replace(folder, target)
        moved.append((folder, target))
    return moved


def _reopened(record: RunRecord) -> bool:
    """Pending after a completed attempt: only ``StudyState.reopen`` leaves a run so,
    and the next attempt's start ends it."""
    last = record.current_attempt
    return (
        record.status is RunStatus.PENDING
        and last is not None
        and last.attempt_class is AttemptClass.COMPLETED
    )


def _status_word(record: RunRecord) -> str:
    if _reopened(record):
        return "already reopened"
    return record.failure.value if record.failure else record.status.value


def _index_of(state: StudyState, name: RunName, where: str) -> int:
    last = len(state.runs) - 1
    if isinstance(name, int):
        if name > last:
            raise RerunError(
                f"{where}: the study has no run {name} (its runs are 0 to {last}); "
                "name runs as xorch status lists them"
            )
        return name
    variant, position = name
    if variant not in state.variant_configs:
        kinds = ", ".join(state.variant_configs) or "none: name runs by index, like 3"
        raise RerunError(f"{where}: {variant}/{position}: no variant {variant} (variants: {kinds})")
    folds = state.folds.n if state.folds is not None else 1
    for record in state.runs:  # the folder's NN: the seed's position, times the folds
        at = state.seeds.index(record.seed) * folds + (record.fold or 0)
        if record.variant == variant and at == position:
            return record.index
    raise RerunError(
        f"{where}: variant {variant} has no run {position} (its runs are 0 to "
        f"{len(state.seeds) * folds - 1}); name runs as their folders show them, like {variant}/0"
    )
