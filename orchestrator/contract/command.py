"""The words parent and wrapper share about a ``command:`` study: which
placeholders an argument may hold, and which file a program name means.

The parent checks a command with these before anything runs (exit 2 for an
unknown placeholder or a missing program); ``worker.command_run`` fills the
same placeholders in and starts the same program.
"""

from __future__ import annotations

import os
import shutil
import string
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.contract.records import LAST_CHECKPOINT_FILE

__all__ = ["PLACEHOLDERS", "RESUME_FILE", "expand", "placeholders_in", "program_path"]

# {name} in an argument -> the XORCH_<NAME> environment variable of the same value.
PLACEHOLDERS = ("seed", "run_dir", "run_index", "attempt", "resume_from")

# Where a program writes the checkpoint it wants back on a retry: {resume_from}.
RESUME_FILE = LAST_CHECKPOINT_FILE


def placeholders_in(argument: str) -> list[str]:
    """The ``{name}`` fields of one argument (``{{`` is a literal brace).
    ValueError when its braces do not pair up."""
    return [field for _, field, _, _ in string.Formatter().parse(argument) if field is not None]


def expand(command: Sequence[str], values: Mapping[str, str]) -> list[str]:
    return [argument.format_map(values) for argument in command]


def program_path(program: str, folder: Path) -> str | None:
    """The file ``program`` names: ``python``/``python3`` is the interpreter
    xorch runs under (a venv need not be on PATH); a path is taken from the
    config's folder; a bare name is looked up on PATH, then in that folder."""
    if program in ("python", "python3"):
        return sys.executable
    if os.sep in program:
        path = folder / Path(program).expanduser()
        return str(path) if path.is_file() else None
    found = shutil.which(program)
    if found:
        return found
    local = folder / program
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None
