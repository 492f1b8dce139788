"""Was a SIGKILLed child killed for memory? Only evidence says so.

A SIGKILL alone proves nothing: the kernel's OOM killer sends it, and so does a
colleague's ``kill -9`` or an admin's script. Three kinds of evidence count:

- the kernel's log names the pid ("Killed process PID", readable as root);
- a memory cgroup of the child (or of xorch) counted an OOM kill during the
  attempt: ``oom_kill`` in ``memory.events`` (cgroup v2) or in
  ``memory.oom_control`` (cgroup v1), read when the attempt starts and when it
  ends. In v1 the counter is kept by the victim's own cgroup only, so the
  child's cgroup is read, not just xorch's;
- the child's peak resident memory came near a known limit (the cgroup's
  memory limit, or the machine's memory). RLIMIT_AS is no such limit: going
  past it makes an allocation fail (error.json, ``host_oom``), never a SIGKILL.

Everything here reads small files under /proc and /sys; any of them may be
missing (another OS, a container without cgroup files) and then counts as no
evidence, never as an error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["MemoryBaseline", "MemoryEvidence", "dataloader_worker_pids", "oom_evidence"]

# Peak RSS above this share of the limit counts as memory pressure. The RSS is
# sampled every 50-500 ms, so the last sample before a kill is usually lower
# than the true peak; the cgroup counter and the kernel log do not miss.
NEAR_LIMIT = 0.8

# cgroup v1 reports "no limit" as a huge page-aligned number.
_NO_LIMIT = 2**60

# A kernel log line from before the attempt (pid reuse) must not count; the
# log's clock and CLOCK_MONOTONIC may drift apart a little.
_KERNEL_CLOCK_SLACK_S = 30.0


@dataclass(frozen=True)
class CgroupCounter:
    """One memory cgroup and its oom_kill count at the start of the attempt."""

    folder: Path
    counter_file: Path  # memory.events (v2) or memory.oom_control (v1)
    oom_kills: int


@dataclass(frozen=True)
class MemoryBaseline:
    """What the attempt started with: the memory cgroups' OOM kill counts and
    their limits, and the time on the kernel log's clock."""

    counters: tuple[CgroupCounter, ...] = ()
    limit_bytes: int | None = None  # the child's tightest cgroup limit, if any
    started_monotonic: float = 0.0

    @classmethod
    def take(cls, child_pid: int | None) -> MemoryBaseline:
        """Read the counters of the child's memory cgroups and of our own."""
        pids = [p for p in (child_pid, os.getpid()) if p is not None]
        folders: list[Path] = []
        for pid in pids:
            for folder in memory_cgroup_folders(pid):
                if folder not in folders:
                    folders.append(folder)
        counters = []
        for folder in folders:
            counter_file = _counter_file(folder)
            count = _oom_kill_count(counter_file) if counter_file else None
            if counter_file is not None and count is not None:
                counters.append(CgroupCounter(folder, counter_file, count))
        limit = None
        if child_pid is not None:
            limits = [x for f in memory_cgroup_folders(child_pid) if (x := _limit(f)) is not None]
            limit = min(limits) if limits else None
        # CLOCK_MONOTONIC: seconds since boot, close to the kernel log's clock.
        return cls(tuple(counters), limit, time.monotonic())


@dataclass(frozen=True)
class MemoryEvidence:
    oom: bool
    reason: str


def oom_evidence(pid: int | None, peak_rss: int, baseline: MemoryBaseline | None) -> MemoryEvidence:
    """Whether a SIGKILLed child was killed for memory, and the evidence in words."""
    found: list[str] = []
    victims = _kernel_oom_victims(baseline)
    if pid is not None and victims is not None and pid in victims:
        found.append(f"kernel log: Killed process {pid}")
    # With runs side by side in one cgroup, its counter also counts the OOM
    # kill of a sibling; when the kernel log names victims, and not this one,
    # a risen counter is theirs, not evidence against this child.
    others_only = bool(victims) and pid not in (victims or set())
    for counter in baseline.counters if baseline and not others_only else ():
        now = _oom_kill_count(counter.counter_file)
        if now is not None and now > counter.oom_kills:
            found.append(
                f"memory cgroup {counter.folder}: {counter.counter_file.name} oom_kill "
                f"{counter.oom_kills} -> {now} during this attempt"
            )
    if found:
        return MemoryEvidence(True, "killed by the kernel's OOM killer (" + "; ".join(found) + ")")
    machine = psutil.virtual_memory().total
    limit = min(machine, baseline.limit_bytes or machine) if baseline else machine
    if peak_rss and peak_rss > NEAR_LIMIT * limit:
        return MemoryEvidence(
            True,
            f"killed by SIGKILL at {peak_rss / 2**30:.2f} GiB resident, near the "
            f"{limit / 2**30:.2f} GiB memory limit: out of memory",
        )
    return MemoryEvidence(False, "SIGKILL from outside xorch; no sign of memory pressure")


