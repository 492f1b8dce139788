"""Tie a process's life to its parent's, so ``kill -9`` of xorch leaves nothing behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

from orchestrator.contract.child import ChildExit
from orchestrator.contract.records import PARENT_PID_ENV

__all__ = ["die_with_parent", "follow_parent"]

PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int) -> None:
    """Ask Linux for SIGKILL when the parent dies, then check that the parent is
    still the expected one: it may have died before the request was made."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:
        os._exit(ChildExit.FAILED)


def follow_parent(*, watch: bool) -> None:
    """Die with the parent named in ``PARENT_PID_ENV``; nothing when the variable
    is unset (started by hand: nobody to follow).

    ``watch``: also start a thread that kills this process group once the parent
    is gone, for systems without the parent-death signal. The fork server passes
    False: it must stay single-threaded so that forking it is safe, and its runs
    watch for themselves.
    """
    expected = int(os.environ.get(PARENT_PID_ENV, "0") or 0)
    if not expected:
        return
    die_with_parent(expected)
    if not watch:
        return

    def watch_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != expected:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch_parent, name="xorch-parent-watch", daemon=True).start()
