"""The small core every launcher implements, in the manner of submitit's
``Executor`` and ``Job``: a launcher starts children (``start``), finds one
again after a parent restart (``attach``) and is closed at the end (``close``);
a child is named by its process (pid and create time) or its cluster job id,
is polled, stopped, and tells the parent's loop when it exits (``Wakeup``).
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import select
import threading
from collections.abc import Mapping

from orchestrator.contract.paths import RunPaths
from orchestrator.state import AttemptClass

__all__ = ["ChildProcess", "Launcher", "Wakeup"]


class Wakeup:
    """A self-pipe the scheduler's loop sleeps on: launchers' threads and the
    signal handlers ``set`` it when something happened (a child exited, a stop
    was asked), so the loop wakes at once instead of at its next timer. A local
    child's exit wakes it straight from the kernel (``watch_exit``)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        # Threads may set it after the loop ended (the fork server's reader sees
        # its end of output at close): once closed, its fd numbers may belong to
        # another file, so nothing is written. Reentrant, because a signal
        # handler may call ``set`` on the main thread in the middle of ``close``.
        self._lock = threading.RLock()
        self._closed = False
        # pidfds of children whose exit ends ``wait``; only the loop's thread
        # touches them. Each is closed once it has been seen readable.
        self._exits: set[int] = set()

    def watch_exit(self, pid: int) -> bool:
        """End ``wait`` when our child ``pid`` (not yet reaped) exits, through a
        pidfd polled beside the pipe: the loop wakes from the kernel itself, not
        through a thread that wakes first and then writes to the pipe (on a
        loaded 2-core box, each wake-up is a wait for a core; issue 20). False
        where there is no pidfd (Linux before 5.3, not Linux)."""
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return False
        self._exits.add(fd)
        return True

    def set(self) -> None:
        with self._lock:
            if self._closed:
                return
            # A full pipe already means "wake up": dropping the byte loses nothing.
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._write, b"!")

    def wait(self, timeout: float | None) -> bool:
        """Sleep until ``set``, a watched child's exit or ``timeout`` seconds;
        True when woken. Drains the pipe; forgets the children seen to exit."""
        poller = select.poll()  # no FD_SETSIZE limit on the numbers, unlike select()
        for fd in (self._read, *self._exits):
            poller.register(fd, select.POLLIN)
        ready = poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        if not ready:
            return False
        for fd, _ in ready:
            if fd in self._exits:
                self._exits.discard(fd)
                os.close(fd)
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                pass
        return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write, *self._exits):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._exits.clear()


class ChildProcess(abc.ABC):
    """A started attempt, seen from the parent."""

    # How the attempt is named in the state: a local process by its pid and
    # create time (a reused pid is not our child), a cluster job by its id.
    create_time: float | None = None
    job_id: str | None = None

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """The local process (and process group) id; None for a job on a cluster."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """None while it runs; then its exit status (negative: killed by that signal)."""

    def notify_exit(self, wakeup: Wakeup) -> bool:
        """Arrange for ``wakeup`` to be set when the child exits. False where the
        launcher cannot know without asking (a cluster): the loop then polls
        this child on a timer."""
        return False

    def ended_as(self) -> tuple[AttemptClass, str] | None:
        """A verdict the launcher knows better than the exit status (Slurm's
        TIMEOUT, a fork server that died with the run), or None. COMPLETED and
        FAILED only add their reason: metrics.json or error.json still decide
        the class (a Slurm job settled from its files)."""
        return None

    def queued(self) -> bool:
        """Whether it still waits in a queue (timeouts and hang checks wait too)."""
        return False

    @abc.abstractmethod
    def request_stop(self) -> None:
        """SIGTERM to its process group, without waiting (several children stop at once)."""

    @abc.abstractmethod
    def stop(self, grace_period: float) -> int:
        """SIGTERM to its whole process group, ``grace_period`` seconds, then SIGKILL.
        Returns the exit status."""

    def rss_bytes(self) -> int | None:
        """Resident memory of the child and its own children, when it can be read."""
        return None


class Launcher(abc.ABC):
    """Starts children for attempts; one per study."""

    # Whether attempts outlive the parent (cluster jobs): a restarted parent
    # re-attaches to them with ``attach`` instead of stopping them.
    reattaches_jobs: bool = False

    @abc.abstractmethod
    def start(self, run: RunPaths, env: Mapping[str, str]) -> ChildProcess:
        """Start the worker on ``run.run_spec`` with ``env`` added to the environment
        (CUDA_VISIBLE_DEVICES, thread counts); its output goes to ``run.log``."""

    def attach(self, job_id: str, run: RunPaths) -> ChildProcess:
        """The child named ``job_id`` by an earlier parent, running ``run``
        (``reattaches_jobs`` only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot re-attach to job {job_id}")

    def close(self) -> None:  # noqa: B027 - most launchers hold nothing to close
        """Release what the launcher holds (a fork server); children already stopped."""
