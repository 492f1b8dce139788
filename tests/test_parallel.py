"""Several runs at once: GPU slots (with fake GPU ids on this CPU machine), CPU
slots with their share of the cores, and the crash guarantees with two children
in flight. The children are fake workers (``tests.fake_worker``, whose
``probe.json`` says what each saw), but for torch's own thread count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from orchestrator.gpus import Slot, make_slots, resolve_gpus
from tests.fake_worker import WAITING_FILE
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import ROOT, faulty_config, read_state, wait_for, xorch


def probed_config(out: Path, seeds: list[int], acts=None, steps: int = 2, **runner) -> dict:
    """A fake study whose children write probe.json; ``gpus`` may be given (the
    fake study's default is ``none``)."""
    gpus = runner.pop("gpus", "none")
    config = fake_study_config(out, seeds=tuple(seeds), steps=steps, acts=acts, **runner)
    config["experiments_runner"]["gpus"] = gpus
    config["model"]["init_args"]["probe"] = True
    return config


def probes(out: Path) -> dict[int, dict]:
    found = {}
    for path in out.glob("run_*/probe.json"):
        probe = json.loads(path.read_text())
        found[probe["seed"]] = probe
    return found


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_slots_fill_each_gpu_once_before_any_gets_a_second():
    assert make_slots(["0", "1"], 2, None) == [
        Slot(0, "0"),
        Slot(1, "1"),
        Slot(2, "0"),
        Slot(3, "1"),
    ]
    assert make_slots(["0", "1"], 2, 3) == [Slot(0, "0"), Slot(1, "1"), Slot(2, "0")]
    assert make_slots([], 1, None) == [Slot(0, None)]
    assert make_slots([], 1, 4) == [Slot(i, None) for i in range(4)]
    assert resolve_gpus("auto", ["2", "3"]) == ["2", "3"]
    assert resolve_gpus((1,), ["2", "3"]) == ["3"]  # ids count within CUDA_VISIBLE_DEVICES
    assert resolve_gpus((0, 1), []) == ["0", "1"]


def thread_share(slots: int) -> int:
    """Each parallel run's share of this machine's cores (at least one), whatever
    the number of cores: the tests run on 2-core boxes and on big ones."""
    return max(1, (os.cpu_count() or 1) // slots)


def test_runs_on_fake_gpus_respect_runs_per_gpu(workdir, write_config):
    out = workdir / "out"
    config = probed_config(
        out, [1, 2, 3, 4, 5], steps=20, gpus=[0, 1], runs_per_gpu=2, max_parallel=3
    )  # 2 s a run: long enough to overlap
    result = fake_xorch("launch", str(write_config(config)), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    seen = probes(out)
    assert sorted(seen) == [1, 2, 3, 4, 5]  # every seed ran, and each exactly once
    per_gpu: dict[str, list[tuple[float, float]]] = {"0": [], "1": []}
    for record in state["runs"]:
        (attempt,) = record["attempts"]
        probe = seen[record["seed"]]
        assert probe["cuda_visible_devices"] == attempt["gpu"] in ("0", "1")
        assert attempt["slot"].startswith(f"gpu{attempt['gpu']}#")
        assert probe["omp_num_threads"] == str(thread_share(slots=3))
        assert Path(out / record["dir"]).name == f"run_{record['index']:02d}_seed{record['seed']}"
        per_gpu[probe["cuda_visible_devices"]].append((probe["started"], probe["ended"]))
    assert most_at_once(per_gpu["0"]) <= 2 and most_at_once(per_gpu["1"]) <= 2
    everything = per_gpu["0"] + per_gpu["1"]
    assert most_at_once(everything) <= 3
    assert most_at_once(everything) >= 2  # it really ran in parallel
    rows = (out / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3", "4", "mean", "std"]


@pytest.mark.lightning
def test_torch_in_a_parallel_run_uses_its_share_of_the_cores(workdir, write_config):
    """The worker gives torch the parent's OMP_NUM_THREADS (torch's own count: a
    Lightning child; the slots themselves are tested with fake workers above)."""
    out = workdir / "out"
    config = faulty_config(workdir, {}, seeds=[1, 2], gpus="none", max_parallel=2)
    config["model"]["init_args"]["probe"] = True
    config["pl_trainer"]["max_epochs"] = 1
    result = xorch("launch", str(write_config(config)), cwd=workdir, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = probes(out)
    assert sorted(seen) == [1, 2]
    share = thread_share(slots=2)
    for probe in seen.values():
        assert probe["omp_num_threads"] == str(share) and probe["torch_threads"] == share


def test_sigkill_with_two_runs_in_flight_then_resume(workdir, write_config):
    out = workdir / "out"
    config = probed_config(out, [1, 2, 3], steps=40, max_parallel=2)  # 4 s a run
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:

        def two_training() -> bool:
            try:
                runs = read_state(out)["runs"]
            except (OSError, ValueError):
                return False
            busy = [r for r in runs if r["status"] == "running"]
            return len(busy) == 2 and all((out / r["dir"] / "probe.json").exists() for r in busy)

        wait_for(two_training, what="two runs training at once")
        pids = [
            r["attempts"][-1]["pid"] for r in read_state(out)["runs"] if r["status"] == "running"
        ]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()

    def gone(pid: int) -> bool:
        return not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

    wait_for(lambda: all(gone(p) for p in pids), timeout=15, what="both children to stop")
    for probe in probes(out).values():
        assert probe["cuda_visible_devices"] == ""
        assert probe["omp_num_threads"] == str(thread_share(slots=2))

    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = read_state(out)["runs"]
    assert [r["status"] for r in runs] == ["completed"] * 3
    for record in runs:
        outcomes = [a["outcome"] for a in record["attempts"]]
        if record["attempts"][0]["pid"] in pids:
            # Killed with the parent, and run again; or it had written its
            # metrics just before, and the resume adopted them.
            assert outcomes == ["interrupted", "completed"] or (
                outcomes == ["completed"]
                and record["attempts"][0]["reason"] == "finished while the parent was away"
            ), record
        else:
            assert outcomes == ["completed"]  # started only after the resume


def _all_misbehaving(out: Path, count: int) -> Callable[[], bool]:
    """Every one of the first ``count`` runs has reached its fault (and so is
    stuck in it, recorded running)."""

    def check() -> bool:
        try:
            runs = read_state(out)["runs"]
        except (OSError, ValueError):
            return False
        return all(
            r["status"] == "running" and (out / r["dir"] / WAITING_FILE).exists()
            for r in runs[:count]
        )

    return check


@pytest.mark.parametrize(("children", "signum"), [(2, signal.SIGINT), (3, signal.SIGHUP)])
def test_a_stop_with_several_runs_in_flight_records_each_interrupted(
    workdir, write_config, children, signum
):
    # Run 0 ignores SIGTERM and waits out its grace period; the others die of
    # the SIGTERM meanwhile. Every one of them was stopped, none failed.
    out = workdir / "out"
    acts = {
        "1": {"1": {"do": "ignore_sigterm"}},
        **{str(seed): {"1": {"do": "hang"}} for seed in range(2, children + 1)},
    }
    config = fake_study_config(
        out,
        seeds=tuple(range(1, children + 2)),
        acts=acts,
        max_parallel=children,
        grace_period=2,
        hang_timeout=None,
    )
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(_all_misbehaving(out, children), timeout=240, what="every slot's run stuck")
        parent.send_signal(signum)
        stdout, _ = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 128 + signum, stdout
    runs = read_state(out)["runs"]
    assert [r["status"] for r in runs] == ["interrupted"] * children + ["pending"], stdout
    for record in runs[:children]:
        (attempt,) = record["attempts"]
        assert attempt["outcome"] == "interrupted", record
        assert attempt["reason"] == "the study was stopped"
        assert not psutil.pid_exists(attempt["pid"]) or (
            psutil.Process(attempt["pid"]).status() == psutil.STATUS_ZOMBIE
        )
    assert runs[0]["attempts"][0]["signal"] == "SIGKILL"  # it outlived its grace period

    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = read_state(out)["runs"]
    assert [r["status"] for r in runs] == ["completed"] * (children + 1)
    assert [len(r["attempts"]) for r in runs] == [2] * children + [1]


def test_under_nohup_a_hangup_does_not_stop_the_study(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(
        out,
        seeds=(1, 2),
        acts={"*": {"1": {"do": "hang"}}},
        max_parallel=2,
        grace_period=5,
        hang_timeout=None,
    )
    path = write_config(config)
    parent = subprocess.Popen(
        ["nohup", sys.executable, "-m", "tests.fake_xorch", "launch", str(path)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=fake_xorch_env(dict(os.environ)),
    )
    try:
        wait_for(_all_misbehaving(out, 2), timeout=240, what="both runs stuck")
        parent.send_signal(signal.SIGHUP)  # the terminal closed
        time.sleep(3)
        assert parent.poll() is None
        assert [r["status"] for r in read_state(out)["runs"]] == ["running", "running"]
        parent.send_signal(signal.SIGTERM)
        stdout, _ = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 143, stdout
    assert [r["status"] for r in read_state(out)["runs"]] == ["interrupted", "interrupted"]


FAKE_NVIDIA_SMI = """#!/bin/sh
# Two GPUs: GPU 0 has 1 GiB free, GPU 1 has 16 GiB. Each call is counted.
echo "$*" >> "$FAKE_SMI_CALLS"
case "$*" in
  *memory.free*) printf '0, GPU-aaaa, 1024\\n1, GPU-bbbb, 16384\\n' ;;
  *) printf '0\\n1\\n' ;;
esac
"""


def fake_xorch_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this checkout first on PYTHONPATH, for ``python -m tests.fake_xorch``
    started by hand (under nohup, or without CUDA_VISIBLE_DEVICES)."""
    paths = [str(ROOT), *filter(None, [env.get("PYTHONPATH", "")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def fake_gpu_env(workdir: Path) -> dict[str, str]:
    """PATH with a fake nvidia-smi first, and no CUDA_VISIBLE_DEVICES to trust instead."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["FAKE_SMI_CALLS"] = str(workdir / "smi-calls")
    return env


def test_gpus_auto_and_min_free_memory_with_a_fake_nvidia_smi(workdir, write_config):
    out = workdir / "out"
    env = fake_gpu_env(workdir)
    config = probed_config(out, [1, 2, 3], gpus="auto", min_free_gpu_mem_gb=4)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tests.fake_xorch", "launch", str(write_config(config))],
        cwd=workdir,
        env=fake_xorch_env(env),
        capture_output=True,
        text=True,
        timeout=400,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs at a time on slots: gpu0#0, gpu1#1" in result.stdout
    assert "GPU 0: waiting for 4 GB free memory (now 1.0 GB free)" in result.stdout
    runs = read_state(out)["runs"]
    assert [r["attempts"][0]["gpu"] for r in runs] == ["1", "1", "1"]  # GPU 0 never had room
    assert {p["cuda_visible_devices"] for p in probes(out).values()} == {"1"}
    # Asked once for the GPU list, once per start, and for the waiting GPU every
    # 10 s: not on every pass of the loop.
    calls = (workdir / "smi-calls").read_text().splitlines()
    assert len(calls) <= 1 + 2 * 3 + took / 10 + 2, calls


def test_gpus_that_are_not_there_are_refused_before_anything_is_written(workdir, write_config):
    env = fake_gpu_env(workdir)
    config = faulty_config(workdir, {}, seeds=[1], gpus=[0, 3])
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "launch", str(write_config(config))],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "experiments_runner.gpus lists GPU 3, but only 2 are visible (0, 1)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "out").exists()
