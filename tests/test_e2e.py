"""Whole studies with real child processes: one real study with a Lightning
Trainer (marked ``lightning``, shared by the tests that read what Lightning
wrote), and studies of fake workers for the parent's behaviour (refusals,
resume, signals, ``kill -9`` of the parent)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from tests.fake_worker import PROGRESS_FILE, WAITING_FILE
from tests.fakes import fake_study_config, fake_xorch, fake_xorch_popen, finished_fake_study
from tests.helpers import (
    ROOT,
    read_state,
    running_attempt,
    snapshot,
    wait_for,
    wait_gone,
    xorch,
)


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A finished 3-seed study of fake workers, shared by the tests that only
    read it or resume it without changing what it holds."""
    path, out, result = finished_fake_study(tmp_path_factory.mktemp("e2e-fake"))
    return path, out, result


@pytest.mark.lightning
def test_study_completes_with_the_seed_layout(lightning_study):
    _, out, result = lightning_study
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [
        "run_00_seed42",
        "run_01_seed101",
        "run_02_seed28",
        "runner_state.json",
        "runner_state.json.bak",
        "summary.csv",
        "xorch.log",
    ]
    for run in ("run_00_seed42", "run_01_seed101", "run_02_seed28"):
        folder = out / run
        assert (folder / "lightning_logs").is_dir()
        assert (folder / "metrics.json").is_file() and (folder / "train.log").is_file()
        assert (folder / "last.ckpt").is_file()
        spec = json.loads((folder / "run_spec.json").read_text())
        assert spec["run_dir"] == str(folder)


@pytest.mark.lightning
def test_parent_never_imports_torch_during_a_study(lightning_study):
    _, _, result = lightning_study
    assert "PARENT-IMPORTED False False" in result.stderr


@pytest.mark.lightning
def test_state_records_every_run(lightning_study):
    _, out, _ = lightning_study
    state = read_state(out)
    assert state["schema_version"] == 1 and state["seeds"] == [42, 101, 28]
    assert len(state["config_fingerprint"]) == 64
    for index, record in enumerate(state["runs"]):
        assert record["index"] == index and record["status"] == "completed"
        assert record["exit_code"] == 0 and record["duration_s"] > 0
        assert record["started_at"] and record["ended_at"]
        assert {"train/loss", "val/loss", "val/acc", "test/loss", "test/acc"} <= set(
            record["metrics"]
        )
        (attempt,) = record["attempts"]
        assert attempt["outcome"] == "completed" and attempt["pid"] > 0


@pytest.mark.lightning
def test_summary_matches_the_state_and_pandas(lightning_study):
    _, out, _ = lightning_study
    text = (out / "summary.csv").read_text()
    frame = pd.read_csv(io.StringIO(text), dtype={"run": str, "seed": str})
    state = read_state(out)
    metric_names = sorted(state["runs"][0]["metrics"])
    reported = ["epochs_trained", "best_checkpoint_path"]
    columns = ["run", "seed", "duration_s", *metric_names, *reported, "representative", "best_run"]
    assert list(frame.columns) == columns
    # What each child reported: the epochs it trained, and last.ckpt (no ModelCheckpoint
    # with a monitor in this config).
    assert list(frame["epochs_trained"].iloc[:3]) == [2, 2, 2]
    assert all(
        frame["best_checkpoint_path"].iloc[i] == f"{r['dir']}/last.ckpt"
        for i, r in enumerate(state["runs"])
    )
    assert list(frame["run"]) == ["0", "1", "2", "mean", "std"]
    assert list(frame["seed"]) == ["42", "101", "28", "-", "-"]
    # One representative and one best run, each marked once.
    assert list(frame["representative"]).count("*") == list(frame["best_run"]).count("*") == 1
    runs = frame.iloc[:3]
    for name in metric_names:
        recorded = [r["metrics"][name] for r in state["runs"]]
        assert list(runs[name]) == pytest.approx(recorded, abs=5e-7)
        assert frame.iloc[3][name] == pytest.approx(pd.Series(recorded).mean(), abs=1e-6)
        assert frame.iloc[4][name] == pytest.approx(pd.Series(recorded).std(ddof=1), abs=1e-6)
    # The test metrics sit beside the fit metrics, not instead of them.
    assert "test/loss" in frame.columns and "val/loss" in frame.columns


