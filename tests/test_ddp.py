"""Several GPUs per run (DDP), proved on CPU: a fake nvidia-smi announces four
GPUs, and each run is Lightning's ``ddp`` strategy on two CPU processes (gloo).

The slot rules and config refusals are unit tests. The end-to-end studies are
few on purpose (CPU DDP on a loaded 2-core box is slow): two cover the GPU
pairs, a rank that SIGKILLs itself or raises (one study) and a rank that hangs
(another, run beside it under xdist), each resumed and compared with
uninterrupted runs of the same seeds; another is stopped with
SIGTERM, resumed, killed with SIGKILL and resumed again. Every one checks that
no process of any rank outlives its run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from orchestrator.commands.report_page import environment_section
from orchestrator.commands.status import render_status, study_status
from orchestrator.commands.validate import describe_plan
from orchestrator.config import load_study
from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.contract.records import RankExit
from orchestrator.errors import ConfigError
from orchestrator.gpus import Slot, gpu_groups, make_slots, parse_topology
from orchestrator.ranks import device_count, starts_ranks
from orchestrator.state import AttemptClass
from orchestrator.state_store import load_study_state
from orchestrator.supervise import classify_exit
from tests.helpers import (
    ROOT,
    TORCH_WATCH,
    faulty_config,
    read_state,
    wait_for,
    wait_gone,
    xorch,
)
from worker import ranks

RANKED = ROOT / "tests" / "fixtures" / "ranked.py"

# Four GPUs; NVLink joins 0-1 and 2-3, as on a 4-GPU box with two bridges.
FAKE_NVIDIA_SMI = """#!/bin/sh
case "$*" in
  *topo*) printf '\\tGPU0\\tGPU1\\tGPU2\\tGPU3\\tCPU Affinity\\n'
          printf 'GPU0\\t X \\tNV4\\tSYS\\tSYS\\t0-1\\nGPU1\\tNV4\\t X \\tSYS\\tSYS\\t0-1\\n'
          printf 'GPU2\\tSYS\\tSYS\\t X \\tNV4\\t0-1\\nGPU3\\tSYS\\tSYS\\tNV4\\t X \\t0-1\\n' ;;
  *memory.free*) printf '0, GPU-a, 16384\\n1, GPU-b, 16384\\n'
                 printf '2, GPU-c, 16384\\n3, GPU-d, 16384\\n' ;;
  *) printf '0\\n1\\n2\\n3\\n' ;;
esac
"""

# A DGX-like matrix: NVLink pairs 0-2 and 1-3, a NIC row and the legend.
TOPOLOGY = """\
\tGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID
GPU0\t X \tSYS\tNV12\tPHB\tPXB\t0-23\t0\t\tN/A
GPU1\tSYS\t X \tPHB\tNV12\tSYS\t24-47\t1\t\tN/A
GPU2\tNV12\tPHB\t X \tSYS\tSYS\t0-23\t0\t\tN/A
GPU3\tPHB\tNV12\tSYS\t X \tSYS\t24-47\t1\t\tN/A
NIC0\tPXB\tSYS\tSYS\tSYS\t X

Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes
  NV#  = Connection traversing a bonded set of # NVLinks
"""


def fake_gpus(workdir: Path) -> dict[str, str]:
    """The environment of a machine with four GPUs (a fake nvidia-smi first on PATH)."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def ddp_config(workdir: Path, faults: dict[int, str], seeds: list[int], **runner) -> dict:
    """A study of RankedClassifier runs, each on two CPU processes (gloo)."""
    shutil.copy(RANKED, workdir / "ranked.py")
    runner = {"gpus_per_run": 2, "hang_timeout": 90, "grace_period": 5, **runner}
    config = faulty_config(workdir, faults, seeds, **runner)
    config["model"]["class_path"] = "ranked.RankedClassifier"
    config["pl_trainer"].pop("devices")  # set from gpus_per_run
    config["pl_trainer"]["strategy"] = "ddp"
    return config


