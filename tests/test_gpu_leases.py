"""Several xorch processes on one machine share its GPUs through the leases
(``orchestrator.gpu_leases``): no GPU place is ever held by two runs at once,
also after one of the processes is SIGKILLed, and ``xorch status`` says who
holds which. Real parents (``tests.fake_xorch``) and fake workers on a fake
two-GPU box (``gpus: [0, 1]``, no nvidia-smi); each child appends its start and
end, with its CUDA_VISIBLE_DEVICES, to one log that both studies share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from orchestrator.commands.status import render_status, study_status
from orchestrator.contract.lease_paths import LeasePaths
from orchestrator.gpu_leases import GpuLeases, read_leases
from orchestrator.gpus import Slot
from orchestrator.lease_gate import LeaseGate
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
from tests.helpers import ROOT, read_state, wait_for

Interval = tuple[float, float, str]  # start, end, the run folder


def lease_folder() -> LeasePaths:
    """The folder conftest gives this test (``XORCH_GPU_LEASES``), as its xorch processes see it."""
    return LeasePaths.default(os.environ)


def study(workdir: Path, name: str, seeds: tuple[int, ...], steps: int, **runner) -> Path:
    """A fake study on GPUs 0 and 1, one run per GPU, its children logging to probes.jsonl."""
    config = fake_study_config(workdir / name, seeds=seeds, steps=steps, **runner)
    config["experiments_runner"].update(gpus=[0, 1], runs_per_gpu=1)
    config["model"]["init_args"]["probe_log"] = str(workdir / "probes.jsonl")
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def events(workdir: Path) -> list[dict]:
    log = workdir / "probes.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def intervals(workdir: Path, unended: float | None = None) -> dict[str, list[Interval]]:
    """Per GPU, each attempt's (start, end, run folder); an attempt that never
    ended (its parent was killed) ends at ``unended``."""
    starts: dict[int, dict] = {}
    per_gpu: dict[str, list[Interval]] = {}
    for event in events(workdir):
        if event["event"] == "started":
            starts[event["pid"]] = event
        else:
            start = starts.pop(event["pid"])
            per_gpu.setdefault(start["gpu"], []).append(
                (start["time"], event["time"], start["run_dir"])
            )
    assert not starts or unended is not None, f"attempts that never ended: {starts}"
    for start in starts.values():
        assert unended is not None
        per_gpu.setdefault(start["gpu"], []).append((start["time"], unended, start["run_dir"]))
    return per_gpu


def alive(pid: int) -> bool:
    """Still running: a zombie waiting to be reaped runs nothing."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def most_at_once(spans: list[Interval]) -> int:
    # An end and a start at the same instant do not overlap: ends first.
    points = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    now = peak = 0
    for _, step in points:
        now += step
        peak = max(peak, now)
    return peak


def assert_no_place_shared(per_gpu: dict[str, list[Interval]]) -> None:
    assert set(per_gpu) <= {"0", "1"}, per_gpu
    for gpu, spans in per_gpu.items():
        assert most_at_once(spans) == 1, (gpu, sorted(spans))


def of_study(per_gpu: dict[str, list[Interval]], out: Path) -> list[Interval]:
    return [span for spans in per_gpu.values() for span in spans if Path(span[2]).parent == out]


MINE = f"/tmp/xorch-gpu-leases-{os.getuid()}"


@pytest.mark.parametrize(
    ("env", "folder"),
    [
        ({}, MINE),
        ({"TMPDIR": "/scratch/job7", "XDG_RUNTIME_DIR": "/run/user/7"}, MINE),
        ({"XORCH_GPU_LEASES": "/shared/leases"}, "/shared/leases"),
        ({"XORCH_GPU_LEASES": ""}, MINE),
    ],
)
def test_the_lease_folder_is_one_per_user_and_machine_unless_named(env, folder):
    assert LeasePaths.default(env).root == Path(folder)


