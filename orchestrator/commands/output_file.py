"""Where a command may write a file the user named (``xorch report --out FILE``).

Issue 23: ``xorch report --out`` wrote its HTML over the study's own
runner_state.json, and over the config file, and said exit 0. A command now
writes its file only where that cannot destroy anything:

- never over one of the study's own names (``contract.paths.study_names``), but
  the one the command itself writes there (report.html);
- never a file of another kind (the report is an HTML page: a config, a state
  file, a CSV or a checkpoint never ends in .html), even with ``--force``;
- over an existing file only when it is one this command wrote before (a
  ``--watch`` rewrites its page) or the user said ``--force``.

``output_refusal`` is the decision, pure, over an ``OutputTarget`` that
``check_output`` gathers from the disk.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.contract.paths import study_name_clash
from orchestrator.errors import XorchError

__all__ = ["OutputKind", "OutputTarget", "check_output", "output_refusal"]


@dataclasses.dataclass(frozen=True)
class OutputKind:
    """What a command writes: its option, its suffixes, the name it gives the file
    in the study folder, and the bytes every file it writes begins with (near the
    start: ``mark`` is looked for in the first ``MARK_WINDOW`` bytes)."""

    option: str
    what: str
    suffixes: tuple[str, ...]
    own_name: str
    mark: bytes


MARK_WINDOW = 2048


@dataclasses.dataclass(frozen=True)
class OutputTarget:
    """The facts about one output path that decide whether it may be written."""

    given: str
    resolved: Path
    study_root: Path
    exists: bool
    is_dir: bool
    written_by_us: bool


def output_refusal(target: OutputTarget, kind: OutputKind, force: bool) -> str | None:
    """One line saying why ``target`` must not be written, or None if it may be."""
    where = f"{kind.option} {target.given}"
    if target.is_dir:
        return f"{where} is a folder; give a file in it, like {target.given}/{kind.own_name}"
    name = target.resolved.name
    if target.resolved.parent == target.study_root and name != kind.own_name:
        clash = study_name_clash(name)
        if clash is not None:
            return (
                f"{where} is the study's own {clash}, which xorch never writes over; "
                f"give another file, like {target.study_root / kind.own_name}"
            )
    if target.resolved.suffix.lower() not in kind.suffixes:
        return f"{where}: {kind.what}; give a file name ending in {kind.suffixes[0]}"
    if target.exists and not target.written_by_us and not force:
        return (
            f"{where} exists and was not written by xorch; give another file, "
            "or --force to replace it"
        )
    return None


def check_output(given: Path, study_root: Path, kind: OutputKind, force: bool) -> Path:
    """``given`` resolved, once ``output_refusal`` allows it; else a ``XorchError``."""
    try:
        resolved = Path(given).expanduser().resolve()
    except (RuntimeError, OSError):  # a symlink loop: RuntimeError before Python 3.13
        raise XorchError(
            f"{kind.option} {given}: a symlink in it points back to itself; give another file"
        ) from None
    target = OutputTarget(
        given=str(given),
        resolved=resolved,
        study_root=study_root.resolve(),
        exists=resolved.exists(),
        is_dir=resolved.is_dir(),
        written_by_us=_begins_with_mark(resolved, kind.mark),
    )
    refusal = output_refusal(target, kind, force)
    if refusal is not None:
        raise XorchError(refusal)
    return resolved


def _begins_with_mark(path: Path, mark: bytes) -> bool:
    """Whether ``path`` is a regular file with ``mark`` near its start. Only a
    regular file is opened: a FIFO would block the read forever."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            return mark in handle.read(MARK_WINDOW)
    except OSError:
        return False
