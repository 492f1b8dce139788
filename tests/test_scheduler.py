"""The scheduler's loop with a fake launcher and a fake clock: every test runs
in milliseconds, and no time passes on the fake clock unless the loop waits
for it, so a sleep on the path from one run's end to the next run's start
shows up as a gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.gpus import GpuMemoryGate, Slot
from orchestrator.launchers.base import Wakeup
from orchestrator.policy import INTERRUPTION_RETRIES, AttemptTally, Decision, decide
from orchestrator.runner_spec import OnFailure, RunnerSettings
from orchestrator.state import AttemptClass, RunStatus, StudyState
from tests.fakes import Plan, World, make_setup


def outcomes(state: StudyState) -> list[list[str]]:
    return [
        [a.attempt_class.value if a.attempt_class else "?" for a in r.attempts] for r in state.runs
    ]


def test_runs_start_in_order_each_the_moment_the_last_one_ends(tmp_path):
    plans = {(i, 1): Plan(after=3.0 + i) for i in range(4)}
    setup = make_setup(tmp_path, 4, plans)
    result = setup.run()
    assert [r.status for r in result.state.runs] == [RunStatus.COMPLETED] * 4
    # Each run starts at the very clock time the previous one ended: no sleep between.
    assert setup.launcher.started == [(0.0, 0, ""), (3.0, 1, ""), (7.0, 2, ""), (12.0, 3, "")]
    # Woken by exits and health checks only, not by a polling timer.
    assert setup.wakeup.waits <= 4 + 18 / 2.0 + 4


def test_a_failed_run_is_retried_at_the_front_of_the_queue(tmp_path):
    plans = {(0, 1): Plan(after=2.0, code=1)}
    setup = make_setup(tmp_path, 3, plans, max_retries=1)
    result = setup.run()
    assert setup.starts() == [0, 0, 1, 2]
    assert outcomes(result.state) == [["failed", "completed"], ["completed"], ["completed"]]
    assert "retrying (attempt 2 of 2)" in setup.output.getvalue()


def test_on_failure_stop_starts_nothing_new(tmp_path):
    plans = {(0, 1): Plan(after=2.0, code=1)}
    setup = make_setup(tmp_path, 3, plans, max_retries=0, on_failure="stop")
    result = setup.run()
    assert setup.starts() == [0]
    assert [r.status for r in result.state.runs] == [
        RunStatus.FAILED,
        RunStatus.PENDING,
        RunStatus.PENDING,
    ]
    assert "on_failure is stop: no new runs start" in setup.output.getvalue()


def test_several_slots_are_each_filled_the_moment_they_free(tmp_path):
    durations = [5.0, 2.0, 9.0, 1.0, 1.0, 4.0]
    plans = {(i, 1): Plan(after=d) for i, d in enumerate(durations)}
    setup = make_setup(tmp_path, 6, plans, max_parallel=3)
    result = setup.run()
    assert [r.status for r in result.state.runs] == [RunStatus.COMPLETED] * 6
    # Slots free at 2 (run 1), 3 (run 3), 4 (run 4), 5 (run 0): the next run
    # starts at that very moment, in index order; never more than 3 at once.
    assert [(at, index) for at, index, _ in setup.launcher.started] == [
        (0.0, 0),
        (0.0, 1),
        (0.0, 2),
        (2.0, 3),
        (3.0, 4),
        (4.0, 5),
    ]
    assert {threads for _, _, threads in setup.launcher.started} == {
        str(max(1, (os.cpu_count() or 1) // 3))
    }


@pytest.mark.parametrize("children", [2, 3])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_records_every_running_attempt_interrupted(tmp_path, children, signum):
    # One child exits at once on SIGTERM with exit 1 (as Lightning does), one
    # only after SIGKILL, a third dies of the SIGTERM itself: all interrupted.
    kinds = [
        Plan(after=100, term_after=0.2, term_code=1),
        Plan(after=100, term_after=None),
        Plan(after=100, term_after=1.0, term_code=-signal.SIGTERM),
    ]
    plans = {(i, 1): kinds[i] for i in range(children)}
    setup = make_setup(tmp_path, children + 2, plans, max_parallel=children, grace_period=30)
    setup.world.at(5.0, lambda: setup.scheduler.stop.request(signum))
    result = setup.run()
    assert setup.scheduler.stop.requested
    running = result.state.runs[:children]
    assert [r.status for r in running] == [RunStatus.INTERRUPTED] * children
    assert all(r.attempts[-1].reason == "the study was stopped" for r in running)
    assert [r.status for r in result.state.runs[children:]] == [RunStatus.PENDING] * 2
    assert setup.starts() == list(range(children))  # nothing new, nothing retried
    assert all(c.terminated for c in setup.launcher.children)
    assert setup.launcher.children[1].killed  # only the one that ignored SIGTERM
    assert not setup.launcher.children[0].killed
    assert setup.world.now == pytest.approx(35.0)  # its grace period, no more
    first = result.state.runs[0].attempts[-1]
    assert first.exit_code == 1 and first.attempt_class is AttemptClass.INTERRUPTED


def test_a_run_that_finishes_while_the_study_stops_keeps_its_result(tmp_path):
    plans = {(0, 1): Plan(after=100, term_after=None), (1, 1): Plan(after=5.5)}
    setup = make_setup(tmp_path, 2, plans, max_parallel=2, grace_period=10)
    setup.world.at(5.0, lambda: setup.scheduler.stop.request(signal.SIGINT))
    result = setup.run()
    assert [r.status for r in result.state.runs] == [RunStatus.INTERRUPTED, RunStatus.COMPLETED]


def test_a_dead_fork_server_interrupts_a_run_which_is_tried_again(tmp_path):
    died = (AttemptClass.INTERRUPTED, "the fork server died, and this run with it")
    plans = {(0, 1): Plan(after=3.0, code=-signal.SIGKILL, ended_as=died)}
    setup = make_setup(tmp_path, 2, plans, max_retries=0)
    result = setup.run()
    assert outcomes(result.state) == [["interrupted", "completed"], ["completed"]]
    assert setup.starts() == [0, 0, 1]
    assert "interrupted, not failed; trying again" in setup.output.getvalue()


def test_a_killed_run_is_retried_like_other_failures(tmp_path):
    killed = (AttemptClass.KILLED, "killed by SIGKILL")
    plans = {(1, 1): Plan(after=3.0, code=-signal.SIGKILL, ended_as=killed)}
    setup = make_setup(tmp_path, 2, plans, max_retries=1)
    result = setup.run()
    assert outcomes(result.state) == [["completed"], ["killed", "completed"]]


def test_a_run_past_run_timeout_is_stopped_on_time_without_blocking_others(tmp_path):
    plans = {(0, 1): Plan(after=1000, term_after=None), (1, 1): Plan(after=12.0)}
    setup = make_setup(
        tmp_path, 3, plans, max_parallel=2, run_timeout=20, grace_period=5, max_retries=0
    )
    result = setup.run()
    assert outcomes(result.state) == [["timeout"], ["completed"], ["completed"]]
    # Run 2 started when run 1 ended, although run 0 was then being timed out.
    assert setup.launcher.started[2][:2] == (12.0, 2)
    assert result.state.runs[0].attempts[0].duration_s == pytest.approx(25.0, abs=2.5)


def test_a_gpu_short_of_memory_is_asked_again_only_every_recheck_interval(tmp_path):
    calls: list[float] = []
    world_box: list[World] = []

    def free_gb(gpu: str) -> float:
        calls.append(world_box[0].now)
        return 1.0 if world_box[0].now < 25 else 16.0

    gate_clock: list[Callable[[], float]] = []
    gate = GpuMemoryGate(8.0, recheck_s=10.0, clock=lambda: gate_clock[0](), free_gb=free_gb)
    setup = make_setup(tmp_path, 1, {}, slots=[Slot(0, "0")], gpu_gate=gate, min_free_gpu_mem_gb=8)
    world_box.append(setup.world)
    gate_clock.append(setup.world.clock)
    setup.run()
    assert calls == [0.0, 10.0, 20.0, 30.0]  # not once per loop pass
    assert setup.launcher.started[0][:2] == (30.0, 0)
    assert "GPU 0: waiting for 8 GB free memory (now 1.0 GB free)" in setup.output.getvalue()


@pytest.mark.parametrize(
    ("outcome", "tally", "runner", "expected"),
    [
        (AttemptClass.COMPLETED, AttemptTally(), RunnerSettings(), Decision.DONE),
        (AttemptClass.FAILED, AttemptTally(1, 0), RunnerSettings(max_retries=1), Decision.RETRY),
        (AttemptClass.FAILED, AttemptTally(2, 0), RunnerSettings(max_retries=1), Decision.GIVE_UP),
        (AttemptClass.KILLED, AttemptTally(1, 0), RunnerSettings(max_retries=1), Decision.RETRY),
        (
            AttemptClass.HANG,
            AttemptTally(1, 0),
            RunnerSettings(max_retries=0, on_failure=OnFailure.STOP),
            Decision.STOP_STUDY,
        ),
        (
            AttemptClass.INTERRUPTED,
            AttemptTally(0, 1),
            RunnerSettings(max_retries=0),
            Decision.RETRY,
        ),
        (
            AttemptClass.INTERRUPTED,
            AttemptTally(0, INTERRUPTION_RETRIES + 1),
            RunnerSettings(on_failure=OnFailure.STOP),
            Decision.GIVE_UP,
        ),
    ],
)
def test_the_failure_policy(outcome, tally, runner, expected):
    assert decide(outcome, tally, runner) is expected


def test_the_failure_policy_when_stopping_or_when_the_config_is_broken():
    runner = RunnerSettings(max_retries=3)
    assert decide(AttemptClass.FAILED, AttemptTally(1, 0), runner, study_stopping=True) is (
        Decision.LEAVE
    )
    assert decide(AttemptClass.FAILED, AttemptTally(1, 0), runner, config_error=True) is (
        Decision.STOP_STUDY
    )
    assert AttemptTally().counting(AttemptClass.TIMEOUT).counting(
        AttemptClass.INTERRUPTED
    ) == AttemptTally(1, 1)


def test_a_wakeup_wakes_once_per_burst_and_writes_nothing_once_closed():
    wakeup = Wakeup()
    assert wakeup.wait(0) is False
    wakeup.set()
    wakeup.set()
    assert wakeup.wait(0) is True
    assert wakeup.wait(0) is False  # drained: one wake-up for the burst
    threading.Timer(0.05, wakeup.set).start()
    assert wakeup.wait(30) is True  # woken by another thread, not by the timeout
    wakeup.close()
    read_end, write_end = os.pipe()  # likely the numbers the closed pipe had
    try:
        wakeup.set()  # a late set from a launcher's thread
        os.set_blocking(read_end, False)
        with pytest.raises(BlockingIOError):
            os.read(read_end, 1)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_wakeup_wakes_at_a_watched_childs_exit_and_then_forgets_it():
    wakeup = Wakeup()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        if not wakeup.watch_exit(child.pid):
            pytest.skip("no pidfd on this kernel")
        assert wakeup.wait(0) is False  # still running
        started = time.monotonic()
        assert wakeup.wait(30) is True  # woken by the exit, not by the timeout
        assert time.monotonic() - started < 20
        assert child.poll() == 0  # not reaped by the wakeup: Popen gets the status
        assert wakeup.wait(0) is False  # seen once, then forgotten
    finally:
        child.kill()
        child.wait()
        wakeup.close()
