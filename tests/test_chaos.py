"""A short run of scripts/chaos.py: SIGKILL the parent during training, during a
state write and during a summary write; resume; compare with an uninterrupted
reference study. It trains the user-style project (plain shuffling DataLoader
with persistent workers, dropout, a LR schedule), the harder case for resume."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.lightning  # resume must match an uninterrupted real study bit for bit
def test_short_chaos_run_loses_nothing(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "scripts/chaos.py",
            "--kills",
            "3",
            "--runs",
            "2",
            "--epochs",
            "3",
            "--max-delay",
            "6",
            "--workdir",
            str(tmp_path / "chaos dir"),
            "--project",
            "user",
            "--num-workers",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["ok"] is True
    assert report["kills"] == 3
    assert report["state_write"] >= 1 and report["summary_write"] >= 1
    assert report["studies_checked"] >= 1
    assert report["runs_lost"] == report["runs_duplicated"] == report["orphans"] == 0
    assert report["state_unreadable"] == report["summary_mismatch"] == 0
    assert report["metrics_mismatch"] == 0


def test_kill_9_of_the_parent_at_random_moments_loses_and_repeats_nothing(workdir, write_config):
    """The parent's side of the chaos run, with fake workers: ``kill -9`` of
    xorch at random moments, then ``--resume`` until done. Every run completes
    once with its own seed's values, no child outlives its parent, and a resumed
    run continues from its last saved step instead of starting over."""
    import random

    import psutil

    from tests.fake_worker import PROGRESS_FILE
    from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen
    from tests.helpers import read_state, wait_for, wait_gone

    out = workdir / "out"
    seeds = (3, 1, 4, 5)
    path = write_config(fake_study_config(out, seeds=seeds, steps=8, max_parallel=2))
    chance = random.Random(7)

    def a_child_beat_since(moment: float) -> bool:
        beats = out.glob("run_*/heartbeat.json")
        return any(beat.stat().st_mtime > moment for beat in beats)

    for _ in range(3):
        started = time.time()
        parent = fake_xorch_popen(
            "launch", str(path), *(["--resume"] if out.exists() else []), cwd=workdir
        )
        # A random moment once this round's children train (each step is 0.1 s
        # and saved): however slow the machine, the kill lands inside runs.
        wait_for(lambda t=started: a_child_beat_since(t), what="a child of this round training")
        time.sleep(chance.uniform(0.1, 0.5))
        children = [c.pid for c in psutil.Process(parent.pid).children(recursive=True)]
        parent.kill()
        parent.wait(timeout=30)
        for pid in children:
            wait_gone(pid, what="a child of the killed parent")
    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * len(seeds)
    assert [r["metrics"]["val/loss"] for r in state["runs"]] == [s + 0.5 for s in seeds]
    attempts = [a for r in state["runs"] for a in r["attempts"]]
    assert len(attempts) > len(seeds)  # the kills did land during runs
    resumed = [a for a in attempts if a.get("resumed_from")]
    assert resumed, "no run continued from its saved step"
    for record in state["runs"]:
        progress = json.loads((out / record["dir"] / PROGRESS_FILE).read_text())
        assert progress["step"] == 8
    lines = (out / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "3", "mean", "std"]
