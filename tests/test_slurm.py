"""executor: slurm against a real one-node Slurm (scripts/slurm_local.sh).

The subject is the parent's handling of Slurm jobs (submission, states,
reattaching, forgotten jobs), so each job runs the stdlib-only fake worker
(tests/fake_worker.py) through the real SlurmLauncher: a job costs Slurm's own
start, not a torch import. A Lightning run on Slurm (DDP) is in test_ddp.py.

Skipped on a machine where Slurm is not up, except in CI, where .ci/run starts
it and a missing Slurm must fail loudly."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from orchestrator.launchers.slurm import FORGOTTEN, query_state, slurm_verdict
from orchestrator.state import AttemptClass
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import read_state, wait_for, xorch

pytestmark = [pytest.mark.slurm]  # skipped without a local Slurm (tests/conftest.py)

SLURM = {"executor": "slurm", "slurm": {"cpus_per_task": 1, "time_min": 10, "max_concurrent": 2}}


def job_ids(out) -> list[str]:
    return [a["job_id"] for r in read_state(out)["runs"] for a in r["attempts"]]


def in_queue(job_id: str) -> bool:
    return query_state(job_id)[0] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")


def test_verdicts_map_onto_failure_classes():
    assert slurm_verdict("OUT_OF_MEMORY") == (AttemptClass.OOM_KILLED, "Slurm: OUT_OF_MEMORY")
    assert slurm_verdict("TIMEOUT")[0] is AttemptClass.TIMEOUT
    for state in ("PREEMPTED", "NODE_FAIL", "CANCELLED", "CANCELLED by 0"):
        assert slurm_verdict(state)[0] is AttemptClass.INTERRUPTED
    assert slurm_verdict("FAILED") is None  # error.json says why
    assert slurm_verdict("COMPLETED") is None  # metrics.json decides


def test_a_study_through_slurm_looks_like_a_local_one(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(out, seeds=(42, 101, 28), **SLURM)
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    ids = job_ids(out)
    assert len(ids) == 3 and len(set(ids)) == 3 and all(ids)
    for record in state["runs"]:
        assert (out / record["dir"] / "metrics.json").is_file()
        assert record["metrics"]["val/loss"] == record["seed"] + 0.5  # the job's own numbers
    rows = (out / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "mean", "std"]

    # Issue 21: a run chosen again is a new job; its old folder is kept aside.
    rerun = fake_xorch("rerun", str(out), "1", cwd=workdir)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (out / "run_01_seed101.old-1" / "metrics.json").is_file()
    resumed = fake_xorch("launch", str(workdir / "study.yaml"), "--resume", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    attempts = read_state(out)["runs"][1]["attempts"]
    assert [a["outcome"] for a in attempts] == ["completed", "completed"]
    assert attempts[1]["job_id"] not in ids and len(job_ids(out)) == 4
    rows = (out / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "mean", "std"]


def test_a_failed_job_is_classified_from_its_error_file(workdir, write_config):
    acts = {"1": {"*": {"do": "raise", "message": "boom on purpose"}}}
    config = fake_study_config(workdir / "out", seeds=(1,), acts=acts, max_retries=0, **SLURM)
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 1
    (attempt,) = read_state(workdir / "out")["runs"][0]["attempts"]
    assert attempt["outcome"] == "failed" and "boom on purpose" in attempt["reason"]


def test_sigkill_of_the_parent_then_resume_reattaches_without_resubmitting(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(out, seeds=(1, 2, 3), steps=60, **SLURM)
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(
            lambda: (
                (out / "runner_state.json").exists() and len([j for j in job_ids(out) if j]) == 2
            ),
            what="two jobs submitted",
        )
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    submitted = job_ids(out)
    assert any(in_queue(j) for j in submitted)  # the jobs outlive the parent
    result = fake_xorch("launch", str(path), "--resume", cwd=workdir, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "watching job" in result.stdout
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    ids = job_ids(out)
    assert ids[:2] == submitted[:2] and len(ids) == 3  # nothing submitted twice
    jobs = [p for p in (out / "slurm_jobs").iterdir() if not p.name.startswith(".")]
    assert len(jobs) == 3


def test_scancel_of_a_running_job_is_interrupted_and_retried(workdir, write_config):
    out = workdir / "out"
    # The first attempt beats until it is cancelled; the retry completes.
    acts = {"7": {"1": {"do": "slow"}}}
    config = fake_study_config(out, seeds=(7,), acts=acts, max_retries=1, **SLURM)
    parent = fake_xorch_popen("launch", str(write_config(config)), cwd=workdir)
    try:
        wait_for(lambda: (out / "run_00_seed7" / "heartbeat.json").exists(), what="the job to run")
        (first_job,) = job_ids(out)
        subprocess.run(["scancel", first_job], check=True)
        stdout, _ = parent.communicate(timeout=300)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, stdout
    first, second = read_state(out)["runs"][0]["attempts"]
    assert first["outcome"] == "interrupted" and "CANCELLED" in first["reason"]
    assert second["outcome"] == "completed" and second["job_id"] != first_job


def test_a_stopped_parent_leaves_jobs_running_and_resume_collects_them(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(out, seeds=(4, 5), steps=40, **SLURM)
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(
            lambda: (
                (out / "runner_state.json").exists() and len([j for j in job_ids(out) if j]) == 2
            ),
            what="two jobs submitted",
        )
        parent.send_signal(signal.SIGTERM)
        stdout, _ = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 143
    assert "leaving 2 job(s) running" in stdout
    assert all(r["status"] == "running" for r in read_state(out)["runs"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(in_queue(j) for j in job_ids(out)):
        time.sleep(1)  # let them finish while nobody watches
    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed", "completed"]
    assert all(len(r["attempts"]) == 1 for r in state["runs"])


def test_a_job_past_its_time_limit_is_classified_timeout(workdir, write_config):
    """With requeue off, the time-limit signal ends the job; xorch reads why from
    submitit's log (the job itself ends FAILED, not TIMEOUT)."""
    out = workdir / "out"
    config = fake_study_config(
        out,
        seeds=(1,),
        acts={"1": {"*": {"do": "slow"}}},
        max_retries=0,
        hang_timeout=None,
        executor="slurm",
        slurm={"cpus_per_task": 1, "time_min": 1, "requeue": False},
    )
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir, timeout=400)
    assert result.returncode == 1, result.stdout + result.stderr
    (attempt,) = read_state(out)["runs"][0]["attempts"]
    assert attempt["outcome"] == "timeout" and "time limit" in attempt["reason"]


