"""Ctrl-C, SIGTERM and SIGHUP to the parent.

The first signal asks the study to stop: every running child gets SIGTERM at
once, then SIGKILL when its grace_period is over; every attempt that was
running is recorded as interrupted, whatever status SIGTERM left it with and
whichever child exits first, and xorch exits with 128 + the signal number. A
second signal does not wait for the grace period: it SIGKILLs the children's
process groups at once.

Under nohup SIGHUP is ignored when xorch starts, and we leave it ignored: closing
the terminal must not stop an overnight study. Under tmux the study keeps
running when you detach; Ctrl-C in its pane stops it as above.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["StopFlag", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class StopFlag:
    """Set by the signal handlers, read by the scheduler's loop."""

    signum: int | None = None
    active_groups: set[int] = field(default_factory=set)
    # Called after a signal is noted: the scheduler's loop sleeps in select(),
    # which Python restarts after a handler runs (PEP 475), so the handler
    # must wake it itself.
    on_request: Callable[[], None] | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self.on_request is not None:
            self.on_request()
        if first:
            return
        for pgid in list(self.active_groups):  # second signal: no grace period
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    def handler(signum: int, frame: FrameType | None) -> None:
        flag.request(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if signum == signal.SIGHUP and current == signal.SIG_IGN:
            continue  # nohup: keep ignoring hang-ups
        previous[signum] = current
        signal.signal(signum, handler)
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
