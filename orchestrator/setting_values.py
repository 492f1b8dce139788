"""One setting's value checked: unknown keys, whole numbers, true/false,
durations, memory sizes, seeds; every mistake a ``ConfigError`` naming the key.

Shared by the ``experiments_runner`` block's parsers (``runner_spec``,
``slurm_spec``, ``variants_spec``, ``adaptive_spec``) and the config loader.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.errors import ConfigError

__all__ = [
    "MAX_SEED",
    "amount",
    "entries",
    "flag",
    "gigabytes",
    "kind_of",
    "parse_seed",
    "refuse_unknown_keys",
    "seconds",
    "short",
    "whole",
]

MAX_SEED = 2**31 - 1


def refuse_unknown_keys(block: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in block:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def entries(block: Any, where: str, shape: str) -> Iterator[tuple[Any, Any, str]]:
    """A block that must be a mapping with at least one entry, as (name, value,
    where-of-that-entry); ConfigError ``WHERE SHAPE`` otherwise."""
    if not isinstance(block, Mapping) or not block:
        raise ConfigError(f"{where} {shape}")
    for name, value in block.items():
        yield name, value, f"{where}.{name}"


def parse_seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {value!r} is not an integer seed; use a whole number like 42")
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{where}: {value} is outside 0..{MAX_SEED} (2**31-1)")
    return value


def whole(value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, not {short(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(
            f"{where} is {value:,}; the limit is {maximum:,} (see the README's Limits)"
        )
    return value


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    return value


def seconds(value: Any, where: str, optional: bool, positive: bool = False) -> float | None:
    """A duration: a finite number >= 0 (> 0 with ``positive``: a zero timeout
    would fail every run at once; null is how a config says "no limit")."""
    return amount(value, where, optional, "seconds", positive)


def gigabytes(value: Any, where: str) -> float | None:
    """A memory size in GB: a finite number >= 0, or null for no limit."""
    return amount(value, where, optional=True, unit="GB", positive=False)


def amount(value: Any, where: str, optional: bool, unit: str, positive: bool) -> float | None:
    """A finite number >= 0 (> 0 with ``positive``) of ``unit``; None for null
    when ``optional``."""
    if value is None and optional:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        also = " (null for no limit)" if optional else ""
        raise ConfigError(f"{where} must be a number of {unit} {bound}{also}, not {short(value)}")
    return float(value)


def kind_of(value: Any) -> str:
    names: dict[type, str] = {list: "list", dict: "mapping", str: "string"}
    return names.get(type(value), type(value).__name__)
