"""The ``experiments_runner.n_runs`` mapping of adaptive seeds,
``{min: 5, max: 40, until: {metric: val/F1Score, ci_halfwidth: 0.002}}``,
checked into an ``AdaptiveRule``; the rule itself is ``orchestrator.adaptive``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.setting_values import refuse_unknown_keys
from orchestrator.state import AdaptiveRule

__all__ = ["check_metric", "parse_adaptive"]

WHERE = "experiments_runner.n_runs"
_KEYS = ("min", "max", "until")
_UNTIL_KEYS = ("metric", "ci_halfwidth")
_EXAMPLE = "{min: 5, max: 40, until: {metric: val/loss, ci_halfwidth: 0.002}}"


def parse_adaptive(block: Mapping[str, Any], max_runs: int) -> AdaptiveRule:
    """The ``n_runs`` mapping -> ``AdaptiveRule``; a ``ConfigError`` naming the key."""
    refuse_unknown_keys(block, _KEYS, WHERE)
    for key in _KEYS:
        if key not in block:
            raise ConfigError(f"{WHERE}.{key} is missing; adaptive seeds read like {_EXAMPLE}")
    low = _whole(block["min"], f"{WHERE}.min", max_runs, " (an interval needs two values)")
    high = _whole(block["max"], f"{WHERE}.max", max_runs)
    if low > high:
        raise ConfigError(f"{WHERE}.min ({low}) is more than max ({high}); make min <= max")
    until = block["until"]
    if not isinstance(until, dict):
        raise ConfigError(f"{WHERE}.until must be a mapping like {{metric: val/loss, "
                          "ci_halfwidth: 0.002}}")  # fmt: skip
    refuse_unknown_keys(until, _UNTIL_KEYS, f"{WHERE}.until")
    metric = until.get("metric")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(
            f"{WHERE}.until.metric is missing; name the metric whose mean must be precise, "
            "like metric: val/loss"
        )
    width: Any = until.get("ci_halfwidth")
    number = isinstance(width, (int, float)) and not isinstance(width, bool)
    if not number or not math.isfinite(width) or width <= 0:
        raise ConfigError(
            f"{WHERE}.until.ci_halfwidth must be a number > 0 (the 95% interval's half-width "
            f"in the metric's units), not {width!r}"
        )
    return AdaptiveRule(min_seeds=low, max_seeds=high, metric=metric, ci_halfwidth=float(width))


def check_metric(rule: AdaptiveRule, summary_metrics: Sequence[str]) -> None:
    """The metric must be one the study summarises (a typo would never be logged,
    and the study would run to ``max`` for nothing)."""
    if rule.metric not in summary_metrics:
        raise ConfigError(
            f"{WHERE}.until.metric {rule.metric} is not in summary_metrics "
            f"[{', '.join(summary_metrics)}]; add it to experiments_runner.summary_metrics"
        )


def _whole(value: Any, where: str, maximum: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(f"{where} must be an integer >= 2{why}, not {value!r}")
    if value > maximum:
        raise ConfigError(
            f"{where} is {value:,}; the limit is {maximum:,} (see the README's Limits)"
        )
    return value
