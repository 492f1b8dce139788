"""The config's top-level keys: the ones xorch knows, near-misses of them or of
a key that belongs one level down refused, any other block warned about."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.contract.child import SEED_TASK_BLOCKS, is_seed_shape
from orchestrator.errors import ConfigError
from orchestrator.runner_spec import RUNNER_KEY, RUNNER_KEYS

__all__ = ["TOP_LEVEL_KEYS", "top_level_keys"]

TOP_LEVEL_KEYS = (
    "mode",
    RUNNER_KEY,
    "model",
    "data",
    "pl_trainer",
    "trainer",
    "callbacks",
    "logger",
    "seed",
    "deterministic_cudnn",
    "test_dataset",
    "run_test",
    "command",  # a program to run instead of model and data (orchestrator.command)
    "resume_args",  # arguments added to a command only when there is a checkpoint
    "metrics_from_log",  # regular expressions that read a command's printed metrics
    "cwd",  # where a command runs: config_dir (default) or run_dir
    "search",  # an Optuna search over the training config (orchestrator.search)
)

# Keys that belong one level down: written at the top level they would be
# passed along and never used (a max_epochs that silently does nothing).
_NESTED_HOMES = {
    **{
        k: "pl_trainer"
        for k in (
            "max_epochs",
            "min_epochs",
            "max_steps",
            "accelerator",
            "devices",
            "precision",
            "strategy",
            "num_nodes",
            "gradient_clip_val",
            "accumulate_grad_batches",
            "check_val_every_n_epoch",
            "log_every_n_steps",
            "default_root_dir",
            "logger",
            "enable_checkpointing",
            "enable_progress_bar",
            "limit_train_batches",
            "limit_val_batches",
            "val_check_interval",
            "deterministic",
            "benchmark",
        )
    },
    **{k: RUNNER_KEY for k in RUNNER_KEYS},
}


# Top-level keys of the lightning-hydra-template layout, taken as they are
# (`train: true` is not a typo of `trainer`; `test: true` runs the test after
# training); only the two whose value xorch cannot honour are said, once.
_HYDRA_TEMPLATE_KEYS = ("train", "test", "task_name", "tags", "ckpt_path", "paths", "extras")


def _template_key_warning(key: str, value: Any) -> str | None:
    if key == "train" and value is False:
        return "train: False is not used: every xorch run trains (use the template for test-only)"
    if key == "ckpt_path" and value is not None:
        return "ckpt_path is not used: each run resumes from its own last.ckpt"
    return None


def top_level_keys(
    path: Path, raw: Mapping[Any, Any], referenced: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """Refuse near-misses of our keys; the warnings for any other unknown block.

    Other blocks are passed to the worker as they are. One that some ``${...}``
    refers to (the seed's ``hyperparameters:`` and ``backbone:``) is known: it
    is how the config shares values. Any other is warned about."""
    warnings = []
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: top-level key {key!r} is not a string")
        if key in TOP_LEVEL_KEYS or key in referenced:
            continue
        if key in SEED_TASK_BLOCKS and is_seed_shape(dict(raw)):
            continue  # the seed's shape: worker.tasks.seed_task trains them
        if key in _HYDRA_TEMPLATE_KEYS:
            said = _template_key_warning(key, raw[key])
            if said:
                warnings.append(said)
            continue
        close = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1, cutoff=0.8)
        if close:
            raise ConfigError(f"unknown top-level key {key!r}: did you mean {close[0]!r}?")
        nested = difflib.get_close_matches(key, list(_NESTED_HOMES), n=1, cutoff=0.8)
        if nested:
            home = f"{_NESTED_HOMES[nested[0]]}.{nested[0]}"
            raise ConfigError(
                f"unknown top-level key {key!r}: did you mean {home!r}? "
                f"(move it into the {_NESTED_HOMES[nested[0]]} block)"
            )
        warnings.append(
            f"top-level key {key!r} is not one xorch knows; it is passed to the run's "
            "config unused unless the config refers to it (remove it if it is a typo)"
        )
    return tuple(warnings)