def test_the_state_and_summary_of_a_fake_study_hold_each_seeds_values(fake_study):
    """The parent's records of a study, checked against values the fake worker
    derives from the seed: state, summary.csv (runs, mean, std) and pandas agree."""
    _, out, _ = fake_study
    state = read_state(out)
    assert state["seeds"] == [42, 101, 28]
    for index, record in enumerate(state["runs"]):
        assert record["index"] == index and record["status"] == "completed"
        assert record["exit_code"] == 0 and record["duration_s"] > 0
        assert record["metrics"]["val/loss"] == record["seed"] + 0.5
        (attempt,) = record["attempts"]
        assert attempt["outcome"] == "completed" and attempt["pid"] > 0
    frame = pd.read_csv(out / "summary.csv", dtype={"run": str, "seed": str})
    assert list(frame["run"]) == ["0", "1", "2", "mean", "std"]
    assert list(frame["seed"]) == ["42", "101", "28", "-", "-"]
    losses = pd.Series([42.5, 101.5, 28.5])
    assert list(frame["val/loss"].iloc[:3]) == pytest.approx(list(losses))
    assert frame["val/loss"].iloc[3] == pytest.approx(losses.mean())
    assert frame["val/loss"].iloc[4] == pytest.approx(losses.std(ddof=1))


def test_progress_lines_show_summary_metrics(fake_study):
    _, out, result = fake_study
    assert "run 1 seed 101: completed in" in result.stdout
    assert "val/loss=" in result.stdout and "val/acc=" in result.stdout
    assert "val/loss: " in result.stdout and " ± " in result.stdout
    assert "\x1b[" not in result.stdout
    assert "run 2 seed 28: completed" in (out / "xorch.log").read_text()


def test_a_study_is_never_overwritten_without_resume(fake_study):
    path, out, _ = fake_study
    before = snapshot(out)
    result = xorch("launch", str(path), cwd=path.parent)
    assert result.returncode == 2
    assert "already holds a study (3 of 3 runs completed)" in result.stderr
    assert "--resume" in result.stderr
    assert snapshot(out) == before


def test_resume_with_a_changed_training_config_is_refused(fake_study):
    path, out, _ = fake_study
    before = snapshot(out)
    result = xorch(
        "launch",
        str(path),
        "--resume",
        "pl_trainer.max_epochs=5",
        "model.init_args.lr=0.1",
        cwd=path.parent,
    )
    assert result.returncode == 2
    assert "pl_trainer.max_epochs" in result.stderr and "model.init_args.lr" in result.stderr
    assert snapshot(out) == before


def test_resume_of_a_finished_study_runs_nothing_and_may_change_runner_keys(fake_study):
    path, out, _ = fake_study
    metrics_before = (out / "run_00_seed42" / "metrics.json").read_bytes()
    result = xorch(
        "launch",
        str(path),
        "--resume",
        "experiments_runner.summary_metrics=[val/acc]",
        cwd=path.parent,
    )
    try:
        assert result.returncode == 0, result.stderr
        assert "3 already completed" in result.stdout and "starting attempt" not in result.stdout
        assert (out / "run_00_seed42" / "metrics.json").read_bytes() == metrics_before
        assert read_state(out)["summary_metrics"] == ["val/acc"]
    finally:
        # The study is shared with other tests: give it back its own metrics.
        again = xorch(
            "launch",
            str(path),
            "--resume",
            "experiments_runner.summary_metrics=[val/loss,val/acc]",
            cwd=path.parent,
        )
    assert again.returncode == 0, again.stderr
    assert read_state(out)["summary_metrics"] == ["val/loss", "val/acc"]


def test_resume_removes_the_temp_files_a_killed_launch_left(fake_study):
    path, out, _ = fake_study
    left = [out / ".summary.csv.0123456789ab.tmp", out / ".runner_state.json.0123456789ab.tmp"]
    others = out / ".notes.txt.0123456789ab.tmp"  # not a file a launch writes: kept
    for temp in [*left, others]:
        temp.write_text("half a file")
    try:
        result = xorch("launch", str(path), "--resume", cwd=path.parent)
        assert result.returncode == 0, result.stderr
        assert not any(temp.exists() for temp in left)
        assert others.read_text() == "half a file"
    finally:
        others.unlink()


