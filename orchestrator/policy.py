"""The failure policy: what happens after an attempt ends, as a pure function.

Kept apart from the loop so every rule is tested without a process or a clock:
a finished run is done; a config that cannot be built stops the study (retrying
cannot help); a study being stopped retries nothing (``--resume`` finishes those
runs); an interrupted attempt (a dead fork server, a preempted job) is not a
failure and is retried outside ``max_retries``, up to a few times; any other
class (failed, cuda_oom, oom_killed, killed, signal, timeout, hang, no_metrics)
is retried at once, at the front of the queue, until ``max_retries`` is spent,
and then ``on_failure: stop`` starts nothing new.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from orchestrator.runner_spec import OnFailure, RunnerSettings
from orchestrator.state import AttemptClass

__all__ = ["INTERRUPTION_RETRIES", "AttemptTally", "Decision", "decide"]

# An attempt interrupted by something other than the user (the fork server
# died, Slurm preempted the job) is tried again this many times in one launch:
# enough for a bad moment, not a loop when every attempt is interrupted.
INTERRUPTION_RETRIES = 3


class Decision(str, enum.Enum):
    DONE = "done"  # completed
    RETRY = "retry"  # back to the front of the queue, on any free slot
    GIVE_UP = "give_up"  # this run stays failed (or interrupted); the study goes on
    STOP_STUDY = "stop_study"  # this run stays failed and nothing new starts
    LEAVE = "leave"  # the study is stopping: --resume finishes this run


@dataclass(frozen=True)
class AttemptTally:
    """Attempts of one run in this launch that ended, by kind (the last one included)."""

    failures: int = 0
    interruptions: int = 0

    def counting(self, attempt_class: AttemptClass) -> AttemptTally:
        if attempt_class is AttemptClass.INTERRUPTED:
            return AttemptTally(self.failures, self.interruptions + 1)
        if attempt_class is AttemptClass.COMPLETED:
            return self
        return AttemptTally(self.failures + 1, self.interruptions)


def decide(
    attempt_class: AttemptClass,
    tally: AttemptTally,
    runner: RunnerSettings,
    *,
    config_error: bool = False,
    study_stopping: bool = False,
) -> Decision:
    """What to do after an attempt ended with ``attempt_class``; ``tally`` counts it."""
    if attempt_class is AttemptClass.COMPLETED:
        return Decision.DONE
    if config_error:
        return Decision.STOP_STUDY
    if study_stopping:
        return Decision.LEAVE
    if attempt_class is AttemptClass.INTERRUPTED:
        return Decision.RETRY if tally.interruptions <= INTERRUPTION_RETRIES else Decision.GIVE_UP
    if tally.failures <= runner.max_retries:
        return Decision.RETRY
    return Decision.STOP_STUDY if runner.on_failure is OnFailure.STOP else Decision.GIVE_UP
