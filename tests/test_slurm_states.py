"""How xorch reads a Slurm job's state, and settles a job that Slurm no longer
knows (MinJobAge passed on a cluster without accounting) from the files it left.

These use outputs recorded from the local Slurm (slurm-wlm 22.05), a fake clock
and real run folders; tests/test_slurm.py runs the same on a real Slurm."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from orchestrator.contract.paths import StudyPaths
from orchestrator.launchers.slurm import (
    FORGOTTEN,
    FORGOTTEN_AFTER_S,
    UNREACHABLE,
    SlurmChild,
    parse_state,
)
from orchestrator.runner_spec import RunnerSettings
from orchestrator.state import AttemptClass
from orchestrator.supervise import AttemptWatch

SCONTROL_RUNNING = (
    "JobId=2 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A "
    "Priority=4294901758 Nice=0 Account=(null) QOS=(null) JobState=RUNNING "
    "Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=0:0 RunTime=00:00:01 TimeLimit=UNLIMITED TimeMin=N/A "
    "SubmitTime=2026-11-27T04:03:24 EligibleTime=2026-11-27T04:03:24 "
    "AccrueTime=2026-11-27T04:03:24 StartTime=2026-11-27T04:03:25 EndTime=Unknown "
    "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-27T04:03:25 "
    "Scheduler=Main Partition=debug AllocNode:Sid=localhost:2396 ReqNodeList=(null) "
    "ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 "
    "CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=23081M,node=1,billing=1 "
    "Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 "
    "MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK "
    "Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp "
    "StdErr=/tmp/values_job_2.out StdIn=/dev/null StdOut=/tmp/values_job_2.out Power= "
    ""
)
SCONTROL_FAILED = (
    "JobId=2 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A "
    "Priority=4294901758 Nice=0 Account=(null) QOS=(null) JobState=FAILED "
    "Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 "
    "Reboot=0 ExitCode=3:0 RunTime=00:00:03 TimeLimit=UNLIMITED TimeMin=N/A "
    "SubmitTime=2026-11-27T04:03:24 EligibleTime=2026-11-27T04:03:24 "
    "AccrueTime=2026-11-27T04:03:24 StartTime=2026-11-27T04:03:25 "
    "EndTime=2026-11-27T04:03:28 Deadline=N/A SuspendTime=None SecsPreSuspend=0 "
    "LastSchedEval=2026-11-27T04:03:25 Scheduler=Main Partition=debug "
    "AllocNode:Sid=localhost:2396 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm "
    "BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=1,mem=23081M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* "
    "CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=(null) WorkDir=/tmp StdErr=/tmp/values_job_2.out StdIn=/dev/null "
    "StdOut=/tmp/values_job_2.out Power= "
)
SAID = "Slurm no longer knows job 77 (MinJobAge passed)"
INVALID = "slurm_load_jobs error: Invalid job id specified\n"
NO_CONTROLLER = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"


def test_recorded_outputs_give_the_state():
    assert parse_state((SCONTROL_RUNNING, ""), ("RUNNING\n", "")) == ("RUNNING", 0)
    assert parse_state((SCONTROL_FAILED, ""), None) == ("FAILED", 3)
    assert parse_state(("", INVALID), ("PENDING\n", "")) == ("PENDING", None)  # squeue knows
    assert parse_state(("", INVALID), ("", INVALID)) == (FORGOTTEN, None)
    assert parse_state(None, ("", INVALID)) == (FORGOTTEN, None)  # no scontrol on this node
    # A controller that does not answer says nothing about the job.
    assert parse_state(("", NO_CONTROLLER), ("", NO_CONTROLLER)) == (UNREACHABLE, None)
    assert parse_state(None, None) == (UNREACHABLE, None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def study(tmp_path: Path) -> StudyPaths:
    paths = StudyPaths(tmp_path / "a study's dir")
    paths.run("run_0_seed1").root.mkdir(parents=True)
    (paths.slurm_jobs / "77").mkdir(parents=True)
    return paths


def child_of(paths: StudyPaths, answers: list[str], clock: Clock) -> SlurmChild:
    states = iter(answers)
    last = [answers[-1]]

    def query(job_id: str) -> tuple[str, int | None]:
        assert job_id == "77"
        last[0] = next(states, last[0])
        return last[0], None

    return SlurmChild("77", paths, paths.run("run_0_seed1"), query=query, clock=clock)


def watch_until_verdict(child: SlurmChild, paths: StudyPaths, clock: Clock, limit_s: float):
    watch = AttemptWatch(
        child,
        paths.run("run_0_seed1"),
        RunnerSettings(hang_timeout=5.0),
        clock=clock,
        wall_clock=clock,
    )
    while clock.now < 1000.0 + limit_s:
        verdict = watch.check()
        if verdict is not None:
            return verdict
        clock.now += 3.0
    return None


def test_a_forgotten_job_that_wrote_its_metrics_completes_at_once(study):
    clock = Clock()
    study.run("run_0_seed1").metrics.write_text('{"metrics": {"val/loss": 0.3}}')
    child = child_of(study, ["RUNNING", FORGOTTEN], clock)
    verdict = watch_until_verdict(child, study, clock, 30)
    assert verdict is not None and verdict.attempt_class is AttemptClass.COMPLETED
    assert verdict.metrics == {"val/loss": 0.3}
    assert verdict.reason == SAID + "; settled from metrics.json"


def test_a_forgotten_job_that_left_error_json_failed_for_its_reason(study):
    clock = Clock()
    study.run("run_0_seed1").error.write_text('{"type": "RuntimeError", "message": "boom"}')
    verdict = watch_until_verdict(child_of(study, [FORGOTTEN], clock), study, clock, 30)
    assert verdict is not None and verdict.attempt_class is AttemptClass.FAILED
    assert verdict.reason == SAID + "; settled from error.json; RuntimeError: boom"
    # A config error stays one: the study stops instead of retrying.
    study.run("run_0_seed1").error.write_text(
        '{"type": "worker.build.BuildError", "message": "no module named x"}'
    )
    clock = Clock()
    verdict = watch_until_verdict(child_of(study, [FORGOTTEN], clock), study, clock, 30)
    assert verdict is not None and verdict.config_error


@pytest.mark.parametrize(("log", "outcome", "words"), [
    ("slurmstepd: error: *** JOB 77 ON vm CANCELLED AT 2026-11-27T04:00:00 DUE TO TIME LIMIT ***",
     AttemptClass.TIMEOUT, "; its log says: TIMEOUT (time limit reached)"),
    ("slurmstepd: error: *** JOB 77 ON vm CANCELLED AT 2026-11-27T04:00:00 DUE TO PREEMPTION ***",
     AttemptClass.INTERRUPTED, "; its log says: PREEMPTED"),
    ("slurmstepd: error: Detected 1 oom_kill event in StepId=77.batch.", AttemptClass.OOM_KILLED,
     "; its log says: OUT_OF_MEMORY"),
    ("slurmstepd: error: *** JOB 77 ON vm CANCELLED AT 2026-11-27T04:00:00 ***",
     AttemptClass.INTERRUPTED, "; its log says: CANCELLED"),
])  # fmt: skip
def test_a_forgotten_job_is_classified_from_its_log(study, log, outcome, words):
    clock = Clock()
    (study.slurm_jobs / "77" / "77_0_log.out").write_text(f"starting\n{log}\n")
    verdict = watch_until_verdict(child_of(study, [FORGOTTEN], clock), study, clock, 30)
    assert verdict is not None and verdict.attempt_class is outcome
    assert verdict.reason.startswith("Slurm no longer knows job 77") and words in verdict.reason


def test_a_forgotten_job_is_read_from_submitits_result_without_unpickling_code(study):
    clock = Clock()
    result = study.slurm_jobs / "77" / "77_0_result.pkl"
    result.write_bytes(pickle.dumps(("error", "Traceback ...\nRuntimeError: worker exited 1")))
    verdict = watch_until_verdict(child_of(study, [FORGOTTEN], clock), study, clock, 30)
    assert verdict is not None and verdict.attempt_class is AttemptClass.FAILED
    assert "submitit's result says: RuntimeError: worker exited 1; exit status 1" in verdict.reason
    # A pickle naming a class is not loaded (the parent never imports a job's code).
    result.write_bytes(pickle.dumps(("success", Path("x"))))
    clock = Clock()
    verdict = watch_until_verdict(child_of(study, [FORGOTTEN], clock), study, clock, 200)
    assert verdict is not None and verdict.attempt_class is AttemptClass.INTERRUPTED


def test_a_forgotten_job_without_files_is_interrupted_after_the_bound(study):
    clock = Clock()
    child = child_of(study, ["RUNNING", FORGOTTEN], clock)
    verdict = watch_until_verdict(child, study, clock, 10 * FORGOTTEN_AFTER_S)
    assert verdict is not None and verdict.attempt_class is AttemptClass.INTERRUPTED
    assert "left no metrics.json, error.json or result" in verdict.reason
    # Not before the bound, and the hang clock (5 s here) was held meanwhile.
    assert FORGOTTEN_AFTER_S <= clock.now - 1000.0 <= FORGOTTEN_AFTER_S + 2 * 3.0 + 2.5


def test_a_job_forgotten_for_a_moment_is_not_settled(study):
    """A flicker of "invalid job id" restarts the wait; a job that runs again is
    watched as before (its heartbeat decides about hangs)."""
    clock = Clock()
    answers = [FORGOTTEN] * 5 + ["RUNNING"] + [FORGOTTEN] * 30
    child = child_of(study, answers, clock)
    first_forgotten_again = None
    for _ in range(60):
        assert child.poll() is None or first_forgotten_again is not None
        if child.state() == "RUNNING":
            first_forgotten_again = clock.now + 3.0
        if child.poll() is not None:
            break
        clock.now += 3.0
    assert first_forgotten_again is not None
    assert clock.now - first_forgotten_again >= FORGOTTEN_AFTER_S - 3.0


def test_an_unreachable_controller_is_waited_for_not_settled(study):
    clock = Clock()
    child = child_of(study, [UNREACHABLE], clock)
    for _ in range(100):
        assert child.poll() is None and child.queued()
        clock.now += 10.0
