"""A project in lightning-hydra-template's shape (tests/fixtures/template_project:
``import lightning``, rootutils' ``.project-root``, ``${hydra:...}`` paths,
``# @package _global_`` configs, logger and callback groups, an ``experiment/``
config, the template's ``hydra:`` group) run as it is: the only addition is a
wrapper config with an ``experiments_runner`` block, launched from the project
folder as the template's users run ``python src/train.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from orchestrator.config import load_study
from orchestrator.contract.child import RUN_DIR_MARK
from tests.helpers import ROOT, faults_kill_and_resume, read_state, xorch

FIXTURE = ROOT / "tests" / "fixtures" / "template_project"


def project(tmp_path: Path, seeds: list[int], **runner: object) -> tuple[Path, Path]:
    """A copy of the fixture and its wrapper config; returns (wrapper, output folder)."""
    folder = tmp_path / "my template project"
    shutil.copytree(FIXTURE, folder)
    out = tmp_path / "outputs"
    block = {"seeds": seeds, "output_base_dir": str(out),
             "summary_metrics": ["val/acc", "test/acc"], **runner}  # fmt: skip
    wrapper = {"defaults": ["train", "_self_"], "experiments_runner": block}
    path = folder / "configs" / "xorch.yaml"
    path.write_text(yaml.safe_dump(wrapper, sort_keys=False))
    return path, out


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    path, out = project(tmp_path, [1, 2, 3])
    monkeypatch.chdir(path.parents[1])
    return path, out


def test_the_template_composes_as_hydra_runs_it(in_project: tuple[Path, Path]) -> None:
    path, _ = in_project
    spec = load_study(path, ["experiment=example", "logger=csv"])
    training = spec.training
    root = path.parents[1]
    # rootutils' PROJECT_ROOT, from the .project-root file above the configs
    assert training["paths"]["root_dir"] == str(root)
    assert training["paths"]["data_dir"] == f"{root}/data/"
    # ${hydra:runtime.output_dir} is each run's own folder, filled in by the child;
    # ${hydra:runtime.cwd} the folder xorch was launched from
    assert training["paths"]["output_dir"] == RUN_DIR_MARK
    assert training["paths"]["work_dir"] == str(root)
    checkpoint = training["callbacks"][0]
    assert checkpoint["_target_"] == "lightning.pytorch.callbacks.ModelCheckpoint"
    assert checkpoint["dirpath"] == f"{RUN_DIR_MARK}/checkpoints"
    # experiment=example (# @package _global_) overrides the groups' values
    assert training["pl_trainer"]["max_epochs"] == 2
    assert training["model"]["optimizer"]["lr"] == 0.02
    assert training["data"]["batch_size"] == 32
    # logger=csv: the CSV logger only; the experiment's wandb/aim settings name no
    # class and are skipped, as the template's instantiate_loggers skips them
    (logger,) = training["pl_trainer"]["logger"]
    assert logger["_target_"] == "lightning.pytorch.loggers.csv_logs.CSVLogger"
    assert logger["save_dir"] == RUN_DIR_MARK


def test_validate_takes_the_template_without_edits_or_noise(
    in_project: tuple[Path, Path],
) -> None:
    path, out = in_project
    result = xorch("validate", "--fast", str(path), "experiment=example", cwd=path.parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config ok" in result.stdout and "3 runs" in result.stdout
    # The template's own keys (test: True is run_test) raise no warning; colorlog
    # composes without hydra-colorlog installed.
    said = result.stdout + result.stderr
    for key in ("'test'", "'task_name'", "'tags'", "'train'", "'extras'", "colorlog"):
        assert key not in said, said
    assert not out.exists()


def test_a_hydra_key_without_a_meaning_in_a_run_is_one_line(
    in_project: tuple[Path, Path],
) -> None:
    path, out = in_project
    result = xorch("validate", "--fast", str(path), "+tags_dir=${hydra:job.nonsense}",
                   cwd=path.parents[1])  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert "hydra:job.nonsense" in line and line.startswith("xorch: error:")
    assert not out.exists()


FAULTS = ROOT / "tests" / "fixtures" / "first_attempt_faults.py"
# The template's own knobs, kept tiny: 3 epochs of 96 items.
TINY = ["trainer.max_epochs=3", "logger=csv"]
# The fault callback joins the template's callbacks group from the command line;
# at the start of epoch 2 of attempt 1 run 0 raises, run 1 hangs, run 2 waits.
FAULT_OVERRIDES = [
    "+callbacks.faults._target_=first_attempt_faults.FirstAttemptFaults",
    "+callbacks.faults.epoch=2",
    "+callbacks.faults.raise_in_run=0",
    "+callbacks.faults.hang_in_run=1",
    "+callbacks.faults.wait_in_run=2",
]
# One run at a time, so the runs meet their faults in order; a hang is called
# after 12 s without a beat (a Lightning child beats every 2 s).
FAULT_RUNNER = {"max_retries": 1, "hang_timeout": 12, "grace_period": 2, "gpus": "none",
                "max_parallel": 1}  # fmt: skip


@pytest.mark.slow  # a minute or more: started first under xdist (tests/conftest.py)
@pytest.mark.lightning  # the template's project trained for real, with lightning.pytorch
def test_the_template_survives_an_exception_a_hang_and_a_kill_and_resumes_bit_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    path, out = project(tmp_path / "faulted", [1, 2, 3], **FAULT_RUNNER)
    root = path.parents[1]
    shutil.copy(FAULTS, root / "first_attempt_faults.py")  # a module of the project's own
    state = faults_kill_and_resume(path, out, *TINY, *FAULT_OVERRIDES, metric="test/acc",
                                   raised="RuntimeError: crash on purpose (run 0, epoch 2)",
                                   cwd=root)  # fmt: skip
    # Each retry and the resume went on from the template's own last.ckpt.
    for record in state["runs"]:
        assert record["attempts"][1]["resumed_from"].endswith("checkpoints/last.ckpt")
    logs = list((out / "run_00_seed1" / "csv").glob("version_*/metrics.csv"))
    assert logs, "the template's CSV logger writes in the run's folder"

    # The same seeds never stopped end with the same numbers (val/acc_best is a
    # torchmetrics state the template does not checkpoint, so it is left out).
    reference, reference_out = project(tmp_path / "whole", [1, 2, 3])
    whole = xorch("launch", str(reference), *TINY, cwd=reference.parents[1], timeout=600)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    uninterrupted_runs = read_state(reference_out)["runs"]
    for resumed, uninterrupted in zip(state["runs"], uninterrupted_runs, strict=True):
        for name in ("val/loss", "val/acc", "test/loss", "test/acc", "train/loss", "train/acc"):
            assert resumed["metrics"][name] == uninterrupted["metrics"][name], name
