"""Which GPUs runs may use, found without importing torch, and the slots they make.

A slot is one place a run can go: ``runs_per_gpu`` slots per GPU, a group of
``gpus_per_run`` GPUs (a DDP run), or plain CPU slots on a machine without
GPUs. A child on a GPU slot gets ``CUDA_VISIBLE_DEVICES`` set to its GPU or
GPUs ("2,3"), so inside it they are devices 0..N-1. GPU ids in the config count
within a ``CUDA_VISIBLE_DEVICES`` that is already set, the way torch counts them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from orchestrator.errors import ConfigError

__all__ = [
    "GPU_MEMORY_RECHECK_S",
    "GpuMemoryGate",
    "Slot",
    "detect_gpus",
    "free_memory_gb",
    "gpu_groups",
    "gpu_topology",
    "make_slots",
    "resolve_gpus",
    "slot_env",
]

GPU_MEMORY_RECHECK_S = 10.0  # how often a slot waiting for GPU memory asks nvidia-smi

GpuChoice = Literal["auto"] | tuple[int, ...]


@dataclass(frozen=True)
class Slot:
    """One place a run can go: ``gpu`` is the value for CUDA_VISIBLE_DEVICES, or None."""

    number: int
    gpu: str | None  # "2", or "2,3" for a run on several GPUs
    cluster: bool = False  # a place in a cluster's queue, not on this machine

    @property
    def label(self) -> str:
        if self.cluster:
            return f"job#{self.number}"
        return f"gpu{self.gpu}#{self.number}" if self.gpu is not None else f"cpu#{self.number}"


def _visible_from_env(env: Mapping[str, str]) -> list[str] | None:
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip() and part.strip() != "-1"]


def detect_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else what
    nvidia-smi lists; none on a machine without it."""
    env = os.environ if env is None else env
    visible = _visible_from_env(env)
    if visible is not None:
        return visible
    return [row[0] for row in nvidia_smi_rows("index")]


def nvidia_smi_rows(*fields: str) -> list[list[str]]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


def resolve_gpus(choice: GpuChoice, detected: Sequence[str]) -> list[str]:
    """``auto``: every detected GPU. A list: those positions among the visible GPUs
    (or the ids themselves when none is detected, as on a test machine)."""
    if choice == "auto":
        return list(detected)
    if not detected:
        return [str(i) for i in choice]
    missing = [i for i in choice if i >= len(detected)]
    if missing:
        raise ConfigError(
            f"experiments_runner.gpus lists GPU {missing[0]}, but only {len(detected)} "
            f"are visible ({', '.join(detected)}); use ids 0..{len(detected) - 1} or auto"
        )
    return [detected[i] for i in choice]


def make_slots(
    gpus: Sequence[str],
    runs_per_gpu: int,
    max_parallel: int | None,
    gpus_per_run: int = 1,
    topology: Mapping[tuple[str, str], int] | None = None,
) -> list[Slot]:
    """GPU slots in round-robin order (one run per GPU before any GPU gets a
    second), or groups of ``gpus_per_run`` GPUs (see ``gpu_groups``), capped at
    max_parallel; CPU slots when there are no GPUs."""
    if gpus and gpus_per_run > 1:
        groups = [",".join(group) for group in gpu_groups(gpus, gpus_per_run, topology)]
        cap = len(groups) if max_parallel is None else min(max_parallel, len(groups))
        return [Slot(i, group) for i, group in enumerate(groups[:cap])]
    if gpus:
        ids = [gpu for _ in range(runs_per_gpu) for gpu in gpus]
        cap = len(ids) if max_parallel is None else min(max_parallel, len(ids))
        return [Slot(i, gpu) for i, gpu in enumerate(ids[:cap])]
    return [Slot(i, None) for i in range(max_parallel or 1)]


def gpu_groups(
    gpus: Sequence[str], size: int, topology: Mapping[tuple[str, str], int] | None = None
) -> list[list[str]]:
    """As many disjoint groups of ``size`` GPUs as fit; the GPUs left over stay idle.

    Without ``topology``: contiguous runs of the list ([0,1], [2,3]). With it
    (link distances from ``gpu_topology``, smaller is closer), each group starts
    at the lowest free GPU and adds the free GPU closest to the group so far, so
    GPUs joined by NVLink or one PCIe switch train together. A pair the matrix
    does not name counts as far apart."""
    if len(gpus) < size:
        raise ConfigError(
            f"experiments_runner.gpus_per_run is {size}, but only {len(gpus)} GPU(s) are "
            f"usable ({', '.join(gpus)}); lower gpus_per_run or list more gpus"
        )
    count = len(gpus) // size
    if not topology:
        return [list(gpus[i * size : (i + 1) * size]) for i in range(count)]
    free = list(gpus)
    groups = []
    for _ in range(count):
        group = [free.pop(0)]
        while len(group) < size:

            def distance(gpu: str, members: list[str] = group) -> int:
                return max(topology.get((member, gpu), _FAR) for member in members)

            closest = min(free, key=distance)  # min keeps the lowest id on a tie
            free.remove(closest)
            group.append(closest)
        groups.append(sorted(group, key=list(gpus).index))  # in the listed order
    return groups


