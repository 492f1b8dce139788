"""The main loop: pending runs -> attempts -> verdicts -> state and summary.

Runs go in index order, one at a time. Each attempt is: write its run spec,
start the child, record it as running, watch it, record its verdict, rewrite
summary.csv. A failed attempt is retried up to ``max_retries`` times; after a
run fails for good, ``on_failure`` says whether the study goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import OnFailure, StudySpec
from orchestrator.interrupts import StopFlag
from orchestrator.launchers.base import Launcher
from orchestrator.paths import RunPaths, StudyPaths
from orchestrator.report import Reporter, format_metrics
from orchestrator.state import Attempt, AttemptClass, StudyState, now_iso, save_state
from orchestrator.summary import write_summary
from orchestrator.supervise import AttemptWatch, Verdict
from worker.protocol import RunSpec

__all__ = ["Scheduler", "SchedulerOutcome"]

POLL_MIN_S = 0.05
POLL_MAX_S = 0.5


@dataclass(frozen=True)
class SchedulerOutcome:
    state: StudyState
    stopped_by_signal: bool = False
    config_error: str | None = None  # a run could not even be built


@dataclass
class Scheduler:
    spec: StudySpec
    paths: StudyPaths
    launcher: Launcher
    reporter: Reporter
    stop: StopFlag
    sleep: Callable[[float], None] = time.sleep

    def run(self, state: StudyState) -> SchedulerOutcome:
        runner = self.spec.runner
        for record in state.runs:
            if record.status.value == "completed":
                continue
            tries = 0
            while True:
                if self.stop.requested:
                    return SchedulerOutcome(state, stopped_by_signal=True)
                state, verdict = self._attempt(state, record.index)
                tries += 1
                if verdict.outcome is AttemptClass.COMPLETED:
                    break
                if verdict.outcome is AttemptClass.INTERRUPTED and self.stop.requested:
                    return SchedulerOutcome(state, stopped_by_signal=True)
                if verdict.config_error:
                    return SchedulerOutcome(state, config_error=verdict.reason)
                if tries > runner.max_retries:
                    break
                self.reporter.say(
                    f"run {record.index} seed {record.seed}: retrying "
                    f"(attempt {tries + 1} of {runner.max_retries + 1})"
                )
            if state.runs[record.index].status.value != "completed" and (
                runner.on_failure is OnFailure.STOP
            ):
                self.reporter.say("on_failure is stop: the study stops here")
                break
        return SchedulerOutcome(state)

    # ------------------------------------------------------------------ one attempt

    def _attempt(self, state: StudyState, index: int) -> tuple[StudyState, Verdict]:
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

        self.reporter.say(
            f"run {index} seed {record.seed}: starting attempt {number} in {run.root.name}"
        )
        started_at = now_iso()
        child = self.launcher.start(run)
        self.stop.active_groups.add(child.pid)
        watch = AttemptWatch(child, run, self.spec.runner)
        attempt = Attempt(
            number=number,
            started_at=started_at,
            log=str(run.log.relative_to(self.paths.root)),
            pid=child.pid,
            pid_create_time=getattr(child, "create_time", None),
        )
        state = state.start_attempt(index, attempt)
        try:
            save_state(self.paths, state)
        except BaseException:
            # No record of this child can exist, so it must not train on.
            child.stop(0)
            raise

        poll = POLL_MIN_S
        verdict = watch.check(self.stop.requested)
        while verdict is None:
            self.sleep(poll)
            poll = min(POLL_MAX_S, poll * 1.5)
            verdict = watch.check(self.stop.requested)
        self.stop.active_groups.discard(child.pid)

        finished = dataclasses.replace(
            attempt,
            outcome=verdict.outcome,
            reason=verdict.reason,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            ended_at=now_iso(),
            duration_s=round(time.monotonic() - watch.started, 3),
            resumed_from=_relative(verdict.resumed_from, self.paths.root),
        )
        state = state.finish_attempt(index, finished, verdict.metrics)
        save_state(self.paths, state)
        if self.spec.runner.save_summary:
            write_summary(self.paths, state)
        self._report(state, index, finished)
        return state, verdict

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
    with contextlib.suppress(FileNotFoundError):
        run.heartbeat.unlink()
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
