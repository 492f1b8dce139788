"""Crash-safe file replacement: the one writer of every file xorch replaces
(and of the one file it appends to, ``durable_append``).

A reader (a resumed parent, ``xorch status``) must only ever see the old file or
the new one, never a half-written one, even if the machine loses power: write a
temp file in the same folder, flush and fsync it, ``os.replace`` it over the
target, then fsync the folder so the rename itself is durable.

``durable=False`` keeps the first promise (old or new, never half) for any
crash of a process, and drops only the two fsyncs that survive a power loss:
for files rebuilt from runner_state.json (summary.csv, comparison.csv) or
written afresh before each attempt (run_spec.json), which a power loss cannot
make wrong for long. Each fsync costs a few milliseconds, and a study of short
runs writes these files once per run.

The temp file is created with mode 0666 and the kernel applies the user's umask,
so a replaced file gets the permissions of any file the user makes (0644 under
umask 022): ``tempfile.mkstemp`` would make every state, summary and plot file
0600, unreadable to colleagues on a shared box.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_chunks",
    "atomic_write_json",
    "atomic_write_text",
    "durable_append",
]

_NEW_FILE_MODE = 0o666  # less the umask, as open() and the shell do


def atomic_write_bytes(
    path: Path, data: bytes, keep_previous_as: Path | None = None, durable: bool = True
) -> None:
    """Replace ``path`` with ``data``: ``atomic_write_chunks`` of one chunk."""
    atomic_write_chunks(path, (data,), keep_previous_as, durable)


def atomic_write_chunks(
    path: Path, chunks: Iterable[bytes], keep_previous_as: Path | None = None, durable: bool = True
) -> None:
    """Replace ``path`` with the ``chunks`` one after another, atomically (and,
    ``durable``, past a power loss). In chunks, a file of megabytes (the state of
    10,000 runs) is written without first being joined into one string and
    encoded: each copy of it cost tens of milliseconds of page faults a save.

    ``keep_previous_as``: the file being replaced becomes that file (a hard
    link, so no copy is made however big it is). At every instant ``path``
    holds the old or the new bytes, and the backup an older or the old one.
    On any error the temp files are removed and ``path`` is as it was.
    """
    path = Path(path)
    fd, tmp_name = _create_temp(path)
    backup_tmp: str | None = None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.writelines(chunks)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if keep_previous_as is not None and path.exists():
            backup_tmp = str(path.parent / f".{keep_previous_as.name}.{secrets.token_hex(4)}.tmp")
            os.link(path, backup_tmp)
            os.replace(backup_tmp, keep_previous_as)
            # rename(2) does nothing, and succeeds, when both names are links to
            # one file: the case after a write that failed between the backup's
            # rename and the target's. The temp name is then still there.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(backup_tmp)
            backup_tmp = None
        os.replace(tmp_name, path)
    except BaseException as exc:
        for leftover in (tmp_name, backup_tmp):
            if leftover is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        if isinstance(exc, OSError) and exc.filename != str(path):
            # A failed write() names no file, a failed rename the temp file:
            # name the file the caller asked for, which is the one the user knows.
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(
    path: Path, text: str, keep_previous_as: Path | None = None, durable: bool = True
) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), keep_previous_as, durable)


def atomic_write_json(path: Path, payload: Any, durable: bool = True) -> None:
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    atomic_write_text(path, text, durable=durable)


def durable_append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created with the umask's mode when missing), on
    disk when this returns: the file fsynced, and its folder when it was new. A
    crash mid-append may leave part of ``data`` at the end: readers end there."""
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _NEW_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new name, past a power loss
        _fsync_dir(path.parent)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty temp file next to ``path``; O_EXCL, so never someone else's."""
    while True:
        name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE), name
        except FileExistsError:  # 48 random bits: practically never
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _fsync_dir(folder: Path) -> None:
    # Without this the rename may be lost on power failure on ext4/xfs even
    # though the file data itself was synced.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