# `nvidia-smi topo -m` link kinds, closest first: NVLink (NV<n>, more links
# closer), the same PCIe switch (PIX), several switches (PXB), the same host
# bridge (PHB), the same NUMA node (NODE), across NUMA nodes (SYS).
_LINKS = {"PIX": 100, "PXB": 200, "PHB": 300, "NODE": 400, "SYS": 500}
_FAR = 1000


def gpu_topology(gpus: Sequence[str]) -> dict[tuple[str, str], int] | None:
    """Link distances between the given GPUs (nvidia-smi indexes) from
    ``nvidia-smi topo -m``; None when nvidia-smi is missing, the GPUs are named
    by UUID, or the matrix does not read as expected: then groups are contiguous."""
    if not gpus or not all(gpu.isdigit() for gpu in gpus) or shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_topology(out, gpus)


def parse_topology(text: str, gpus: Sequence[str]) -> dict[tuple[str, str], int] | None:
    """The matrix's rows ``GPU<i> X NV4 PIX ...`` under a header of ``GPU<j>``
    columns, read for the GPUs named; None on anything unexpected."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    header = next((row for row in rows if row and row[0].startswith("GPU")), None)
    if header is None:
        return None
    columns = [name[3:] for name in header if re.fullmatch(r"GPU\d+", name)]
    distances: dict[tuple[str, str], int] = {}
    for row in rows:
        if not row or not re.fullmatch(r"GPU\d+", row[0]) or row is header:
            continue
        for column, cell in zip(columns, row[1:], strict=False):
            link = _link_distance(cell)
            if link is None:
                return None
            distances[(row[0][3:], column)] = link
    wanted = set(gpus)
    if not all((a, b) in distances for a in wanted for b in wanted if a != b):
        return None
    return {pair: d for pair, d in distances.items() if pair[0] in wanted and pair[1] in wanted}


def _link_distance(cell: str) -> int | None:
    if cell == "X":
        return 0
    if cell in _LINKS:
        return _LINKS[cell]
    match = re.fullmatch(r"NV(\d+)", cell)
    if match:
        return max(1, 99 - int(match.group(1)))  # more NVLinks: closer
    return None


def free_memory_gb(gpu: str) -> float | None:
    """Free memory of one GPU (by index or UUID) from nvidia-smi, None if unknown."""
    for index, uuid, free_mib in nvidia_smi_rows("index", "uuid", "memory.free"):
        if gpu in (index, uuid):
            try:
                return float(free_mib) / 1024
            except ValueError:
                return None
    return None


def slot_env(
    slot: Slot, slot_count: int, cpu_count: int | None = None, processes: int = 1
) -> dict[str, str]:
    """What a child on ``slot`` adds to its environment: its GPUs (or none), and
    when several runs share the machine, each of its ``processes``' share of the cores."""
    env = {"CUDA_VISIBLE_DEVICES": slot.gpu if slot.gpu is not None else ""}
    if slot_count > 1:
        # Runs sharing the CPU each get their share of the cores, so they do
        # not oversubscribe it (torch would start one thread per core in each);
        # a DDP run's ranks split its share.
        cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
        share = str(max(1, cores // (slot_count * processes)))
        env.update(OMP_NUM_THREADS=share, MKL_NUM_THREADS=share)
    return env


class GpuMemoryGate:
    """``min_free_gpu_mem_gb``: whether a GPU has room for one more run.

    nvidia-smi takes tens of milliseconds and wakes the driver, so a GPU that
    had too little memory is asked again only after ``recheck_s``; until then
    the answer is the last one. ``next_check`` tells the loop when to look again.
    """

    def __init__(
        self,
        need_gb: float | None,
        recheck_s: float = GPU_MEMORY_RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
        free_gb: Callable[[str], float | None] = lambda gpu: free_memory_gb(gpu),
    ) -> None:
        self.need_gb = need_gb
        self.recheck_s = recheck_s
        self._clock = clock
        self._free_gb = free_gb
        self._short: dict[str, tuple[float, float]] = {}  # gpu -> (checked at, free GB)

    def has_room(self, gpu: str | None) -> tuple[bool, float | None]:
        """(room, free GB when it was just measured short) for a run on ``gpu``."""
        if self.need_gb is None or gpu is None:
            return True, None
        now = self._clock()
        last = self._short.get(gpu)
        if last is not None and now - last[0] < self.recheck_s:
            return False, None  # asked recently, and it was short
        # A group of GPUs ("2,3") has room when each of them has: its least free counts.
        known = [f for f in map(self._free_gb, gpu.split(",")) if f is not None]
        free = min(known) if known else None
        if free is None or free >= self.need_gb:
            self._short.pop(gpu, None)
            return True, None
        self._short[gpu] = (now, free)
        return False, free

    def next_check(self) -> float | None:
        """The clock time at which a waiting GPU is asked again; None if none waits."""
        if not self._short:
            return None
        return min(at for at, _ in self._short.values()) + self.recheck_s
