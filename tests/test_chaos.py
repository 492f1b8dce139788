"""A short run of scripts/chaos.py: SIGKILL the parent during training, during a
state write and during a summary write; resume; compare with an uninterrupted
reference study. It trains the user-style project (plain shuffling DataLoader
with persistent workers, dropout, a LR schedule), the harder case for resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT


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
