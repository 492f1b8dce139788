"""The small core every launcher implements: start a child, poll it, stop it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from orchestrator.paths import RunPaths
from orchestrator.state import AttemptClass

__all__ = ["ChildProcess", "Launcher"]


class ChildProcess(Protocol):
    """A started attempt, seen from the parent."""

    @property
    def pid(self) -> int | None:
        """The local process (and process group) id; None for a job on a cluster."""
        ...

    def poll(self) -> int | None:
        """None while it runs; then its exit status (negative: killed by that signal)."""
        ...

    def ended_as(self) -> tuple[AttemptClass, str] | None:
        """A verdict the launcher knows better than the exit status (Slurm's
        TIMEOUT, a fork server that died with the run), or None. COMPLETED and
        FAILED only add their reason: metrics.json or error.json still decide
        the class (a Slurm job settled from its files)."""
        ...

    def queued(self) -> bool:
        """Whether it still waits in a queue (timeouts and hang checks wait too)."""
        ...

    def request_stop(self) -> None:
        """SIGTERM to its process group, without waiting (several children stop at once)."""
        ...

    def stop(self, grace_period: float) -> int:
        """SIGTERM to its whole process group, ``grace_period`` seconds, then SIGKILL.
        Returns the exit status."""
        ...

    def rss_bytes(self) -> int | None:
        """Resident memory of the child and its own children, when it can be read."""
        ...


class Launcher(Protocol):
    def start(self, run: RunPaths, env: Mapping[str, str]) -> ChildProcess:
        """Start the worker on ``run.run_spec`` with ``env`` added to the environment
        (CUDA_VISIBLE_DEVICES, thread counts); its output goes to ``run.log``."""
        ...
