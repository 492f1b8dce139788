"""The shape of a study's runs, decided once from the training config in
config loading: what kind of run it is and which module the child starts as.
Later modules ask ``spec.shape``, not the raw config."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.contract.child import COMMAND_ENTRY, TRAIN_ENTRY

__all__ = ["RunKind", "RunShape", "run_shape"]


class RunKind(enum.Enum):
    LIGHTNING = "lightning"  # model, data and Trainer built by worker.build
    COMMAND = "command"  # a ``command:`` program of the user's own


@dataclass(frozen=True)
class RunShape:
    kind: RunKind
    entry: str  # the child's entry module, from the contract

    @property
    def is_command(self) -> bool:
        return self.kind is RunKind.COMMAND


def run_shape(training: Mapping[str, Any]) -> RunShape:
    """The shape of a run of ``training`` (a validated training config)."""
    if "command" in training:
        return RunShape(RunKind.COMMAND, COMMAND_ENTRY)
    return RunShape(RunKind.LIGHTNING, TRAIN_ENTRY)
