"""The words parent and wrapper share about a ``command:`` study: which
placeholders an argument may hold, and which file a program name means.

The parent checks a command with these before anything runs (exit 2 for an
unknown placeholder or a missing program). ``invocation`` is how a run's
program is started, the same for the local launcher (which execs it at once)
and ``worker.command_run`` (the entry a Slurm job runs).
"""

from __future__ import annotations

import os
import shutil
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.contract.child import run_variable
from orchestrator.contract.records import LAST_CHECKPOINT_FILE, RunSpec

__all__ = [
    "PLACEHOLDERS",
    "RESUME_FILE",
    "Invocation",
    "expand",
    "invocation",
    "placeholders_in",
    "program_path",
    "resume_checkpoint",
    "run_values",
]

# {name} in an argument -> the XORCH_<NAME> environment variable of the same value.
# {fold} only in a study with folds (experiments_runner.folds).
PLACEHOLDERS = ("seed", "run_dir", "run_index", "attempt", "resume_from", "fold")

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


def resume_checkpoint(run_dir: str | Path) -> str | None:
    """The checkpoint an attempt in ``run_dir`` is given as ``{resume_from}``
    (with ``resume_args``), or None when an earlier attempt left none."""
    resume = Path(run_dir) / RESUME_FILE
    return str(resume) if resume.is_file() else None


def run_values(spec: RunSpec) -> dict[str, str]:
    """The placeholders' values for one attempt (``resume_from`` empty without a
    checkpoint; ``fold`` only in a study with folds)."""
    values = {
        "seed": str(spec.seed),
        "run_dir": spec.run_dir,
        "run_index": str(spec.run_index),
        "attempt": str(spec.attempt),
        "resume_from": resume_checkpoint(spec.run_dir) or "",
    }
    if spec.fold is not None:
        values["fold"] = str(spec.fold)
    return values


@dataclass(frozen=True)
class Invocation:
    """How one attempt's program starts: ``argv[0]`` is the program's file."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    name: str  # the program as the config names it, for messages


def invocation(spec: RunSpec, environ: Mapping[str, str], xorch_root: str) -> Invocation:
    """The program of ``spec``'s ``command:``, its arguments (``resume_args`` only
    when there is a checkpoint), the ``XORCH_*`` variables and its folder.
    ``xorch_root`` goes first on PYTHONPATH: the program imports the same xorch
    (``worker.report``) as its parent."""
    folder = Path(spec.import_paths[0]) if spec.import_paths else Path.cwd()  # the config's
    values = run_values(spec)
    command = expand(spec.config["command"], values)
    if values["resume_from"]:
        # resume_args exist only when there is a checkpoint: a program that
        # refuses an empty ``--ckpt_path ""`` is never given one.
        command += expand(spec.config.get("resume_args") or [], values)
    env = dict(environ)
    env.update({run_variable(name): value for name, value in values.items()})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [xorch_root, env.get("PYTHONPATH")]))
    in_run_dir = spec.config.get("cwd") == "run_dir"
    if in_run_dir and len(command) > 1 and (folder / command[1]).is_file():
        # The script is named from the config's folder, wherever the program runs.
        command[1] = str(folder / command[1])
    # argv[0] is the resolved path: Python finds its venv from argv[0], so a
    # bare "python" there would start the system's interpreter instead.
    program = program_path(command[0], folder) or command[0]
    # cwd: run_dir keeps the relative outputs of different seeds apart.
    cwd = spec.run_dir if in_run_dir else str(folder)
    return Invocation((program, *command[1:]), env, cwd, command[0])
