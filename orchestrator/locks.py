"""Two locks: one for the whole study, one around each state write.

The launcher lock is held by ``xorch launch`` from start to end, so a second
launch on the same folder fails at once instead of training the same runs
twice. The kernel drops an flock when its holder dies, so a parent killed with
SIGKILL never leaves a stale lock behind. The holder's pid and host go into a
separate owner file: filelock truncates the lock file itself when it opens it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from orchestrator.contract.atomic import atomic_write_json
from orchestrator.contract.records import read_json_object
from orchestrator.errors import LockedError

if TYPE_CHECKING:
    from orchestrator.contract.paths import StudyPaths

__all__ = ["launcher_lock", "state_lock"]

# A state write takes milliseconds; waiting longer than this means something is
# badly wrong (a hung filesystem), and we say so rather than hang with it.
STATE_LOCK_TIMEOUT_S = 60.0


@contextlib.contextmanager
def launcher_lock(paths: StudyPaths) -> Iterator[None]:
    lock = FileLock(paths.launcher_lock, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = read_json_object(paths.launcher_owner) or {}
        who = f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}"
        raise LockedError(
            f"{paths.root} is in use by another xorch launch ({who}); "
            "wait for it to finish or stop it first"
        ) from None
    try:
        # Only a hint for the message above: on a full disk the state write,
        # which comes next, is the one that reports it.
        with contextlib.suppress(OSError):
            owner = {"pid": os.getpid(), "host": socket.gethostname()}
            atomic_write_json(paths.launcher_owner, owner)
        yield
    finally:
        with contextlib.suppress(OSError):
            paths.launcher_owner.unlink()
        lock.release()


@contextlib.contextmanager
def state_lock(paths: StudyPaths) -> Iterator[None]:
    with FileLock(paths.state_lock, timeout=STATE_LOCK_TIMEOUT_S):
        yield
