"""``xorch launch`` of a config with a ``search:`` block: the trials (each a
one-run xorch study, see ``search.trials``), the search's outputs, then the
seed study of the best config (a study of variants ``best`` and ``baseline``
when ``search.baseline`` is true), with xorch's paired comparison.

Optuna is imported only here and in the modules this one calls; it does not
import torch (nor does any sampler offered: gp, which does, is refused)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.config import StudySpec
from orchestrator.console import Reporter
from orchestrator.contract.paths import StudyPaths
from orchestrator.contract.search_paths import SearchPaths
from orchestrator.errors import ConfigError, ExitCode, StudyExistsError
from orchestrator.interrupts import StopFlag, stop_on_signals
from orchestrator.launchers.base import Launcher
from orchestrator.locks import launcher_lock
from orchestrator.result import LaunchResult
from orchestrator.search.outputs import write_outputs
from orchestrator.search.space import changes, grid_size, trial_training
from orchestrator.search.spec import SamplerName, SearchSpec
from orchestrator.search.trials import (
    ask,
    open_search,
    ours_running,
    spent_s,
    started,
    tell,
    trial_verdict,
)
from orchestrator.state_store import load_state

if TYPE_CHECKING:
    import optuna

__all__ = ["describe_search", "launch_search", "seed_study_spec", "trial_spec"]

BEST = "best"
BASELINE = "baseline"


def launch_search(
    spec: StudySpec,
    resume: bool,
    reporter: Reporter | None,
    launcher: Launcher | None,
    cancel_jobs: bool,
) -> LaunchResult:
    """Lock the study folder, run the trials, write the outputs, then the seed
    study (``study.launch_spec``'s arguments, for a config with ``search:``)."""
    search = spec.search
    assert search is not None
    resume = resume or spec.runner.resume
    paths = SearchPaths(spec.output_dir)
    study_paths = StudyPaths(spec.output_dir)
    if not resume:
        _refuse_existing(paths)
    paths.root.mkdir(parents=True, exist_ok=True)
    with launcher_lock(study_paths):
        reporter = reporter or Reporter(study_paths.log)
        study = open_search(search, _storage_url(search, paths), _study_name(search, paths))
        code = _run_trials(spec, study, paths, reporter, launcher, cancel_jobs)
        # Stopped early: trials.csv only, so a stop is quick (importances and the plot
        # import scikit-learn and matplotlib); the end of the search writes them all.
        write_outputs(study, search, spec.training, paths, reporter, complete=code is None)
        done = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
        if code is not None:
            return LaunchResult(paths.root, len(done), len(study.trials), code)
        if not done:
            reporter.say("no trial completed: there is no best config to run over seeds")
            return LaunchResult(paths.root, 0, len(study.trials), ExitCode.RUNS_FAILED)
        seeds = seed_study_spec(spec, dict(study.best_trial.params), paths)
        reporter.say(f"seed study of the best config: {paths.seed_study}")
        from orchestrator.study import launch_spec  # study imports config, which imports us

        # Under the search's lock still: no other launch takes the search up meanwhile.
        return launch_spec(
            seeds, resume=resume, reporter=None, launcher=launcher, cancel_jobs=cancel_jobs
        )


def _refuse_existing(paths: SearchPaths) -> None:
    made = [name for name in paths.names() if (paths.root / name).exists()]
    if made:
        raise StudyExistsError(
            f"{paths.root} already holds a search ({', '.join(made)}); resume it with "
            "--resume (or resume: true), or choose another output_base_dir"
        )


def _storage_url(search: SearchSpec, paths: SearchPaths) -> str:
    return search.storage or f"sqlite:///{paths.storage}"


def _study_name(search: SearchSpec, paths: SearchPaths) -> str:
    return search.study_name or paths.root.name


def _run_trials(
    spec: StudySpec,
    study: optuna.Study,
    paths: SearchPaths,
    reporter: Reporter,
    launcher: Launcher | None,
    cancel_jobs: bool,
) -> ExitCode | None:
    """Trials left running by a killed launch first, then new ones until
    n_trials have started or the time budget is spent; an exit code when the
    search stopped early (a signal, a config error), else None. A signal
    between two trials (each trial's study has its own handlers while it runs)
    stops the search before the next ask."""
    search = spec.search
    assert search is not None
    flag = StopFlag()
    with stop_on_signals(flag):
        for trial in ours_running(study, paths, search.storage is not None):
            _check_space_kept(trial.number, trial.params, search)
            reporter.say(f"trial {trial.number} was cut short: its run is resumed")
            code = _run_trial(spec, study, trial.number, trial.params, paths, launcher, cancel_jobs)
            if code is not None or flag.signum is not None:
                return code or _stopped(flag, reporter)
        limit = search.n_trials
        if search.sampler is SamplerName.GRID:
            limit = min(limit or grid_size(search.space), grid_size(search.space))
        while limit is None or started(study) < limit:
            if search.timeout_s is not None and spent_s(study) >= search.timeout_s:
                reporter.say(f"search: timeout of {search.timeout_s:g} s of trials reached")
                break
            number, params = ask(study, search, paths)
            code = _run_trial(spec, study, number, params, paths, launcher, cancel_jobs)
            if code is not None or flag.signum is not None:
                return code or _stopped(flag, reporter)
    return None


def _check_space_kept(number: int, params: Mapping[str, Any], search: SearchSpec) -> None:
    """A cut-short trial is finished with its own values: the space must still have them."""
    keys = {p.key for p in search.space}
    if set(params) != keys:
        raise ConfigError(
            f"trial {number} was asked with the parameters {', '.join(sorted(params))}, but "
            f"search.space now names {', '.join(sorted(keys))}: restore the space to resume, "
            "or start the new search in another output_base_dir"
        )


def _stopped(flag: StopFlag, reporter: Reporter) -> ExitCode:
    assert flag.signum is not None
    reporter.say(f"stopped by signal {flag.signum}; resume with: xorch launch ... --resume")
    return ExitCode(128 + flag.signum)


def _run_trial(
    spec: StudySpec,
    study: optuna.Study,
    number: int,
    params: Mapping[str, Any],
    paths: SearchPaths,
    launcher: Launcher | None,
    cancel_jobs: bool,
) -> ExitCode | None:
    """One trial's run (resumed if its study exists), then its one tell."""
    from orchestrator.study import launch_spec

    search = spec.search
    assert search is not None
    folder = paths.trial(number)
    result = launch_spec(
        trial_spec(spec, number, params, paths),
        resume=folder.exists(),
        launcher=launcher,
        cancel_jobs=cancel_jobs,
    )
    state = load_state(StudyPaths(folder)) if folder.exists() else None
    run = state.runs[0] if state is not None and state.runs else None
    verdict = trial_verdict(result.exit_code, run, search.metric)
    tell(study, number, verdict)
    return result.exit_code if verdict.stop_search else None


def trial_spec(
    spec: StudySpec, number: int, params: Mapping[str, Any], paths: SearchPaths
) -> StudySpec:
    """Trial ``number``'s one-run study: the trial's values, the search's seed."""
    search = spec.search
    assert search is not None
    runner = dataclasses.replace(
        spec.runner,
        output_base_dir=str(paths.trial(number)),
        seeds=(search.seed,),
        n_runs=None,
        adaptive=None,
        overwrite=None,
        resume=False,
    )
    training = trial_training(spec.training, search.space, params)
    return dataclasses.replace(spec, training=training, runner=runner, search=None)


def seed_study_spec(spec: StudySpec, best: Mapping[str, Any], paths: SearchPaths) -> StudySpec:
    """The best config over the runner's seeds; with ``baseline``, a study of
    variants (baseline, the config as written, is the reference) on the same seeds."""
    search = spec.search
    assert search is not None
    runner = dataclasses.replace(
        spec.runner, output_base_dir=str(paths.seed_study), overwrite=None, resume=False
    )
    best_training = trial_training(spec.training, search.space, best)
    if not search.baseline:
        return dataclasses.replace(spec, training=best_training, runner=runner, search=None)
    runner = dataclasses.replace(
        runner,
        variants={BASELINE: {}, BEST: changes(search.space, best)},
        compare_to=BASELINE,
    )
    variants = {BASELINE: dict(spec.training), BEST: best_training}
    return dataclasses.replace(spec, runner=runner, variants=variants, search=None)


def describe_search(spec: StudySpec) -> list[str]:
    """``xorch validate``'s lines for a search: its budget, space and what follows it."""
    search = spec.search
    assert search is not None
    paths = SearchPaths(spec.output_dir)
    budget = [f"{search.n_trials} trials"] if search.n_trials else []
    if search.sampler is SamplerName.GRID:
        size = grid_size(search.space)
        budget = [f"{min(search.n_trials or size, size)} trials (a grid of {size})"]
    if search.timeout_s is not None:
        budget.append(f"at most {search.timeout_s:g} s of trials")
    seed_note = "" if search.sampler_seed is None else f" (seed {search.sampler_seed})"
    lines = [
        f"search: {' or '.join(budget)}, sampler {search.sampler.value}{seed_note}, "
        f"{search.direction.value} {search.metric}, each trial one run on seed {search.seed}",
        f"storage: {search.storage or paths.storage}",
    ]
    for p in search.space:
        if p.kind.value in ("categorical", "blocks"):
            what = f"{p.kind.value} {', '.join(map(str, p.choices))}"
        else:
            step = f", step {p.step}" if p.step != 1 else ""
            what = f"{p.kind.value} {p.low:g} .. {p.high:g}{' (log)' if p.log else ''}{step}"
        lines.append(f"  {p.key}: {what}")
    runner = spec.runner
    seeds = (
        ", ".join(map(str, runner.seeds))
        if runner.seeds is not None
        else f"{runner.run_count} random seeds"
    )
    which = "best and baseline" if search.baseline else "the best config"
    lines.append(f"then the seed study of {which} on seeds {seeds} in {paths.seed_study}")
    return lines