def rank_lines(run_dir: Path) -> list[dict]:
    path = run_dir / "ranks.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def every_rank_pid(out: Path) -> list[int]:
    return [line["pid"] for path in out.rglob("ranks.jsonl") for line in rank_lines(path.parent)]


def assert_no_rank_alive(out: Path) -> None:
    pids = every_rank_pid(out)
    assert pids, "no rank ever started"
    for pid in pids:
        wait_gone(pid, f"rank process {pid}")


def launch(path: Path, workdir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", TORCH_WATCH, "launch", str(path), *extra],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ------------------------------------------------------------------ slots and config


def test_slots_are_groups_of_gpus_contiguous_or_by_topology():
    four = ["0", "1", "2", "3"]
    assert make_slots(four, 1, None, gpus_per_run=2) == [Slot(0, "0,1"), Slot(1, "2,3")]
    assert make_slots(four, 1, 1, gpus_per_run=2) == [Slot(0, "0,1")]
    assert make_slots(["0", "1", "2"], 1, None, gpus_per_run=2) == [Slot(0, "0,1")]  # 2 idle
    topology = parse_topology(TOPOLOGY, four)
    assert topology is not None and topology[("0", "2")] < topology[("0", "1")]
    assert gpu_groups(four, 2, topology) == [["0", "2"], ["1", "3"]]  # the NVLink pairs
    assert make_slots(four, 1, None, 2, topology) == [Slot(0, "0,2"), Slot(1, "1,3")]
    assert gpu_groups(four, 4, topology) == [four]
    # Anything unexpected: no topology, so contiguous groups.
    assert parse_topology("NVIDIA-SMI has failed", four) is None
    assert parse_topology(TOPOLOGY.replace("NV12", "??"), four) is None
    assert parse_topology(TOPOLOGY, ["0", "7"]) is None
    assert Slot(0, "2,3").label == "gpu2,3#0"
    with pytest.raises(ConfigError, match="gpus_per_run is 4, but only 2 GPU"):
        gpu_groups(["0", "1"], 4)


@pytest.mark.lightning  # real DDP ranks
def test_devices_follow_gpus_per_run(workdir, write_config):
    config = ddp_config(workdir, {}, [1])
    spec = load_study(write_config(config))
    assert spec.training["pl_trainer"]["devices"] == 2
    assert starts_ranks(spec.training)
    config["pl_trainer"]["devices"] = [0, 1]  # agrees: two devices
    assert load_study(write_config(config)).training["pl_trainer"]["devices"] == [0, 1]
    config["pl_trainer"]["devices"] = "auto"  # the slot's count, so the launcher is sure
    assert load_study(write_config(config)).training["pl_trainer"]["devices"] == 2
    one = faulty_config(workdir, {}, [1])
    del one["pl_trainer"]["devices"]  # gpus_per_run 1: the config is left as it is
    assert "devices" not in load_study(write_config(one)).training["pl_trainer"]
    assert not starts_ranks(load_study(write_config(one)).training)
    assert [device_count(v) for v in (2, "2", [0, 1], "0,1", "auto", -1)] == [
        2,
        2,
        2,
        2,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"runs_per_gpu": 2},
            "experiments_runner.runs_per_gpu is 2 and experiments_runner.gpus_per_run is 2",
        ),
        (
            {"pl_trainer.devices": 4},
            "pl_trainer.devices is 4 but experiments_runner.gpus_per_run is 2",
        ),
        ({"gpus_per_run": 0}, "experiments_runner.gpus_per_run must be an integer >= 1"),
        (
            {"gpus_per_run": 1, "pl_trainer.devices": 2, "pl_trainer.accelerator": "gpu"},
            "pl_trainer.devices is 2 but each run gets one GPU; set "
            "experiments_runner.gpus_per_run: 2",
        ),
        ({"gpus": [0]}, "gpus_per_run is 2, but only 1 GPU(s) are usable (0)"),
        (
            {"pl_trainer.accelerator": "gpu", "gpus": "none"},
            "gpus_per_run is 2 but no GPU is visible here",
        ),
    ],
)
def test_contradictions_are_refused_in_one_line(workdir, write_config, change, message):
    config = ddp_config(workdir, {}, [1])
    for key, value in change.items():
        if key.startswith("pl_trainer."):
            config["pl_trainer"][key.split(".", 1)[1]] = value
        else:
            config["experiments_runner"][key] = value
    path = write_config(config)
    env = fake_gpus(workdir)
    for command in ("validate", "launch"):
        result = xorch(command, str(path), cwd=workdir, env=env, timeout=120)
        assert result.returncode == 2, result.stdout + result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (workdir / "out").exists()


