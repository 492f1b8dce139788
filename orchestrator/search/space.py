"""The search space in Optuna's words, and a trial's values in the config's:
the distributions, the grid, and the training config (or dotted changes) of
one set of values."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.overrides import set_dotted
from orchestrator.search.spec import Param, ParamKind

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["changes", "distributions", "grid", "grid_size", "trial_training"]


def distributions(space: tuple[Param, ...]) -> dict[str, BaseDistribution]:
    """One Optuna distribution per parameter, named by its dotted key."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    found: dict[str, BaseDistribution] = {}
    for p in space:
        if p.kind is ParamKind.FLOAT:
            found[p.key] = FloatDistribution(p.low, p.high, log=p.log)
        elif p.kind is ParamKind.INT:
            step = p.step
            found[p.key] = IntDistribution(int(p.low), int(p.high), log=p.log, step=step)
        else:
            found[p.key] = CategoricalDistribution(p.choices)
    return found


def grid(space: tuple[Param, ...]) -> dict[str, list[Any]]:
    """Every value of each parameter (no float: refused for grid by the spec);
    an int range ends at the last step not past ``high``, as Optuna's does."""
    values: dict[str, list[Any]] = {}
    for p in space:
        if p.kind is ParamKind.INT:
            values[p.key] = list(range(int(p.low), int(p.high) + 1, p.step))
        else:
            values[p.key] = list(p.choices)
    return values


def grid_size(space: tuple[Param, ...]) -> int:
    size = 1
    for values in grid(space).values():
        size *= len(values)
    return size


def changes(space: tuple[Param, ...], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """The dotted changes one trial makes (a block by its content)."""
    return {p.key: p.value(sampled[p.key]) for p in space}


def trial_training(
    training: Mapping[str, Any], space: tuple[Param, ...], sampled: Mapping[str, Any]
) -> dict[str, Any]:
    """The training config with a trial's values set at their keys."""
    config = copy.deepcopy(dict(training))
    for key, value in changes(space, sampled).items():
        blocked = set_dotted(config, key, value)
        assert blocked is None, "checked by search.spec._check_key"
    return config
