"""What a Slurm job runs: the same worker entry, with the same run spec, as a
local child, writing into the same run directory on the shared filesystem.
For a ``command:`` study that entry is ``worker.command_run``, which fills in
the placeholders and ``XORCH_*`` variables and execs the user's program, as it
does on this machine.

submitit pickles a ``SlurmRun`` and calls it on the node. It is checkpointable:
when Slurm preempts the job or its time limit comes near, submitit asks it for
a resubmission and requeues the job, and the worker continues from the run's
last.ckpt like any resumed run. Torch-free: the parent pickles it.
"""

from __future__ import annotations

import subprocess
import sys

from submitit.helpers import Checkpointable

from orchestrator.contract.child import TRAIN_ENTRY
from orchestrator.contract.environment import child_environment

__all__ = ["SlurmRun", "SlurmRunOnce"]


class SlurmRunOnce:
    """The job's work; without a ``checkpoint`` method submitit never requeues
    it, so a time limit ends it as Slurm's TIMEOUT."""

    # A job pickled before command runs existed has no ``entry`` of its own:
    # a requeue unpickles it with this default.
    entry = TRAIN_ENTRY

    def __init__(self, run_spec: str, log: str, entry: str = TRAIN_ENTRY) -> None:
        self.run_spec = run_spec
        self.log = log
        self.entry = entry

    def __call__(self) -> int:
        env = child_environment()
        with open(self.log, "ab") as log:
            code = subprocess.call(
                [sys.executable, "-m", self.entry, self.run_spec],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if code != 0:
            # A failed job: Slurm's verdict FAILED, and error.json (or, for a
            # command run, the last line of train.log) says why.
            raise RuntimeError(f"{self.entry} exited with status {code} (see {self.log})")
        return code


class SlurmRun(Checkpointable, SlurmRunOnce):
    """The same work, requeued by submitit on preemption or near the time limit
    (``Checkpointable.checkpoint`` resubmits it as it is; the worker then
    continues from last.ckpt)."""