def test_validate_shows_the_slot_plan(workdir, write_config, monkeypatch):
    env = fake_gpus(workdir)
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    lines = describe_plan(write_config(ddp_config(workdir, {}, [1, 2, 3, 4])))
    assert "executor: local, 2 runs at a time (gpu0,1#0, gpu2,3#1)" in lines
    assert "2 GPUs per run: CUDA_VISIBLE_DEVICES=0,1; CUDA_VISIBLE_DEVICES=2,3" in lines
    assert any(line.startswith("launcher: spawn, not forkserver") for line in lines)


def test_a_rank_that_ended_first_decides_the_class_and_is_named(tmp_path):
    run = RunPaths(tmp_path)
    RankExit(rank=1, pid=4321, exit_code=-signal.SIGSEGV).write(run.rank_exit)
    # Rank 0 could not raise the same signal (a handler in the way): 128 + 11.
    verdict = classify_exit(128 + signal.SIGSEGV, run)
    assert verdict.attempt_class is AttemptClass.SIGNAL
    assert verdict.reason == "rank 1 (pid 4321) ended first; killed by SIGSEGV"
    RankExit(rank=1, pid=4321, exit_code=-signal.SIGKILL).write(run.rank_exit)
    verdict = classify_exit(-signal.SIGKILL, run)
    assert verdict.attempt_class is AttemptClass.KILLED
    assert verdict.reason.startswith("rank 1 (pid 4321) ended first; ")


def test_rank0_beats_while_the_ranks_it_started_meet_and_not_after(tmp_path, monkeypatch):
    """The ranks Lightning starts import torch and build the run while rank 0
    waits for them in ``trainer.fit``: rank 0's watch beats for it until the
    process group is up, then stops, so a rank that hangs in training is seen."""
    met = threading.Event()
    monkeypatch.setattr(ranks, "_ranks_met", met.is_set)
    beats: list[float] = []
    # A rank that is starting: alive until its stdin closes, then exits 0.
    rank1 = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        watch = ranks.RankWatch([rank1], tmp_path / "rank_exit.json", beat=lambda: beats.append(1))
        wait_for(lambda: len(beats) >= 3, timeout=30, what="beats while rank 1 starts")
        met.set()
        wait_for(lambda: watch.beat is None, timeout=30, what="the watch to see the ranks met")
        after = len(beats)
        time.sleep(5 * ranks.WATCH_EVERY_S)
        assert len(beats) == after  # from the meeting on, only training hooks beat
    finally:
        assert rank1.stdin is not None
        rank1.stdin.close()
        rank1.wait(timeout=30)
    assert not (tmp_path / "rank_exit.json").exists()


# ------------------------------------------------------------------ end to end