@pytest.mark.lightning
def test_replay_with_mode_train_reproduces_a_run_exactly(lightning_study):
    path, out, _ = lightning_study
    config = yaml.safe_load(path.read_text())
    del config["experiments_runner"]
    replay_dir = out.parent / "run_01_seed101_replay"
    config.update(mode="train", seed=101)
    config["pl_trainer"]["default_root_dir"] = str(replay_dir)
    replay = path.parent / "replay.yaml"
    replay.write_text(yaml.safe_dump(config))
    result = xorch("launch", str(replay), cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    original = json.loads((out / "run_01_seed101" / "metrics.json").read_text())["metrics"]
    again = json.loads((replay_dir / "metrics.json").read_text())["metrics"]
    assert again == original  # bit-identical floats on CPU
    # A second replay into the same folder is refused, not overwritten.
    again_result = xorch("launch", str(replay), cwd=path.parent)
    assert again_result.returncode == 2 and "already holds a finished run" in again_result.stderr


def test_sigkill_of_the_parent_then_resume_finishes_exactly_the_missing_runs(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(out, seeds=None, n_runs=3, steps=10)
    path = write_config(config)
    parent = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        # Random seeds are on disk before the first run starts.
        wait_for(lambda: (out / "runner_state.json").exists(), what="state file")
        seeds = read_state(out)["seeds"]
        assert len(seeds) == 3
        run1 = out / f"run_01_seed{seeds[1]}"
        wait_for(
            lambda: (run1 / PROGRESS_FILE).exists() and running_attempt(out, 1),
            what="run 1 training",
        )
        child_pid = running_attempt(out, 1)["pid"]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    # The child follows its parent: no training is left behind.
    wait_gone(child_pid, what="orphaned child to stop")
    done_before = json.loads((run1 / PROGRESS_FILE).read_text())["step"]
    assert 0 < done_before < 10
    run0_metrics = (out / f"run_00_seed{seeds[0]}" / "metrics.json").read_bytes()

    result = fake_xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(out)
    assert state["seeds"] == seeds
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    assert len(state["runs"][0]["attempts"]) == 1  # run 0 was not trained again
    assert (out / f"run_00_seed{seeds[0]}" / "metrics.json").read_bytes() == run0_metrics
    first, second = state["runs"][1]["attempts"]
    assert first["outcome"] == "interrupted" and second["outcome"] == "completed"
    # Run 1 went on from its last saved step: exactly the missing steps were trained.
    assert state["runs"][1]["metrics"]["steps_done"] == 10 - done_before
    assert [r["metrics"]["val/loss"] for r in state["runs"]] == [s + 0.5 for s in seeds]
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert list(summary["run"]) == ["0", "1", "2", "mean", "std"]
    assert sorted(p.name for p in out.glob("run_*")) == sorted(
        f"run_{i:02d}_seed{s}" for i, s in enumerate(seeds)
    )


def test_a_second_launch_on_a_running_study_is_refused(workdir, write_config):
    out = workdir / "out"
    config = fake_study_config(out, seeds=(1, 2), acts={"*": {"*": {"do": "hang"}}})
    path = write_config(config)
    first = fake_xorch_popen("launch", str(path), cwd=workdir)
    try:
        wait_for(lambda: (out / ".xorch-launch.owner.json").exists(), what="launcher lock")
        second = xorch("launch", str(path), "--resume", cwd=workdir)
        assert second.returncode == 2
        assert f"pid {first.pid}" in second.stderr and "host" in second.stderr
        assert "in use by another xorch launch" in second.stderr
        # SIGTERM stops the first one cleanly: the attempt is recorded as interrupted.
        wait_for(lambda: (out / "run_00_seed1" / WAITING_FILE).exists(), what="run 0 to start")
        first.send_signal(signal.SIGTERM)
        stdout, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, stdout
    record = read_state(out)["runs"][0]
    assert record["status"] == "interrupted"
    assert record["attempts"][-1]["outcome"] == "interrupted"
    assert not psutil.pid_exists(record["attempts"][-1]["pid"])


def test_importing_the_orchestrator_and_help_load_no_torch():
    code = (
        "import sys, io, contextlib\n"
        "import orchestrator, orchestrator.cli, orchestrator.study, orchestrator.scheduler\n"
        "from orchestrator.cli import main\n"
        "sys.argv = ['xorch', '--help']\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'launch' in out.getvalue()\n"
        "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules,"
        " 'lightning' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False False"
