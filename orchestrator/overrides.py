"""``key=value`` overrides of a plain config file (values parsed as YAML), and
the one way a dotted key is set in a config (``set_dotted``, also used for a
variant's changes)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from orchestrator.errors import ConfigError
from orchestrator.setting_values import kind_of
from orchestrator.yaml_file import parse_yaml

__all__ = ["apply_overrides", "set_dotted"]


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``a.b=value`` items, values parsed as YAML, applied to a copy of ``config``."""
    result = copy.deepcopy(dict(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"override {item!r} is not KEY=VALUE; write e.g. pl_trainer.max_epochs=3"
            )
        try:
            value = parse_yaml(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(
                f"override {key}: {text!r} is not a YAML value; quote it or fix the brackets"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"override {key}: {exc}") from None
        blocked = set_dotted(result, key, value)
        if blocked is not None:
            where, child = blocked
            raise ConfigError(
                f"override {key}: {where} is a {kind_of(child)}, not a mapping; "
                f"set {where}=... instead"
            )
    return result


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> tuple[str, Any] | None:
    """Set ``a.b.c`` in ``tree``, making the mappings on the way; or, where a
    value that is not a mapping stands on the way, leave ``tree`` as it was
    below it and return that key and its value for the caller's message."""
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return ".".join(parts[: depth + 1]), child
        node = child
    node[parts[-1]] = value
    return None
