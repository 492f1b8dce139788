"""Processes that escape: whatever a run's program starts ends when the run ends.

Three command-mode programs (plain Python, one per seed, run side by side)
leave processes that its process group does not hold: seed 1 double-forks a
sleeping grandchild, seed 2 starts a child in a new session (``setsid``),
seed 3 ignores SIGTERM and so does its own child, started in a new session.
Each process a program leaves writes ``escaped_<pid>`` into the run folder.
Every way a run ends (completion, a hang stopped, xorch stopped by SIGTERM,
xorch killed by SIGKILL and then ``launch --resume``) must leave none alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
from pathlib import Path

import psutil
import pytest
import yaml

from orchestrator.run_processes import ProcessFacts, run_members
from tests.helpers import read_state, wait_for, wait_gone, xorch, xorch_popen

# argv: seed, run_dir, then "exit" (end once the escapees are out) or "hang".
# A later attempt (after --resume) only completes.
PROGRAM = """
import os, signal, subprocess, sys, time
from worker.report import report
seed, run_dir, then = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SLEEPER = ("import os, sys, time; open(os.path.join(sys.argv[1], 'escaped_%d' % os.getpid()),"
           " 'w').close(); time.sleep(60)")
report(epoch=0, score=float(seed))
if os.environ.get("XORCH_ATTEMPT") != "1":
    sys.exit(0)

def double_fork():
    if os.fork() == 0:
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", SLEEPER, run_dir])
        os._exit(0)
    os.wait()

if seed == 1:
    double_fork()
elif seed == 2:
    subprocess.Popen([sys.executable, "-c", SLEEPER, run_dir], start_new_session=True)
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child too
    subprocess.Popen([sys.executable, "-c", SLEEPER, run_dir], start_new_session=True)
while not any(name.startswith("escaped_") for name in os.listdir(run_dir)):
    time.sleep(0.02)
open(os.path.join(run_dir, "escapees_out"), "w").close()
if then == "hang":
    time.sleep(60)
"""

SEEDS = (1, 2, 3)


def escape_study(folder: Path, then: str, **runner: object) -> Path:
    (folder / "escape.py").write_text(textwrap.dedent(PROGRAM), encoding="utf-8")
    block = {
        "output_base_dir": str(folder / "out"),
        "seeds": list(SEEDS),
        "max_parallel": len(SEEDS),
        "max_retries": 0,
        "summary_metrics": ["score"],
        **runner,
    }
    config = {
        "mode": "run-experiments",
        "experiments_runner": block,
        "command": ["python", "escape.py", "{seed}", "{run_dir}", then],
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_dirs(out: Path) -> list[Path]:
    return [out / f"run_{index:02d}_seed{seed}" for index, seed in enumerate(SEEDS)]


def escapees(out: Path) -> list[int]:
    return [
        int(path.name.removeprefix("escaped_"))
        for run in run_dirs(out)
        for path in run.glob("escaped_*")
    ]


def all_out(out: Path) -> bool:
    return all((run / "escapees_out").exists() for run in run_dirs(out))


def assert_none_left(pids: list[int]) -> None:
    assert len(pids) == len(SEEDS), pids  # one escapee per program
    for pid in pids:
        wait_gone(pid, what=f"escaped process {pid} to end with its run", timeout=10)


@pytest.fixture
def reap_escapees(workdir):
    """Whatever a failing test leaves alive is killed here, not left sleeping."""
    yield
    for pid in escapees(workdir / "out"):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                os.kill(pid, signal.SIGKILL)


def test_a_completed_run_leaves_no_process_behind(workdir, reap_escapees):
    out = workdir / "out"
    result = xorch("launch", str(escape_study(workdir, "exit")), cwd=workdir, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["status"] for r in read_state(out)["runs"]] == ["completed"] * 3
    assert_none_left(escapees(out))


def test_a_run_stopped_as_a_hang_leaves_no_process_behind(workdir, reap_escapees):
    out = workdir / "out"
    path = escape_study(workdir, "hang", hang_timeout=2, grace_period=1)
    result = xorch("launch", str(path), cwd=workdir, timeout=120)
    assert result.returncode != 0
    assert [r["attempts"][0]["outcome"] for r in read_state(out)["runs"]] == ["hang"] * 3
    assert_none_left(escapees(out))


def signal_xorch_once_all_are_out(path: Path, out: Path, signum: int) -> None:
    """Launch the study, wait until every program's escapee runs, signal xorch."""
    parent = xorch_popen("launch", str(path), cwd=path.parent)
    try:
        wait_for(lambda: all_out(out), timeout=60, what="every program's escapee")
        parent.send_signal(signum)
        parent.wait(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_xorch_stopped_by_sigterm_leaves_no_process_behind(workdir, reap_escapees):
    out = workdir / "out"
    path = escape_study(workdir, "hang", grace_period=1)
    signal_xorch_once_all_are_out(path, out, signal.SIGTERM)
    assert [r["attempts"][0]["outcome"] for r in read_state(out)["runs"]] == ["interrupted"] * 3
    assert_none_left(escapees(out))


def test_resume_after_kill_9_of_xorch_ends_what_the_runs_left(workdir, reap_escapees):
    out = workdir / "out"
    path = escape_study(workdir, "hang", grace_period=1)
    signal_xorch_once_all_are_out(path, out, signal.SIGKILL)
    result = xorch("launch", str(path), "--resume", cwd=workdir, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # Recovery ended them, before the runs were tried again (an attempt's own
    # end ends only processes created since it started).
    assert result.stdout.count("ended 1 process(es) its attempt left running") == 3, result.stdout
    runs = read_state(out)["runs"]
    assert [[a["outcome"] for a in r["attempts"]] for r in runs] == [
        ["interrupted", "completed"]
    ] * 3
    assert_none_left(escapees(out))


MARK = "/studies/out/run_00_seed1"


@pytest.mark.parametrize(
    ("facts", "since", "members"),
    [
        ([ProcessFacts(10, MARK, 100.0)], 100.0, (10,)),  # the run's own
        ([ProcessFacts(10, MARK + "0", 100.0)], 100.0, ()),  # another run's folder
        ([ProcessFacts(10, None, 100.0)], 100.0, ()),  # unmarked, or unreadable
        ([ProcessFacts(7, MARK, 100.0)], 100.0, ()),  # this process itself
        ([ProcessFacts(10, MARK, 90.0)], 100.0, ()),  # older than the attempt: a reused pid
        ([ProcessFacts(10, MARK, 99.5)], 100.0, (10,)),  # create time rounded down
        ([ProcessFacts(10, MARK, 90.0)], None, (10,)),  # recovery: any attempt's
        (
            [
                ProcessFacts(10, MARK, 101.0),
                ProcessFacts(11, None, 101.0),
                ProcessFacts(12, MARK, 102),
            ],
            100.0,
            (10, 12),
        ),
    ],
)
def test_which_processes_belong_to_a_run(facts, since, members):
    assert run_members(facts, MARK, since, own_pid=7) == members
