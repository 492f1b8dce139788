"""The processes of one run, wherever they went: found by the run's marker
(``contract.environment.RUN_MARK_ENV``), which every process the run starts
inherits, and ended with the run.

A run's process group does not hold a grandchild that started its own session
(``setsid``), and the kernel's parent-death signal reaches only the program,
not a grandchild reparented to init (issue 23). cgroup v2's ``cgroup.kill``
would hold them all, but the machines xorch runs on here have cgroup v1, so the
marker is what ends them. ``run_members`` decides which processes belong to a
run, from gathered facts only; ``gather`` and the signalling are the IO.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterable

import psutil

from orchestrator.contract.environment import RUN_MARK_ENV

__all__ = [
    "ProcessFacts",
    "RunSweep",
    "end_run_processes",
    "gather",
    "kill_run_processes",
    "run_members",
    "signal_run_processes",
]

# psutil's create times are rounded to clock ticks; a process of the run is
# never created this long before the attempt's recorded start.
_CREATE_SLACK_S = 1.0
# A process that forks while it is being killed can leave a new child each
# round; a few rounds catch a chain of them.
_KILL_ROUNDS = 5


@dataclasses.dataclass(frozen=True)
class ProcessFacts:
    """What the parent knows of one process: its pid, its run marker (None when
    it has none or its environment cannot be read), its create time."""

    pid: int
    mark: str | None
    create_time: float


def run_members(
    facts: Iterable[ProcessFacts], mark: str, since: float | None, own_pid: int
) -> tuple[int, ...]:
    """The pids of the processes of the run marked ``mark``: those that carry its
    marker, never this process, and (with ``since``, the attempt's start) none
    created before the attempt: a reused pid with an older create time is not ours."""
    return tuple(
        fact.pid
        for fact in facts
        if fact.mark == mark
        and fact.pid != own_pid
        and (since is None or fact.create_time >= since - _CREATE_SLACK_S)
    )


def gather(since: float | None = None) -> list[ProcessFacts]:
    """The marked processes on this machine, read from /proc (their environment
    as it was at exec). A process that ended or cannot be read is left out: a
    zombie's environment is gone, another user's is not ours to read or kill.

    ``since`` (an attempt's start): a process created before it (less the
    slack ``run_members`` allows) cannot be the attempt's, so its environment is
    not read. Reading every process's environment cost a trivial run about 3 ms
    at its end (issue 20); its create time is read from the stat file psutil
    reads anyway to tell a process from one that reused its pid."""
    oldest = None if since is None else since - _CREATE_SLACK_S
    facts = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            created = process.create_time()
            if oldest is not None and created < oldest:
                continue
            mark = process.environ().get(RUN_MARK_ENV)
            if mark is not None:
                facts.append(ProcessFacts(process.pid, mark, created))
    return facts


def signal_run_processes(mark: str, since: float | None, signum: int) -> tuple[int, ...]:
    """Send ``signum`` to the run's processes now; the pids signalled."""
    pids = run_members(gather(since), mark, since, os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    return pids


def kill_run_processes(mark: str, since: float | None) -> int:
    """SIGKILL the run's processes, again while new ones appear; how many."""
    killed: set[int] = set()
    for _ in range(_KILL_ROUNDS):
        pids = signal_run_processes(mark, since, signal.SIGKILL)
        if not set(pids) - killed:
            break
        killed.update(pids)
    return len(killed)


def end_run_processes(
    mark: str, since: float | None, grace_period: float, poll_s: float = 0.1
) -> int:
    """SIGTERM the run's processes, wait up to ``grace_period`` for them to end,
    then SIGKILL what is left; how many there were."""
    found = set(signal_run_processes(mark, since, signal.SIGTERM))
    deadline = time.monotonic() + grace_period
    while found and time.monotonic() < deadline:
        time.sleep(poll_s)
        if not run_members(gather(since), mark, since, os.getpid()):
            return len(found)
    return max(len(found), kill_run_processes(mark, since))


class RunSweep:
    """One attempt's marked processes, for its launcher's child: SIGTERM with
    the run's stop, SIGKILL (once) when the run has ended."""

    def __init__(self, mark: str, since: float) -> None:
        self.mark, self.since = mark, since  # since: the attempt's start, Unix time
        self._done = False

    def terminate(self) -> None:
        signal_run_processes(self.mark, self.since, signal.SIGTERM)

    def kill_once(self) -> None:
        if not self._done:
            self._done = True
            kill_run_processes(self.mark, self.since)
