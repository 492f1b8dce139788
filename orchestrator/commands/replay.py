"""``xorch replay DIR RUN``: train one run of a study again, exactly as it ran.

The run's own run_spec.json holds its resolved config, seed and import paths;
the replay trains that in ``DIR/run_XX_seedN_replay`` with ``mode: train``
semantics (no state, no checkpoint to resume from) and then says how far its
metrics are from the original's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from orchestrator.commands.train import run_one
from orchestrator.console import Reporter
from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.records import RunSpec
from orchestrator.errors import StateError, XorchError
from orchestrator.runner_spec import RunnerSettings
from orchestrator.state import AttemptClass, RunStatus
from orchestrator.state_store import load_study_state

__all__ = ["ReplayResult", "replay_run"]


@dataclass(frozen=True)
class ReplayResult:
    run_dir: Path
    completed: bool
    differences: dict[str, float]  # metric -> |replay - original|; inf if one side lacks it

    @property
    def identical(self) -> bool:
        return self.completed and all(d == 0.0 for d in self.differences.values())


def replay_run(study_dir: Path, index: int, reporter: Reporter | None = None) -> ReplayResult:
    reporter = reporter or Reporter()
    paths = StudyPaths(Path(study_dir).resolve())
    state = load_study_state(paths)
    if not 0 <= index < len(state.runs):
        raise XorchError(f"run {index} does not exist: the study has runs 0..{len(state.runs) - 1}")
    record = state.runs[index]
    if record.status is not RunStatus.COMPLETED:
        raise XorchError(
            f"run {index} is {record.status.value}: only a completed run has metrics to compare"
        )
    original = paths.run(record.dir)
    try:
        spec = RunSpec.load(original.run_spec)
    except (OSError, ValueError, TypeError) as exc:
        raise StateError(f"cannot read {original.run_spec}: {exc}") from None
    target = paths.root / f"{record.dir}_replay"
    replay_spec = dataclasses.replace(spec, run_dir=str(target), resume_from_checkpoint=False)
    reporter.say(f"replay: run {index} seed {record.seed} in {target}")
    verdict = run_one(replay_spec, RunnerSettings(seeds=(record.seed,)), reporter)
    completed = verdict.attempt_class is AttemptClass.COMPLETED
    differences = {
        name: _difference(value, verdict.metrics.get(name))
        for name, value in record.metrics.items()
    }
    result = ReplayResult(target, completed, differences if completed else {})
    if not completed:
        reporter.say("the replay did not complete: nothing to compare")
    elif result.identical:
        reporter.say(f"match: all {len(differences)} metrics are identical to the original")
    else:
        worst = max(differences, key=lambda k: differences[k])
        reporter.say(
            f"differs: {sum(d != 0 for d in differences.values())} of {len(differences)} "
            f"metrics; largest |difference| {differences[worst]:.3g} in {worst}"
        )
    return result


def _difference(original: float, replayed: float | None) -> float:
    if replayed is None:
        return math.inf
    if replayed == original or (math.isnan(original) and math.isnan(replayed)):
        return 0.0  # equal, or diverged the same way twice (inf - inf would be nan)
    return abs(replayed - original)
