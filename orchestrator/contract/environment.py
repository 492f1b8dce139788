"""The environment a child starts with, built in one place for every launcher
(local spawn, the fork server, a Slurm job's wrapper)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from orchestrator.contract.records import PARENT_PID_ENV

__all__ = ["child_environment"]


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
