"""runner_state.journal: a big study's saves, as the runs each one changed:
its format, written (``append_runs``) and read (``apply_journal``).

A launch saves its state after every attempt starts and ends. Rewriting
runner_state.json whole costs what the file weighs: 5.6 MB at 10,000 runs, tens
of milliseconds a save with its fsyncs (issue 23: at most 50 ms of bookkeeping
a run). So a launch (``state_writer.StateWriter``, the ledger's) writes the file whole while
it is under ``JOURNAL_FROM_BYTES``, exactly as before; past it, the whole file
names a journal (``"journal": TOKEN`` at its top level) and each later save
appends one line to runner_state.journal with the run records it changed,
``{"base": TOKEN, "runs": [...]}``, fsynced before the save returns. The file
is written whole again (a new token) when the journal reaches a quarter of it,
when a save changes more than run records (seeds added, a stop reason), and
when a launch ends, so a finished study's runner_state.json is complete.

Reading (``apply_journal``, by ``state_store``'s loader and nothing else)
replays the lines of the file's own token over its runs, in order. A line of
another token (left by a crash between a whole write and the journal's
removal) is skipped; a torn last line (a crash mid-append, a save that never
returned) ends the replay. runner_state.json.bak stays the previous whole
file: recovering from it loses at most the runs of one journal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from orchestrator.contract.atomic import durable_append
from orchestrator.contract.bounded import ReadRefused, parse_json, read_bounded
from orchestrator.contract.limits import MAX_STATE_BYTES
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import StateError, StateWriteError, os_error_fix
from orchestrator.locks import state_lock

__all__ = ["JOURNAL_KEY", "append_runs", "apply_journal", "state_version"]

JOURNAL_KEY = "journal"  # the whole file's token, at its top level


def append_runs(paths: StudyPaths, token: str, run_texts: Iterable[str]) -> int:
    """One line of run records (their JSON texts) for the whole file of ``token``,
    on disk when this returns; its size in bytes. Raises StateWriteError."""
    line = f'{{"base":{json.dumps(token)},"runs":[{",".join(run_texts)}]}}\n'.encode()
    journal = paths.state_journal
    try:
        with state_lock(paths):
            durable_append(journal, line)
    except OSError as exc:
        raise StateWriteError(
            f"could not write {journal} ({exc.strerror or exc}); the state before this "
            f"save is intact: {os_error_fix(exc)}, then resume with --resume"
        ) from None
    return len(line)


def apply_journal(paths: StudyPaths, payload: Any) -> Any:
    """``payload`` (a parsed whole file) with the journal's lines of its token
    replayed over its runs; the key itself is taken out. A file without the key
    is returned as it is."""
    if not isinstance(payload, dict) or JOURNAL_KEY not in payload:
        return payload
    token = payload.pop(JOURNAL_KEY)
    runs = payload.get("runs")
    if not isinstance(token, str) or not isinstance(runs, list):
        return payload  # the loader names what is wrong with the file itself
    try:
        data = read_bounded(paths.state_journal, MAX_STATE_BYTES)
    except FileNotFoundError:
        return payload  # no save since the whole write
    except OSError as exc:  # a folder, a FIFO, past the limit, no permission
        reason = str(exc) if isinstance(exc, ReadRefused) else exc.strerror or str(exc)
        raise StateError(
            f"{paths.state_journal} cannot be read ({reason}); move it aside and resume "
            "with --resume (the runs saved only there run again)"
        ) from None
    for line in data.split(b"\n")[:-1]:  # the text after the last newline: a torn append
        try:
            entry = parse_json(line)
        except ValueError:
            break  # damaged from here on: what follows was never acknowledged
        if not isinstance(entry, dict) or entry.get("base") != token:
            continue  # a line of an earlier whole file
        for run in entry.get("runs") or ():
            index = run.get("index") if isinstance(run, dict) else None
            if isinstance(index, int) and 0 <= index < len(runs):
                runs[index] = run
    return payload


def state_version(paths: StudyPaths) -> tuple[int | None, int | None]:
    """What changes whenever the saved state does: the whole file's and the
    journal's modification times (``xorch report --watch``)."""
    times: list[int | None] = []
    for path in (paths.state, paths.state_journal):
        try:
            times.append(path.stat().st_mtime_ns)
        except OSError:
            times.append(None)
    return times[0], times[1]
