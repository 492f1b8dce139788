"""Trial <-> run bookkeeping: how an Optuna trial and an xorch run agree.

Trial N is a one-run xorch study of its own in ``trials/trial_000N`` (its
runner_state.json, retries, hang checks and resume), trained on the search's
seed. Optuna's storage holds the parameters from the moment the trial is
asked; the trial's study holds the run. A trial is told exactly once, after its
run has a verdict: a parent killed in between leaves the trial RUNNING in the
storage, and the next ``--resume`` (holding the study's launcher lock, so no
other xorch works on these trials) takes it up: its study is resumed (an
already completed run is only read back, never trained again) and the trial
told then. So no trial is lost, re-asked or told twice. With a shared storage
(an RDB URL), a trial is ours when its ``xorch_folder`` attribute is our
folder; other processes' running trials are left to them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.contract.search_paths import SearchPaths
from orchestrator.errors import ExitCode
from orchestrator.search.space import distributions, grid
from orchestrator.search.spec import SamplerName, SearchSpec
from orchestrator.state import RunRecord, RunStatus

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "FOLDER_ATTR",
    "TrialTold",
    "TrialVerdict",
    "ask",
    "open_search",
    "ours_running",
    "spent_s",
    "started",
    "tell",
    "trial_verdict",
]

FOLDER_ATTR = "xorch_folder"


class TrialTold(str, enum.Enum):
    COMPLETE = "complete"  # told its value
    FAIL = "fail"  # told it failed (the run did not complete, or no finite value)
    NOTHING = "nothing"  # the run was stopped by a signal: the trial waits for --resume


@dataclass(frozen=True)
class TrialVerdict:
    told: TrialTold
    value: float | None = None
    reason: str = ""
    stop_search: bool = False  # a config error or a signal: no further trial


def trial_verdict(code: ExitCode, run: RunRecord | None, metric: str) -> TrialVerdict:
    """What to tell Optuna about a trial whose study ended with ``code``; pure."""
    if code >= 128:
        return TrialVerdict(TrialTold.NOTHING, reason="stopped by a signal", stop_search=True)
    config_error = code is ExitCode.USAGE
    if run is None or run.status is not RunStatus.COMPLETED:
        attempt = run.current_attempt if run is not None else None
        why = attempt.reason if attempt is not None and attempt.reason else "did not complete"
        status = run.failure.value if run is not None and run.failure else "not run"
        return TrialVerdict(TrialTold.FAIL, reason=f"{status}: {why}", stop_search=config_error)
    value = run.metrics.get(metric)
    if value is None:
        logged = ", ".join(sorted(run.metrics)) or "nothing"
        return TrialVerdict(TrialTold.FAIL, reason=f"{metric} not logged (it logged {logged})")
    if not math.isfinite(value):
        return TrialVerdict(TrialTold.FAIL, reason=f"{metric} is {value} (diverged)")
    return TrialVerdict(TrialTold.COMPLETE, value=float(value))


def open_search(search: SearchSpec, storage_url: str, study_name: str) -> optuna.Study:
    """The Optuna study, created or loaded (the same name in the same storage)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=storage_url,
        study_name=study_name,
        sampler=_sampler(search),
        direction=search.direction.value,
        load_if_exists=True,
    )


def _sampler(search: SearchSpec) -> optuna.samplers.BaseSampler:
    from optuna import samplers

    seed = search.sampler_seed
    if search.sampler is SamplerName.GRID:
        return samplers.GridSampler(dict(grid(search.space)), seed=seed)
    if search.sampler is SamplerName.CMAES:
        return samplers.CmaEsSampler(seed=seed)
    if search.sampler is SamplerName.RANDOM:
        return samplers.RandomSampler(seed=seed)
    return samplers.TPESampler(seed=seed)


def ours_running(study: optuna.Study, paths: SearchPaths, shared: bool) -> list[FrozenTrial]:
    """The RUNNING trials a killed xorch of this folder left, oldest first. In
    the default storage every trial is ours (one asked but killed before it was
    marked too); in a shared one, those marked with our folder."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    mine = [
        t
        for t in running
        if not shared or t.user_attrs.get(FOLDER_ATTR) == str(paths.trial(t.number))
    ]
    return sorted(mine, key=lambda t: t.number)


def started(study: optuna.Study) -> int:
    """Trials that count towards n_trials: finished, or running (here or elsewhere)."""
    from optuna.trial import TrialState

    counted = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=counted))


def spent_s(study: optuna.Study) -> float:
    """Seconds of finished trials in all: the time budget's clock, which a resume continues."""
    total = 0.0
    for t in study.get_trials(deepcopy=False):
        if t.datetime_start is not None and t.datetime_complete is not None:
            total += (t.datetime_complete - t.datetime_start).total_seconds()
    return total


def ask(study: optuna.Study, search: SearchSpec, paths: SearchPaths) -> tuple[int, dict[str, Any]]:
    """A new trial with every parameter drawn, marked as this folder's: its
    number and values."""
    trial = study.ask(fixed_distributions=distributions(search.space))
    trial.set_user_attr(FOLDER_ATTR, str(paths.trial(trial.number)))
    return trial.number, dict(trial.params)


def tell(study: optuna.Study, number: int, verdict: TrialVerdict) -> None:
    """Tell a RUNNING trial its verdict, once: a trial's state is final in
    Optuna after this, and only a RUNNING trial is ever run or told."""
    from optuna.trial import TrialState

    if verdict.told is TrialTold.NOTHING:
        return
    try:
        if verdict.told is TrialTold.COMPLETE:
            study.tell(number, verdict.value)
        else:
            study.tell(number, state=TrialState.FAIL)
    except RuntimeError:
        # The grid sampler's after_trial calls study.stop() once the grid is
        # done, which Optuna allows inside optimize() only (samplers/_grid.py);
        # the trial's state is stored first (study/_tell.py, in a finally).
        told = study.get_trials(deepcopy=False)
        if any(t.number == number and t.state.is_finished() for t in told):
            return
        raise
