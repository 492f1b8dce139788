"""Issue 20: classes written with ``import lightning as L``. Until runs are built
with either package, such a class is refused with a line that says why and how
to fix it, and ``validate --fast`` never reads as a full pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import tiny_config, xorch


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
