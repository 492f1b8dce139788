"""``executor: slurm``: one Slurm job per attempt, submitted with submitit.

The job runs ``worker.slurm_job.SlurmRun``: the same worker entry and run spec
as a local child, writing into the same run directory (``worker.command_run``
for a ``command:`` study, so the program gets the same placeholders, ``XORCH_*``
variables and working directory as on this machine). The parent records each
job id in the attempt, so a parent started again with resume re-attaches to the
jobs still queued or running instead of submitting them again.

Slurm's verdicts map onto xorch's failure classes: OUT_OF_MEMORY -> oom_killed,
TIMEOUT -> timeout, PREEMPTED, NODE_FAIL and CANCELLED -> interrupted (then
retried), FAILED -> failed with error.json, COMPLETED -> read metrics.json.

The job state comes from ``scontrol show job`` (which keeps a finished job for
the cluster's MinJobAge), else ``squeue``; sacct is never asked, since many
clusters run without accounting, and submitit's own sacct watcher is silenced.
Once the controller answers that it does not know the job any more (MinJobAge
passed, or the parent was away longer than that), the job is settled from the
files it left: metrics.json, error.json, submitit's result pickle and its log.
Those files are conclusive, so a job that left one is settled at once; a job
that left none is settled as interrupted (and retried) after
``FORGOTTEN_AFTER_S`` seconds, so a forgotten job is never waited on forever.
The reason says so. A controller that does not answer at all is not taken as
an answer: the job counts as queued until it answers again.
"""

from __future__ import annotations

import io
import logging
import pickle
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.contract.bounded import read_bounded, read_tail
from orchestrator.contract.child import TRAIN_ENTRY
from orchestrator.contract.limits import MAX_LOG_SCAN_BYTES, MAX_RECORD_BYTES
from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.contract.records import ERROR_FILE, METRICS_FILE
from orchestrator.launchers.base import ChildProcess, Launcher
from orchestrator.runner_spec import SlurmSpec
from orchestrator.state import AttemptClass

__all__ = [
    "FORGOTTEN",
    "FORGOTTEN_AFTER_S",
    "UNREACHABLE",
    "SlurmChild",
    "SlurmLauncher",
    "forgotten_job_verdict",
    "parse_state",
    "slurm_verdict",
]

RUNNING_STATES = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD",
}  # fmt: skip
STATE_CACHE_S = 2.0  # one squeue/scontrol call per job every few seconds is plenty

# The controller answered that it does not know the job (its record was purged
# after MinJobAge): the job has ended, and its files must tell how.
FORGOTTEN = "UNKNOWN"
# Neither scontrol nor squeue could ask the controller: nothing is known.
UNREACHABLE = "UNREACHABLE"
# How long a forgotten job that left no final file is waited for before it is
# settled as interrupted: the files of a job that just ended may take a moment
# to appear on a shared filesystem (NFS attribute caching is often 30-60 s).
FORGOTTEN_AFTER_S = 60.0
# How long a FAILED job's log may lag its state (see _timed_out_in_submitit).
LOG_LAG_S = 5.0


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
    """(state, exit code) from scontrol (it keeps a finished job for MinJobAge),
    else squeue; (FORGOTTEN, None) when the controller says it does not know the
    job, (UNREACHABLE, None) when it could not be asked."""
    scontrol = _ask(["scontrol", "-o", "show", "job", job_id])
    state = parse_state(scontrol, None)
    if state[0] not in (FORGOTTEN, UNREACHABLE):
        return state
    return parse_state(scontrol, _ask(["squeue", "-h", "-j", job_id, "-o", "%T"]))


