"""The errors a user can cause, and the exit codes xorch promises.

Every ``XorchError`` is caught once, in ``cli.py``, and printed as one line on
stderr; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum

__all__ = [
    "ConfigError",
    "ExitCode",
    "LockedError",
    "StateError",
    "StateWriteError",
    "StudyExistsError",
    "XorchError",
]


class ExitCode(enum.IntEnum):
    """Exit statuses of ``xorch launch`` (documented in the README)."""

    OK = 0  # every run completed
    RUNS_FAILED = 1  # the study finished, but some runs did not complete
    USAGE = 2  # bad config, bad state file, locked study: nothing was run
    STATE_WRITE = 3  # a state write failed (disk full, permissions): the study stopped
    SIGHUP = 129
    SIGINT = 130
    SIGTERM = 143


class XorchError(Exception):
    """An error the user can fix; ``str(error)`` is the one line we print."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(XorchError):
    """The YAML file or an override is wrong."""


class StateError(XorchError):
    """runner_state.json cannot be read or does not match the config."""


class StudyExistsError(XorchError):
    """output_base_dir already holds a study and resume was not asked for."""


class LockedError(XorchError):
    """Another ``xorch launch`` holds the study."""


class StateWriteError(XorchError):
    """Writing runner_state.json failed; the previous file is intact."""

    exit_code = ExitCode.STATE_WRITE
