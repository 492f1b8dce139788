"""The ``search:`` block -> a frozen ``SearchSpec``, every mistake one
``ConfigError`` line naming the key and the fix (at validate time, before
anything is written).

```yaml
search:
  metric: val/loss          # default: the first of summary_metrics; its goal gives the direction
  n_trials: 20              # and/or timeout: seconds of trials in all
  sampler: tpe              # tpe | cmaes | random | grid (gp needs torch in the parent: refused)
  sampler_seed: 0
  storage: null             # default: search.db (SQLite) in the study folder; or an RDB URL
  seed: 42                  # every trial's training seed (default: the first of seeds)
  baseline: true            # the seed study runs the config as written too, on the same seeds
  space:
    model.init_args.lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
    model.init_args.depth: {type: int, low: 1, high: 4, step: 1}
    model.init_args.act: {type: categorical, choices: [relu, gelu]}
    data: {type: blocks, choices: {small: {...}, large: {...}}}
```
"""

from __future__ import annotations

import copy
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.overrides import set_dotted
from orchestrator.setting_values import (
    entries,
    flag,
    kind_of,
    parse_seed,
    refuse_unknown_keys,
    seconds,
    short,
    whole,
)

__all__ = [
    "SEARCH_KEY",
    "Direction",
    "Param",
    "ParamKind",
    "SamplerName",
    "SearchSpec",
    "parse_search",
    "space_roots",
]

SEARCH_KEY = "search"
_KEYS = (
    "space",
    "metric",
    "n_trials",
    "timeout",
    "sampler",
    "sampler_seed",
    "storage",
    "study_name",
    "seed",
    "baseline",
)
_PARAM_KEYS = {
    "float": ("type", "low", "high", "log"),
    "int": ("type", "low", "high", "step", "log"),
    "categorical": ("type", "choices"),
    "blocks": ("type", "choices"),
}
MAX_TRIALS = 100_000
# Top-level keys a parameter may not name: they are not part of what a run trains.
_NOT_TRAINING = ("mode", "experiments_runner", SEARCH_KEY)


class ParamKind(str, enum.Enum):
    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"
    BLOCKS = "blocks"  # a choice among whole config blocks, by name


class SamplerName(str, enum.Enum):
    TPE = "tpe"
    CMAES = "cmaes"
    RANDOM = "random"
    GRID = "grid"


class Direction(str, enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


@dataclass(frozen=True)
class Param:
    """One dimension of the space; ``key`` is a dotted key of the training config."""

    key: str
    kind: ParamKind
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()  # categorical values, or block names
    blocks: Mapping[str, Any] | None = None  # kind blocks: name -> the block

    def value(self, sampled: Any) -> Any:
        """What the training config gets at ``key`` for Optuna's ``sampled``."""
        if self.kind is ParamKind.BLOCKS:
            assert self.blocks is not None
            return copy.deepcopy(self.blocks[sampled])
        return sampled


@dataclass(frozen=True)
class SearchSpec:
    space: tuple[Param, ...]
    metric: str
    direction: Direction
    n_trials: int | None
    timeout_s: float | None
    sampler: SamplerName
    sampler_seed: int | None
    storage: str | None  # None: the SQLite file in the study folder
    study_name: str | None  # None: the study folder's name
    seed: int
    baseline: bool


def parse_search(
    block: Any,
    training: Mapping[str, Any],
    seeds: tuple[int, ...] | None,
    metrics: tuple[str, ...],
    goals: Mapping[str, str],
) -> SearchSpec:
    """The block, checked against the training config it changes."""
    if not isinstance(block, dict):
        raise ConfigError(f"{SEARCH_KEY} must be a mapping with a space, not a {kind_of(block)}")
    refuse_unknown_keys(block, _KEYS, SEARCH_KEY)
    space = _space(block.get("space"), training)
    sampler = _sampler(block.get("sampler", SamplerName.TPE.value))
    n_trials = block.get("n_trials")
    if n_trials is not None:
        n_trials = whole(n_trials, f"{SEARCH_KEY}.n_trials", 1, MAX_TRIALS)
    timeout = seconds(block.get("timeout"), f"{SEARCH_KEY}.timeout", optional=True, positive=True)
    if n_trials is None and timeout is None and sampler is not SamplerName.GRID:
        raise ConfigError(
            f"{SEARCH_KEY} needs n_trials (a number of trials) or timeout (seconds of trials)"
        )
    if sampler is SamplerName.GRID:
        _check_grid(space)
    metric = block.get("metric", metrics[0])
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"{SEARCH_KEY}.metric must be a metric name, like val/loss")
    sampler_seed = block.get("sampler_seed")
    return SearchSpec(
        space=space,
        metric=metric,
        direction=_direction(metric, goals),
        n_trials=n_trials,
        timeout_s=timeout,
        sampler=sampler,
        sampler_seed=None
        if sampler_seed is None
        else parse_seed(sampler_seed, f"{SEARCH_KEY}.sampler_seed"),
        storage=_storage(block.get("storage")),
        study_name=_study_name(block.get("study_name")),
        seed=parse_seed(block.get("seed", seeds[0] if seeds else 0), f"{SEARCH_KEY}.seed"),
        baseline=flag(block.get("baseline", False), f"{SEARCH_KEY}.baseline"),
    )


