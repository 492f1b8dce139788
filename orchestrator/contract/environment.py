"""The environment a child starts with, built in one place for every launcher
(local spawn, the fork server, a Slurm job's wrapper)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.contract.records import PARENT_PID_ENV

__all__ = ["RUN_MARK_ENV", "child_environment", "run_mark"]

# Every process a run starts inherits this variable (unless it clears its
# environment on purpose): the parent finds what a run left behind by it, also
# a child in a new session or a grandchild reparented to init (issue 23).
RUN_MARK_ENV = "XORCH_RUN_MARK"


def run_mark(run_root: Path) -> str:
    """The marker value of the run whose folder is ``run_root``: its absolute path."""
    return os.path.abspath(run_root)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with ``extra`` (a slot's GPUs and thread
    counts) over it, this process named as the child's parent (the child dies
    with it, see ``worker.lifeline``), and unbuffered output, so train.log
    shows a line as soon as it is printed, also when the child is killed."""
    return {
        **os.environ,
        **(extra or {}),
        PARENT_PID_ENV: str(os.getpid()),
        "PYTHONUNBUFFERED": "1",
    }
