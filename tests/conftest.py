"""Shared helpers: tiny study configs in folders with awkward names, and the CLI
run the way a user runs it, in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

TINY_TRAINING: dict[str, Any] = {
    "model": {
        "class_path": "worker.tasks.quick.QuickClassifier",
        "init_args": {"features": 8, "hidden": 16, "classes": 3, "lr": 0.05},
    },
    "data": {
        "class_path": "worker.tasks.quick.QuickDataModule",
        "init_args": {"features": 8, "classes": 3, "train_size": 64, "val_size": 32,
                      "batch_size": 16},
    },
    "pl_trainer": {
        "max_epochs": 2,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    },
}


def tiny_config(output_dir: Path, seeds: tuple[int, ...] | None = (0, 1, 2), **runner: Any) -> dict:
    block: dict[str, Any] = {"output_base_dir": str(output_dir), "summary_metrics": ["val/loss"]}
    if seeds is not None:
        block["seeds"] = list(seeds)
    block.update(runner)
    return {"mode": "run-experiments", "experiments_runner": block,
            **json.loads(json.dumps(TINY_TRAINING))}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder whose name has a space and a quote, as users' folders sometimes do."""
    folder = tmp_path / "my study's dir"
    folder.mkdir()
    return folder


@pytest.fixture
def write_config(workdir: Path) -> Callable[..., Path]:
    def write(config: dict, name: str = "study.yaml") -> Path:
        path = workdir / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    return write


def xorch(*args: str, cwd: Path | None = None, timeout: float = 300,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator ARGS`` in a subprocess, as a user would run xorch."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def xorch_popen(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd or ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def read_state(output_dir: Path) -> dict:
    return json.loads((output_dir / "runner_state.json").read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to prove nothing was touched."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# Runs xorch in-process and reports at exit whether the parent imported torch.
TORCH_WATCH = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('PARENT-IMPORTED', 'torch' in sys.modules,"
    " 'pytorch_lightning' in sys.modules, file=sys.stderr))\n"
    "from orchestrator.cli import main\n"
    "sys.argv = ['xorch', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One real 3-seed study, shared by the tests that only read it."""
    workdir = tmp_path_factory.mktemp("e2e") / "a study's folder"
    workdir.mkdir()
    out = workdir / "outputs" / "my_study"
    config = tiny_config(out, seeds=(42, 101, 28), summary_metrics=["val/loss", "val/acc"])
    config["test_dataset"] = {"size": 32}
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WATCH, "launch", str(path)],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    return path, out, result
