"""Scripts run as they are: arguments that exist only on a resume, metrics a
program only prints."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.contract.failure_text import exception_line
from tests.helpers import read_state, xorch

# Refuses an empty --ckpt_path as LightningCLI does; the first attempt leaves
# a checkpoint and fails, the retry must be given it.
SCRIPT = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--ckpt_path", default=None)
args = parser.parse_args()
out = os.environ["XORCH_RUN_DIR"]
if args.ckpt_path is not None and not args.ckpt_path:
    sys.exit("ckpt_path is empty")
with open(os.path.join(out, "argv_" + os.environ["XORCH_ATTEMPT"] + ".json"), "w") as f:
    json.dump(sys.argv[1:], f)
if args.ckpt_path is None:
    open(os.path.join(out, "last.ckpt"), "w").write("state")
    raise RuntimeError("first attempt stops")
with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"score": 1.0}, f)
"""


PRINTING = Path(__file__).parent / "fixtures" / "printing_script.py"
MNIST_PATTERNS = {
    "test/loss": r"Average loss: ([0-9.]+)",
    "test/acc": r"Accuracy: \d+/\d+ \(([0-9.]+)%\)",
}


def study(
    folder: Path,
    runner: dict[str, object] | None = None,
    command: list[str] | None = None,
    **extra: object,
) -> Path:
    (folder / "train.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    config = {
        "experiments_runner": {
            "output_base_dir": str(folder / "out"),
            "seeds": [3],
            "summary_metrics": ["score"],
            "max_retries": 1,
            **(runner or {}),
        },
        "command": command or ["python", "train.py", "--seed", "{seed}"],
        **extra,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_resume_args_are_given_only_when_there_is_a_checkpoint_and_the_state_names_it(workdir):
    path = study(workdir, resume_args=["--ckpt_path", "{resume_from}"])
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    run = workdir / "out" / "run_00_seed3"
    assert json.loads((run / "argv_1.json").read_text()) == ["--seed", "3"]
    assert json.loads((run / "argv_2.json").read_text()) == [
        "--seed",
        "3",
        "--ckpt_path",
        str(run / "last.ckpt"),
    ]
    attempts = read_state(workdir / "out")["runs"][0]["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed", "completed"]
    # The program never calls worker.report: xorch itself notes what it gave.
    assert [a["resumed_from"] for a in attempts] == [None, "run_00_seed3/last.ckpt"]


def test_resume_args_with_an_unknown_placeholder_exit_2_naming_the_key(workdir):
    path = study(workdir, resume_args=["--ckpt_path", "{checkpoint}"])
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2
    assert "resume_args[1]" in result.stdout + result.stderr
    assert not (workdir / "out").exists()


def printing_study(folder: Path, *args: str, **extra: object) -> Path:
    shutil.copy(PRINTING, folder / "main.py")
    runner = {"seeds": [1, 2, 3], "summary_metrics": ["test/loss", "test/acc"]}
    return study(folder, runner, ["python", "main.py", "--seed", "{seed}", *args], **extra)


def test_metrics_a_script_only_prints_are_read_from_its_log(workdir):
    path = printing_study(workdir, metrics_from_log=MNIST_PATTERNS)
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    out = workdir / "out"
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str}).set_index("run")
    # Last match wins: epoch 3's loss is 1/3 + noise; accuracy 93.x% rounds to 93-94.
    assert all(0.333 <= v <= 0.345 for v in summary.loc[["0", "1", "2"], "test/loss"])
    assert all(v in (93.0, 94.0) for v in summary.loc[["0", "1", "2"], "test/acc"])
    curve = pd.read_csv(
        out / "run_00_seed1" / "lightning_logs" / "version_from_log" / "metrics.csv"
    )
    assert list(curve["epoch"]) == [0, 1, 2]
    assert curve["test/loss"].iloc[0] > curve["test/loss"].iloc[2]
    plotted = xorch("plot", str(out), "-m", "test/loss", cwd=workdir)
    assert plotted.returncode == 0, plotted.stdout + plotted.stderr
    assert (out / "plots" / "curves.png").stat().st_size > 0