def _ask(command: list[str]) -> tuple[str, str] | None:
    """(stdout, stderr) of a Slurm command; None when it could not run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout, done.stderr


def parse_state(
    scontrol: tuple[str, str] | None, squeue: tuple[str, str] | None
) -> tuple[str, int | None]:
    """The state from the (stdout, stderr) of ``scontrol -o show job ID`` and of
    ``squeue -h -j ID -o %T``; None for a command that could not run."""
    if scontrol is not None:
        fields = dict(part.split("=", 1) for part in scontrol[0].split() if "=" in part)
        if "JobState" in fields:
            code = fields.get("ExitCode", "0:0").split(":")[0]
            return fields["JobState"], int(code) if code.isdigit() else None
    if squeue is not None and squeue[0].strip():
        return squeue[0].strip().splitlines()[0], None
    # "slurm_load_jobs error: Invalid job id specified": the controller answered.
    said = " ".join(answer[1] for answer in (scontrol, squeue) if answer is not None)
    if "invalid job id" in said.lower():
        return FORGOTTEN, None
    return UNREACHABLE, None


def forgotten_job_verdict(
    job_id: str, run: RunPaths, job_folder: Path, waited_s: float
) -> tuple[int, tuple[AttemptClass, str]] | None:
    """How a job that Slurm no longer knows ended, from the files it left:
    (exit status, (class, reason)), or None while nothing conclusive is there
    and ``FORGOTTEN_AFTER_S`` has not passed. For exit status 0 the class is
    COMPLETED and metrics.json decides; the reason always says where the verdict
    came from."""
    said = f"Slurm no longer knows job {job_id} (MinJobAge passed)"
    if run.metrics.exists():
        return 0, (AttemptClass.COMPLETED, f"{said}; settled from {METRICS_FILE}")
    # The log before error.json: a job ended at its time limit (or preempted)
    # often leaves an error.json too, from the exception the signal raised.
    log = _read_text(job_folder / f"{job_id}_0_log.out")
    from_log = _verdict_from_log(log)
    if from_log is not None:
        return 1, (from_log[0], f"{said}; its log says: {from_log[1]}")
    if run.error.exists():
        return 1, (AttemptClass.FAILED, f"{said}; settled from {ERROR_FILE}")
    outcome = _submitit_outcome(job_folder / f"{job_id}_0_result.pkl")
    if outcome is not None:
        kind, detail = outcome
        if kind == "success":
            return 0, (AttemptClass.COMPLETED, f"{said}; submitit's result says it succeeded")
        last = detail.strip().splitlines()[-1] if detail.strip() else "an error"
        return 1, (AttemptClass.FAILED, f"{said}; submitit's result says: {last[:300]}")
    if waited_s < FORGOTTEN_AFTER_S:
        return None
    return 1, (
        AttemptClass.INTERRUPTED,
        f"{said}; it left no {METRICS_FILE}, {ERROR_FILE} or result in "
        f"{FORGOTTEN_AFTER_S:g} s: counted as interrupted",
    )


# slurmstepd writes these into the job's output when it ends the job itself.
# Each reason starts with the state Slurm would have shown while it still knew
# the job, so a reason reads the same whichever of the two found it.
_LOG_VERDICTS: tuple[tuple[str, AttemptClass, str], ...] = (
    ("DUE TO TIME LIMIT", AttemptClass.TIMEOUT, "TIMEOUT (time limit reached)"),
    ("timed-out", AttemptClass.TIMEOUT, "TIMEOUT (time limit reached, not requeued)"),
    ("DUE TO PREEMPTION", AttemptClass.INTERRUPTED, "PREEMPTED"),
    ("DUE TO NODE FAILURE", AttemptClass.INTERRUPTED, "NODE_FAIL"),
    ("oom_kill event", AttemptClass.OOM_KILLED, "OUT_OF_MEMORY (oom_kill: killed for memory)"),
    ("oom-kill event", AttemptClass.OOM_KILLED, "OUT_OF_MEMORY (oom-kill: killed for memory)"),
    ("CANCELLED AT", AttemptClass.INTERRUPTED, "CANCELLED"),
)


def _verdict_from_log(text: str) -> tuple[AttemptClass, str] | None:
    for marker, outcome, reason in _LOG_VERDICTS:
        if marker in text:
            return outcome, reason
    return None


def _read_text(path: Path) -> str:
    try:
        return read_tail(path, MAX_LOG_SCAN_BYTES)[0].decode("utf-8", errors="replace")
    except OSError:
        return ""


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only: the parent never imports what a job pickled."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _submitit_outcome(path: Path) -> tuple[str, str] | None:
    """submitit's ("success", result) or ("error", traceback), when it wrote one."""
    try:
        payload = _PlainUnpickler(io.BytesIO(read_bounded(path, MAX_RECORD_BYTES))).load()
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, IndexError, KeyError):
        return None
    if isinstance(payload, tuple) and len(payload) == 2 and payload[0] in ("success", "error"):
        return str(payload[0]), str(payload[1])
    return None