def min_job_age() -> int | None:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.split("=")[0].strip() == "MinJobAge":
            digits = "".join(ch for ch in line.split("=", 1)[1] if ch.isdigit())
            return int(digits) if digits else None
    return None


def test_jobs_slurm_has_forgotten_are_settled_from_their_files(workdir, write_config):
    """Without accounting, a finished job vanishes from scontrol and squeue after
    MinJobAge. A resume must not wait on such a job forever: it settles each one
    from the files the job left (here metrics.json and error.json) and says so."""
    age = min_job_age()
    if age is None or age > 30:
        pytest.skip(
            f"MinJobAge is {age}: start Slurm with XORCH_SLURM_MIN_JOB_AGE=2 "
            "bash scripts/slurm_local.sh"
        )
    out = workdir / "out"
    acts = {"2": {"*": {"do": "raise", "message": "boom on purpose"}}}
    config = fake_study_config(out, seeds=(1, 2), acts=acts, max_retries=0, **SLURM)
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(
            lambda: (
                (out / "runner_state.json").exists() and len([j for j in job_ids(out) if j]) == 2
            ),
            what="two jobs submitted",
        )
        parent.send_signal(signal.SIGTERM)  # the jobs stay; the parent goes
        parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    ids = job_ids(out)
    # slurmctld purges finished jobs about once a minute once MinJobAge has passed.

    def forgotten() -> bool:
        time.sleep(2)  # each check runs scontrol and squeue: not in a tight loop
        return all(query_state(j)[0] == FORGOTTEN for j in ids)

    wait_for(forgotten, timeout=300, what="Slurm to forget both jobs")
    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr  # seed 2 failed on purpose
    first, second = (r["attempts"] for r in read_state(out)["runs"])
    assert [a["job_id"] for a in (*first, *second)] == ids  # nothing submitted again
    assert first[0]["outcome"] == "completed"
    assert first[0]["reason"] == (
        f"Slurm no longer knows job {ids[0]} (MinJobAge passed); settled from metrics.json"
    )
    assert second[0]["outcome"] == "failed"
    assert second[0]["reason"].startswith(
        f"Slurm no longer knows job {ids[1]} (MinJobAge passed); settled from error.json"
    )
    assert "boom on purpose" in second[0]["reason"]


# A program of the user's own (no torch): tells what it was given, then ends
# its seed's way: 1 writes metrics.json, 2 raises, 3 goes silent (a hang).
COMMAND_SCRIPT = """\
import json, os, sys, time
seed, out = int(sys.argv[1]), sys.argv[2]
seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "job": os.environ.get("SLURM_JOB_ID"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("XORCH_")}}
with open(os.path.join(out, "seen.json"), "w") as handle:
    json.dump(seen, handle)
if seed == 2:
    raise RuntimeError("broken on purpose")
if seed == 3:
    time.sleep(600)
with open(os.path.join(out, "metrics.json"), "w") as handle:
    json.dump({"score": seed * 10.0}, handle)
"""


def test_a_command_study_runs_its_program_as_slurm_jobs(workdir, write_config):
    (workdir / "train.py").write_text(COMMAND_SCRIPT)
    out = workdir / "out"
    config = {
        "mode": "run-experiments",
        "experiments_runner": {
            "output_base_dir": str(out),
            "seeds": [1, 2, 3],
            "summary_metrics": ["score"],
            "max_retries": 0,
            "hang_timeout": 15,
            "grace_period": 2,
            **SLURM,
        },
        "command": ["python", "train.py", "{seed}", "{run_dir}"],
    }
    path = write_config(config)
    checked = xorch("validate", str(path), cwd=workdir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "launcher: submitit (sbatch, command)" in checked.stdout
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    runs = {r["seed"]: r for r in read_state(out)["runs"]}
    assert [runs[s]["status"] for s in (1, 2, 3)] == ["completed", "failed", "failed"]
    assert runs[1]["metrics"] == {"score": 10.0}
    assert runs[2]["failure"] == "failed"
    assert "RuntimeError: broken on purpose" in runs[2]["attempts"][0]["reason"]
    assert runs[3]["failure"] == "hang"
    for seed, record in runs.items():
        (attempt,) = record["attempts"]
        seen = json.loads((out / record["dir"] / "seen.json").read_text())
        # The job ran the command wrapper: placeholders, XORCH_* and the folder
        # are those of a local command run, inside the job xorch recorded.
        assert seen["job"] == attempt["job_id"]
        assert seen["argv"] == [str(seed), str(out / record["dir"])]
        assert seen["cwd"] == str(workdir)
        assert seen["env"]["XORCH_SEED"] == str(seed)
        assert seen["env"]["XORCH_RUN_DIR"] == str(out / record["dir"])
        assert seen["env"]["XORCH_ATTEMPT"] == "1"
    rows = (out / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "mean", "std"]