def test_a_last_line_of_json_is_taken_without_any_config(workdir):
    path = printing_study(workdir, "--json")
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = pd.read_csv(workdir / "out" / "summary.csv", dtype={"run": str}).set_index("run")
    assert 0.333 <= summary.loc["0", "test/loss"] <= 0.345


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ({"test/loss": "Average loss: ([0-9.]+"}, "metrics_from_log.test/loss"),
        ({"test/loss": "Average loss: [0-9.]+"}, "needs exactly one capture group"),
    ],
)
def test_a_bad_log_pattern_exits_2_naming_the_metric(workdir, patterns, message):
    path = printing_study(workdir, metrics_from_log=patterns)
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert not (workdir / "out").exists()


def test_cwd_run_dir_keeps_each_seeds_relative_outputs_apart(workdir):
    path = printing_study(workdir, "--json", cwd="run_dir")
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    out = workdir / "out"
    runs = ["run_00_seed1", "run_01_seed2", "run_02_seed3"]
    assert [(out / r / "mnist_cnn.pt").read_text() for r in runs] == ["1", "2", "3"]
    assert not (workdir / "mnist_cnn.pt").exists()


def test_a_bad_cwd_exits_2_naming_the_choices(workdir):
    path = printing_study(workdir, cwd="here")
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2
    assert "cwd 'here': must be run_dir" in result.stdout + result.stderr


def _chained() -> BaseException:
    try:
        try:
            {}["lr"]
        except KeyError as exc:
            raise ValueError("config is broken\nsee the optimizer block") from exc
    except ValueError as exc:
        return exc
    raise AssertionError("not reached")


def test_a_failure_line_is_the_messages_last_line_and_its_cause():
    assert exception_line(_chained()) == ("see the optimizer block (caused by KeyError: 'lr')")


CHAINED = """
def load():
    try:
        {}["lr"]
    except KeyError:
        raise RuntimeError("optimizer has no lr")
load()
"""


def test_a_scripts_failure_reason_names_the_cause_from_its_traceback(workdir):
    (workdir / "chained.py").write_text(CHAINED, encoding="utf-8")
    path = study(workdir, {"max_retries": 0}, ["python", "chained.py"])
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    attempt = read_state(workdir / "out")["runs"][0]["attempts"][-1]
    assert attempt["reason"] == (
        "exit status 1: RuntimeError: optimizer has no lr (caused by KeyError: 'lr')"
    )


LIGHTNING_SCRIPT = Path(__file__).parent / "fixtures" / "lightning_script.py"


def _lightning_val_loss(folder: Path, fault: bool, callback: bool = True) -> float:
    folder.mkdir()
    shutil.copy(LIGHTNING_SCRIPT, folder / "fit.py")
    runner = {"seeds": [4], "summary_metrics": ["val/loss"], "hang_timeout": 120}
    command = ["python", "fit.py", "--seed", "{seed}", *(["--rng-callback"] if callback else [])]
    path = study(folder, runner, command, resume_args=["--ckpt_path", "{resume_from}"])
    env = {"XORCH_FAULT": "1" if fault else "0"}
    result = xorch("launch", str(path), cwd=folder, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = read_state(folder / "out")["runs"][0]["attempts"]
    assert [a["outcome"] for a in attempts] == (["failed", "completed"] if fault else ["completed"])
    summary = pd.read_csv(folder / "out" / "summary.csv", dtype={"run": str}).set_index("run")
    return float(summary.loc["0", "val/loss"])


@pytest.mark.lightning
def test_a_lightning_script_with_the_rng_callback_resumes_with_the_uninterrupted_numbers(
    workdir,
):
    uninterrupted = _lightning_val_loss(workdir / "whole", fault=False)
    resumed = _lightning_val_loss(workdir / "resumed", fault=True)
    assert resumed == uninterrupted
    # Without it the resumed epochs draw other dropout masks and batch orders.
    plain = _lightning_val_loss(workdir / "plain", fault=True, callback=False)
    assert plain != uninterrupted
