"""The scheduler's side of the GPU leases: a GPU slot starts a run only with a
lease from ``gpu_leases``, held until the attempt's verdict is recorded.

Another process's release cannot wake the loop, so a slot refused a lease is
asked again after ``LEASE_RECHECK_S`` (the loop's ``next_check`` timer), and
"waiting" is said at most every ``SAY_EVERY_S`` per GPU (with a study on each
side, places change hands at every run's end).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.gpu_leases import GpuLeases, Lease
from orchestrator.gpus import Slot

__all__ = ["LEASE_RECHECK_S", "LeaseGate"]

LEASE_RECHECK_S = 0.5  # a few flock calls on a local folder: cheap enough to ask often
SAY_EVERY_S = 300.0


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
        self._said: dict[str, float] = {}  # GPU -> when "waiting" was last said

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
            said = self._said.get(slot.gpu)
            if said is None or now - said > SAY_EVERY_S:
                self._said[slot.gpu] = now
                self._say(
                    f"GPU {slot.gpu}: in use by other xorch processes up to runs_per_gpu, or "
                    "they wait for it first (xorch status names them); waiting for a place"
                )
            return False
        self._retry_at.pop(slot.gpu, None)
        self._held[slot] = lease
        return True

    def note_child(self, slot: Slot, pid: int | None, create_time: float | None) -> None:
        """The child started on ``slot``: its place stays taken while it lives."""
        lease = self._held.get(slot)
        if lease is not None and pid is not None:
            lease.note_child(pid, create_time)

    def release(self, slot: Slot) -> None:
        lease = self._held.pop(slot, None)
        if lease is not None:
            lease.release()

    def release_all(self) -> None:
        """At the end of the loop: every lease, and this study's place in line."""
        for slot in list(self._held):
            self.release(slot)
        if self._leases is not None:
            self._leases.stop_waiting()

    def next_check(self) -> float | None:
        """When a refused slot asks again; None when none waits."""
        return min(self._refused_in_pass, default=None)
