"""The window that one save per pass opens (issue 20): the scheduler records a
verdict in memory, starts the next run, and saves both at once. A ``kill -9``
of the parent between the two leaves the finished attempt ``running`` on disk
and the next run ``pending`` while its child was already started; ``--resume``
must settle the first from its own files and run the second, losing and
repeating nothing. Real processes: the real CLI with fake workers, killed by
itself right after the second child started (the exact moment of the window)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil
import pytest

from tests.fakes import fake_study_config, fake_xorch
from tests.helpers import ROOT, read_state, wait_gone

# The real CLI (tests.fake_xorch) whose launcher kills the parent with SIGKILL
# right after it started run 1's child: run 0's verdict is then only in memory.
KILLED_IN_THE_WINDOW = textwrap.dedent(
    """
    import os, signal, sys
    import orchestrator.launchers.local as local
    from tests.fake_xorch import main

    real_start = local.LocalLauncher.start
    starts = []

    def start(self, run, env):
        child = real_start(self, run, env)
        starts.append(child.pid)
        if len(starts) == 2:
            print("child", child.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return child

    local.LocalLauncher.start = start
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize(
    ("acts", "first_attempts"),
    [
        ({}, ["completed"]),
        # A failed attempt whose verdict was lost: its child is gone, and the files
        # show no result, so it is settled interrupted and run again (no retry
        # spent), as an attempt whose child ended just before the parent died.
        ({"3": {"1": {"do": "raise", "message": "boom"}}}, ["interrupted", "completed"]),
    ],
)
def test_kill_9_between_a_verdict_and_its_save_loses_nothing(
    workdir, write_config, acts, first_attempts
):
    out = workdir / "out"
    seeds = (3, 1, 4)
    path = write_config(fake_study_config(out, seeds=seeds, steps=1, acts=acts, max_retries=0))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_IN_THE_WINDOW, "launch", str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    child = int(killed.stdout.split("child ")[1].split()[0])
    wait_gone(child, what="run 1's child after its parent's kill -9")
    on_disk = read_state(out)
    # The window: run 0 ended, but the disk still says running; run 1 never recorded.
    assert [r["status"] for r in on_disk["runs"]] == ["running", "pending", "pending"]
    evidence = "error.json" if acts else "metrics.json"
    assert (out / on_disk["runs"][0]["dir"] / evidence).exists()

    resumed = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * len(seeds)
    assert [r["metrics"]["val/loss"] for r in state["runs"]] == [s + 0.5 for s in seeds]
    assert [a["outcome"] for a in state["runs"][0]["attempts"]] == first_attempts
    assert [len(r["attempts"]) for r in state["runs"][1:]] == [1, 1]  # nothing repeated
    lines = (out / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "mean", "std"]
    left = [
        p for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])
    ]
    assert not left, left
