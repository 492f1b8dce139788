"""Metrics a command run only printed: read back from its ``train.log``.

Two ways, both parent side and torch-free:

- ``metrics_from_log: {test/loss: 'Average loss: ([0-9.]+)'}`` in the config:
  one regular expression per metric, one capture group each; the last match
  is the run's value, and every match in order is its curve (``epoch`` 0, 1, ...),
  written as ``lightning_logs/version_from_log/metrics.csv`` for ``xorch plot``.
- Without that key, a last line of stdout that is a JSON object of numbers
  (``{"test/loss": 0.1}``) is taken as the metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.contract.bounded import parse_json, read_tail
from orchestrator.contract.limits import LOG_JSON_TAIL_BYTES, MAX_LOG_SCAN_BYTES
from orchestrator.errors import ConfigError
from orchestrator.setting_values import entries

__all__ = [
    "LogPattern",
    "check_log_patterns",
    "json_last_line",
    "log_patterns",
    "values_from_log",
    "write_curves",
]

KEY = "metrics_from_log"


@dataclass(frozen=True)
class LogPattern:
    metric: str
    regex: re.Pattern[str]


def check_log_patterns(raw: Any) -> tuple[LogPattern, ...]:
    """The ``metrics_from_log`` block as patterns; ConfigError naming the key otherwise."""
    shape = (
        "must map metric names to regular expressions, e.g. {test/loss: 'Average loss: ([0-9.]+)'}"
    )
    patterns = []
    for name, text, where in entries(raw, KEY, shape):
        if not isinstance(text, str):
            raise ConfigError(f"{where} must be a regular expression string")
        try:
            regex = re.compile(text)
        except re.error as exc:
            raise ConfigError(f"{where} {text!r}: not a regular expression ({exc})") from None
        if regex.groups != 1:
            raise ConfigError(
                f"{where} {text!r}: needs exactly one capture group (...) around the number, "
                f"has {regex.groups}; make the others (?:...)"
            )
        patterns.append(LogPattern(str(name), regex))
    return tuple(patterns)


def log_patterns(config: Mapping[str, Any]) -> tuple[LogPattern, ...]:
    """The patterns of a run's (already checked) config; () without the key."""
    raw = config.get(KEY)
    return check_log_patterns(raw) if raw else ()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def values_from_log(log: Path, patterns: tuple[LogPattern, ...]) -> dict[str, list[float]]:
    """Every number each pattern matched in ``log``, in order (a metric never
    matched is left out), in the log's last ``MAX_LOG_SCAN_BYTES``."""
    try:
        text = read_tail(log, MAX_LOG_SCAN_BYTES)[0].decode("utf-8", errors="replace")
    except OSError:
        return {}
    found: dict[str, list[float]] = {}
    for pattern in patterns:
        values = [v for v in map(_number, pattern.regex.findall(text)) if v is not None]
        if values:
            found[pattern.metric] = values
    return found


def write_curves(path: Path, curves: Mapping[str, list[float]]) -> None:
    """``epoch,<metric>...`` rows: the n-th match of each metric is epoch n."""
    names = sorted(curves)
    rows = ["epoch," + ",".join(names)]
    for epoch in range(max(len(v) for v in curves.values())):
        cells = [repr(curves[n][epoch]) if epoch < len(curves[n]) else "" for n in names]
        rows.append(f"{epoch}," + ",".join(cells))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def json_last_line(log: Path) -> dict[str, float] | None:
    """The metrics of a last log line that is a JSON object of numbers, or None."""
    try:
        tail = read_tail(log, LOG_JSON_TAIL_BYTES)[0].decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("{"):
        return None
    try:
        payload = parse_json(lines[-1])
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    numbers = {
        str(k): float(v)
        for k, v in payload.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
    }
    return numbers or None