def pairs_study(workdir: Path, write_config, faults: dict[int, str]) -> tuple[Path, dict]:
    """Each seed of ``faults`` runs twice: the "faulty" variant, where rank 1
    misbehaves in epoch 1 once, and the "clean" one that runs uninterrupted. Runs
    of two GPUs on four GPUs: two at a time. The checks every such study passes;
    then its output folder and its runs by (variant, seed)."""
    out = workdir / "out"
    env = fake_gpus(workdir)
    seeds = sorted(faults)
    # Rank 0 beats while rank 1 starts up (worker.ranks.RankWatch), so hang_timeout
    # covers only quiet stretches of training, not another process's imports.
    config = ddp_config(workdir, faults, seeds, hang_timeout=20)
    config["model"]["init_args"]["at_epoch"] = 1
    config["experiments_runner"]["variants"] = {
        "faulty": {},
        "clean": {"model.init_args.faults": {}},
    }
    parent = launch(write_config(config), workdir, env)
    stdout, stderr = parent.communicate(timeout=600)
    assert parent.returncode == 0, stdout + stderr
    assert "PARENT-IMPORTED False False" in stderr  # the parent stayed torch-free
    assert "launcher: spawn, not forkserver" in stdout
    assert "2 runs at a time on slots: gpu0,1#0, gpu2,3#1" in stdout
    assert_no_rank_alive(out)

    state = read_state(out)
    runs = {(r["variant"], r["seed"]): r for r in state["runs"]}
    assert set(runs) == {(v, s) for v in ("faulty", "clean") for s in seeds}
    pairs = {"0,1", "2,3"}
    for record in runs.values():
        lines = rank_lines(out / record["dir"])
        # Every attempt had both ranks on the slot's pair, with one port per attempt.
        for attempt in record["attempts"]:
            assert attempt["gpu"] in pairs and attempt["slot"] == f"gpu{attempt['gpu']}#" + (
                "0" if attempt["gpu"] == "0,1" else "1"
            )
        assert {line["rank"] for line in lines} == {0, 1}
        assert {line["cuda_visible_devices"] for line in lines} <= pairs
        assert len(lines) == 2 * len(record["attempts"])
        assert record["status"] == "completed", record
        # Only rank 0 wrote metrics.json, the heartbeat and last.ckpt.
        beat = json.loads((out / record["dir"] / "heartbeat.json").read_text())
        assert beat["pid"] == [x["pid"] for x in lines if x["rank"] == 0][-1]
    ports = [{x["master_port"] for x in rank_lines(out / r["dir"])} for r in runs.values()]
    assert all(len(p) == len(r["attempts"]) for p, r in zip(ports, runs.values(), strict=True))

    for seed in seeds:  # resumed from last.ckpt: the numbers of an uninterrupted run
        assert runs[("faulty", seed)]["attempts"][-1]["resumed_from"].endswith("last.ckpt")
        assert runs[("faulty", seed)]["metrics"] == runs[("clean", seed)]["metrics"]
        assert runs[("clean", seed)]["metrics"]["val/loss"] > 0
    return out, runs


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.lightning  # real DDP ranks
def test_ddp_pairs_a_rank_kill_and_a_rank_error_then_resume(workdir, write_config):
    """Rank 1 SIGKILLs itself (seed 2) or raises (seed 4) in epoch 1 once; the
    run is retried from last.ckpt and ends as the uninterrupted run does."""
    out, runs = pairs_study(workdir, write_config, {2: "sigkill_once", 4: "raise_once"})

    killed = runs[("faulty", 2)]["attempts"]
    assert [a["outcome"] for a in killed] == ["killed", "completed"], killed
    rank1 = next(x for x in rank_lines(out / runs[("faulty", 2)]["dir"]) if x["rank"] == 1)
    assert killed[0]["reason"].startswith(f"rank 1 (pid {rank1['pid']}) ended first"), killed
    assert killed[0]["signal"] == "SIGKILL"

    raised = runs[("faulty", 4)]["attempts"]
    assert [a["outcome"] for a in raised] == ["failed", "completed"], raised
    # The rank that raised is named; rank 0's own error (the closed connection) came later.
    assert raised[0]["reason"] == "RuntimeError: rank 1: boom on purpose (seed 4)", raised

    # xorch status and the report name each run's GPUs.
    status = study_status(out)
    assert {row.gpus for row in status.rows} == {"0,1", "2,3"}
    header = next(line for line in render_status(status).splitlines() if line.startswith("run"))
    assert header.split()[1] == "variant" and header.split()[-1] == "gpus"
    environment = environment_section(load_study_state(StudyPaths(out)))
    assert "0,1 (runs " in environment and "2,3 (runs " in environment


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.lightning  # real DDP ranks
def test_ddp_a_rank_that_hangs_is_named_stopped_and_resumed(workdir, write_config):
    """Rank 1 hangs in epoch 1 once (seed 3): rank 0 waits for it at the next
    collective, its heartbeat stops, and the run is a hang that names rank 1;
    the retry resumes from last.ckpt and ends as the uninterrupted run does.
    A separate study from the kill and the error, so that xdist runs the two
    side by side."""
    out, runs = pairs_study(workdir, write_config, {3: "hang_once"})

    hung = runs[("faulty", 3)]["attempts"]
    assert [a["outcome"] for a in hung] == ["hang", "completed"], hung
    stuck = next(x for x in rank_lines(out / runs[("faulty", 3)]["dir"]) if x["rank"] == 1)
    # Two batches per rank and epoch: epoch 1's second batch begins after 3 steps.
    assert f"; rank 1 (pid {stuck['pid']}) is behind: at step 3, batch_start" in hung[0]["reason"]


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.lightning  # real DDP ranks
def test_ddp_sigterm_then_sigkill_of_the_parent_leave_no_rank_and_resume_finishes(
    workdir, write_config
):
    out = workdir / "out"
    env = fake_gpus(workdir)
    config = ddp_config(workdir, {}, [1, 2])
    config["pl_trainer"]["max_epochs"] = 40
    path = write_config(config)

    def both_training() -> bool:
        try:
            runs = read_state(out)["runs"]
        except (OSError, ValueError, KeyError):
            return False
        # Both ranks of this attempt started, and an epoch's last.ckpt is there to resume.
        return all(
            r["status"] == "running"
            and len(rank_lines(out / r["dir"])) == 2 * len(r["attempts"])
            and (out / r["dir"] / "last.ckpt").exists()
            for r in runs
        )

    for signum in (signal.SIGTERM, signal.SIGKILL):
        parent = launch(path, workdir, env, *(["--resume"] if signum == signal.SIGKILL else []))
        try:
            wait_for(both_training, timeout=300, what="both runs training on two ranks")
            pids = every_rank_pid(out)
            assert len({p for p in pids if psutil.pid_exists(p)}) >= 4
            parent.send_signal(signum)
            parent.communicate(timeout=120)
        finally:
            if parent.poll() is None:
                parent.kill()
        assert_no_rank_alive(out)
        if signum == signal.SIGTERM:
            assert parent.returncode != 0
            runs = read_state(out)["runs"]
            assert [r["attempts"][-1]["outcome"] for r in runs] == ["interrupted"] * 2, runs

    result = xorch("launch", str(path), "--resume", cwd=workdir, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = read_state(out)["runs"]
    assert [r["status"] for r in runs] == ["completed"] * 2
    assert_no_rank_alive(out)
    for record in runs:
        # A SIGKILL can land while rank 0 writes last.ckpt; the cut file is then
        # moved aside as evidence and that run starts over (worker.checkpoints).
        resumed = (record["attempts"][-1]["resumed_from"] or "").endswith("last.ckpt")
        cut = list((out / record["dir"]).glob("last.ckpt.damaged-*"))
        assert resumed or cut, record


@pytest.mark.slurm  # skipped without a local Slurm (tests/conftest.py)
def test_ddp_run_on_slurm_is_one_job_of_one_task_whose_rank0_starts_the_others(
    workdir, write_config
):
    out = workdir / "out"
    config = ddp_config(workdir, {}, [5], executor="slurm")
    config["experiments_runner"]["slurm"] = {"cpus_per_task": 2, "time_min": 10}
    result = xorch("launch", str(write_config(config)), cwd=workdir, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = read_state(out)["runs"]
    assert record["status"] == "completed" and record["attempts"][0]["job_id"]
    lines = rank_lines(out / record["dir"])
    assert sorted(line["rank"] for line in lines) == [0, 1]
    assert (out / record["dir"] / "metrics.json").is_file()
    assert_no_rank_alive(out)  # the node is this machine
    job = record["attempts"][0]["job_id"]
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True)
    if shown.returncode == 0 and "NumTasks" in shown.stdout:  # still known to the controller
        assert "NumTasks=1" in shown.stdout