# torch's words when a DataLoader worker dies under the main process (the C++
# SIGCHLD handler, and the Python check that notices a worker gone).
_WORKER_DIED = re.compile(
    r"DataLoader worker \(pids?(?:\(s\))? ([\d, ]+)\) "
    r"(?:is killed by signal: Killed|exited unexpectedly)"
)


def dataloader_worker_pids(message: str) -> list[int]:
    """The pids of DataLoader workers that an error message says died, if any:
    the kernel's OOM killer picks the biggest process, often such a worker."""
    found = _WORKER_DIED.search(message)
    if found is None:
        return []
    return [int(p) for p in re.findall(r"\d+", found.group(1))]


# ----------------------------------------------------------------- cgroup files


@functools.lru_cache(maxsize=1)
def cgroup_mounts() -> tuple[Path | None, Path | None]:
    """Where cgroup v1's memory hierarchy and cgroup v2 are mounted, if they are."""
    v1: Path | None = None
    v2: Path | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            mount_point, fs_type, options = fields[1], fields[2], fields[3].split(",")
            if fs_type == "cgroup2" and v2 is None:
                v2 = Path(mount_point)
            elif fs_type == "cgroup" and "memory" in options and v1 is None:
                v1 = Path(mount_point)
    return v1, v2


def memory_cgroup_folders(pid: int) -> list[Path]:
    """The folders of ``pid``'s memory cgroup(s): the v1 memory one and the v2 one
    (a hybrid machine has both; on it, v2 usually has no memory controller)."""
    v1, v2 = cgroup_mounts()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, relative = rest.partition(":")
        if not relative.startswith("/"):
            continue
        mount = None
        if hierarchy == "0" and controllers == "":
            mount = v2
        elif "memory" in controllers.split(","):
            mount = v1
        if mount is not None:
            folder = mount / relative.lstrip("/")
            if folder.is_dir():
                folders.append(folder)
    return folders


def _counter_file(folder: Path) -> Path | None:
    for name in ("memory.events", "memory.oom_control"):
        if (folder / name).is_file():
            return folder / name
    return None


def _oom_kill_count(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None  # a kernel too old to count OOM kills here


def _limit(folder: Path) -> int | None:
    """The tightest memory limit on ``folder`` and the folders above it."""
    v1, v2 = cgroup_mounts()
    limits = []
    for current in (folder, *folder.parents):
        for name in ("memory.max", "memory.limit_in_bytes"):
            with contextlib.suppress(OSError, ValueError):
                text = (current / name).read_text().strip()
                if text != "max" and int(text) < _NO_LIMIT:
                    limits.append(int(text))
        # In a container the mount's root is the container's own cgroup, with
        # its limit; above the mount there is nothing of ours.
        if current in (v1, v2) or current == Path("/"):
            break
    return min(limits) if limits else None


# ------------------------------------------------------------------ kernel log

_LOG_TIME = re.compile(r"^\[\s*(\d+\.\d+)\]")
_KILLED = re.compile(r"Killed process (\d+) ")


def _kernel_oom_victims(baseline: MemoryBaseline | None) -> set[int] | None:
    """The pids the kernel log says the OOM killer killed during this attempt;
    None when the log cannot be read (often so in containers): no evidence."""
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if log.returncode != 0:
        return None
    since = baseline.started_monotonic - _KERNEL_CLOCK_SLACK_S if baseline else None
    victims = set()
    for line in log.stdout.splitlines():
        killed = _KILLED.search(line)
        if killed is None:
            continue
        stamp = _LOG_TIME.match(line)
        # A record from before the attempt may name the same pid, reused.
        if since is None or stamp is None or float(stamp.group(1)) >= since:
            victims.add(int(killed.group(1)))
    return victims
