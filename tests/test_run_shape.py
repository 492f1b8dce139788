"""A run's shape is decided once, when the spec is made."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.config import Mode, StudySpec
from orchestrator.contract.child import COMMAND_ENTRY, TRAIN_ENTRY
from orchestrator.run_shape import RunKind, run_shape
from orchestrator.runner_spec import RunnerSettings


def test_a_command_config_starts_the_command_wrapper_and_a_lightning_one_train_one() -> None:
    command = run_shape({"command": ["python", "train.py"]})
    lightning = run_shape({"model": {"class_path": "m.M"}, "trainer": {}})
    assert (command.kind, command.entry, command.is_command) == (
        RunKind.COMMAND,
        COMMAND_ENTRY,
        True,
    )
    assert (lightning.kind, lightning.entry, lightning.is_command) == (
        RunKind.LIGHTNING,
        TRAIN_ENTRY,
        False,
    )


def test_the_spec_carries_the_shape_of_its_training_also_after_replace() -> None:
    spec = StudySpec(
        Path("c.yaml"), Mode.RUN_EXPERIMENTS, RunnerSettings(), {"model": {}, "trainer": {}}
    )
    assert spec.shape.kind is RunKind.LIGHTNING
    command = dataclasses.replace(spec, training={"command": ["python", "t.py"]})
    assert command.shape.kind is RunKind.COMMAND and command.shape.entry == COMMAND_ENTRY
