"""``python -m worker.command_run RUN_SPEC_JSON``: a command run's program
started from an interpreter, for where the parent cannot start it itself (a
Slurm job runs this entry; the local launcher execs the program directly, see
``orchestrator.launchers.local``). It asks Linux to kill it when the parent
dies (PR_SET_PDEATHSIG, kept across exec), builds the same invocation
(``orchestrator.contract.command.invocation``: placeholders, ``XORCH_*``
variables, working folder) and ``execve``s the program, which replaces this
process (same pid, same process group), so the parent's stop, timeout and hang
handling reach the program itself. A program that cannot be started is the
run's error (exit 127).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestrator.contract.child import ChildExit
from orchestrator.contract.command import invocation
from orchestrator.contract.records import ERROR_FILE, PARENT_PID_ENV, ErrorReport, RunSpec
from worker.lifeline import die_with_parent

__all__ = ["main"]

# Exit status when the program could not be started (the shell's "not found").
EXEC_FAILED = ChildExit.EXEC_FAILED


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m worker.command_run RUN_SPEC_JSON", file=sys.stderr)
        return ChildExit.CONFIG_ERROR
    spec = RunSpec.load(Path(argv[0]))
    expected = os.environ.get(PARENT_PID_ENV)
    if expected:
        die_with_parent(int(expected))
    start = invocation(spec, os.environ, str(Path(__file__).resolve().parent.parent))
    try:
        os.chdir(start.cwd)
        os.execve(start.argv[0], list(start.argv), start.env)
    except OSError as exc:
        message = f"could not start {start.name!r}: {exc.strerror or exc}"
        ErrorReport(type="OSError", message=message).write(Path(spec.run_dir) / ERROR_FILE)
        print(f"xorch: {message}", file=sys.stderr)
        return EXEC_FAILED
    return EXEC_FAILED  # not reached: execve replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
