"""What ``xorch launch`` returns to the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ExitCode

__all__ = ["LaunchResult"]


@dataclass(frozen=True)
class LaunchResult:
    output_dir: Path
    completed: int
    total: int
    exit_code: ExitCode
