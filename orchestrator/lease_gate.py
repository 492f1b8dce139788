"""The scheduler's side of the GPU leases: a GPU slot starts a run only with a
lease from ``gpu_leases``, held until the attempt's verdict is recorded.

Another process's release cannot wake the loop, so a slot refused a lease is
asked again after ``LEASE_RECHECK_S`` (the loop's ``next_check`` timer), and
"waiting for" is said once per GPU and wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.gpu_leases import GpuLeases, Lease
from orchestrator.gpus import Slot

__all__ = ["LEASE_RECHECK_S", "LeaseGate"]

LEASE_RECHECK_S = 0.5  # a few flock calls on a local folder: cheap enough to ask often


class LeaseGate:
    def __init__(
        self,
        leases: GpuLeases | None,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        recheck_s: float = LEASE_RECHECK_S,
    ) -> None:
        self._leases, self._say, self._clock, self._recheck_s = leases, say, clock, recheck_s
        self._held: dict[Slot, Lease] = {}
        self._retry_at: dict[str, float] = {}  # GPU(s) refused -> not asked again before
        self._refused_in_pass: list[float] = []  # the retry times of this pass's refusals
        self._waiting: set[str] = set()  # GPUs said to be waited for

    def new_pass(self) -> None:
        """Called before each pass of starts: a refusal only keeps a timer while
        slots still ask."""
        self._refused_in_pass = []

    def take(self, slot: Slot, run: int) -> bool:
        """Whether ``slot`` may start run ``run`` now (its lease is then held)."""
        if self._leases is None or slot.gpu is None or slot.cluster or slot in self._held:
            return True
        now = self._clock()
        retry_at = self._retry_at.get(slot.gpu)
        if retry_at is not None and now < retry_at:
            self._refused_in_pass.append(retry_at)
            return False
        lease = self._leases.take(slot.gpu.split(","), run)
        if lease is None:
            self._retry_at[slot.gpu] = now + self._recheck_s
            self._refused_in_pass.append(now + self._recheck_s)
            if slot.gpu not in self._waiting:
                self._waiting.add(slot.gpu)
                self._say(
                    f"GPU {slot.gpu}: its runs_per_gpu is reached by other xorch processes "
                    f"(xorch status names them); waiting for a free place"
                )
            return False
        self._retry_at.pop(slot.gpu, None)
        self._waiting.discard(slot.gpu)
        self._held[slot] = lease
        return True

    def release(self, slot: Slot) -> None:
        lease = self._held.pop(slot, None)
        if lease is not None:
            lease.release()

    def release_all(self) -> None:
        for slot in list(self._held):
            self.release(slot)

    def next_check(self) -> float | None:
        """When a refused slot asks again; None when none waits."""
        return min(self._refused_in_pass, default=None)