def test_a_place_is_held_until_released_within_every_holders_runs_per_gpu(tmp_path):
    paths = LeasePaths(tmp_path / "leases")
    paths.root.mkdir()
    a, b = GpuLeases(paths, Path("/s/a"), 1), GpuLeases(paths, Path("/s/b"), 1)
    shared = GpuLeases(paths, Path("/s/shared"), 2)
    first = a.take(["0"], 0)
    assert first is not None
    assert b.take(["0"], 0) is None  # one run on GPU 0 already, one allowed
    assert shared.take(["0"], 0) is None  # it allows 2, but a's holder asked for GPU 0 alone
    on_one = b.take(["1"], 3)
    assert on_one is not None
    held = [(v.gpu, v.place, v.owner.study, v.owner.run) for v in read_leases(paths)]
    assert held == [("0", 0, "/s/a", 0), ("1", 0, "/s/b", 3)]
    first.release()
    again = shared.take(["0"], 1)
    assert again is not None and shared.take(["0"], 2) is not None  # places 0 and 1
    assert a.take(["0"], 4) is None  # two there: a's limit of 1 is passed already
    pair = b.take(["2", "3"], 5)  # a DDP run: both GPUs or none
    assert pair is not None and b.take(["3", "4"], 6) is None
    assert b.take(["4"], 7) is not None  # the refused pair took nothing on GPU 4
    assert [v.owner.run for v in read_leases(paths) if v.gpu in ("2", "3")] == [5, 5]
    mig = "MIG-GPU-5d1c/1/0"  # an id that is no file name as it is
    assert shared.take([mig], 8) is not None and shared.take([mig], 9) is not None  # places 0, 1
    assert shared.take([mig], 10) is None


def test_a_refused_slot_asks_again_on_its_timer_not_on_every_pass(tmp_path):
    paths = LeasePaths(tmp_path / "leases")
    paths.root.mkdir()
    other = GpuLeases(paths, Path("/s/other"), 1).take(["0"], 0)
    assert other is not None
    now, said = [10.0], []
    gate = LeaseGate(GpuLeases(paths, Path("/s/mine"), 1), said.append, lambda: now[0], 0.5)
    gpu, cpu = Slot(0, "0"), Slot(1, None)
    gate.new_pass()
    assert gate.take(cpu, 0)  # a CPU slot takes no lease
    assert not gate.take(gpu, 0)
    assert gate.next_check() == 10.5 and len(said) == 1 and "GPU 0" in said[0]
    other.release()
    now[0] = 10.3
    gate.new_pass()
    assert not gate.take(gpu, 0)  # free now, but not asked before its time
    assert gate.next_check() == 10.5
    gate.new_pass()
    assert gate.next_check() is None  # a pass where no slot asks keeps no timer
    now[0] = 10.5
    gate.new_pass()
    assert gate.take(gpu, 4) and gate.next_check() is None and len(said) == 1
    assert [(v.owner.study, v.owner.run) for v in read_leases(paths)] == [("/s/mine", 4)]
    gate.release_all()
    assert read_leases(paths) == []


HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.contract.lease_paths import LeasePaths
from orchestrator.gpu_leases import GpuLeases
lease = GpuLeases(LeasePaths(Path(sys.argv[1])), Path("/s/killed"), 1).take(["0"], 5)
print("held" if lease else "refused", flush=True)
time.sleep(120)
"""


def test_a_killed_holders_place_is_free_at_once(tmp_path):
    paths = LeasePaths(tmp_path / "leases")
    paths.root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(paths.root)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = GpuLeases(paths, Path("/s/mine"), 1)
        assert mine.take(["0"], 0) is None
        assert [(v.owner.study, v.owner.pid) for v in read_leases(paths)] == [
            ("/s/killed", holder.pid)
        ]
    finally:
        holder.kill()
        holder.wait()
    assert paths.place_owner("0", 0).exists()  # its record stays behind...
    assert read_leases(paths) == []  # ...disproved by its pid
    assert mine.take(["0"], 0) is not None  # the kernel dropped its flock


HOLDER_WITH_A_CHILD = """
import subprocess, sys, time
from pathlib import Path
from orchestrator.contract.lease_paths import LeasePaths
from orchestrator.gpu_leases import GpuLeases
from orchestrator.liveness import identify
lease = GpuLeases(LeasePaths(Path(sys.argv[1])), Path("/s/killed"), 1).take(["0"], 5)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
lease.note_child(child.pid, identify(child.pid)[1])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_place_stays_taken_while_the_dead_holders_child_lives(tmp_path):
    """The window between a parent's death and its child's: no other run starts there."""
    paths = LeasePaths(tmp_path / "leases")
    paths.root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_WITH_A_CHILD, str(paths.root)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdout is not None
    child = int(holder.stdout.readline())  # (it has no parent-death signal: it outlives)
    try:
        holder.kill()
        holder.wait()
        mine = GpuLeases(paths, Path("/s/mine"), 1)
        assert mine.take(["0"], 0) is None  # the flock is gone, the child is not
        assert [(v.owner.study, v.owner.child_pid) for v in read_leases(paths)] == [
            ("/s/killed", child)
        ]
    finally:
        os.kill(child, signal.SIGKILL)
    wait_for(lambda: not alive(child), timeout=15, what="the child's end")
    assert read_leases(paths) == []
    assert mine.take(["0"], 0) is not None


