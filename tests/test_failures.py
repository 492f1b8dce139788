"""Every failure class with a real child, retries, the failure policy, and runs
left behind by a dead parent."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.state import Attempt, RunRecord, StudyState
from orchestrator.state_store import load_state, save_state
from tests.fake_worker import PROGRESS_FILE, WAITING_FILE
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import ROOT, by_seed, faulty_config, read_state, xorch


def test_each_failure_class_is_recorded_and_the_rest_of_the_study_completes(workdir, write_config):
    acts = {
        "1": {"*": {"do": "raise", "message": "boom on purpose (seed 1)"}},
        "2": {"*": {"do": "sigkill"}},
        "3": {"*": {"do": "segfault"}},
        "4": {"*": {"do": "hang", "at_step": 1}},
        "5": {"*": {"do": "exit", "code": 0}},
        "6": {"*": {"do": "memory_error"}},
        "8": {"*": {"do": "cuda_oom"}},
    }
    config = fake_study_config(
        workdir / "out",
        seeds=(1, 2, 3, 4, 5, 6, 7, 8),
        steps=2,
        acts=acts,
        max_retries=0,
        hang_timeout=1,
        grace_period=1,
        max_parallel=2,
    )
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    runs = by_seed(workdir / "out")
    expected = {
        1: "failed",
        2: "killed",
        3: "signal",
        4: "hang",
        5: "no_metrics",
        6: "oom_killed",
        8: "cuda_oom",
    }
    for seed, outcome in expected.items():
        record = runs[seed]
        assert record["status"] == "failed", (seed, record)
        assert record["failure"] == outcome, (seed, record)
        (attempt,) = record["attempts"]  # max_retries 0
        assert attempt["outcome"] == outcome and attempt["log"].endswith("train.log")
        assert attempt["started_at"] and attempt["ended_at"]
    assert "RuntimeError: boom on purpose (seed 1)" in runs[1]["attempts"][0]["reason"]
    assert runs[2]["attempts"][0]["signal"] == "SIGKILL"
    # A SIGKILL with no sign of memory pressure is not called an OOM kill.
    assert runs[2]["attempts"][0]["reason"] == (
        "SIGKILL from outside xorch; no sign of memory pressure"
    )
    assert runs[3]["attempts"][0]["signal"] == "SIGSEGV"
    assert "killed by SIGSEGV" in runs[3]["attempts"][0]["reason"]
    assert "no heartbeat" in runs[4]["attempts"][0]["reason"]
    beat = json.loads((workdir / "out" / "run_03_seed4" / "heartbeat.json").read_text())
    # The last beat came at the step before the one that hangs.
    assert beat["phase"] == "train" and beat["global_step"] == 1
    assert "out of host memory" in runs[6]["attempts"][0]["reason"]
    assert runs[7]["status"] == "completed"
    # summary.csv holds the completed run only, and mean/std over it alone.
    lines = (workdir / "out" / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["6", "mean", "std"]
    row = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert row["val/loss"].startswith("7.5")  # val/loss = seed + 0.5
    # The closing table names every run that did not complete, with its class.
    table = result.stdout[result.stdout.index("runs did not complete") :]
    for outcome in expected.values():
        assert outcome in table
    # No child outlived its attempt (the hung one was stopped with its group).
    for record in runs.values():
        pid = record["attempts"][-1]["pid"]
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_run_timeout_stops_a_run_that_beats_but_never_ends(workdir, write_config):
    acts = {"1": {"*": {"do": "slow"}}}
    config = fake_study_config(
        workdir / "out", seeds=(1,), acts=acts, max_retries=0, run_timeout=1, grace_period=1
    )
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    (attempt,) = by_seed(workdir / "out")[1]["attempts"]
    assert attempt["outcome"] == "timeout"
    assert "run_timeout (1 s)" in attempt["reason"]
    assert attempt["duration_s"] < 10


@pytest.mark.lightning
def test_a_retried_run_continues_from_its_checkpoint_with_identical_metrics(workdir, write_config):
    config = faulty_config(workdir, {11: "raise_once"}, seeds=[11], max_retries=1)
    config["model"]["init_args"]["at_epoch"] = 2
    config["pl_trainer"]["max_epochs"] = 4
    result = xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    record = by_seed(workdir / "out")[11]
    first, second = record["attempts"]
    assert first["outcome"] == "failed" and second["outcome"] == "completed"
    assert second["resumed_from"] == "run_00_seed11/last.ckpt"
    assert (workdir / "out" / "run_00_seed11" / "error.attempt-1.json").is_file()
    assert "retrying (attempt 2 of 2)" in result.stdout

    # The same seed without the fault, never interrupted: the very same metrics.
    reference = faulty_config(workdir, {}, seeds=[11])
    reference["experiments_runner"]["output_base_dir"] = str(workdir / "reference")
    reference["model"]["init_args"]["at_epoch"] = 2
    reference["pl_trainer"]["max_epochs"] = 4
    assert xorch("launch", str(write_config(reference, "ref.yaml")), cwd=workdir).returncode == 0
    assert record["metrics"] == read_state(workdir / "reference")["runs"][0]["metrics"]


def test_on_failure_stop_ends_the_study_after_a_run_fails_for_good(workdir, write_config):
    acts = {"1": {"*": {"do": "raise"}}}
    config = fake_study_config(
        workdir / "out", seeds=(1, 2), acts=acts, max_retries=0, on_failure="stop"
    )
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 1
    runs = by_seed(workdir / "out")
    assert runs[1]["status"] == "failed" and runs[2]["status"] == "pending"
    assert "on_failure is stop" in result.stdout
    assert "not started" in result.stdout


def test_resume_stops_a_child_that_outlived_its_parent(workdir, write_config):
    """A state left 'running' by a dead parent whose child survived: the child's
    whole process group is stopped before the run is tried again."""
    out = workdir / "out"
    config = fake_study_config(out, seeds=(5,))
    path = write_config(config)
    from orchestrator.config import load_study

    spec = load_study(path)
    survivor = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    try:
        process = psutil.Process(survivor.pid)
        paths = StudyPaths(out)
        out.mkdir()
        state = StudyState(
            config_fingerprint=spec.fingerprint,
            training_config=dict(spec.training),
            seeds=(5,),
            runs=(RunRecord(index=0, seed=5, dir="run_00_seed5"),),
        )
        state = state.start_attempt(
            0,
            Attempt(
                number=1,
                started_at="t",
                log="x",
                pid=survivor.pid,
                pid_create_time=process.create_time(),
            ),
        )
        save_state(paths, state)
        result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
        assert result.returncode == 0, result.stdout + result.stderr
        assert survivor.wait(timeout=10) == -signal.SIGTERM
        assert f"stopping its child {survivor.pid}" in result.stdout
        record = load_state(paths).runs[0]  # type: ignore[union-attr]
        assert [a.attempt_class.value for a in record.attempts] == ["interrupted", "completed"]
    finally:
        if survivor.poll() is None:
            survivor.kill()


def test_a_reused_pid_is_not_taken_for_our_child(tmp_path):
    from orchestrator.liveness import still_running

    me = psutil.Process()
    assert still_running(me.pid, me.create_time(), host=__import__("socket").gethostname())
    assert not still_running(me.pid, me.create_time() - 100, host=me.name())
    assert not still_running(
        me.pid, me.create_time() - 100, host=__import__("socket").gethostname()
    )


def test_a_truncated_checkpoint_means_starting_over_not_a_crash(tmp_path):
    run = RunPaths(tmp_path)
    import torch

    from worker.checkpoints import usable_checkpoint

    torch.save({"state_dict": {"w": torch.ones(1000)}, "epoch": 3}, run.last_checkpoint)
    assert usable_checkpoint(run.last_checkpoint) == str(run.last_checkpoint)
    data = run.last_checkpoint.read_bytes()
    run.last_checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="starting this run from scratch"):
        assert usable_checkpoint(run.last_checkpoint) is None
    assert not run.last_checkpoint.exists()
    assert (tmp_path / "last.ckpt.damaged-1").read_bytes() == data[: len(data) // 2]


def test_a_second_ctrl_c_does_not_wait_for_the_grace_period(workdir, write_config):
    from tests.helpers import running_attempt, wait_for

    out = workdir / "out"
    acts = {"1": {"*": {"do": "ignore_sigterm"}}}
    config = fake_study_config(out, seeds=(1,), acts=acts, grace_period=120)
    parent = fake_xorch_popen("launch", str(write_config(config)), cwd=workdir)
    try:
        run = out / "run_00_seed1"
        wait_for(lambda: (run / WAITING_FILE).exists(), what="the stubborn child")
        child = running_attempt(out, 0)["pid"]
        parent.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert parent.poll() is None  # waiting out the grace period for the child
        parent.send_signal(signal.SIGINT)
        stdout, _ = parent.communicate(timeout=20)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130, stdout
    record = read_state(out)["runs"][0]
    assert record["status"] == "interrupted"
    assert record["attempts"][-1]["signal"] == "SIGKILL"
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_a_failed_state_write_stops_the_study_and_keeps_the_last_state(
    workdir, write_config, monkeypatch
):
    import errno

    import orchestrator.state_store as state_module
    from orchestrator.config import load_study
    from orchestrator.console import Reporter
    from orchestrator.errors import StateWriteError
    from orchestrator.launchers.local import LocalLauncher
    from orchestrator.study import launch_spec

    out = workdir / "out"
    path = write_config(fake_study_config(out, seeds=(1, 2)))
    real_write = state_module.atomic_write_chunks
    calls = {"n": 0}

    def write(target, chunks, keep_previous_as=None):
        calls["n"] += 1
        # The new state, the start of run 0, then the end of run 0 (saved with the
        # start of run 1: one save per scheduler pass): the disk stays full from there.
        if calls["n"] >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(target, chunks, keep_previous_as=keep_previous_as)

    monkeypatch.setattr(state_module, "atomic_write_chunks", write)
    with (
        open(workdir / "log.txt", "w") as log,
        pytest.raises(StateWriteError, match=r"No space left on device.*previous state is intact"),
    ):
        launcher = LocalLauncher(entry="tests.fake_worker")
        launch_spec(load_study(path), reporter=Reporter(stream=log), launcher=launcher)
    state = load_state(StudyPaths(out))
    assert state is not None and state.runs[0].status.value == "running"
    assert state.runs[1].status.value == "pending"  # it did not train on without a record


def test_a_kill_9_from_outside_is_killed_not_oom_and_the_run_is_retried(workdir, write_config):
    """A colleague's ``kill -9`` of a training child: no memory pressure, so the
    attempt is ``killed`` (not ``oom_killed``), and the retry resumes the run."""
    from tests.helpers import running_attempt, wait_for

    out = workdir / "out"
    acts = {"3": {"1": {"do": "hang", "at_step": 1}}}
    config = fake_study_config(out, seeds=(3,), steps=3, acts=acts, max_retries=1)
    parent = fake_xorch_popen("launch", str(write_config(config)), cwd=workdir)
    try:
        wait_for(lambda: (out / "run_00_seed3" / WAITING_FILE).exists(), what="the waiting child")
        attempt = running_attempt(out, 0)
        assert attempt is not None
        psutil.Process(attempt["pid"]).send_signal(signal.SIGKILL)
        stdout, stderr = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, stdout + stderr
    record = read_state(out)["runs"][0]
    first, second = record["attempts"]
    assert (first["outcome"], first["signal"]) == ("killed", "SIGKILL")
    assert first["reason"] == "SIGKILL from outside xorch; no sign of memory pressure"
    assert second["outcome"] == "completed" and record["status"] == "completed"
    assert second["resumed_from"] and second["resumed_from"].endswith(PROGRESS_FILE)
    metrics = json.loads((out / "run_00_seed3" / "metrics.json").read_text())
    assert metrics["metrics"]["steps_done"] == 2  # only the missing steps were trained
    assert "killed after" in stdout and "retrying (attempt 2 of 2)" in stdout


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[Path]:
    """A new memory cgroup (v1 or v2) limited to ``limit_bytes``, removed after
    the test; the test is skipped, saying why, where none can be made."""
    from orchestrator.oom import cgroup_mounts, memory_cgroup_folders

    name = f"xorch-oom-test-{os.getpid()}"
    candidates = [folder / name for folder in memory_cgroup_folders(os.getpid())]
    v2 = cgroup_mounts()[1]
    if v2 is not None:
        candidates.append(v2 / name)  # the root may hand memory down where we cannot
    tried = []
    for folder in candidates:
        try:
            folder.mkdir()
        except OSError as exc:
            tried.append(f"mkdir {folder}: {exc.strerror}")
            continue
        limit = next(
            (folder / n for n in ("memory.max", "memory.limit_in_bytes") if (folder / n).exists()),
            None,
        )
        try:
            if limit is None:
                raise OSError(
                    0,
                    f"no memory controller (enable +memory in "
                    f"{folder.parent}/cgroup.subtree_control)",
                )
            limit.write_text(str(limit_bytes))
        except OSError as exc:
            tried.append(f"{folder}: {exc.strerror}")
            folder.rmdir()
            continue
        try:
            yield folder
        finally:
            for _ in range(50):  # the killed child's charges take a moment to go
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        return
    pytest.skip(
        "cannot make a memory-limited cgroup here (needs root and a writable "
        "cgroup v1 memory or v2 hierarchy): " + "; ".join(tried or ["no cgroup found"])
    )


@pytest.mark.lightning
def test_a_real_kernel_oom_kill_is_oom_killed_with_the_cgroups_evidence(workdir, write_config):
    """The whole of xorch runs in a memory cgroup of 1 GiB. Seed 4's training
    process grows until the kernel's OOM killer SIGKILLs it; seed 5's DataLoader
    worker does, and the training process raises. Both verdicts cite the
    cgroup's oom_kill counter, which rose during that attempt."""
    config = faulty_config(workdir, {4: "hog"}, seeds=[4, 5], max_retries=0, hang_timeout=None)
    config["data"]["class_path"] = "faulty.HoggingWorkerData"
    config["data"]["init_args"]["hog_seed"] = 5
    path = write_config(config)
    with memory_cgroup(2**30) as folder:
        procs = folder / "cgroup.procs"
        command = (
            f"echo $$ > {shlex.quote(str(procs))} && exec {shlex.quote(sys.executable)} "
            f"-m orchestrator launch {shlex.quote(str(path))}"
        )
        result = subprocess.run(
            ["sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=400
        )
    assert result.returncode == 1, result.stdout + result.stderr
    runs = by_seed(workdir / "out")
    (attempt,) = runs[4]["attempts"]
    assert (attempt["outcome"], attempt["signal"]) == ("oom_killed", "SIGKILL"), attempt
    assert attempt["reason"].startswith("killed by the kernel's OOM killer")
    assert f"memory cgroup {folder}" in attempt["reason"]
    assert "oom_kill 0 -> 1 during this attempt" in attempt["reason"]
    (worker,) = runs[5]["attempts"]
    assert (worker["outcome"], worker["exit_code"]) == ("oom_killed", 1), worker
    assert worker["reason"].startswith("a DataLoader worker was killed by the kernel's OOM killer")
    assert "oom_kill 1 -> 2 during this attempt" in worker["reason"]


def test_a_sigkill_is_oom_killed_only_with_evidence(tmp_path, monkeypatch):
    """The three kinds of evidence, each alone, against a plain kill -9."""
    import orchestrator.oom as oom
    from orchestrator.supervise import classify_exit
    from orchestrator.verdict import Watched

    run = RunPaths(tmp_path)
    monkeypatch.setattr(oom, "_kernel_oom_victims", lambda baseline: None)  # unreadable
    plain = classify_exit(-signal.SIGKILL, run, Watched(peak_rss=50 * 2**20))
    assert plain.attempt_class.value == "killed"
    assert plain.reason == "SIGKILL from outside xorch; no sign of memory pressure"

    # A counter file shaped like cgroup v2's memory.events, rising during the attempt.
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    baseline = oom.MemoryBaseline((oom.CgroupCounter(tmp_path, events, 1),), None, 0.0)
    assert (
        classify_exit(-signal.SIGKILL, run, Watched(memory=baseline)).attempt_class.value
        == "killed"
    )
    events.write_text("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n")
    counted = classify_exit(-signal.SIGKILL, run, Watched(memory=baseline))
    assert counted.attempt_class.value == "oom_killed"
    assert f"memory cgroup {tmp_path}: memory.events oom_kill 1 -> 2" in counted.reason

    near = oom.MemoryBaseline((), 2**30, 0.0)
    rss = classify_exit(-signal.SIGKILL, run, Watched(peak_rss=int(0.95 * 2**30), memory=near))
    assert rss.attempt_class.value == "oom_killed"
    assert "near the 1.00 GiB memory limit" in rss.reason

    # A DataLoader worker that died: an OOM kill only if a counter rose meanwhile.
    from orchestrator.contract.records import ErrorReport

    died = "DataLoader worker (pid 999999) is killed by signal: Killed. "
    ErrorReport(type="builtins.RuntimeError", message=died).write(run.error)
    quiet = oom.MemoryBaseline((oom.CgroupCounter(tmp_path, events, 2),), None, 0.0)
    assert classify_exit(1, run, Watched(memory=quiet)).attempt_class.value == "failed"
    worker = classify_exit(1, run, Watched(memory=baseline))
    assert worker.attempt_class.value == "oom_killed"
    assert worker.reason.startswith("a DataLoader worker was killed by the kernel's OOM killer")

    monkeypatch.setattr(oom, "_kernel_oom_victims", lambda baseline: {4321})
    logged = classify_exit(-signal.SIGKILL, run, Watched(pid=4321))
    assert logged.attempt_class.value == "oom_killed"
    assert "kernel log: Killed process 4321" in logged.reason
    # A sibling run in the same cgroup was the OOM victim, this one was kill -9'd:
    # the risen counter is the sibling's, not evidence against this child.
    sibling = classify_exit(-signal.SIGKILL, run, Watched(pid=1234, memory=baseline))
    assert sibling.attempt_class.value == "killed"
