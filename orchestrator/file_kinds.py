"""Which folders can hold a study: not one on a filesystem the kernel makes up.

Issue 23: an ``output_base_dir`` of ``/proc/self`` (a folder, but of the
process that looks at it) was reported as "in use by another xorch launch",
and one under it ended in a FileNotFoundError traceback.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.contract.bounded import read_bounded
from orchestrator.contract.limits import MAX_RECORD_BYTES

__all__ = ["PSEUDO_FILESYSTEMS", "pseudo_filesystem"]

# Filesystems whose folders show the kernel's objects, not files one writes.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "binfmt_misc",
        "efivarfs",
        "autofs",
    }
)

_MOUNTS = Path("/proc/self/mounts")


def pseudo_filesystem(folder: Path) -> str | None:
    """The type of the kernel's filesystem that ``folder`` (resolved) is on, or
    None for a real one, or when the mount table cannot be read (any doubt: let
    the write say what is wrong)."""
    try:
        text = read_bounded(_MOUNTS, MAX_RECORD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    best, kind = "", None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # mount points escape a space, tab, newline and backslash as octal (\\040)
        point = fields[1].encode().decode("unicode_escape", errors="replace")
        inside = folder == Path(point) or Path(point) in folder.parents
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind if kind in PSEUDO_FILESYSTEMS else None
