"""Folds times seeds: ``experiments_runner.folds: {n: 5, key: data.init_args.fold}``.

Every seed runs every fold ``0..n-1``. A run's training config gets its fold
index at the dotted ``key`` (``with_fold``, the same for a Hydra config:
``data.fold``); a ``command:`` study takes no key and gets the fold as
``{fold}`` and ``XORCH_FOLD``. The split itself is the user's data module's:
``check_fold_key`` refuses, before anything runs, a key the config does not
provide (``xorch validate``'s build check then refuses a data module that has
no such init argument, as it refuses any unknown one). Adaptive seeds with
folds are refused: their stop rule is over seeds, and a fold is a block, not a
seed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.setting_values import kind_of, refuse_unknown_keys, short, whole
from orchestrator.state import FoldSpec

__all__ = ["FOLD_KEYS", "MAX_FOLDS", "check_fold_key", "parse_folds", "with_fold"]

FOLD_KEYS = ("n", "key")
MAX_FOLDS = 1000  # a k of thousands is leave-one-out; split it into studies
_WHERE = "experiments_runner.folds"
# Where a missing last key is still the class's argument: its arguments' mapping
# (jsonargparse's init_args) or a Hydra entry (its arguments sit beside _target_).
_ARGUMENT_HOLDERS = ("init_args",)
_CLASS_KEYS = ("_target_", "class_path")


def parse_folds(value: Any, adaptive: bool) -> FoldSpec | None:
    """The ``folds`` block -> ``FoldSpec`` (None when absent); one line per mistake."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{_WHERE} must be a mapping like {{n: 5, key: data.init_args.fold}}, "
            f"not a {kind_of(value)}"
        )
    refuse_unknown_keys(value, FOLD_KEYS, _WHERE)
    if "n" not in value:
        raise ConfigError(f"{_WHERE} needs n: the number of folds, like {{n: 5, key: ...}}")
    n = whole(value["n"], f"{_WHERE}.n", minimum=2, maximum=MAX_FOLDS)
    key = value.get("key")
    if key is not None and (
        not isinstance(key, str) or not key or any(not part for part in key.split("."))
    ):
        raise ConfigError(
            f"{_WHERE}.key is {short(key)}; give the dotted key of the fold index in the "
            "training config, like data.init_args.fold"
        )
    if adaptive:
        raise ConfigError(
            f"{_WHERE} with adaptive seeds (n_runs: {{min, max, until}}) is not supported: "
            "give n_runs a number or a seeds list"
        )
    return FoldSpec(n, key)


def check_fold_key(folds: FoldSpec, training: Mapping[str, Any], command: bool, where: str) -> None:
    """Refuse a fold key the training config does not provide: every key above it
    must be a mapping in the config, and the last one must be there too, unless
    its mapping is a class's arguments (``init_args``, or a ``_target_`` entry),
    whose class the build check asks. A command study takes no key."""
    if command:
        if folds.key is not None:
            raise ConfigError(
                f"{_WHERE}.key: a command study gets the fold as {{fold}} and XORCH_FOLD; "
                "remove key (or use a model and data config)"
            )
        return
    if folds.key is None:
        raise ConfigError(
            f"{_WHERE} needs key: the dotted key of the fold index in the training config, "
            "like data.init_args.fold"
        )
    parts = folds.key.split(".")
    node: Any = training
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping):
            above = ".".join(parts[:depth])
            raise ConfigError(
                f"{where}{_WHERE}.key {folds.key}: {above} is a {kind_of(node)} in the config, "
                "not a mapping; name the data module's fold argument"
            )
        last = depth == len(parts) - 1
        if part not in node:
            holder = parts[depth - 1] if depth else ""
            if last and (holder in _ARGUMENT_HOLDERS or any(k in node for k in _CLASS_KEYS)):
                return
            # ``data.init_args.fold`` where data names its class but gives no arguments
            if depth == len(parts) - 2 and part in _ARGUMENT_HOLDERS and "class_path" in node:
                return
            missing = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"{where}{_WHERE}.key {folds.key}: the config has no {missing}; name the key "
                "your data module reads its fold from (e.g. data.init_args.fold)"
            )
        node = node[part]


def with_fold(training: Mapping[str, Any], folds: FoldSpec | None, fold: int | None) -> dict:
    """A copy of ``training`` with ``fold`` at the fold key (unchanged without one)."""
    # Imported here: overrides -> yaml_file -> runner_spec, which imports this module.
    from orchestrator.overrides import set_dotted

    config = copy.deepcopy(dict(training))
    if folds is None or folds.key is None or fold is None:
        return config
    blocked = set_dotted(config, folds.key, fold)
    assert blocked is None, "check_fold_key let through a key with a value on its way"
    return config
