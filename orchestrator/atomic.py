"""Crash-safe file replacement.

A reader (a resumed parent, ``xorch status``) must only ever see the old file or
the new one, never a half-written one, even if the machine loses power: write a
temp file in the same folder, flush and fsync it, ``os.replace`` it over the
target, then fsync the folder so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text"]


def atomic_write_text(path: Path, text: str | bytes, keep_previous_as: Path | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8; bytes as they are, e.g. a PNG) atomically.

    ``keep_previous_as``: the file being replaced becomes that file (a hard
    link, so no copy is made however big it is). At every instant ``path``
    holds the old or the new text, and the backup an older or the old one.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    backup_tmp: str | None = None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous_as is not None and path.exists():
            backup_tmp = str(path.parent / f".{keep_previous_as.name}.{secrets.token_hex(4)}.tmp")
            os.link(path, backup_tmp)
            os.replace(backup_tmp, keep_previous_as)
            backup_tmp = None
        os.replace(tmp_name, path)
    except BaseException:
        for leftover in (tmp_name, backup_tmp):
            if leftover is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def _fsync_dir(folder: Path) -> None:
    # Without this the rename may be lost on power failure on ext4/xfs even
    # though the file data itself was synced.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
