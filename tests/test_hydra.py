"""Hydra-style config folders and the seed's interpolated style, end to end with
real children: composed and resolved by the torch-free parent, instantiated by
the child with hydra.utils.instantiate, with xorch's state, resume and refusals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import (
    FAULTY,
    TORCH_WATCH,
    faults_kill_and_resume,
    read_state,
    running_attempt,
    snapshot,
    wait_for,
    xorch,
    xorch_popen,
)

MAIN = """\
defaults:
  - model: mlp
  - data: blobs
  - trainer: cpu
  - _self_
mode: run-experiments
experiments_runner:
  seeds: [42, 101, 28]
  output_base_dir: {out}
  summary_metrics: [val/loss, val/acc]
seed: 12345
features: 8
classes: 3
callbacks:
  early_stopping:
    _target_: pytorch_lightning.callbacks.EarlyStopping
    monitor: val/loss
    patience: 1000
"""
GROUPS = {
    "model/mlp.yaml": """\
_target_: worker.tasks.hydra_style.HydraClassifier
net:
  _target_: worker.tasks.hydra_style.MLP
  features: ${features}
  hidden: 16
  classes: ${classes}
optimizer:
  _target_: torch.optim.SGD
  _partial_: true
  lr: 0.05
  momentum: 0.9
""",
    "data/blobs.yaml": """\
_target_: worker.tasks.quick.QuickDataModule
features: ${features}
classes: ${classes}
train_size: 64
val_size: 32
batch_size: 16
""",
    "trainer/cpu.yaml": """\
_target_: lightning.pytorch.Trainer
max_epochs: 2
accelerator: cpu
devices: 1
enable_progress_bar: false
enable_model_summary: false
log_every_n_steps: 1
""",
}


def yaml_scalar(text: str) -> str:
    """``text`` as one YAML scalar on one line (JSON's quoting is YAML's): a
    long temporary path must not be folded onto a second line."""
    return json.dumps(text)


def hydra_folder(workdir: Path, out: Path) -> Path:
    folder = workdir / "conf"
    for name, text in GROUPS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    main = folder / "train.yaml"
    main.write_text(MAIN.format(out=yaml_scalar(str(out))))
    return main


@pytest.mark.lightning  # each config shape, trained for real
def test_a_hydra_folder_study_survives_a_killed_parent_and_resumes(workdir):
    out = workdir / "out"
    main = hydra_folder(workdir, out)
    longer = "trainer.max_epochs=40"  # an override in Hydra's grammar, composed in
    parent = xorch_popen("launch", str(main), longer, cwd=workdir)
    try:
        wait_for(lambda: running_attempt(out, 1) is not None, timeout=120, what="run 1 training")
        parent.send_signal(signal.SIGKILL)
        _, stderr = parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert "top-level seed: 12345 is not used" in stderr
    assert "top-level key 'features'" not in stderr  # interpolated somewhere: known

    resumed = subprocess.run(
        [sys.executable, "-c", TORCH_WATCH, "launch", str(main), longer, "--resume"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "PARENT-IMPORTED False False" in resumed.stderr  # composing imports no torch
    state = read_state(out)
    assert [r["status"] for r in state["runs"]] == ["completed"] * 3
    assert state["runs"][1]["attempts"][0]["outcome"] == "interrupted"
    # The parent keeps the resolved config: interpolations and the override applied.
    training = state["training_config"]
    assert training["model"]["net"]["features"] == 8
    assert training["pl_trainer"] == {
        "max_epochs": 40,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    }
    summary = pd.read_csv(out / "summary.csv", dtype={"run": str})
    assert list(summary["run"]) == ["0", "1", "2", "mean", "std"]
    assert summary["val/acc"].iloc[:3].notna().all()


# Seed 1 raises, seed 2 hangs, seed 3 waits for the test to kill xorch: each in
# its first attempt only (tests/fixtures/faulty.py), so a retry or a resume completes.
FAULTS = {"1": "raise_once", "2": "hang_once", "3": "wait_once"}
# One run at a time, so the runs meet their faults in seed order; a hang is
# called after 30 s without a beat (the startup beats cover importing torch).
FAULT_RUNNER = {
    "seeds": [1, 2, 3],
    "max_retries": 1,
    "hang_timeout": 12,  # beats every 2 s, from before the torch import on
    "grace_period": 2,
    "gpus": "none",
    "max_parallel": 1,
}


@pytest.mark.lightning  # each config shape, trained for real
def test_a_hydra_folder_study_survives_an_exception_a_hang_and_a_kill(workdir):
    out = workdir / "out"
    main = hydra_folder(workdir, out)
    shutil.copy(FAULTY, main.parent / "faulty.py")  # the user's module, beside train.yaml
    # A model group of its own, picked on the command line (model=faulty).
    (main.parent / "model" / "faulty.yaml").write_text(
        "_target_: faulty.FaultyClassifier\n"
        f"faults: {FAULTS}\n"
        "features: ${features}\nhidden: 16\nclasses: ${classes}\nlr: 0.05\n"
    )
    runner = "\n".join(f"  {k}: {v}" for k, v in FAULT_RUNNER.items() if k != "seeds")
    main.write_text(main.read_text().replace("seeds: [42, 101, 28]", f"seeds: [1, 2, 3]\n{runner}"))
    state = faults_kill_and_resume(main, out, "model=faulty")
    assert state["training_config"]["model"]["faults"] == FAULTS
    assert state["training_config"]["model"]["features"] == 8  # ${features}, resolved


SEED_STYLE = """\
mode: run-experiments
experiments_runner:
  seeds: [1, 2]
  output_base_dir: {out}
  summary_metrics: [val/loss]
