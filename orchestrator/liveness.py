"""Proof of life of a process xorch started: the one check the launchers (who
record a child's identity) and recovery (who asks whether it still runs) share."""

from __future__ import annotations

import socket

import psutil

__all__ = ["identify", "still_running"]

# Create times read twice of one process may differ by rounding (psutil reads
# them from /proc in clock ticks); a reused pid starts later than this apart.
_SAME_START_S = 1.0


def identify(pid: int) -> tuple[psutil.Process | None, float | None]:
    """The process ``pid`` and its create time, the identity a later check compares;
    (None, None) if it is already gone."""
    try:
        process = psutil.Process(pid)
        return process, process.create_time()
    except psutil.Error:
        return None, None


def still_running(pid: int | None, create_time: float | None, host: str) -> bool:
    """Alive only on proof: same host, the pid exists, and it is the same process
    (its create time matches, so a reused pid is not mistaken for our child)."""
    if pid is None or host != socket.gethostname():
        return False
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > _SAME_START_S:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
