"""The main loop: pending runs -> free slots -> attempts -> verdicts -> state and summary.

Runs start in index order on free slots (one per GPU slot, or ``max_parallel``
CPU slots). All bookkeeping happens here, in one thread: each verdict is
recorded in the state and summary.csv at once, so completion order changes
nothing on disk but the order of writes. What follows an attempt is
``policy.decide``: a failed attempt goes back to the front of the queue until
``max_retries`` is spent (it may land on any free slot); after a run fails for
good, ``on_failure: stop`` starts nothing new.

The loop is event-driven. It sleeps on a ``Wakeup`` that is set when a child
exits (a waiting thread per spawned child, the fork server's reader thread for
forked ones) or a stop signal arrives, and otherwise until the earliest timer:
a child's next health check (memory, heartbeat, run_timeout), the end of a
grace period, a GPU-memory recheck, the progress line. A slot that frees is
filled in the same pass that records the verdict, so the next run starts
milliseconds after the last one ended. Cluster jobs cannot wake the loop; they
are polled on their health timer.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from orchestrator.adaptive import Action, study_step
from orchestrator.attempt import PortBook, attempt_env, given_checkpoint, prepare_attempt
from orchestrator.config import StudySpec
from orchestrator.console import Reporter, format_metrics, progress_line
from orchestrator.contract.paths import StudyPaths, study_relative
from orchestrator.gpu_leases import GpuLeases
from orchestrator.gpus import (
    GpuMemoryGate,
    Slot,
)
from orchestrator.interrupts import StopFlag
from orchestrator.launchers.base import ChildProcess, Launcher, Wakeup
from orchestrator.lease_gate import LeaseGate
from orchestrator.ledger import Ledger
from orchestrator.policy import AttemptTally, Decision, decide
from orchestrator.slots import study_slots
from orchestrator.state import Attempt, AttemptClass, RunOutcome, RunStatus, StudyState, now_iso
from orchestrator.summary import SummaryWriter
from orchestrator.supervise import AttemptWatch, Verdict

__all__ = ["Scheduler", "SchedulerOutcome"]

GPU_WAIT_SAY_EVERY_S = 300.0  # "waiting for GPU memory" is said at most this often per GPU


@dataclass(frozen=True)
class SchedulerOutcome:
    state: StudyState
    config_error: str | None = None  # a run could not even be built


@dataclass
class _Active:
    """An attempt in flight on a slot."""

    index: int
    attempt: Attempt
    child: ChildProcess
    watch: AttemptWatch


@dataclass
class Scheduler:
    spec: StudySpec
    paths: StudyPaths
    launcher: Launcher
    reporter: Reporter
    stop: StopFlag
    slots: list[Slot] = field(default_factory=list)
    # Cluster jobs outlive the parent: on a stop signal, leave them running
    # (resume re-attaches) unless asked to cancel them.
    leave_running_on_stop: bool = False
    clock: Callable[[], float] = time.monotonic
    wakeup: Wakeup | None = None  # made by run() unless a test passes its own
    gpu_gate: GpuMemoryGate | None = None
    leases: GpuLeases | None = None  # the machine's GPU leases; None: this study alone counts

    def __post_init__(self) -> None:
        if not self.slots:
            self.slots = study_slots(self.spec)
        if self.gpu_gate is None:
            self.gpu_gate = GpuMemoryGate(self.spec.runner.min_free_gpu_mem_gb, clock=self.clock)
        self._gpu_wait_said: dict[str, float] = {}
        self._lease_gate = LeaseGate(self.leases, self.reporter.say, self.clock)
        self._ports = PortBook()
        self._summaries = SummaryWriter(self.paths, self.clock)

    def run(
        self, state: StudyState | Ledger, reattach: Sequence[tuple[int, ChildProcess]] = ()
    ) -> SchedulerOutcome:
        """Run every run not completed; ``reattach``: attempts still running on a
        cluster from an earlier launch, watched again instead of submitted again.
        Every change to the state is made through the ledger, which saves it."""
        self._ledger = state if isinstance(state, Ledger) else Ledger(self.paths, state)
        state = self._ledger.state
        own_wakeup = self.wakeup is None
        wakeup = self.wakeup if self.wakeup is not None else Wakeup()
        self.stop.on_request = wakeup.set
        try:
            return self._loop(state, reattach, wakeup)
        finally:
            # A verdict of a pass that ended in an exception; the state file whole.
            self._ledger.close()
            self._lease_gate.release_all()  # a start that raised; the rest went at their verdicts
            self.stop.on_request = None
            if own_wakeup:
                wakeup.close()

    def _loop(
        self, state: StudyState, reattach: Sequence[tuple[int, ChildProcess]], wakeup: Wakeup
    ) -> SchedulerOutcome:
        runner = self.spec.runner
        queue, tally, active = self._begin(state, reattach, wakeup)
        starting_allowed = True
        config_error: str | None = None
        while True:
            stopping = self.stop.requested
            if stopping and self.leave_running_on_stop:
                if active:
                    self.reporter.say(
                        f"leaving {len(active)} job(s) running; --resume watches them "
                        "again (or launch with --cancel-jobs to cancel them on a stop)"
                    )
                break
            # Verdicts first, so a slot freed in this pass is filled in it too.
            recorded = False
            for slot, running in list(active.items()):
                verdict = running.watch.check(stopping)
                if verdict is None:
                    continue
                del active[slot]
                state = self._record(state, running, verdict)
                self._lease_gate.release(slot)  # held for the whole attempt, no longer
                recorded = True
                tally[running.index] = tally[running.index].counting(verdict.attempt_class)
                decision = decide(
                    verdict.attempt_class,
                    tally[running.index],
                    runner,
                    config_error=verdict.config_error,
                    study_stopping=stopping,
                )
                if decision is Decision.RETRY:
                    queue.appendleft(running.index)  # the front: retried before new runs
                    self._say_retry(state, running.index, tally[running.index])
                elif decision is Decision.STOP_STUDY and starting_allowed:
                    starting_allowed = False
                    if verdict.config_error:
                        config_error = verdict.reason
                    else:
                        self.reporter.say("on_failure is stop: no new runs start")
            if starting_allowed and not self.stop.requested:  # (a signal may have just come)
                if not queue and state.adaptive is not None:
                    state = self._adaptive_seeds(state, queue, tally, active)
                state = self._fill_slots(state, queue, active, wakeup)
            state = self._ledger.flush()  # verdicts no start above saved (issue 20)
            if recorded and runner.save_summary:
                # After the starts: the next run need not wait for the summary,
                # which the state (already saved) can always rebuild.
                self._summaries.after_run(state)  # comparison.csv: on its timer
            if not active and (not queue or not starting_allowed or stopping):
                break
            self._show_progress(state, active)
            wakeup.wait(self._sleep_for(active))
        return SchedulerOutcome(state, config_error=config_error)

    def _begin(
        self, state: StudyState, reattach: Sequence[tuple[int, ChildProcess]], wakeup: Wakeup
    ) -> tuple[deque[int], dict[int, AttemptTally], dict[Slot, _Active]]:
        """The queue in run order, each run's tally, and the cluster jobs watched again."""
        adopted = {index for index, _ in reattach}
        queue = deque(
            r.index
            for r in state.runs
            if r.status is not RunStatus.COMPLETED and r.index not in adopted
        )
        tally = {index: AttemptTally() for index in [*adopted, *queue]}
        active: dict[Slot, _Active] = {}
        free = iter(self.slots)
        for extra, (index, child) in enumerate(reattach):
            attempt = state.runs[index].attempts[-1]
            child.notify_exit(wakeup)
            run = self.paths.run(state.runs[index].dir)
            watch = AttemptWatch(
                child, run, self.spec.runner, clock=self.clock, kind=self.spec.shape.kind
            )
            slot = next(free, None) or Slot(len(self.slots) + extra, None, cluster=True)
            active[slot] = _Active(index, attempt, child, watch)
            self.reporter.say(f"run {index}: watching job {attempt.job_id} again")
        if len(self.slots) > 1:
            where = ", ".join(s.label for s in self.slots)
            self.reporter.say(f"{len(self.slots)} runs at a time on slots: {where}")
        return queue, tally, active

    def _fill_slots(
        self, state: StudyState, queue: deque[int], active: dict[Slot, _Active], wakeup: Wakeup
    ) -> StudyState:
        """The next runs of the queue on the free slots whose GPU has room and a lease."""
        self._lease_gate.new_pass()
        for slot in self.slots:
            if slot in active or not queue or not self._gpu_has_room(slot):
                continue
            if not self._lease_gate.take(slot, queue[0]):
                continue  # another xorch process fills its GPU: asked again soon
            index = queue.popleft()
            state, active[slot] = self._start(state, index, slot, wakeup)
        return state

    def _adaptive_seeds(
        self,
        state: StudyState,
        queue: deque[int],
        tally: dict[int, AttemptTally],
        active: dict[Slot, _Active],
    ) -> StudyState:
        """Adaptive seeds (``orchestrator.adaptive``): with the queue empty and a
        slot free, queue the next seeds of the stored sequence, or record why no
        more follow once nothing in flight can change the answer."""
        assert state.adaptive is not None
        most = state.adaptive.rule.max_seeds
        free = len(self.slots) - len(active)
        if free <= 0:
            return state
        step = study_step(state, free)
        if step.action is Action.MORE:
            before = len(state.seeds)
            added = self._ledger.add_seeds(step.seeds)  # on record before they start
            state = self._ledger.state
            queue.extend(added)
            tally.update((index, AttemptTally()) for index in added)
            new = ", ".join(str(s) for s in state.seeds[before:])
            plural = "s" if len(state.seeds) - before > 1 else ""
            self.reporter.say(
                f"adaptive seeds: {step.reason}; adding seed{plural} {new} "
                f"({len(state.seeds)} of max {most})"
            )
        elif step.action is Action.STOP:
            state = self._ledger.stop_adding(step.reason)
            self.reporter.say(f"adaptive seeds: stopped: {step.reason}")
        return state

    def _sleep_for(self, active: dict[Slot, _Active]) -> float | None:
        """Seconds until the earliest timer; None: only a wake-up can change anything."""
        assert self.gpu_gate is not None
        timers = [running.watch.next_due() for running in active.values()]
        rechecks = (self.gpu_gate.next_check(), self._lease_gate.next_check())
        timers += [recheck for recheck in rechecks if recheck is not None]
        progress = self.reporter.next_progress()
        if progress is not None and active:
            timers.append(progress)
        if not timers:
            return None
        return max(0.0, min(timers) - self.clock())

    def _say_retry(self, state: StudyState, index: int, tally: AttemptTally) -> None:
        record = state.runs[index]
        if record.status is RunStatus.INTERRUPTED:
            self.reporter.say(
                f"run {index} seed {record.seed}: interrupted, not failed; trying again"
            )
            return
        self.reporter.say(
            f"run {index} seed {record.seed}: retrying (attempt "
            f"{tally.failures + 1} of {self.spec.runner.max_retries + 1})"
        )

    def _show_progress(self, state: StudyState, active: dict[Slot, _Active]) -> None:
        if not self.reporter.progress_due():
            return  # no heartbeat reads when nobody watches a progress line
        running = [(item.index, item.watch.run.heartbeat) for item in active.values()]
        self.reporter.progress(progress_line(state, running, len(self.slots)))

    # ------------------------------------------------------------------ one attempt

    def _gpu_has_room(self, slot: Slot) -> bool:
        assert self.gpu_gate is not None
        room, free = self.gpu_gate.has_room(slot.gpu)
        if room or free is None or slot.gpu is None:
            return room
        last = self._gpu_wait_said.get(slot.gpu)
        if last is None or self.clock() - last > GPU_WAIT_SAY_EVERY_S:
            need = self.spec.runner.min_free_gpu_mem_gb or 0.0
            self.reporter.say(
                f"GPU {slot.gpu}: waiting for {need:g} GB free memory (now {free:.1f} GB free)"
            )
            self._gpu_wait_said[slot.gpu] = self.clock()
        return False

    def _start(
        self, state: StudyState, index: int, slot: Slot, wakeup: Wakeup
    ) -> tuple[StudyState, _Active]:
        record = state.runs[index]
        number = len(record.attempts) + 1
        run = prepare_attempt(self.spec, self.paths, record, number)
        on = f" on {slot.label}" if len(self.slots) > 1 or slot.gpu is not None else ""
        self.reporter.say(
            f"run {index} seed {record.seed}: starting attempt {number} in {record.dir}{on}"
        )
        started_at = now_iso()
        resumed_from = given_checkpoint(self.spec, self.paths, run)
        env = attempt_env(self.spec, record, slot, len(self.slots), self._ports)
        child = self.launcher.start(run, env)
        self._lease_gate.note_child(slot, child.pid, child.create_time)
        if child.pid is not None:
            self.stop.active_groups.add(child.pid)
        attempt = Attempt(
            number=number,
            started_at=started_at,
            log=str(run.log.relative_to(self.paths.root)),
            pid=child.pid,
            pid_create_time=child.create_time,
            slot=slot.label,
            gpu=slot.gpu,
            job_id=child.job_id,
            resumed_from=resumed_from,
        )
        try:
            state = self._ledger.start_attempt(index, attempt)
        except BaseException:
            # No record of this child can exist, so it must not train on.
            child.stop(0)
            raise
        child.notify_exit(wakeup)  # else its health timer polls it (a cluster job)
        watch = AttemptWatch(
            child,
            run,
            self.spec.runner,
            clock=self.clock,
            kind=self.spec.shape.kind,
        )
        return state, _Active(index, attempt, child, watch)

    def _record(self, state: StudyState, running: _Active, verdict: Verdict) -> StudyState:
        if running.child.pid is not None:
            self.stop.active_groups.discard(running.child.pid)
        finished = dataclasses.replace(
            running.attempt,
            attempt_class=verdict.attempt_class,
            reason=verdict.reason,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            ended_at=now_iso(),
            duration_s=round(self.clock() - running.watch.started, 3),
            # What the child says it resumed from, else what it was given at the start.
            resumed_from=study_relative(verdict.resumed_from, self.paths.root)
            or running.attempt.resumed_from,
        )
        outcome = RunOutcome(
            verdict.outcome.epochs_trained,
            study_relative(verdict.outcome.best_checkpoint_path, self.paths.root),
        )
        # Saved with the pass's next start or at its end (``Ledger.flush``).
        state = self._ledger.finish_attempt(
            running.index, finished, verdict.metrics, outcome, later=True
        )
        self._report(state, running.index, finished)
        return state

    def _report(self, state: StudyState, index: int, attempt: Attempt) -> None:
        record = state.runs[index]
        took = f"{attempt.duration_s:.1f} s"
        if attempt.attempt_class is AttemptClass.COMPLETED:
            shown = format_metrics(record.metrics, self.spec.runner.summary_metrics)
            self.reporter.say(f"run {index} seed {record.seed}: completed in {took}  {shown}")
        else:
            outcome = attempt.attempt_class.value if attempt.attempt_class else "?"
            lines = (attempt.reason or "").splitlines() or [""]
            more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
            self.reporter.say(
                f"run {index} seed {record.seed}: {outcome} after {took}: {lines[0]}{more}"
            )
