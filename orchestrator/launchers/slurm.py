"""``executor: slurm``: one Slurm job per attempt, submitted with submitit.

The job runs ``worker.slurm_job.SlurmRun``: the same worker entry and run spec
as a local child, writing into the same run directory. The parent records each
job id in the attempt, so a parent started again with resume re-attaches to the
jobs still queued or running instead of submitting them again.

Slurm's verdicts map onto xorch's failure classes: OUT_OF_MEMORY -> oom_killed,
TIMEOUT -> timeout, PREEMPTED, NODE_FAIL and CANCELLED -> interrupted (then
retried), FAILED -> failed with error.json, COMPLETED -> read metrics.json.
The job state comes from submitit (sacct); on a cluster without accounting
sacct fails, and we ask ``squeue`` and ``scontrol`` instead, quietly.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from collections.abc import Mapping

from orchestrator.launchers.base import ChildProcess, Launcher
from orchestrator.paths import RunPaths, StudyPaths
from orchestrator.runner_spec import SlurmSpec
from orchestrator.state import AttemptClass

__all__ = ["SlurmChild", "SlurmLauncher", "slurm_verdict"]

RUNNING_STATES = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD",
}  # fmt: skip
STATE_CACHE_S = 2.0  # one squeue/scontrol call per job every few seconds is plenty


def slurm_verdict(state: str) -> tuple[AttemptClass, str] | None:
    """Slurm's own verdict as a class, or None where the run's files decide."""
    mapping = {
        "OUT_OF_MEMORY": AttemptClass.OOM_KILLED,
        "TIMEOUT": AttemptClass.TIMEOUT,
        "DEADLINE": AttemptClass.TIMEOUT,
        "PREEMPTED": AttemptClass.INTERRUPTED,
        "NODE_FAIL": AttemptClass.INTERRUPTED,
        "BOOT_FAIL": AttemptClass.INTERRUPTED,
        "CANCELLED": AttemptClass.INTERRUPTED,
        "REVOKED": AttemptClass.INTERRUPTED,
    }
    outcome = mapping.get(state.split()[0].upper() if state else "")
    return (outcome, f"Slurm: {state}") if outcome else None


def query_state(job_id: str) -> tuple[str, int | None]:
    """(state, exit code) from squeue while queued, else scontrol (kept for
    MinJobAge after the end); ("UNKNOWN", None) when neither knows the job."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["scontrol", "-o", "show", "job", job_id],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout
        fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
        if "JobState" in fields:
            code = fields.get("ExitCode", "0:0").split(":")[0]
            return fields["JobState"], int(code) if code.isdigit() else None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.strip()
        if out:
            return out.splitlines()[0], None
    return "UNKNOWN", None


class SlurmChild(ChildProcess):
    """A submitted job, seen like a child process."""

    job_id: str  # always set: a job is named by its Slurm id

    def __init__(self, job_id: str, paths: StudyPaths) -> None:
        self.job_id = job_id
        self.paths = paths
        self._state: tuple[str, int | None] = ("PENDING", None)
        self._checked = 0.0

    @property
    def pid(self) -> int | None:
        return None  # nothing on this machine to signal

    def state(self) -> str:
        if time.monotonic() - self._checked > STATE_CACHE_S:
            self._state = query_state(self.job_id)
            self._checked = time.monotonic()
        return self._state[0]

    def poll(self) -> int | None:
        state = self.state()
        if state in RUNNING_STATES or state == "UNKNOWN":
            return None
        code = self._state[1]
        if state == "COMPLETED":
            return 0
        return code if code else 1

    def ended_as(self) -> tuple[AttemptClass, str] | None:
        state = self.state()
        if state == "FAILED" and self._timed_out_in_submitit():
            return AttemptClass.TIMEOUT, "Slurm: time limit reached and the job was not requeued"
        return slurm_verdict(state)

    def _timed_out_in_submitit(self) -> bool:
        """submitit answers Slurm's time-limit signal itself: a job it does not
        requeue (requeue off, or too many requeues) ends FAILED, not TIMEOUT,
        and says why in its log."""
        try:
            text = self.paths.slurm_job_log(self.job_id).read_text(errors="replace")
        except OSError:
            return False
        return "UncompletedJobError" in text and "timed-out" in text

    def queued(self) -> bool:
        return self.state() in ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "UNKNOWN")

    def request_stop(self) -> None:
        subprocess.run(["scancel", self.job_id], capture_output=True, check=False)

    def stop(self, grace_period: float) -> int:
        # scancel sends SIGTERM, then SIGKILL after the cluster's KillWait.
        self.request_stop()
        deadline = time.monotonic() + max(grace_period, 30.0)
        while time.monotonic() < deadline:
            self._checked = 0.0
            if self.poll() is not None:
                break
            time.sleep(1.0)
        return -15

    def rss_bytes(self) -> int | None:
        return None


class SlurmLauncher(Launcher):
    reattaches_jobs = True  # jobs outlive the parent; a resume watches them again

    def __init__(self, slurm: SlurmSpec, paths: StudyPaths) -> None:
        import submitit

        # submitit warns at every status check when sacct is missing (no
        # accounting); we ask squeue and scontrol ourselves, so keep it quiet.
        logging.getLogger("submitit").setLevel(logging.ERROR)
        self.paths = paths
        self.requeue = slurm.requeue
        self.executor = submitit.SlurmExecutor(folder=paths.slurm_jobs / "%j")
        parameters: dict[str, object] = {
            "time": slurm.time_min,
            "job_name": "xorch",
            "signal_delay_s": 60,
            "stderr_to_stdout": True,
        }
        optional = {
            "partition": slurm.partition,
            "gpus_per_task": slurm.gpus_per_task,
            "cpus_per_task": slurm.cpus_per_task,
            "mem": f"{int(slurm.mem_gb * 1024)}M" if slurm.mem_gb else None,
            "account": slurm.account,
            "qos": slurm.qos,
        }
        parameters.update({k: v for k, v in optional.items() if v is not None})
        if slurm.additional_parameters:
            parameters["additional_parameters"] = dict(slurm.additional_parameters)
        self.executor.update_parameters(**parameters)

    def start(self, run: RunPaths, env: Mapping[str, str]) -> SlurmChild:
        # env is for local slots (CUDA_VISIBLE_DEVICES, threads): Slurm sets its own.
        from worker.slurm_job import SlurmRun, SlurmRunOnce

        work = SlurmRun if self.requeue else SlurmRunOnce
        job = self.executor.submit(work(str(run.run_spec), str(run.log)))
        return SlurmChild(str(job.job_id), self.paths)

    def attach(self, job_id: str) -> SlurmChild:
        return SlurmChild(job_id, self.paths)
