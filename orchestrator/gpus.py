"""Which GPUs runs may use, found without importing torch, and the slots they make.

A slot is one place a run can go: ``runs_per_gpu`` slots per GPU, or plain CPU
slots on a machine without GPUs. A child on a GPU slot gets
``CUDA_VISIBLE_DEVICES`` set to that one GPU, so inside it the GPU is device 0.
GPU ids in the config count within a ``CUDA_VISIBLE_DEVICES`` that is already
set, the way torch counts them.
"""

from __future__ import annotations

import os
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
    gpu: str | None
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
    return [row[0] for row in _nvidia_smi_rows("index")]


def _nvidia_smi_rows(*fields: str) -> list[list[str]]:
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


def make_slots(gpus: Sequence[str], runs_per_gpu: int, max_parallel: int | None) -> list[Slot]:
    """GPU slots in round-robin order (one run per GPU before any GPU gets a
    second), capped at max_parallel; CPU slots when there are no GPUs."""
    if gpus:
        ids = [gpu for _ in range(runs_per_gpu) for gpu in gpus]
        cap = len(ids) if max_parallel is None else min(max_parallel, len(ids))
        return [Slot(i, gpu) for i, gpu in enumerate(ids[:cap])]
    return [Slot(i, None) for i in range(max_parallel or 1)]


def free_memory_gb(gpu: str) -> float | None:
    """Free memory of one GPU (by index or UUID) from nvidia-smi, None if unknown."""
    for index, uuid, free_mib in _nvidia_smi_rows("index", "uuid", "memory.free"):
        if gpu in (index, uuid):
            try:
                return float(free_mib) / 1024
            except ValueError:
                return None
    return None


def slot_env(slot: Slot, slot_count: int, cpu_count: int | None = None) -> dict[str, str]:
    """What a child on ``slot`` adds to its environment: its GPU (or none), and
    when several runs share the machine, its share of the cores."""
    env = {"CUDA_VISIBLE_DEVICES": slot.gpu if slot.gpu is not None else ""}
    if slot_count > 1:
        # Runs sharing the CPU each get their share of the cores, so they do
        # not oversubscribe it (torch would start one thread per core in each).
        cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
        share = str(max(1, cores // slot_count))
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
        free = self._free_gb(gpu)
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
