"""Issue 20: classes written with ``import lightning as L``. A run is built and
trained with the package its classes come from; classes of both packages in one
config are one line, and ``validate --fast`` never reads as a full pass."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, tiny_config, xorch


@pytest.mark.parametrize(
    ("class_path", "kind"),
    [
        ("lightning.pytorch.demos.boring_classes.BoringModel", "LightningModule"),
        ("lightning.pytorch.demos.boring_classes.BoringDataModule", "LightningDataModule"),
    ],
)
def test_a_lightning_package_class_is_refused_naming_the_package(
    class_path: str, kind: str
) -> None:
    import pytorch_lightning as pl

    from worker.build import BuildError, resolve_class

    with pytest.raises(BuildError) as caught:
        resolve_class({"class_path": class_path}, "model", getattr(pl, kind))
    message = str(caught.value)
    assert f"of pytorch_lightning (it is lightning's {kind})" in message
    assert "import every class of a run from one package" in message
    assert "\n" not in message


def test_validate_fast_says_it_did_not_build(
    write_config: Callable[..., Path], workdir: Path
) -> None:
    config = write_config(tiny_config(workdir / "out", seeds=(1,)))
    result = xorch("validate", "--fast", str(config), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("not built (--fast)")
    assert "without --fast" in result.stdout


@pytest.mark.parametrize(
    "target",
    [
        "lightning.pytorch.trainer.Trainer",
        "lightning.pytorch.trainer.trainer.Trainer",
        "lightning.pytorch.Trainer",
        "lightning.Trainer",
        "pytorch_lightning.Trainer",
        "pytorch_lightning.trainer.trainer.Trainer",
    ],
)
def test_the_trainer_may_be_named_by_any_of_its_module_paths(target: str) -> None:
    import importlib

    from orchestrator.compose import trainer_arguments

    module, _, name = target.rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == "Trainer"  # a real path
    args = trainer_arguments({"_target_": target, "max_epochs": 2}, "trainer")
    assert args == {"max_epochs": 2}


def test_a_trainer_target_that_is_no_trainer_is_refused() -> None:
    from orchestrator.compose import trainer_arguments
    from orchestrator.errors import ConfigError

    with pytest.raises(ConfigError, match="xorch builds the Trainer itself"):
        trainer_arguments({"_target_": "lightning.pytorch.Callback"}, "trainer")


def test_the_package_is_chosen_from_the_classes() -> None:
    import pytorch_lightning as pl
    from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel

    from worker.lightning_package import package_for

    assert package_for({"model": BoringModel, "data": BoringDataModule}).__name__ == (
        "lightning.pytorch"
    )
    assert package_for({"model": pl.LightningModule, "data": None}).__name__ == (
        "pytorch_lightning"
    )


def test_classes_of_two_packages_are_refused_in_one_line() -> None:
    import pytorch_lightning as pl
    from lightning.pytorch.demos.boring_classes import BoringModel

    from worker.build import BuildError
    from worker.lightning_package import package_for

    with pytest.raises(BuildError) as caught:
        package_for({"model": BoringModel, "data": pl.LightningDataModule})
    assert str(caught.value) == (
        "model is lightning.pytorch, data is pytorch_lightning: import both from one package"
    )


def _lightning_config(output_dir: Path, seeds: tuple[int, ...]) -> dict[str, Any]:
    config = tiny_config(output_dir, seeds=seeds)
    config["model"] = {"class_path": "tests.fixtures.lightning_project.TinyRegressor"}
    config["data"] = {"class_path": "tests.fixtures.lightning_project.TinyData"}
    return config


@pytest.mark.lightning
def test_a_study_of_lightning_package_classes_trains_with_that_package(
    write_config: Callable[..., Path], workdir: Path
) -> None:
    out = workdir / "out"
    config = write_config(_lightning_config(out, seeds=(1, 2)))
    # The fixture's module is found as a user's own package is: on PYTHONPATH.
    result = xorch("launch", str(config), cwd=workdir, timeout=600, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    with (out / "summary.csv").open() as f:
        rows = [row for row in csv.DictReader(f) if row["run"].isdigit()]  # not mean/std
    # A pytorch_lightning Trainer refuses a lightning.pytorch module: trained means
    # it was built with lightning.pytorch.
    assert [row["seed"] for row in rows] == ["1", "2"]
    assert all(float(row["val/loss"]) >= 0 for row in rows)
    assert rows[0]["val/loss"] != rows[1]["val/loss"]  # two seeds, two trainings


def test_a_config_mixing_the_two_packages_is_refused_in_one_line(tmp_path: Path) -> None:
    from worker.check_build import check_build

    config = _lightning_config(tmp_path, seeds=(1,))
    config["callbacks"] = [
        {
            "class_path": "pytorch_lightning.callbacks.EarlyStopping",
            "init_args": {"monitor": "val/loss"},
        }
    ]
    problems, built = check_build(config)
    assert problems == [
        "model is lightning.pytorch, callbacks[0] is pytorch_lightning: "
        "import both from one package"
    ]
    assert built == []
