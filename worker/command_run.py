"""The child entry point of a command run: ``python -m worker.command_run RUN_SPEC_JSON``.

A study with ``command: [python, train.py, --seed, "{seed}"]`` runs the user's
program instead of a Lightning model. This small, torch-free wrapper does what
the program cannot: it asks Linux to kill it when the parent dies
(PR_SET_PDEATHSIG, kept across exec), fills in the placeholders, sets the
``XORCH_*`` variables and the working directory, and then ``execvp``s the
program, which replaces the wrapper in the same process (same pid, same
process group): the parent's stop, timeout and hang handling reach the program
itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestrator.contract.child import ChildExit, run_variable
from orchestrator.contract.command import RESUME_FILE, expand, program_path
from orchestrator.contract.records import ERROR_FILE, PARENT_PID_ENV, ErrorReport, RunSpec
from worker.lifeline import die_with_parent

__all__ = ["main", "run_values"]

# Exit status when the program could not be started (the shell's "not found").
EXEC_FAILED = ChildExit.EXEC_FAILED


def run_values(spec: RunSpec) -> dict[str, str]:
    resume = Path(spec.run_dir) / RESUME_FILE
    return {
        "seed": str(spec.seed),
        "run_dir": spec.run_dir,
        "run_index": str(spec.run_index),
        "attempt": str(spec.attempt),
        "resume_from": str(resume) if resume.is_file() else "",
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m worker.command_run RUN_SPEC_JSON", file=sys.stderr)
        return ChildExit.CONFIG_ERROR
    spec = RunSpec.load(Path(argv[0]))
    expected = os.environ.get(PARENT_PID_ENV)
    if expected:
        die_with_parent(int(expected))
    # The config's folder (StudySpec.import_paths puts it first).
    folder = Path(spec.import_paths[0]) if spec.import_paths else Path.cwd()
    values = run_values(spec)
    command = expand(spec.config["command"], values)
    if values["resume_from"]:
        # resume_args exist only when there is a checkpoint: a program that
        # refuses an empty ``--ckpt_path ""`` is never given one.
        command += expand(spec.config.get("resume_args") or [], values)
    env = dict(os.environ)
    env.update({run_variable(name): value for name, value in values.items()})
    # The program imports the same xorch as this wrapper (``worker.report``).
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    program = program_path(command[0], folder) or command[0]
    in_run_dir = spec.config.get("cwd") == "run_dir"
    if in_run_dir and len(command) > 1 and (folder / command[1]).is_file():
        # The script is named from the config's folder, wherever the program runs.
        command[1] = str(folder / command[1])
    try:
        # cwd: run_dir keeps the relative outputs of different seeds apart.
        os.chdir(spec.run_dir if in_run_dir else folder)
        # argv[0] is the resolved path: Python finds its venv from argv[0], so
        # a bare "python" there would start the system's interpreter instead.
        os.execve(program, [program, *command[1:]], env)
    except OSError as exc:
        message = f"could not start {command[0]!r}: {exc.strerror or exc}"
        ErrorReport(type="OSError", message=message).write(Path(spec.run_dir) / ERROR_FILE)
        print(f"xorch: {message}", file=sys.stderr)
        return EXEC_FAILED
    return EXEC_FAILED  # not reached: execve replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
