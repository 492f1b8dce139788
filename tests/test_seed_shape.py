"""The seed project's own config shape (pytorch-smt's): a plain network as
``model:``, with ``loss``, ``optimizer``, ``scheduler_list``, datasets,
``metrics`` and ``hyperparameters`` at the top level, trained by xorch's
built-in seed task with every guarantee of a LightningModule run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, kill_first_run_once_it_checkpoints, read_state, xorch

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
            "max_epochs": 30,
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


@pytest.mark.lightning  # the seed task trained for real
def test_a_seed_shape_study_trains_and_a_killed_run_resumes_bit_exact(tmp_path: Path) -> None:
    whole = write(tmp_path / "whole", seed_config(tmp_path / "whole_out", [1]))
    done = xorch("launch", str(whole), cwd=whole.parent, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    out = tmp_path / "out"
    path = write(tmp_path / "killed", seed_config(out, [1, 2], max_retries=1))
    first = kill_first_run_once_it_checkpoints(path, out, "last.ckpt", cwd=path.parent)
    assert [a["outcome"] for a in first["attempts"]] == ["killed", "completed"]
    assert first["attempts"][-1]["resumed_from"].endswith("last.ckpt")
    (reference,) = read_state(tmp_path / "whole_out")["runs"]
    assert first["metrics"] == reference["metrics"]  # every metric, bit for bit
    for name in ("train/loss", "val/loss", "val/BinaryF1Score", "test/loss", "test/BinaryF1Score"):
        assert name in first["metrics"], name
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert list(summary["run"]) == ["0", "1", "mean", "std"]