class SlurmChild(ChildProcess):
    """A submitted job, seen like a child process."""

    job_id: str  # always set: a job is named by its Slurm id

    def __init__(
        self,
        job_id: str,
        paths: StudyPaths,
        run: RunPaths,
        query: Callable[[str], tuple[str, int | None]] = query_state,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.paths = paths
        self.run = run
        self._query = query
        self._clock = clock
        self._state: tuple[str, int | None] = ("PENDING", None)
        self._checked = -STATE_CACHE_S - 1.0
        self._forgotten_since: float | None = None
        self._settled: tuple[int, tuple[AttemptClass, str]] | None = None

    @property
    def pid(self) -> int | None:
        return None  # nothing on this machine to signal

    def state(self) -> str:
        if self._settled is None and self._clock() - self._checked > STATE_CACHE_S:
            self._state = self._query(self.job_id)
            self._checked = self._clock()
            if self._state[0] != FORGOTTEN:
                self._forgotten_since = None
            elif self._forgotten_since is None:
                self._forgotten_since = self._checked
        return self._state[0]

    def poll(self) -> int | None:
        state = self.state()
        if state == FORGOTTEN:
            return self._settle_forgotten()
        if state in RUNNING_STATES or state == UNREACHABLE:
            return None
        code = self._state[1]
        if state == "COMPLETED":
            return 0
        return code if code else 1

    def _settle_forgotten(self) -> int | None:
        if self._settled is None:
            assert self._forgotten_since is not None
            self._settled = forgotten_job_verdict(
                self.job_id,
                self.run,
                self.paths.slurm_jobs / self.job_id,
                self._clock() - self._forgotten_since,
            )
        return self._settled[0] if self._settled else None

    def ended_as(self) -> tuple[AttemptClass, str] | None:
        if self._settled is not None:
            return self._settled[1]
        state = self.state()
        if state == "FAILED" and self._timed_out_in_submitit():
            return AttemptClass.TIMEOUT, "Slurm: time limit reached and the job was not requeued"
        return slurm_verdict(state)

    def _timed_out_in_submitit(self) -> bool:
        """submitit answers Slurm's time-limit signal itself: a job it does not
        requeue (requeue off, or too many requeues) ends FAILED, not TIMEOUT,
        and says why in its log."""
        # The log can lag the FAILED state by a moment on a shared filesystem:
        # read it again for a few seconds before calling the job a plain failure.
        deadline = time.monotonic() + LOG_LAG_S
        while True:
            text = _read_text(self.paths.slurm_job_log(self.job_id))
            if "UncompletedJobError" in text and "timed-out" in text:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def queued(self) -> bool:
        # A forgotten job waits here, clocks held, until its files settle it.
        waiting = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", FORGOTTEN, UNREACHABLE)
        return self._settled is None and self.state() in waiting

    def request_stop(self) -> None:
        subprocess.run(["scancel", self.job_id], capture_output=True, check=False)

    def stop(self, grace_period: float) -> int:
        # scancel sends SIGTERM, then SIGKILL after the cluster's KillWait.
        self.request_stop()
        deadline = time.monotonic() + max(grace_period, 30.0)
        while time.monotonic() < deadline:
            self._checked = -STATE_CACHE_S - 1.0
            if self.poll() is not None:
                break
            time.sleep(1.0)
        return -15

    def rss_bytes(self) -> int | None:
        return None


class SlurmLauncher(Launcher):
    reattaches_jobs = True  # jobs outlive the parent; a resume watches them again

    def __init__(
        self,
        slurm: SlurmSpec,
        paths: StudyPaths,
        entry: str = TRAIN_ENTRY,
        gpus_per_run: int = 0,
    ) -> None:
        """``entry``: the module each job runs; ``gpus_per_run``: the GPUs of one
        job's one task (0: as ``slurm.gpus_per_task`` says)."""
        import submitit

        # submitit warns at every status check when sacct is missing (no
        # accounting); we ask squeue and scontrol ourselves, so keep it quiet.
        logging.getLogger("submitit").setLevel(logging.ERROR)
        self.paths = paths
        self.entry = entry  # the child module a job runs, as LocalLauncher.entry
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
            # gpus_per_run > 1: one task holds all of the run's GPUs (config.py
            # refuses a gpus_per_task that says otherwise).
            "gpus_per_task": slurm.gpus_per_task or (gpus_per_run if gpus_per_run > 1 else None),
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
        job = self.executor.submit(work(str(run.run_spec), str(run.log), self.entry))
        return SlurmChild(str(job.job_id), self.paths, run)

    def attach(self, job_id: str, run: RunPaths) -> SlurmChild:
        return SlurmChild(job_id, self.paths, run)
