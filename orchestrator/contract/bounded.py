"""Reading a file within a limit: never one that is not a regular file (a FIFO
would block the reader forever, /dev/zero never ends), never more than the
limit, and JSON never nested deeper than the parser goes.

Issue 23: a metrics.json of 200,000 nested ``[`` raised RecursionError in the
parent; a config that was a FIFO blocked ``xorch validate`` forever.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.contract.limits import MAX_CSV_HEADER_BYTES, mib

__all__ = [
    "JsonRead",
    "ReadRefused",
    "parse_json",
    "read_bounded",
    "read_head_and_tail",
    "read_json",
    "read_tail",
]


class ReadRefused(OSError):
    """A file that is not read: not a regular file, or past its limit.

    An OSError, so a reader that treats any unreadable file as absent does so
    with this one too; ``str()`` is the reason, for a one-line message."""

    def __str__(self) -> str:
        return str(self.args[0])


def _open_regular(path: Path) -> int:
    """A descriptor of ``path`` opened for reading, once it is known to be a
    regular file: O_NONBLOCK makes opening a FIFO return at once (opened
    plainly it waits for a writer), and fstat then refuses it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    raise ReadRefused(f"{path} is not a regular file ({_kind(mode)})")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``; ReadRefused past ``limit`` bytes
    (its size, or what it gave: a file in /proc says 0 and can give more)."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(fd).st_size > limit:
            raise ReadRefused(f"{path} is larger than the limit of {mib(limit)}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ReadRefused(f"{path} is larger than the limit of {mib(limit)}")
    return data


def read_tail(path: Path, size: int) -> tuple[bytes, bool]:
    """The last ``size`` bytes of the regular file ``path``, and whether that
    is less than the whole file."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        total = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, total - size))
        return handle.read(size), total > size


def read_head_and_tail(path: Path, size: int) -> bytes:
    """The whole regular file ``path`` when it is at most ``size`` bytes; else
    its first line and, of its last ``size`` bytes, the whole lines: a CSV
    log's header and latest rows (issue 23: a 112 MB metrics.csv took 43 s)."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        total = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        if total <= size:
            return handle.read(size)
        header = handle.readline(MAX_CSV_HEADER_BYTES)
        handle.seek(total - size)
        tail = handle.read(size)
    cut = tail.find(b"\n")
    return header + (tail[cut + 1 :] if cut >= 0 else b"")


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, with nesting deeper than the parser goes (it recurses
    once per level) as ValueError, like any other text that is not our JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


@dataclass(frozen=True)
class JsonRead:
    """What a JSON file held (None: nothing usable) and, when it was there but
    could not be used, why (``problem``; "" for a missing file)."""

    payload: Any = None
    problem: str = ""


def read_json(path: Path, limit: int) -> JsonRead:
    """The JSON in ``path``, never an exception: a missing file, one past
    ``limit``, not a regular file, not UTF-8 or not JSON gives no payload."""
    try:
        data = read_bounded(path, limit)
    except FileNotFoundError:
        return JsonRead()
    except ReadRefused as exc:
        return JsonRead(problem=str(exc).replace(f"{path} ", "", 1))
    except OSError as exc:
        return JsonRead(problem=f"unreadable ({exc.strerror or exc})")
    try:
        # utf-8-sig: a byte-order mark (Windows editors, PowerShell) is not content.
        text = data.decode("utf-8-sig")
        if not text.strip():
            return JsonRead(problem="is empty")
        return JsonRead(parse_json(text))
    except UnicodeDecodeError:
        return JsonRead(problem="not UTF-8 text")
    except ValueError as exc:
        return JsonRead(problem=f"not JSON: {str(exc).split(':')[0]}")