backbone:
  name: mlp
  hidden: 16
hyperparameters:
  model_name: quick_${{backbone.name}}
  batch_size: 16
  epochs: 1
  max_lr: 5e-2
model:
  class_path: worker.tasks.quick.QuickClassifier
  init_args: {{features: 8, hidden: "${{backbone.hidden}}", classes: 3,
              lr: "${{hyperparameters.max_lr}}"}}
data:
  class_path: worker.tasks.quick.QuickDataModule
  init_args: {{features: 8, classes: 3, train_size: 64, val_size: 32,
              batch_size: "${{hyperparameters.batch_size}}"}}
pl_trainer:
  max_epochs: ${{hyperparameters.epochs}}
  accelerator: cpu
  devices: 1
  enable_progress_bar: false
  enable_model_summary: false
"""


@pytest.mark.lightning  # each config shape, trained for real
def test_the_seed_style_file_runs_and_resume_compares_the_resolved_config(workdir):
    out = workdir / "out"
    path = workdir / "my_experiment.yaml"
    path.write_text(SEED_STYLE.format(out=yaml_scalar(str(out))))
    first = xorch("launch", str(path), cwd=workdir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "warning" not in first.stderr  # hyperparameters and backbone are referred to
    assert read_state(out)["training_config"]["model"]["init_args"]["lr"] == 0.05
    assert len(pd.read_csv(out / "summary.csv")) == 4

    changed = xorch("launch", str(path), "--resume", "hyperparameters.max_lr=0.1", cwd=workdir)
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert "training config changed" in changed.stderr
    assert "hyperparameters.max_lr" in changed.stderr
    assert "model.init_args.lr" in changed.stderr

    runner_only = xorch(
        "launch",
        str(path),
        "--resume",
        "experiments_runner.summary_metrics=[val/acc]",
        cwd=workdir,
    )
    assert runner_only.returncode == 0, runner_only.stdout + runner_only.stderr
    assert read_state(out)["summary_metrics"] == ["val/acc"]


@pytest.mark.lightning  # each config shape, trained for real
def test_a_seed_style_study_survives_an_exception_a_hang_and_a_kill(workdir):
    out = workdir / "out"
    shutil.copy(FAULTY, workdir / "faulty.py")
    config = yaml.safe_load(SEED_STYLE.format(out=yaml_scalar(str(out))))
    config["experiments_runner"].update(FAULT_RUNNER, summary_metrics=["val/loss", "val/acc"])
    config["model"]["class_path"] = "faulty.FaultyClassifier"
    config["model"]["init_args"]["faults"] = FAULTS
    config["hyperparameters"]["epochs"] = 2
    path = workdir / "my_experiment.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert "${hyperparameters.max_lr}" in path.read_text()  # still the seed's style
    state = faults_kill_and_resume(path, out)
    assert state["training_config"]["pl_trainer"]["max_epochs"] == 2
    assert state["training_config"]["model"]["init_args"]["lr"] == 0.05


def test_an_interpolation_that_does_not_resolve_in_a_seed_style_file_is_exit_2(workdir):
    out = workdir / "out"
    path = workdir / "my_experiment.yaml"
    text = SEED_STYLE.format(out=yaml_scalar(str(out)))
    path.write_text(text.replace("${hyperparameters.max_lr}", "${hyperparameters.max_lrr}"))
    before = snapshot(workdir)
    result = xorch("launch", str(path), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("xorch: error: model.init_args.lr: ")
    assert "Interpolation key 'hyperparameters.max_lrr' not found" in line
    assert snapshot(workdir) == before


@pytest.mark.lightning  # two of its cases are found by the child's build
@pytest.mark.parametrize(
    ("change", "args", "expected"),
    [
        (
            lambda main: main.write_text(main.read_text() + "lr: ${optimizer.lrr}\n"),
            (),
            "lr: Interpolation key 'optimizer.lrr' not found",
        ),
        (lambda main: None, ("model=transformer",), "Could not find 'model/transformer'"),
        (
            lambda main: (main.parent / "model" / "mlp.yaml").write_text(
                GROUPS["model/mlp.yaml"].replace("hydra_style.MLP", "no_such_nets.MLP")
            ),
            ("--validate",),
            "model.net._target_ 'worker.tasks.no_such_nets.MLP': cannot import it",
        ),
        (
            lambda main: (main.parent / "model" / "mlp.yaml").write_text(
                GROUPS["model/mlp.yaml"].replace("momentum:", "momentun:")
            ),
            ("--validate",),
            "model.optimizer.momentun: SGD takes no argument 'momentun'",
        ),
    ],
    ids=[
        "unresolvable interpolation",
        "missing config group",
        "_target_ that does not import",
        "unknown argument of a partial",
    ],
)
def test_bad_hydra_input_is_one_line_exit_2_and_writes_nothing(workdir, change, args, expected):
    out = workdir / "out"
    main = hydra_folder(workdir, out)
    change(main)
    if args == ("--validate",):  # found by validate's build child, before any run
        result = xorch("validate", str(main), cwd=workdir)
    else:
        result = xorch("launch", str(main), *args, cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()


@pytest.mark.lightning  # the child's build finds it
def test_a_target_that_does_not_import_stops_launch_with_exit_2_and_leaves_nothing(workdir):
    """The parent never imports user code, so under launch the first run's child
    finds the bad _target_: one line naming the key, no retry, exit 2, and the
    study folder that launch made is removed again."""
    out = workdir / "out"
    main = hydra_folder(workdir, out)
    (main.parent / "model" / "mlp.yaml").write_text(
        GROUPS["model/mlp.yaml"].replace("hydra_style.MLP", "no_such_nets.MLP")
    )
    result = xorch("launch", str(main), "+experiments_runner.max_retries=2", cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    line = "model.net._target_ 'worker.tasks.no_such_nets.MLP': cannot import it"
    assert f"xorch: error: a run could not be built from the config: {line}" in result.stderr
    assert result.stdout.count("starting attempt") == 1  # no retry, no second run
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()


@pytest.mark.lightning  # the child's build finds it
def test_a_target_that_is_not_a_lightning_module_is_refused_without_being_called(workdir):
    out = workdir / "out"
    main = hydra_folder(workdir, out)
    marker = workdir / "called"
    (main.parent / "model" / "mlp.yaml").write_text(
        f"_target_: os.system\ncommand: {yaml_scalar('touch ' + str(marker))}\n"
    )
    result = xorch("launch", str(main), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "model._target_ 'os.system' names a function, not a class" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()
    assert not out.exists()


def test_hydra_layout_keys_are_read_in_the_parent(workdir):
    """lightning-hydra-template's shapes: what xorch reads from them, without a child."""
    from orchestrator.config import load_study

    main = hydra_folder(workdir, workdir / "out")
    main.write_text(
        main.read_text() + "train: true\nckpt_path: elsewhere.ckpt\nlogger:\n  csv: {_target_: "
        "pytorch_lightning.loggers.CSVLogger, save_dir: logs}\n  wandb: null\n"
        "  aim: {experiment: blobs}\n"  # names no class: skipped, as the template does
    )
    spec = load_study(main)
    assert spec.training["pl_trainer"]["logger"] == [
        {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "logs"}
    ]
    assert "_target_" not in spec.training["pl_trainer"]
    assert spec.training["callbacks"][0]["monitor"] == "val/loss"
    # train: true is taken as it is; a ckpt_path xorch cannot honour is said.
    assert not any("train" in w for w in spec.warnings), spec.warnings
    assert any("ckpt_path is not used" in w for w in spec.warnings), spec.warnings


