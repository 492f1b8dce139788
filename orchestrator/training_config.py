"""The training part of a config (everything but ``mode`` and the runner
block), checked: the trainer block, a Hydra ``logger:``, a command's keys, the
``class_path`` / ``_target_`` entries of model, data and callbacks, the flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.command import check_command
from orchestrator.compose import check_target_entry, move_logger, trainer_arguments
from orchestrator.errors import ConfigError
from orchestrator.runner_spec import RUNNER_KEY
from orchestrator.setting_values import kind_of

__all__ = ["training_part"]


def training_part(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The training part of a config (all but ``mode`` and the runner block), checked."""
    if "pl_trainer" in raw and "trainer" in raw:
        raise ConfigError("both pl_trainer and trainer are set; they are one key, keep one")
    trainer_key = "pl_trainer" if "pl_trainer" in raw else "trainer"
    trainer = raw.get(trainer_key)
    if trainer is not None and not isinstance(trainer, dict):
        raise ConfigError(
            f"pl_trainer must be a mapping of Trainer arguments, not a {kind_of(trainer)}"
        )
    if trainer is not None:
        raw = {**raw, trainer_key: trainer_arguments(trainer, trainer_key)}
    if "logger" in raw:
        raw = move_logger(raw, trainer_key)
    for key in ("resume_args", "metrics_from_log", "cwd"):
        if key in raw and "command" not in raw:
            raise ConfigError(f"{key} is set without command: remove it or add a command")
    if "command" in raw:
        check_command(path, raw)
    for key in ("model", "data"):
        if "command" not in raw and (key in raw or key == "model"):
            _class_entry(raw.get(key), key)
    callbacks = raw.get("callbacks")
    if isinstance(callbacks, dict) and not ({"_target_", "class_path"} & set(callbacks)):
        # Hydra's layout: callbacks by name. One that is null (dropped from a
        # default) or names no class is skipped, as the template's
        # instantiate_callbacks skips it.
        callbacks = [
            entry
            for entry in callbacks.values()
            if isinstance(entry, dict) and ({"_target_", "class_path"} & set(entry))
        ]
        raw = {**raw, "callbacks": callbacks}
    if callbacks is not None:
        if not isinstance(callbacks, list):
            raise ConfigError(
                "callbacks must be a list of {class_path, init_args} or _target_ entries "
                "(or, as Hydra writes it, a mapping of such entries by name)"
            )
        for i, entry in enumerate(callbacks):
            _class_entry(entry, f"callbacks[{i}]")
    for key in ("deterministic_cudnn", "run_test"):
        if key in raw and not isinstance(raw[key], bool):
            raise ConfigError(f"{key} must be true or false, not {raw[key]!r}")
    if "test_dataset" in raw and not isinstance(raw["test_dataset"], (dict, type(None))):
        raise ConfigError("test_dataset must be a mapping (for built-in data: {size: N})")

    training = {k: v for k, v in raw.items() if k not in ("mode", RUNNER_KEY, "search")}
    if "trainer" in training:  # one spelling downstream
        training["pl_trainer"] = training.pop("trainer")
    return training


def _class_entry(entry: Any, where: str) -> None:
    if isinstance(entry, dict) and "_target_" in entry:
        check_target_entry(entry, where)
        return
    if not isinstance(entry, dict) or not isinstance(entry.get("class_path"), str):
        raise ConfigError(
            f"{where} needs class_path: pkg.module.Class (and optional init_args: {{...}}), "
            "or _target_: pkg.module.Class with its arguments beside it"
        )
    if "." not in entry["class_path"]:
        raise ConfigError(
            f"{where}.class_path {entry['class_path']!r} must be dotted: pkg.module.Class"
        )
    unknown = set(entry) - {"class_path", "init_args"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; use class_path and init_args"
        )
    if not isinstance(entry.get("init_args", {}), dict):
        raise ConfigError(f"{where}.init_args must be a mapping of constructor arguments")
