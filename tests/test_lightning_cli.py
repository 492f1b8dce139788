"""A LightningCLI project as people write it today, run by xorch as a
``command:`` with no xorch code in it: retries, SIGKILL-then-``--resume``,
bit-exact resume through ``--ckpt_path`` and the RNG callback, summary.csv."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import read_state, wait_for, wait_gone, xorch, xorch_popen

PROJECT = Path(__file__).parent / "fixtures" / "lightning_cli_project.py"
FAULTS = "tests.fixtures.first_attempt_faults.FirstAttemptFaults"
SEEDS = (11, 12, 13)


def cli_study(folder: Path) -> Path:
    """Three seeds of the project beside the config; in attempt 1, run 0 raises
    and run 1 waits to be killed, each at the start of epoch 2 (after epoch 1's
    last.ckpt)."""
    shutil.copy(PROJECT, folder / "train.py")
    command = [
        "python", "train.py", "fit",
        "--seed_everything", "{seed}",
        "--trainer.max_epochs", "4",
        "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "CSVLogger",
        "--trainer.logger.save_dir", "{run_dir}",
        "--trainer.callbacks+=worker.rng_state.RngStateCallback",
        "--trainer.callbacks+=ModelCheckpoint",
        "--trainer.callbacks.dirpath", "{run_dir}",
        "--trainer.callbacks.save_last", "true",
        f"--trainer.callbacks+={FAULTS}",
        "--trainer.callbacks.epoch", "2",
        "--trainer.callbacks.raise_in_run", "0",
        "--trainer.callbacks.wait_in_run", "1",
    ]  # fmt: skip
    config = {
        "experiments_runner": {
            "output_base_dir": str(folder / "out"),
            "seeds": list(SEEDS),
            "summary_metrics": ["val/loss", "val/acc"],
            "max_retries": 1,
            "hang_timeout": 300,
        },
        "command": command,
        "resume_args": ["--ckpt_path", "{resume_from}"],
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def first_epoch_logged(run: Path, version: int) -> int:
    log = pd.read_csv(run / "lightning_logs" / f"version_{version}" / "metrics.csv")
    return int(log["epoch"].min())


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.lightning
def test_a_lightning_cli_project_retries_resumes_after_sigkill_and_ends_bit_exact(workdir):
    config, out = cli_study(workdir), workdir / "out"
    parent = xorch_popen("launch", str(config), cwd=workdir)
    try:
        wait_for((out / "run_01_seed12" / "waiting").exists, timeout=300,
                 what="run 1 to wait at epoch 2, after run 0 raised and was retried")  # fmt: skip
        child_pid = read_state(out)["runs"][1]["attempts"][-1]["pid"]
        parent.send_signal(signal.SIGKILL)
        parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    wait_gone(child_pid, what="run 1's program to follow its killed parent")
    assert read_state(out)["runs"][2]["attempts"] == []  # killed before run 2 started

    resumed = xorch("launch", str(config), "--resume", cwd=workdir, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    outcomes = [[a["outcome"] for a in r["attempts"]] for r in state["runs"]]
    assert outcomes == [["failed", "completed"], ["interrupted", "completed"], ["completed"]]
    raised = state["runs"][0]["attempts"][0]["reason"]
    assert "RuntimeError: crash on purpose (run 0, epoch 2)" in raised
    # The retried and the resumed attempt were given --ckpt_path and went on from
    # epoch 2 (their CSVLogger version starts there); the state says from what.
    for index, folder in ((0, "run_00_seed11"), (1, "run_01_seed12")):
        assert state["runs"][index]["attempts"][1]["resumed_from"] == f"{folder}/last.ckpt"
        assert first_epoch_logged(out / folder, version=1) == 2
    assert state["runs"][2]["attempts"][0]["resumed_from"] is None

    summary = pd.read_csv(out / "summary.csv", dtype={"run": str}).set_index("run")
    assert list(summary.index) == ["0", "1", "2", "mean", "std"]
    assert summary["val/loss"].notna().all()

    # The same seed once more, never stopped: every final metric is identical.
    replay = xorch("replay", str(out), "1", cwd=workdir, timeout=300)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "match: all" in replay.stdout, replay.stdout + replay.stderr
    whole = out / "run_01_seed12_replay" / "lightning_logs" / "version_0" / "metrics.csv"
    resumed_loss = state["runs"][1]["metrics"]["val/loss"]
    assert pd.read_csv(whole)["val/loss"].dropna().iloc[-1] == resumed_loss