@pytest.mark.parametrize(
    ("group", "text", "expected"),
    [
        ("trainer/cpu.yaml", "_target_: my.Trainer\n", "xorch builds the Trainer itself"),
        ("model/mlp.yaml", "_target_: a.B\n_partial_: true\n", "model._partial_"),
        ("model/mlp.yaml", "_target_: a.B\nlr: ???\n", "model.lr: the value is ??? (required)"),
        (
            "data/blobs.yaml",
            "_target_: a.B\nout: ${hydra:job.nonsense}\n",
            "${hydra:job.nonsense} has no value in an xorch run",
        ),
    ],
)
def test_hydra_shapes_xorch_cannot_honour_are_refused_by_the_parent(workdir, group, text, expected):
    from orchestrator.config import load_study
    from orchestrator.errors import ConfigError

    main = hydra_folder(workdir, workdir / "out")
    (main.parent / group).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_study(main)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_an_experiment_config_overrides_groups_as_hydra_composes_it(workdir):
    from orchestrator.config import load_study

    main = hydra_folder(workdir, workdir / "out")
    (main.parent / "model" / "wide.yaml").write_text(
        GROUPS["model/mlp.yaml"].replace("hidden: 16", "hidden: 64")
    )
    (main.parent / "experiment").mkdir()
    (main.parent / "experiment" / "wide.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: wide\nclasses: 5\n"
    )
    spec = load_study(main, ["+experiment=wide", "model.optimizer.lr=0.2"])
    net = spec.training["model"]["net"]
    assert (net["hidden"], net["classes"]) == (64, 5)
    assert spec.training["data"]["classes"] == 5
    assert spec.training["model"]["optimizer"]["lr"] == 0.2