def test_two_xorch_processes_never_put_two_runs_on_one_gpu(workdir):
    out_a, out_b = workdir / "a", workdir / "b"
    a = fake_xorch_popen("launch", str(study(workdir, "a", (1, 2, 3, 4), 30)), cwd=workdir)
    wait_for(lambda: len(events(workdir)) == 2, timeout=60, what="a on both GPUs")
    b = fake_xorch_popen("launch", str(study(workdir, "b", (5, 6, 7, 8), 5)), cwd=workdir)
    wait_for(lambda: (out_b / "runner_state.json").exists(), timeout=60, what="b's start")
    time.sleep(0.3)  # b asks for a place, is refused and waits in line
    # (a's runs take 3 s: b is in line before any of them ends, so it goes next)
    assert all(e["event"] == "started" for e in events(workdir)), "the machine is too slow"

    def a_status_names_b() -> bool:  # while both run, a's status names b's places
        try:
            text = render_status(study_status(out_a))
        except Exception:  # a's state not written yet
            return False
        return f"{out_b}, run" in text

    wait_for(a_status_names_b, timeout=60, what="b's place in a's status")
    out = [p.communicate(timeout=120) for p in (a, b)]
    assert (a.returncode, b.returncode) == (0, 0), out
    for folder in (out_a, out_b):
        assert [r["status"] for r in read_state(folder)["runs"]] == ["completed"] * 4
    per_gpu = intervals(workdir)
    assert_no_place_shared(per_gpu)
    spans_a, spans_b = of_study(per_gpu, out_a), of_study(per_gpu, out_b)
    assert len(spans_a) == len(spans_b) == 4
    # Side by side, not one after the other: each started a run before the other's last ended.
    assert min(s for s, _, _ in spans_b) < max(e for _, e, _ in spans_a)
    assert min(s for s, _, _ in spans_a) < max(e for _, e, _ in spans_b)
    assert read_leases(lease_folder()) == []  # every place given back


def test_after_a_sigkill_the_other_process_takes_the_freed_places_and_resume_finishes(workdir):
    out_a, out_b = workdir / "a", workdir / "b"
    config_a = study(workdir, "a", (1, 2, 3), 30)  # 3 s a run
    a = fake_xorch_popen("launch", str(config_a), cwd=workdir)
    started = lambda: [e for e in events(workdir) if e["event"] == "started"]  # noqa: E731
    wait_for(lambda: len(started()) == 2, timeout=60, what="a's runs on both GPUs")
    b = fake_xorch_popen("launch", str(study(workdir, "b", (5, 6, 7, 8), 5)), cwd=workdir)
    wait_for(lambda: (workdir / "b" / "runner_state.json").exists(), timeout=60, what="b")
    time.sleep(0.5)  # b is in line for both GPUs
    assert not [e for e in started() if Path(e["run_dir"]).parent == out_b]
    assert all(e["event"] == "started" for e in events(workdir)), "the machine is too slow"
    os.kill(a.pid, signal.SIGKILL)
    a.communicate(timeout=30)
    killed_at = time.time()
    orphans = [e["pid"] for e in started()]  # a's two children die with it
    while any(alive(pid) for pid in orphans):
        assert time.time() < killed_at + 15, "a's children outlived it"
        time.sleep(0.002)
    dead_at = time.time()
    print(f"killed at {killed_at:.3f}, children dead at {dead_at:.3f}")
    assert {v.owner.study for v in read_leases(lease_folder())} <= {str(out_b)}
    out = b.communicate(timeout=120)
    assert b.returncode == 0, out
    after = [e for e in started() if Path(e["run_dir"]).parent == out_b]
    assert len(after) == 4 and min(e["time"] for e in after) > killed_at, (killed_at, after)
    assert {e["gpu"] for e in after} == {"0", "1"}  # both of a's places went to b
    resumed = fake_xorch("launch", str(config_a), "--resume", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [r["status"] for r in read_state(out_a)["runs"]] == ["completed"] * 3
    assert_no_place_shared(intervals(workdir, unended=dead_at))
    assert read_leases(lease_folder()) == []


def test_a_lease_folder_that_cannot_be_used_is_refused_before_anything_is_written(workdir):
    not_a_folder = workdir / "leases"
    not_a_folder.write_text("a file, not a folder\n")
    config = study(workdir, "a", (1,), 1)
    result = fake_xorch(
        "launch", str(config), cwd=workdir, env={"XORCH_GPU_LEASES": str(not_a_folder)}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"xorch: error: the GPU lease folder {not_a_folder} cannot be used")
    assert "set XORCH_GPU_LEASES to a folder you can write" in line
    assert not (workdir / "a").exists()
