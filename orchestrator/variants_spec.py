"""The ``experiments_runner`` block's study of variants: ``variants`` (names and
dotted changes) and ``goal`` (which way each metric is better), checked."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.contract.paths import study_name_clash
from orchestrator.errors import ConfigError
from orchestrator.setting_values import kind_of, short

__all__ = ["VARIANT_NAME", "parse_goal", "parse_variants"]

_RUNNER_KEY = "experiments_runner"
# A variant names a folder under the study: one plain path component.
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Keys a variant may not change: they say how the study runs, not what a run trains.
_NOT_TRAINING = (_RUNNER_KEY, "mode", "seed")


def parse_variants(block: Any) -> dict[str, dict[str, Any]]:
    where = f"{_RUNNER_KEY}.variants"
    if block is None:
        return {}
    if not isinstance(block, dict) or not block:
        raise ConfigError(
            f"{where} must be a mapping of names to changes, like "
            "{baseline: {}, wide: {model.init_args.hidden: 256}}"
        )
    variants: dict[str, dict[str, Any]] = {}
    for name, changes in block.items():
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or name.endswith("."):
            raise ConfigError(
                f"{where}: {short(name)} is not a usable variant name; use letters, digits, "
                "_ . - (it names a folder, like baseline or lr_1e-3)"
            )
        clash = study_name_clash(name)
        if clash is not None:
            raise ConfigError(
                f"{where}.{name}: the variant's folder would collide with the study's own "
                f"{clash}; rename the variant, like {_free_name(name)}"
            )
        if changes is None:
            changes = {}
        if not isinstance(changes, dict):
            raise ConfigError(
                f"{where}.{name} must be a mapping of dotted keys to values, like "
                f"{{model.init_args.lr: 0.01}}, not a {kind_of(changes)}"
            )
        _check_changes(changes, f"{where}.{name}")
        variants[name] = dict(changes)
    return variants


def _free_name(name: str) -> str:
    """A suggestion for a variant whose name the study uses itself."""
    suggestion = "v_" + name.replace(".", "_")
    return suggestion if study_name_clash(suggestion) is None else "baseline"


def _check_changes(changes: dict[Any, Any], where: str) -> None:
    for key in changes:
        parts = key.split(".") if isinstance(key, str) else [""]
        if any(not part for part in parts):
            raise ConfigError(f"{where}: {short(key)} is not a dotted key like model.init_args.lr")
        if parts[0] in _NOT_TRAINING:
            raise ConfigError(
                f"{where}.{key}: a variant changes the training config only; "
                f"{parts[0]} is the same for every variant"
            )


def parse_goal(block: Any) -> dict[str, str]:
    where = f"{_RUNNER_KEY}.goal"
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(
            f"{where} must be a mapping of metric to min or max, like {{val/loss: min}}"
        )
    for metric, way in block.items():
        if not isinstance(metric, str) or not metric or way not in ("min", "max"):
            raise ConfigError(
                f"{where}.{metric}: {short(way)} is not min or max (which way is better)"
            )
    return dict(block)
