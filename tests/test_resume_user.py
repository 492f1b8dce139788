"""A run resumed from its checkpoint ends bit-identical to one never interrupted,
on a project written the way users write them (tests/fixtures/user_project.py):
``DataLoader(shuffle=True)`` with no sampler of ours, dropout, Adam with
StepLR, with and without DataLoader workers, under both launchers, with two
runs killed and resumed at once.

Each case is one study of two seeds with ``max_parallel: 2``, compared with an
uninterrupted study of the same data module started with the spawn launcher.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.helpers import ROOT, read_state, wait_for, xorch, xorch_popen

pytestmark = pytest.mark.lightning  # bit-exact resume of real Lightning training

USER_PROJECT = ROOT / "tests" / "fixtures" / "user_project.py"
SEEDS = (1, 2)
EPOCHS = 4


def user_config(
    workdir: Path,
    out: Path,
    num_workers: int,
    launcher: str,
    persistent_workers: bool = True,
    **model_args: Any,
) -> Path:
    """A study of the user-style project, its module copied beside the config."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(USER_PROJECT, workdir / "user_project.py")
    config = {
        "mode": "run-experiments",
        "experiments_runner": {
            "seeds": list(SEEDS),
            "output_base_dir": str(out),
            "summary_metrics": ["val/loss", "val/acc"],
            "max_parallel": 2,
            "max_retries": 1,
            "launcher": launcher,
            "grace_period": 2,
        },
        "model": {
            "class_path": "user_project.UserClassifier",
            "init_args": {k: {str(s): e for s, e in v.items()} for k, v in model_args.items()},
        },
        "data": {
            "class_path": "user_project.UserDataModule",
            "init_args": {
                "train_size": 192,
                "val_size": 64,
                "num_workers": num_workers,
                "persistent_workers": persistent_workers and num_workers > 0,
            },
        },
        "pl_trainer": {
            "max_epochs": EPOCHS,
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
        },
    }
    path = workdir / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


_references: dict[int, Path] = {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted study for a number of DataLoader workers (made once)."""

    def get(num_workers: int) -> Path:
        if num_workers not in _references:
            workdir = tmp_path_factory.mktemp("reference") / "a user's study"
            out = workdir / f"reference-{num_workers}"
            path = user_config(workdir, out, num_workers, launcher="spawn")
            result = xorch("launch", str(path), cwd=workdir)
            assert result.returncode == 0, result.stdout + result.stderr
            _references[num_workers] = out
        return _references[num_workers]

    return get


def assert_identical_to(reference: Path, out: Path) -> None:
    """Same metrics to the last bit, and the same final weights."""
    import torch  # here, not at module level: collecting the suite stays torch-free

    expected = {r["seed"]: r for r in read_state(reference)["runs"]}
    for run in read_state(out)["runs"]:
        assert run["status"] == "completed", run
        assert set(run["metrics"]) >= {"train/loss", "val/loss", "val/acc"}
        assert run["metrics"] == expected[run["seed"]]["metrics"], run["seed"]
        mine = torch.load(out / run["dir"] / "last.ckpt", weights_only=False)["state_dict"]
        theirs = torch.load(reference / run["dir"] / "last.ckpt", weights_only=False)["state_dict"]
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), run["seed"]


def assert_resumed_once(out: Path, first_outcomes: set[str]) -> None:
    for run in read_state(out)["runs"]:
        first, second = run["attempts"]
        assert first["outcome"] in first_outcomes, first
        assert first["resumed_from"] is None
        assert second["outcome"] == "completed"
        # The record says where the second attempt continued from.
        assert second["resumed_from"] == f"{run['dir']}/last.ckpt"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.parametrize(
    ("num_workers", "launcher"),
    [(0, "spawn"), (2, "forkserver")],
    ids=["no-workers-spawn", "persistent-workers-forkserver"],
)
def test_runs_killed_mid_epoch_and_retried_end_bit_identical(
    workdir, reference, num_workers, launcher
):
    out = workdir / "crashed"
    # Both runs SIGKILL themselves in their first attempt, at different epochs.
    path = user_config(workdir, out, num_workers, launcher, kill_at={1: 2, 2: 1})
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("retrying (attempt 2 of 2)") == 2
    assert_resumed_once(out, first_outcomes={"oom_killed", "killed", "signal"})
    assert_identical_to(reference(num_workers), out)


# Workers started afresh every epoch draw from the main process's RNG just as a
# loader without workers does, so both give the numbers of the study without them.
@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.parametrize(
    ("num_workers", "persistent", "launcher", "same_as"),
    [(2, True, "spawn", 2), (2, False, "forkserver", 0)],
    ids=["persistent-workers-spawn", "workers-per-epoch-forkserver"],
)
def test_runs_resumed_after_the_parent_was_killed_end_bit_identical(
    workdir, reference, num_workers, persistent, launcher, same_as
):
    out = workdir / "stopped"
    path = user_config(workdir, out, num_workers, launcher, persistent, pause_at={1: 2, 2: 2})
    parent = xorch_popen("launch", str(path), cwd=workdir)
    try:
        paused = [out / f"run_{i:02d}_seed{s}" / "paused" for i, s in enumerate(SEEDS)]
        wait_for(lambda: all(p.exists() for p in paused), timeout=240, what="both runs in epoch 2")
        children = [int(p.read_text()) for p in paused]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    for pid in children:  # they follow their parent
        wait_for(lambda: gone(pid), timeout=20, what=f"child {pid} to stop")  # noqa: B023

    result = xorch("launch", str(path), "--resume", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_resumed_once(out, first_outcomes={"interrupted"})
    assert_identical_to(reference(same_as), out)
