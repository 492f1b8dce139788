"""Command runs, parent side: checking a ``command:`` and reading what the program left.

A study may name a program instead of a model and data module
(``command: [python, train.py, --seed, "{seed}"]``). The child is
``worker.command_run``, which execs the program. This module never starts it:
it checks the config before anything is written, and after the program exits
0 it finds the run's metrics: with ``metrics_from_log`` only from the patterns
it names (``orchestrator.log_metrics``); otherwise, in order, ``metrics.json``
(``{"metrics": {...}}`` as the worker writes it, or a flat ``{name: number}``),
a last line of ``train.log`` that is a JSON object of numbers, then the last values of
the newest CSVLogger-layout ``metrics.csv`` in the run folder (what
``worker.report`` writes, or a Lightning ``CSVLogger`` the program made itself).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.contract.bounded import read_head_and_tail
from orchestrator.contract.command import PLACEHOLDERS, placeholders_in, program_path
from orchestrator.contract.limits import MAX_CSV_TAIL_BYTES
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import RunResult, RunSpec, file_problem, json_object_noting
from orchestrator.errors import ConfigError
from orchestrator.log_metrics import KEY as LOG_METRICS_KEY
from orchestrator.log_metrics import (
    LogPattern,
    check_log_patterns,
    json_last_line,
    log_patterns,
    values_from_log,
    write_curves,
)
from orchestrator.state import RunOutcome

__all__ = ["check_command", "command_metrics", "command_outcome", "last_activity"]

# Keys of a Lightning config that a command study has no use for: refused, so
# that nobody believes their model block is what ran.
_LIGHTNING_KEYS = ("model", "data")

# The hang check of a program that does not use worker.report looks at this
# many files of its run folder at most, so a folder of thousands of
# checkpoints does not cost the parent a long scan every few seconds.
_ACTIVITY_SCAN_LIMIT = 500


def check_command(config_path: Path, raw: Mapping[str, Any]) -> None:
    """Raise ConfigError (one line) for a ``command`` that cannot run."""
    command = raw["command"]
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(item, str) and item for item in command)
    ):
        raise ConfigError(
            'command must be a non-empty list of strings, e.g. [python, train.py, --seed, "{seed}"]'
        )
    for key in _LIGHTNING_KEYS:
        if key in raw:
            raise ConfigError(
                f"command and {key} are both set: a command study runs its own program; "
                f"remove {key} (or command)"
            )
    resume_args = raw.get("resume_args") or []
    if not isinstance(resume_args, list) or not all(
        isinstance(item, str) and item for item in resume_args
    ):
        raise ConfigError(
            'resume_args must be a list of strings, e.g. ["--ckpt_path", "{resume_from}"]'
        )
    if raw.get("cwd", "config_dir") not in ("config_dir", "run_dir"):
        raise ConfigError(
            f"cwd {raw['cwd']!r}: must be run_dir (each run in its own folder) "
            "or config_dir (the default)"
        )
    _check_placeholders("command", command)
    _check_placeholders("resume_args", resume_args)
    if LOG_METRICS_KEY in raw:
        check_log_patterns(raw[LOG_METRICS_KEY])
    _check_program(config_path, command)


def _check_placeholders(key: str, command: list[str]) -> None:
    known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    for i, argument in enumerate(command):
        try:
            fields = placeholders_in(argument)
        except ValueError:
            raise ConfigError(
                f"{key}[{i}] {argument!r}: unbalanced braces; write {{{{ and }}}} for literal ones"
            ) from None
        for field in fields:
            if field not in PLACEHOLDERS:
                raise ConfigError(
                    f"{key}[{i}] {argument!r}: unknown placeholder {{{field}}}; known: {known}"
                )


def _check_program(config_path: Path, command: list[str]) -> None:
    folder = config_path.parent.resolve()
    program = command[0]
    found = program_path(program, folder)
    if found is None:
        raise ConfigError(
            f"command[0] {program!r}: no such program on PATH or in {folder}; "
            "fix the name or the path (relative paths start at the config's folder)"
        )
    if not os.access(found, os.X_OK):
        # Issue 23: found only when the first run started, as that run's crash.
        raise ConfigError(
            f"command[0] {program!r}: {found} is not executable; "
            f"run 'chmod +x {found}', or name its interpreter first (command: [bash, {program}])"
        )
    if program in ("python", "python3") and len(command) > 1 and command[1].endswith(".py"):
        script = folder / command[1]
        if "{" not in command[1] and not script.is_file():
            raise ConfigError(
                f"command[1] {command[1]!r}: no such script in {folder}; fix the path "
                "(it is taken from the config's folder)"
            )


# Where the curves read from a log go: a version folder ``xorch plot`` reads last.
def command_metrics(run: RunPaths) -> tuple[dict[str, float] | None, str]:
    """The metrics a command run left (None when it left none), and a note for
    the run's record: values of metrics.json left out, or what was wrong with it."""
    patterns = _configured_patterns(run)
    if patterns:
        curves = values_from_log(run.log, patterns)
        if not curves:
            return None, ""
        run.curves_from_log.parent.mkdir(parents=True, exist_ok=True)
        write_curves(run.curves_from_log, curves)
        return {name: values[-1] for name, values in curves.items()}, ""
    return _reported_metrics(run)


