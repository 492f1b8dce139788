"""The environment a child starts with, built in one place for every launcher
(local spawn, the fork server, a Slurm job's wrapper)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.contract.records import PARENT_PID_ENV

__all__ = ["NOT_INHERITED", "RUN_MARK_ENV", "child_environment", "run_mark"]

# Every process a run starts inherits this variable (unless it clears its
# environment on purpose): the parent finds what a run left behind by it, also
# a child in a new session or a grandchild reparented to init (issue 23).
RUN_MARK_ENV = "XORCH_RUN_MARK"

# Variables that hand a child a live service of this process's: W&B's names
# the wandb-core of a ``wandb.init`` done in the launching process (a notebook,
# an export). A run that joined it would share one service with every other
# run, and a killed run's W&B stream would stay open there, so its next
# attempt is refused ("run ID ... is in use"). Each run starts its own.
NOT_INHERITED = ("WANDB_SERVICE",)


def run_mark(run_root: Path) -> str:
    """The marker value of the run whose folder is ``run_root``: its absolute path."""
    return os.path.abspath(run_root)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with ``extra`` (a slot's GPUs and thread
    counts) over it, this process named as the child's parent (the child dies
    with it, see ``worker.lifeline``), and unbuffered output, so train.log
    shows a line as soon as it is printed, also when the child is killed.
    ``NOT_INHERITED`` is left out."""
    inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {
        **inherited,
        **(extra or {}),
        PARENT_PID_ENV: str(os.getpid()),
        "PYTHONUNBUFFERED": "1",
    }
