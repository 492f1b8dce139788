"""Watching one attempt, and deciding how it ended.

``AttemptWatch.check`` is called by the scheduler's loop when a child exits or
its next check is due (``next_due``); it never blocks, so one loop watches
several children. The verdict comes from the exit status and the files the
child left, never from its stdout.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from orchestrator.command import last_activity
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import Heartbeat
from orchestrator.launchers.base import ChildProcess
from orchestrator.oom import MemoryBaseline
from orchestrator.run_shape import RunKind
from orchestrator.runner_spec import RunnerSettings
from orchestrator.state import AttemptClass
from orchestrator.verdict import Verdict, Watched, classify_exit, rank_behind, signal_name

__all__ = ["PARENT_STOPS", "AttemptWatch", "Verdict", "classify_exit"]

HEALTH_EVERY_S = 2.0  # memory, heartbeat and run_timeout checks of a running child

# A launcher that says only "it completed" or "it failed" (a Slurm job settled
# from its files) leaves the class and the metrics to the run's own files.
_FILES_DECIDE = (AttemptClass.COMPLETED, AttemptClass.FAILED)


# The attempt classes that mean "the parent itself stopped the child": a child
# that exits after such a stop (Lightning turns SIGTERM into an exception and
# exit 1) gets the class of the reason it was stopped, not of how it exited.
PARENT_STOPS = frozenset({AttemptClass.TIMEOUT, AttemptClass.HANG, AttemptClass.INTERRUPTED})


class AttemptWatch:
    """One running attempt: timeouts, heartbeat, peak memory, and its verdict.

    Nothing here blocks: a stop (the study's, a timeout's, a hang's) sends
    SIGTERM and returns; the grace period runs on the loop's timers, so one
    child waiting out its grace period never holds up another child's verdict.
    """

    def __init__(
        self,
        child: ChildProcess,
        run: RunPaths,
        runner: RunnerSettings,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        kind: RunKind = RunKind.LIGHTNING,
    ) -> None:
        self.child = child
        self.kind = kind  # COMMAND: a ``command:`` study's own program
        self.run = run
        self.runner = runner
        self._clock = clock
        self._wall = wall_clock
        self.started = clock()
        self._started_wall = wall_clock()
        self.peak_rss = 0
        # The memory cgroups' OOM kill counts now, to tell at a SIGKILL whether
        # the kernel killed the child for memory during this attempt.
        self.memory = MemoryBaseline.take(child.pid)
        # Memory, heartbeat and limits are read on this timer, not on every
        # wake-up: a few reads a second of /proc would cost the parent CPU.
        self.health_every = min(HEALTH_EVERY_S, runner.heartbeat_interval_s)
        # Not at once: a child that has only just started has no memory, heartbeat
        # or time to speak of, and its process tree's memory costs about 3 ms
        # of /proc reads, one per run of a study of short runs (issue 20).
        self._next_health = self.started + self.health_every
        self._stopping: tuple[AttemptClass, str, float] | None = None  # why, reason, deadline

    @property
    def stopping(self) -> bool:
        return self._stopping is not None

    def next_due(self) -> float:
        """When ``check`` must run again even if nothing wakes the loop (clock time)."""
        due = self._next_health
        if self._stopping is not None:
            due = min(due, self._stopping[2])
        timeout = self.runner.run_timeout
        if timeout is not None and self._stopping is None:
            due = min(due, self.started + timeout)
        return due

    def check(self, stop_requested: bool = False) -> Verdict | None:
        """The verdict once the attempt is over, else None. Starts stopping the
        child when the study is stopping, its wall limit passed or its heartbeat
        went quiet; SIGKILLs it when its grace period is over."""
        code = self.child.poll()
        if code is not None:
            return self._verdict(code)
        now = self._clock()
        if self._stopping is not None:
            if now >= self._stopping[2]:
                return self._verdict(self.child.stop(0.0))  # grace period over: SIGKILL
            if now >= self._next_health:  # a child that cannot wake us is polled
                self._next_health = now + self.health_every
            return None
        if stop_requested:
            self.begin_stop(AttemptClass.INTERRUPTED, "the study was stopped")
            return None
        timeout = self.runner.run_timeout
        if now < self._next_health and (timeout is None or now - self.started < timeout):
            return None
        self._next_health = now + self.health_every
        if self.child.queued():  # the clocks start when the job does
            self.started, self._started_wall = now, self._wall()
            return None
        rss = self.child.rss_bytes()
        if rss:
            self.peak_rss = max(self.peak_rss, rss)
        elapsed = now - self.started
        if timeout is not None and elapsed >= timeout:
            self.begin_stop(AttemptClass.TIMEOUT, f"ran past run_timeout ({timeout:g} s)")
            return None
        hang = self.runner.hang_timeout
        if hang is not None:
            quiet = self._wall() - self._last_sign_of_life()
            if quiet > hang:
                self.begin_stop(
                    AttemptClass.HANG,
                    f"no heartbeat for {quiet:.0f} s (hang_timeout {hang:g} s)"
                    + rank_behind(self.run, self._started_wall),
                )
        return None

    def begin_stop(self, why: AttemptClass, reason: str) -> None:
        """SIGTERM now; the verdict comes when the child exits or, after the
        grace period, is SIGKILLed. A first reason sticks. ``why`` is one of
        PARENT_STOPS."""
        assert why in PARENT_STOPS, why
        if self._stopping is None:
            self._stopping = (why, reason, self._clock() + self.runner.grace_period)
            self.child.request_stop()

    def _verdict(self, code: int) -> Verdict:
        if self._stopping is not None:
            # Stopped by us: whatever status SIGTERM produced (Lightning turns it
            # into an exception and exit 1), the class is why we stopped it, and
            # an interrupted run is not a failure. A run that finished anyway
            # keeps its result.
            if code == 0:
                done = classify_exit(code, self.run, Watched(self.kind))
                if done.attempt_class is AttemptClass.COMPLETED:
                    return done
            why, reason, _ = self._stopping
            beat = Heartbeat.read(self.run.heartbeat)
            return Verdict(
                attempt_class=why,
                reason=reason,
                exit_code=code,
                signal=signal_name(code),
                metrics={},
                resumed_from=beat.resumed_from if beat else None,
            )
        ended = self.child.ended_as()
        if ended is not None and ended[0] not in _FILES_DECIDE:
            outcome, reason = ended
            return Verdict(outcome, reason, code, signal_name(code), {})
        watched = Watched(self.kind, self.child.pid, self.peak_rss, self.memory)
        verdict = classify_exit(code, self.run, watched)
        if ended is not None:  # metrics.json or error.json decide; the launcher's note first
            reason = "; ".join(filter(None, [ended[1], verdict.reason]))
            verdict = dataclasses.replace(verdict, reason=reason)
        return verdict

    def _last_sign_of_life(self) -> float:
        beat = Heartbeat.read(self.run.heartbeat)
        if beat is None and self.kind is RunKind.COMMAND:
            # A program that does not use worker.report: its output and files
            # are its signs of life.
            active = last_activity(self.run)
            return max(self._started_wall, active or 0.0)
        if beat is None or beat.time < self._started_wall:
            return self._started_wall  # a beat from an earlier attempt does not count
        return beat.time
