"""The errors a user can cause, and the exit codes xorch promises.

Every ``XorchError`` is caught once, in ``cli.py``, and printed as one line on
stderr; anything else is a bug and keeps its traceback. The one exception is an
``OSError`` that the machine causes (disk full, read-only filesystem, missing
permission, symlink loop): ``cli.py`` prints it with ``os_error_line`` and exit 3,
since no code of ours can prevent it and a traceback would hide the fix.
"""

from __future__ import annotations

import enum
import errno

__all__ = [
    "ENVIRONMENT_ERRNOS",
    "ConfigError",
    "ExitCode",
    "LockedError",
    "OutputWriteError",
    "StateError",
    "StateWriteError",
    "StudyExistsError",
    "XorchError",
    "os_error_fix",
    "os_error_line",
]


class ExitCode(enum.IntEnum):
    """Exit statuses of ``xorch`` (documented in the README's exit-code table)."""

    OK = 0  # every run completed
    RUNS_FAILED = 1  # the study finished, but some runs did not complete
    USAGE = 2  # bad config, bad state file, locked study: nothing was run
    STATE_WRITE = 3  # writing the study's files failed (disk full, read-only): it stopped
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


class OutputWriteError(XorchError):
    """Writing one of the study's files failed; the files already there are intact."""

    exit_code = ExitCode.STATE_WRITE


class StateWriteError(OutputWriteError):
    """Writing runner_state.json failed; the previous file is intact."""


# Faults of the machine or the filesystem, not of xorch: reported as one line.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EIO,
        errno.EFBIG,
        errno.EMFILE,
        errno.ENFILE,
    }
)

_FIXES = {
    errno.ENOSPC: "free disk space there",
    errno.EDQUOT: "your disk quota is used up: free space there",
    errno.EFBIG: "the file is over the filesystem's size limit: choose another output_base_dir",
    errno.EROFS: "the filesystem is read-only: remount it writable or choose another folder",
    errno.EACCES: "give yourself write permission there or choose another folder",
    errno.EPERM: "give yourself write permission there or choose another folder",
    errno.ELOOP: "a symlink in the path points back to itself: fix or remove the link",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "a folder stands where a file should be: move it away",
    errno.EEXIST: "something already stands at that path: move it away",
}


def os_error_fix(exc: OSError) -> str:
    return _FIXES.get(exc.errno or 0, "check the disk and the folder, then try again")


def os_error_line(exc: OSError, action: str = "cannot write") -> str:
    """``cannot write /x/summary.csv (No space left on device); free disk space ...``"""
    where = exc.filename if exc.filename is not None else "a study file"
    reason = exc.strerror or str(exc)
    return f"{action} {where} ({reason}); {os_error_fix(exc)}"
