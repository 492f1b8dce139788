"""What a child and its parent agree on beyond the files: the modules a child
starts as, the exit codes it ends with, the error type that marks a config
mistake, and the ``XORCH_*`` environment variables a run is told about."""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "ATTEMPT_ENV",
    "BUILD_ERROR_TYPE",
    "COMMAND_ENTRY",
    "RESUME_FROM_ENV",
    "RUN_DIR_ENV",
    "RUN_DIR_MARK",
    "SEED_TASK_BLOCKS",
    "TRAIN_ENTRY",
    "ChildExit",
    "is_seed_shape",
    "run_variable",
    "with_run_dir",
]

# The child's entry modules (``python -m <entry> RUN_SPEC_JSON``).
TRAIN_ENTRY = "worker.train_one"  # a Lightning run
COMMAND_ENTRY = "worker.command_run"  # a ``command:`` run

# ``worker.build.BuildError`` by name, as error.json's ``type`` holds it: the
# parent reads it as a config mistake (no retry), the child prints one line.
BUILD_ERROR_TYPE = "worker.build.BuildError"


class ChildExit(enum.IntEnum):
    """The exit statuses the worker's own code ends with."""

    OK = 0
    FAILED = 1  # an exception (error.json says which), or the parent died
    CONFIG_ERROR = 2  # a build error or a bad command line: retrying cannot help
    EXEC_FAILED = 127  # a ``command:`` program could not be started


def run_variable(name: str) -> str:
    """The environment variable that carries the run value ``name``
    (``run_dir`` -> ``XORCH_RUN_DIR``)."""
    return f"XORCH_{name.upper()}"


RUN_DIR_ENV = run_variable("run_dir")
ATTEMPT_ENV = run_variable("attempt")
RESUME_FROM_ENV = run_variable("resume_from")


# A training config's stand-in for the run's own folder, which the parent cannot
# know when it resolves the study's config (``${hydra:runtime.output_dir}`` is
# resolved to it): the child puts its run folder in its place before building.
RUN_DIR_MARK = "{xorch:run_dir}"


def with_run_dir(tree: Any, run_dir: str) -> Any:
    """``tree`` with every ``RUN_DIR_MARK`` in its strings replaced by ``run_dir``."""
    if isinstance(tree, str):
        return tree.replace(RUN_DIR_MARK, run_dir) if RUN_DIR_MARK in tree else tree
    if isinstance(tree, dict):
        return {key: with_run_dir(value, run_dir) for key, value in tree.items()}
    if isinstance(tree, list):
        return [with_run_dir(value, run_dir) for value in tree]
    return tree


# The seed project's config shape (pytorch-smt's): a plain network as ``model:``
# and these blocks beside it, which the child's built-in seed task wires
# together (worker.tasks.seed_task); the parent knows them as keys of that shape.
SEED_TASK_BLOCKS = (
    "loss", "optimizer", "scheduler_list", "train_dataset", "val_dataset", "metrics",
    "hyperparameters",
)  # fmt: skip


def is_seed_shape(config: Any) -> bool:
    """A config of the seed's shape: a loss and a training dataset beside the model,
    and no ``data:`` module (the two shapes are not mixed)."""
    return (
        isinstance(config, dict)
        and "loss" in config
        and "train_dataset" in config
        and "data" not in config
    )