def space_roots(block: Any) -> frozenset[str]:
    """The top-level blocks a search's space names: known, not warned about."""
    if not isinstance(block, dict) or not isinstance(block.get("space"), dict):
        return frozenset()
    return frozenset(str(key).split(".")[0] for key in block["space"])


def _direction(metric: str, goals: Mapping[str, str]) -> Direction:
    goal = goals.get(metric)
    if goal is None:
        lowered = metric.lower()  # the rule of inference.default_goal, without scipy
        goal = "min" if "loss" in lowered or "error" in lowered else "max"
    return Direction.MINIMIZE if goal == "min" else Direction.MAXIMIZE


def _sampler(value: Any) -> SamplerName:
    if value == "gp":
        raise ConfigError(
            f"{SEARCH_KEY}.sampler gp: Optuna's GP sampler imports torch, which the xorch "
            "parent never does; use tpe, cmaes, random or grid"
        )
    try:
        return SamplerName(value)
    except ValueError:
        names = ", ".join(s.value for s in SamplerName)
        raise ConfigError(f"{SEARCH_KEY}.sampler {short(value)} is not one of {names}") from None


def _storage(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(
            f"{SEARCH_KEY}.storage {short(value)} is not a database URL; write one like "
            "sqlite:////abs/path/search.db or postgresql://user@host/db (or leave it out)"
        )
    return value


def _study_name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{SEARCH_KEY}.study_name must be a name, not {short(value)}")
    return value


def _space(block: Any, training: Mapping[str, Any]) -> tuple[Param, ...]:
    shape = (
        "must map dotted keys of the training config to parameters, "
        "like model.init_args.lr: {type: float, low: 1.0e-4, high: 0.1}"
    )
    params = []
    for key, entry, where in entries(block, f"{SEARCH_KEY}.space", shape):
        if not isinstance(key, str) or not key or "" in key.split("."):
            raise ConfigError(f"{where}: a parameter's name is a dotted key, like model.lr")
        if key.split(".")[0] in _NOT_TRAINING:
            raise ConfigError(f"{where}: only keys of the training config can be searched")
        param = _param(key, entry, where)
        _check_key(training, param, where)
        params.append(param)
    return tuple(params)


def _param(key: str, entry: Any, where: str) -> Param:
    if not isinstance(entry, dict) or entry.get("type") not in _PARAM_KEYS:
        raise ConfigError(
            f"{where} needs type: float, int, categorical or blocks (with low/high or choices)"
        )
    kind = ParamKind(entry["type"])
    refuse_unknown_keys(entry, _PARAM_KEYS[kind.value], where)
    if kind is ParamKind.CATEGORICAL:
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices must be a list of values, like [relu, gelu]")
        for value in choices:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ConfigError(
                    f"{where}.choices: {short(value)} is a {kind_of(value)}; a categorical "
                    "choice is a number, a string, true/false or null (use type: blocks)"
                )
        if len({repr(v) for v in choices}) < len(choices):
            raise ConfigError(f"{where}.choices lists a value twice; list each once")
        return Param(key, kind, choices=tuple(choices))
    if kind is ParamKind.BLOCKS:
        blocks = entry.get("choices")
        if not isinstance(blocks, dict) or not blocks:
            raise ConfigError(
                f"{where}.choices must map a name to each block, like {{small: {{...}}}}"
            )
        names = tuple(str(name) for name in blocks)
        return Param(key, kind, choices=names, blocks={str(n): b for n, b in blocks.items()})
    return _range(key, kind, entry, where)


def _range(key: str, kind: ParamKind, entry: Mapping[str, Any], where: str) -> Param:
    bounds = []
    for end in ("low", "high"):
        value = entry.get(end)
        number = (int,) if kind is ParamKind.INT else (int, float)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            word = "an integer" if kind is ParamKind.INT else "a finite number"
            raise ConfigError(f"{where}.{end} must be {word}, not {short(value)}")
        bounds.append(value)
    low, high = bounds
    log = flag(entry.get("log", False), f"{where}.log")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: log needs low > 0 (it is {low}); raise low or drop log")
    step = whole(entry.get("step", 1), f"{where}.step", 1) if kind is ParamKind.INT else 1
    if log and step != 1:
        raise ConfigError(f"{where}: log and step cannot go together (Optuna); drop one")
    if kind is ParamKind.INT and (high - low) % step:
        top = low + (high - low) // step * step
        raise ConfigError(
            f"{where}: high - low ({high - low}) is not a multiple of step ({step}); "
            f"set high to {top} (the last value reached)"
        )
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _check_key(training: Mapping[str, Any], param: Param, where: str) -> None:
    """The key can be set in the training config: no value that is not a
    mapping stands on its way."""
    probe = copy.deepcopy(dict(training))
    blocked = set_dotted(probe, param.key, None)
    if blocked is not None:
        above, child = blocked
        raise ConfigError(
            f"{where}: {above} is a {kind_of(child)} in the config, not a mapping; "
            f"search {above} itself (type: blocks) instead"
        )


def _check_grid(space: tuple[Param, ...]) -> None:
    for param in space:
        if param.kind is ParamKind.FLOAT:
            raise ConfigError(
                f"{SEARCH_KEY}.space.{param.key}: the grid sampler needs a finite set of "
                "values; use type: categorical with the values, or another sampler"
            )
