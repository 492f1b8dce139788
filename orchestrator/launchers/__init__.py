"""Ways to start a child process for one attempt. Each backend fills in ``base.Launcher``."""

from __future__ import annotations

from orchestrator.launchers.base import ChildProcess, Launcher, Wakeup
from orchestrator.launchers.factory import make_launcher
from orchestrator.launchers.forkserver import ForkserverLauncher, preload_modules
from orchestrator.launchers.local import LocalLauncher

__all__ = [
    "ChildProcess",
    "ForkserverLauncher",
    "Launcher",
    "LocalLauncher",
    "Wakeup",
    "make_launcher",
    "preload_modules",
]