def _configured_patterns(run: RunPaths) -> tuple[LogPattern, ...]:
    try:
        config = RunSpec.load(run.run_spec).config
    except (OSError, ValueError, TypeError):
        return ()
    return log_patterns(config)


def _reported_metrics(run: RunPaths) -> tuple[dict[str, float] | None, str]:
    found, note = metrics_json_values(run.metrics)
    if found:
        return found, note
    printed = json_last_line(run.log)
    if printed is not None:
        return printed, note
    logs = run.csv_metric_logs() or run.any_csv_metric_logs()
    for log in reversed(logs):
        values = _last_values(log)
        if values:
            return values, note
    return None, note


def metrics_json_values(path: Path) -> tuple[dict[str, float] | None, str]:
    """The numbers of a program's metrics.json (``{"metrics": {...}}`` or a flat
    object), and a note: the names of values that were not numbers, left out, or
    what is wrong with a file that is there (issue 23: an empty one, a list or
    one with a byte-order mark read as "no metrics.json")."""
    payload, problem = json_object_noting(path)
    if payload is None:
        return None, file_problem(path, problem)
    result = RunResult.from_json(payload)
    if result is not None:
        return result.metrics, result.note
    numbers: dict[str, float] = {}
    dropped: list[str] = []
    for name, value in payload.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[str(name)] = float(value)
        else:
            dropped.append(str(name))
    if not numbers:
        return None, f"{path.name} has no number values"
    left_out = f"{path.name}: left out values that are not numbers: {', '.join(dropped)}"
    return numbers, left_out if dropped else ""


def command_outcome(run: RunPaths) -> RunOutcome:
    """A command run's epochs trained (the highest ``epoch`` of its newest CSV log,
    plus one; None without one) and its checkpoint (last.ckpt, if it wrote one)."""
    logs = run.csv_metric_logs() or run.any_csv_metric_logs()
    epochs = _epochs_logged(logs[-1]) if logs else None
    checkpoint = str(run.last_checkpoint) if run.last_checkpoint.is_file() else None
    return RunOutcome(epochs, checkpoint)


def _epochs_logged(path: Path) -> int | None:
    """One more than the highest whole ``epoch`` in a CSVLogger file; None without any."""
    highest: int | None = None
    try:
        text = read_head_and_tail(path, MAX_CSV_TAIL_BYTES).decode("utf-8")
        with io.StringIO(text, newline="") as handle:
            for row in csv.DictReader(handle):
                cell = (row.get("epoch") or "").strip()
                if cell.isascii() and cell.isdigit():
                    highest = max(int(cell), -1 if highest is None else highest)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None if highest is None else highest + 1


def _last_values(path: Path) -> dict[str, float]:
    """Each column's last number in a CSVLogger file (epoch and step left out),
    from its header and last ``MAX_CSV_TAIL_BYTES``."""
    values: dict[str, float] = {}
    try:
        text = read_head_and_tail(path, MAX_CSV_TAIL_BYTES).decode("utf-8")
        with io.StringIO(text, newline="") as handle:
            for row in csv.DictReader(handle):
                for name, text in row.items():
                    if name in (None, "epoch", "step") or not text:
                        continue
                    try:
                        number = float(text)
                    except (TypeError, ValueError):
                        continue
                    if not math.isnan(number):
                        values[str(name)] = number
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    return values


def last_activity(run: RunPaths) -> float | None:
    """The newest modification time in the run folder: a program that does not
    beat through worker.report shows life by its output (train.log) and files."""
    newest: float | None = None
    seen = 0
    stack = [run.root]
    while stack and seen < _ACTIVITY_SCAN_LIMIT:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if entry.name == run.run_spec.name:
                continue  # written by the parent, not the program
            newest = mtime if newest is None else max(newest, mtime)
    return newest
