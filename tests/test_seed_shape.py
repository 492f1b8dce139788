"""The seed project's own config shape (pytorch-smt's): a plain network as
``model:``, with ``loss``, ``optimizer``, ``scheduler_list``, datasets,
``metrics`` and ``hyperparameters`` at the top level, trained by xorch's
built-in seed task with every guarantee of a LightningModule run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, faults_kill_and_resume, read_state, xorch

SEED_PROJECT = ROOT / "tests" / "fixtures" / "seed_project.py"


def seed_config(out: Path, seeds: list[int], **runner: object) -> dict:
    def dataset(size: int, split_seed: int) -> dict:
        return {
            "class_path": "seed_project.Blobs",
            "init_args": {"size": size, "split_seed": split_seed},
        }

    return {
        "mode": "run-experiments",
        "experiments_runner": {
            "seeds": seeds,
            "output_base_dir": str(out),
            "summary_metrics": ["val/loss", "val/BinaryF1Score"],
            **runner,
        },
        "hyperparameters": {"batch_size": 16, "max_lr": 0.01},
        "model": {"class_path": "seed_project.TinyNet", "init_args": {"features": 8}},
        "loss": {"class_path": "torch.nn.BCEWithLogitsLoss"},
        "optimizer": {
            "class_path": "torch.optim.Adam",
            "init_args": {"lr": "${hyperparameters.max_lr}"},
        },
        "scheduler_list": [
            {
                "class_path": "torch.optim.lr_scheduler.StepLR",
                "init_args": {"step_size": 5, "gamma": 0.9},
            }
        ],
        "train_dataset": dataset(128, 0),
        "val_dataset": dataset(64, 1),
        "test_dataset": dataset(64, 2),
        "metrics": [{"class_path": "torchmetrics.classification.BinaryF1Score"}],
        "pl_trainer": {
            "max_epochs": 3,
            "accelerator": "cpu",
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    }


def write(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(SEED_PROJECT, folder / "seed_project.py")  # the user's module, beside the config
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_seed_shape_validates_without_warnings(tmp_path: Path) -> None:
    path = write(tmp_path / "project", seed_config(tmp_path / "out", [1, 2]))
    result = xorch("validate", "--fast", str(path), cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    said = result.stdout + result.stderr
    for block in ("loss", "optimizer", "scheduler_list", "train_dataset", "val_dataset", "metrics"):
        assert f"'{block}'" not in said, said
    assert not (tmp_path / "out").exists()


FAULTS = ROOT / "tests" / "fixtures" / "first_attempt_faults.py"
# The seed task is a pytorch_lightning module, so the fault callback is that
# package's; at the start of epoch 2 of attempt 1 run 0 raises, run 1 hangs,
# run 2 waits for the test to kill xorch.
FAULT_CALLBACK = {
    "class_path": "first_attempt_faults.PlFirstAttemptFaults",
    "init_args": {"epoch": 2, "raise_in_run": 0, "hang_in_run": 1, "wait_in_run": 2},
}
# One run at a time, so the runs meet their faults in order; a hang is called
# after 12 s without a beat (a Lightning child beats every 2 s).
FAULT_RUNNER = {"max_retries": 1, "hang_timeout": 12, "grace_period": 2, "gpus": "none",
                "max_parallel": 1}  # fmt: skip


@pytest.mark.lightning  # the seed task trained for real
def test_a_seed_shape_study_survives_an_exception_a_hang_and_a_kill_and_resumes_bit_exact(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    config = seed_config(out, [1, 2, 3], **FAULT_RUNNER)
    config["callbacks"] = [FAULT_CALLBACK]
    path = write(tmp_path / "faulted", config)
    shutil.copy(FAULTS, path.parent / "first_attempt_faults.py")  # beside the user's module
    raised = "RuntimeError: crash on purpose (run 0, epoch 2)"
    state = faults_kill_and_resume(path, out, metric="val/BinaryF1Score", raised=raised)
    for record in state["runs"]:  # each retry and the resume went on from last.ckpt
        assert record["attempts"][1]["resumed_from"].endswith("last.ckpt")
    for name in ("train/loss", "val/loss", "val/BinaryF1Score", "test/loss", "test/BinaryF1Score"):
        assert name in state["runs"][0]["metrics"], name

    # The same seeds never stopped (and without the fault callback) end with
    # every metric the same, bit for bit.
    whole = write(tmp_path / "whole", seed_config(tmp_path / "whole_out", [1, 2, 3]))
    done = xorch("launch", str(whole), cwd=whole.parent, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    uninterrupted = read_state(tmp_path / "whole_out")["runs"]
    assert [r["metrics"] for r in state["runs"]] == [r["metrics"] for r in uninterrupted]
