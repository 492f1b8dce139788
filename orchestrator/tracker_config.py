"""The trackers a study's config names, and the refusal of one whose package
is not installed (found at ``xorch validate`` and launch, not in every run)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from orchestrator.contract.tracking import Tracker, install_command, tracker_of, tracker_packages
from orchestrator.errors import ConfigError

__all__ = ["check_tracker_packages", "configured_trackers", "tracker_modules"]


def _logger_entries(training: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(config key, class path) of each logger entry of ``pl_trainer.logger``."""
    trainer = training.get("pl_trainer")
    value = trainer.get("logger") if isinstance(trainer, Mapping) else None
    entries = value if isinstance(value, list) else [value]
    found = []
    for i, entry in enumerate(entries):
        if isinstance(entry, Mapping):
            path = entry.get("class_path", entry.get("_target_"))
            if isinstance(path, str):
                found.append((f"pl_trainer.logger[{i}]", path))
    return found


def configured_trackers(training: Mapping[str, Any]) -> tuple[Tracker, ...]:
    """The trackers whose Lightning loggers ``training`` configures, in its order."""
    found: list[Tracker] = []
    for _, path in _logger_entries(training):
        tracker = tracker_of(path)
        if tracker is not None and tracker not in found:
            found.append(tracker)
    return tuple(found)


# What a run of each tracker imports, for the fork server to import once; none
# of them starts a thread on import, so forking after it stays safe.
_RUN_MODULES = {
    Tracker.WANDB: ("wandb",),
    Tracker.MLFLOW: ("mlflow", "mlflow.tracking"),
    Tracker.TENSORBOARD: ("torch.utils.tensorboard",),
    Tracker.CSV: (),
}


def tracker_modules(training: Mapping[str, Any]) -> list[str]:
    """The modules the runs of ``training`` import for its trackers."""
    return [m for tracker in configured_trackers(training) for m in _RUN_MODULES[tracker]]


def check_tracker_packages(training: Mapping[str, Any]) -> None:
    """Refuse a logger whose tracker package is not installed, with the command
    that installs it (the run would fail on its first line otherwise)."""
    for where, path in _logger_entries(training):
        tracker = tracker_of(path)
        if tracker is None:
            continue
        packages = tracker_packages(tracker)
        if packages and not any(_installed(name) for name in packages):
            raise ConfigError(
                f"{where}: {path.rpartition('.')[2]} needs the {packages[0]} package, "
                f"which is not installed; install it: {install_command(tracker)}"
            )


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False
