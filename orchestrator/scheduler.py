"""The main loop: pending runs -> free slots -> attempts -> verdicts -> state and summary.

Runs start in index order on free slots (one per GPU slot, or ``max_parallel``
CPU slots). All bookkeeping happens here, in one thread: each verdict is
recorded in the state and summary.csv at once, so completion order changes
nothing on disk but the order of writes. A failed attempt goes back to the front
of the queue until ``max_retries`` is spent; it may land on any free slot. After
a run fails for good, ``on_failure: stop`` starts nothing new.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import Executor, OnFailure, StudySpec
from orchestrator.gpus import Slot, detect_gpus, free_memory_gb, make_slots, resolve_gpus
from orchestrator.interrupts import StopFlag
from orchestrator.launchers.base import ChildProcess, Launcher
from orchestrator.paths import RunPaths, StudyPaths
from orchestrator.report import Reporter, format_metrics, progress_text
from orchestrator.state import Attempt, AttemptClass, RunStatus, StudyState, now_iso
from orchestrator.state_store import save_state
from orchestrator.summary import write_summary
from orchestrator.supervise import AttemptWatch, Verdict
from worker.protocol import Heartbeat, RunSpec

__all__ = ["Scheduler", "SchedulerOutcome", "study_slots"]

POLL_MIN_S = 0.05
POLL_MAX_S = 0.5
GPU_MEMORY_RECHECK_S = 10.0


@dataclass(frozen=True)
class SchedulerOutcome:
    state: StudyState
    stopped_by_signal: bool = False
    config_error: str | None = None  # a run could not even be built


@dataclass
class _Active:
    """An attempt in flight on a slot."""

    index: int
    attempt: Attempt
    child: ChildProcess
    watch: AttemptWatch


def study_slots(spec: StudySpec) -> list[Slot]:
    runner = spec.runner
    if runner.executor is Executor.SLURM:  # the cluster places jobs; this caps the queue
        return [Slot(i, None, cluster=True) for i in range(runner.slurm.max_concurrent)]
    gpus = resolve_gpus(runner.gpus, detect_gpus()) if runner.gpus != () else []
    return make_slots(gpus, runner.runs_per_gpu, runner.max_parallel)


@dataclass
class Scheduler:
    spec: StudySpec
    paths: StudyPaths
    launcher: Launcher
    reporter: Reporter
    stop: StopFlag
    slots: list[Slot] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep
    # Cluster jobs outlive the parent: on a stop signal, leave them running
    # (resume re-attaches) unless asked to cancel them.
    leave_running_on_stop: bool = False

    def __post_init__(self) -> None:
        if not self.slots:
            self.slots = study_slots(self.spec)
        self._gpu_wait_said: dict[str, float] = {}

    def run(
        self, state: StudyState, reattach: Sequence[tuple[int, ChildProcess]] = ()
    ) -> SchedulerOutcome:
        """Run every run not completed; ``reattach``: attempts still running on a
        cluster from an earlier launch, watched again instead of submitted again."""
        runner = self.spec.runner
        adopted = {index for index, _ in reattach}
        queue = deque(
            r.index
            for r in state.runs
            if r.status is not RunStatus.COMPLETED and r.index not in adopted
        )
        tries = dict.fromkeys([*adopted, *queue], 0)
        active: dict[Slot, _Active] = {}
        free = iter(self.slots)
        for extra, (index, child) in enumerate(reattach):
            attempt = state.runs[index].attempts[-1]
            watch = AttemptWatch(child, self.paths.run(state.runs[index].dir), runner)
            slot = next(free, None) or Slot(len(self.slots) + extra, None, cluster=True)
            active[slot] = _Active(index, attempt, child, watch)
            self.reporter.say(f"run {index}: watching job {attempt.job_id} again")
        starting_allowed = True
        config_error: str | None = None
        if len(self.slots) > 1:
            where = ", ".join(s.label for s in self.slots)
            self.reporter.say(f"{len(self.slots)} runs at a time on slots: {where}")
        poll = POLL_MIN_S
        while active or (queue and starting_allowed and not self.stop.requested):
            if self.stop.requested and self.leave_running_on_stop:
                if active:
                    self.reporter.say(
                        f"leaving {len(active)} job(s) running; --resume watches them "
                        "again (or launch with --cancel-jobs to cancel them on a stop)"
                    )
                break
            if self.stop.requested:
                for running in active.values():  # all children stop together
                    running.child.request_stop()
            started = False
            if starting_allowed and not self.stop.requested:
                for slot in self.slots:
                    if slot in active or not queue or not self._gpu_has_room(slot):
                        continue
                    index = queue.popleft()
                    state, active[slot] = self._start(state, index, slot)
                    started = True
            finished = False
            for slot, running in list(active.items()):
                verdict = running.watch.check(self.stop.requested)
                if verdict is None:
                    continue
                del active[slot]
                finished = True
                state = self._record(state, running, verdict)
                tries[running.index] += 1
                if verdict.outcome is AttemptClass.COMPLETED:
                    continue
                if verdict.config_error:
                    config_error = verdict.reason
                    starting_allowed = False
                elif self.stop.requested:
                    continue
                elif tries[running.index] <= runner.max_retries:
                    queue.appendleft(running.index)
                    record = state.runs[running.index]
                    self.reporter.say(
                        f"run {record.index} seed {record.seed}: retrying (attempt "
                        f"{tries[running.index] + 1} of {runner.max_retries + 1})"
                    )
                elif runner.on_failure is OnFailure.STOP and starting_allowed:
                    self.reporter.say("on_failure is stop: no new runs start")
                    starting_allowed = False
            self._show_progress(state, active)
            poll = POLL_MIN_S if (started or finished) else min(POLL_MAX_S, poll * 1.5)
            if active:
                self.sleep(poll)
            elif queue and starting_allowed and not self.stop.requested and not started:
                self.sleep(POLL_MAX_S)  # every slot waits for GPU memory
        return SchedulerOutcome(
            state, stopped_by_signal=self.stop.requested, config_error=config_error
        )

    def _show_progress(self, state: StudyState, active: dict[Slot, _Active]) -> None:
        if not self.reporter.progress_due():
            return  # no heartbeat reads when nobody watches a progress line
        running = []
        for item in sorted(active.values(), key=lambda a: a.index):
            beat = Heartbeat.read(item.watch.run.heartbeat)
            epoch = None
            if beat is not None and beat.phase not in ("starting", "setup"):
                epoch = (
                    f"{beat.epoch + 1}/{beat.max_epochs}"
                    if beat.max_epochs
                    else str(beat.epoch + 1)
                )
            running.append((item.index, epoch))
        completed = state.completed
        durations = [r.duration_s for r in completed if r.duration_s]
        self.reporter.progress(
            progress_text(len(completed), len(state.runs), running, durations, len(self.slots))
        )

    # ------------------------------------------------------------------ one attempt

    def _child_env(self, slot: Slot) -> dict[str, str]:
        env = {"CUDA_VISIBLE_DEVICES": slot.gpu if slot.gpu is not None else ""}
        if len(self.slots) > 1:
            # Runs sharing the CPU each get their share of the cores, so they do
            # not oversubscribe it (torch would start one thread per core in each).
            share = str(max(1, (os.cpu_count() or 1) // len(self.slots)))
            env.update(OMP_NUM_THREADS=share, MKL_NUM_THREADS=share)
        return env

    def _gpu_has_room(self, slot: Slot) -> bool:
        need = self.spec.runner.min_free_gpu_mem_gb
        if need is None or slot.gpu is None:
            return True
        free = free_memory_gb(slot.gpu)
        if free is None or free >= need:
            return True
        last = self._gpu_wait_said.get(slot.gpu, 0.0)
        if time.monotonic() - last > 300:
            self.reporter.say(
                f"GPU {slot.gpu}: waiting for {need:g} GB free memory (now {free:.1f} GB free)"
            )
            self._gpu_wait_said[slot.gpu] = time.monotonic()
        return False

    def _start(self, state: StudyState, index: int, slot: Slot) -> tuple[StudyState, _Active]:
        record = state.runs[index]
        run = self.paths.run(record.dir)
        number = len(record.attempts) + 1
        _prepare_run_dir(run, number)
        RunSpec(
            run_index=index,
            seed=record.seed,
            run_dir=str(run.root),
            config=dict(self.spec.training),
            import_paths=self.spec.import_paths,
            heartbeat_interval_s=self.spec.runner.heartbeat_interval_s,
        ).write(run.run_spec)
        on = f" on {slot.label}" if len(self.slots) > 1 or slot.gpu is not None else ""
        self.reporter.say(
            f"run {index} seed {record.seed}: starting attempt {number} in {run.root.name}{on}"
        )
        started_at = now_iso()
        child = self.launcher.start(run, self._child_env(slot))
        if child.pid is not None:
            self.stop.active_groups.add(child.pid)
        attempt = Attempt(
            number=number,
            started_at=started_at,
            log=str(run.log.relative_to(self.paths.root)),
            pid=child.pid,
            pid_create_time=getattr(child, "create_time", None),
            slot=slot.label,
            gpu=slot.gpu,
            job_id=getattr(child, "job_id", None),
        )
        state = state.start_attempt(index, attempt)
        try:
            save_state(self.paths, state)
        except BaseException:
            # No record of this child can exist, so it must not train on.
            child.stop(0)
            raise
        return state, _Active(index, attempt, child, AttemptWatch(child, run, self.spec.runner))

    def _record(self, state: StudyState, running: _Active, verdict: Verdict) -> StudyState:
        if running.child.pid is not None:
            self.stop.active_groups.discard(running.child.pid)
        finished = dataclasses.replace(
            running.attempt,
            outcome=verdict.outcome,
            reason=verdict.reason,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            ended_at=now_iso(),
            duration_s=round(time.monotonic() - running.watch.started, 3),
            resumed_from=_relative(verdict.resumed_from, self.paths.root),
        )
        state = state.finish_attempt(running.index, finished, verdict.metrics)
        save_state(self.paths, state)
        if self.spec.runner.save_summary:
            write_summary(self.paths, state)
        self._report(state, running.index, finished)
        return state

    def _report(self, state: StudyState, index: int, attempt: Attempt) -> None:
        record = state.runs[index]
        took = f"{attempt.duration_s:.1f} s"
        if attempt.outcome is AttemptClass.COMPLETED:
            shown = format_metrics(record.metrics, self.spec.runner.summary_metrics)
            self.reporter.say(f"run {index} seed {record.seed}: completed in {took}  {shown}")
        else:
            outcome = attempt.outcome.value if attempt.outcome else "?"
            self.reporter.say(
                f"run {index} seed {record.seed}: {outcome} after {took}: {attempt.reason}"
            )


def _prepare_run_dir(run: RunPaths, number: int) -> None:
    """Make the folder; keep an earlier attempt's final files as evidence under
    another name, so this attempt's verdict reads only its own."""
    run.root.mkdir(parents=True, exist_ok=True)
    for path in (run.metrics, run.error):
        if path.exists():
            path.replace(run.previous_attempt_file(path, number - 1))
    run.heartbeat.unlink(missing_ok=True)
    if number > 1:
        with open(run.log, "a", encoding="utf-8") as log:
            log.write(f"\n===== xorch: attempt {number} =====\n")


def _relative(path: str | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path
