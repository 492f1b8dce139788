"""``xorch launch``: from a validated config to a finished (or resumable) study.

Order of events: validate the config (nothing touched yet); take the study's
launcher lock; refuse to overwrite a study unless resuming; create or load the
state (random seeds are saved before any run starts); settle runs that a dead
parent left running; hand the rest to the scheduler; report what did not
complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.commands.train import train_single
from orchestrator.config import (
    Mode,
    StudySpec,
    load_study,
)
from orchestrator.console import Reporter
from orchestrator.contract.paths import StudyPaths
from orchestrator.errors import ExitCode
from orchestrator.gpu_leases import GpuLeases, open_leases
from orchestrator.gpus import Slot
from orchestrator.interrupts import StopFlag, stop_on_signals
from orchestrator.launchers import make_launcher
from orchestrator.launchers.base import Launcher
from orchestrator.ledger import Ledger
from orchestrator.locks import launcher_lock
from orchestrator.planning import entries, plan_study, refuse_existing
from orchestrator.recovery import settle_stale_runs
from orchestrator.rerun import RunChoice, move_aside_reopened, reopen_runs, rerun_targets
from orchestrator.result import LaunchResult
from orchestrator.runner_spec import Executor
from orchestrator.scheduler import Scheduler
from orchestrator.seed_table import from_runs
from orchestrator.slots import study_slots
from orchestrator.state import (
    AttemptClass,
    RunRecord,
    RunStatus,
    StudyState,
)
from orchestrator.state_store import load_backup, load_state
from orchestrator.summary import mean_std_line, write_summary

if TYPE_CHECKING:
    from orchestrator.inference import Contrast

__all__ = ["comparison_words", "launch", "launch_spec", "plan_ledger", "refuse_unstartable"]


def launch(
    config_path: Path | str,
    overrides: Iterable[str] = (),
    resume: bool = False,
    reporter: Reporter | None = None,
    launcher: Launcher | None = None,
    cancel_jobs: bool = False,
) -> LaunchResult:
    spec = load_study(config_path, overrides)
    return launch_spec(
        spec, resume=resume, reporter=reporter, launcher=launcher, cancel_jobs=cancel_jobs
    )


def launch_spec(
    spec: StudySpec,
    *,
    resume: bool = False,
    reporter: Reporter | None = None,
    launcher: Launcher | None = None,
    cancel_jobs: bool = False,
) -> LaunchResult:
    """Lock, plan, settle, schedule, finish; ``launcher``: used instead of the
    one the config names (``make_launcher``) when given."""
    if spec.mode is Mode.TRAIN:
        return train_single(spec, reporter=reporter, launcher=launcher)
    if spec.search is not None:  # optuna: imported only for a search
        from orchestrator.search.driver import launch_search

        return launch_search(spec, resume, reporter, launcher, cancel_jobs)
    resume = resume or spec.runner.resume
    overwrite = None if resume else spec.runner.overwrite  # a resume never reopens (_move_aside)
    paths = StudyPaths(spec.output_dir)
    slots, leases = refuse_unstartable(spec, resume)
    before = entries(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    with launcher_lock(paths):
        _remove_stale_temps(paths)
        fresh = not (paths.state.exists() or paths.state_backup.exists())
        ledger = plan_ledger(spec, paths, resume, overwrite)
        reporter = reporter or Reporter(paths.log)
        _move_aside(spec, paths, ledger.state, reporter, resume)
        state = ledger.state
        reporter.say(
            f"study {paths.root}: {len(state.runs)} runs, {len(state.completed)} already completed"
        )
        chosen = launcher or make_launcher(spec, paths, reporter.say, reporter.warn)
        reattach = settle_stale_runs(ledger, reporter, spec.runner.grace_period, chosen)
        flag = StopFlag()
        on_cluster = spec.runner.executor is Executor.SLURM
        scheduler = Scheduler(
            spec,
            paths,
            chosen,
            reporter,
            flag,
            slots=slots,
            leases=leases,
            leave_running_on_stop=on_cluster and not cancel_jobs,
        )
        try:
            with stop_on_signals(flag), reporter.live_progress():
                outcome = scheduler.run(ledger, reattach)
        finally:
            chosen.close()
        if not (fresh and _only_config_errors(outcome.state, flag, outcome.config_error)):
            return _finish(spec, paths, outcome.state, reporter, flag, outcome.config_error)
        result = _take_back(spec, paths, outcome.state, before, reporter, outcome.config_error)
    if before is None:  # the folder is ours: it goes too, once its lock is released
        _remove_own_folder(paths)
    return result


def _remove_stale_temps(paths: StudyPaths) -> None:
    """A killed launch's half-written files."""
    for temp in paths.stale_temp_files():
        with contextlib.suppress(OSError):
            temp.unlink()


def _remove_own_folder(paths: StudyPaths) -> None:
    """The folder this launch made, left empty but for its lock."""
    with contextlib.suppress(OSError):
        paths.launcher_lock.unlink()
        paths.root.rmdir()


def refuse_unstartable(spec: StudySpec, resume: bool) -> tuple[list[Slot], GpuLeases | None]:
    """The refusals made before anything is written (``launch a.yaml b.yaml``
    makes them for every study before the first starts): GPUs named in the
    config that are not there, a GPU lease folder that cannot be used, an
    existing study without --resume. Returns the slots and, when runs go on
    this machine's GPUs, its leases."""
    resume = resume or spec.runner.resume
    paths = StudyPaths(spec.output_dir)
    slots = study_slots(spec)
    leases = None
    if any(slot.gpu is not None and not slot.cluster for slot in slots):
        leases = open_leases(paths.root, spec.runner.runs_per_gpu, os.environ)
    if not resume and not (spec.runner.overwrite and paths.state.exists()):
        refuse_existing(paths)  # before the folder is even created
    return slots, leases


def plan_ledger(
    spec: StudySpec, paths: StudyPaths, resume: bool, overwrite: RunChoice | None = None
) -> Ledger:
    """The ledger of the planned state, on disk before any run starts (random
    seeds included), with the runs ``overwrite`` names reopened; a refusal
    (StateError, StudyExistsError, RerunError) touches nothing."""
    existing = load_state(paths)
    backup = load_backup(paths) if existing is None and resume else None
    plan = plan_study(spec, existing, backup, resume=resume or overwrite is not None)
    reopen: tuple[int, ...] = ()
    if overwrite is not None:
        reopen = rerun_targets(plan.state, overwrite, "experiments_runner.overwrite").reopen
    state = reopen_runs(plan.state, reopen)
    ledger = Ledger(paths, state)
    if plan.save or reopen:  # recovered: the .bak is left as it is
        ledger.record_plan(state)
    if plan.recovered:
        state = plan.state
        Reporter(paths.log).say(
            f"{paths.state.name} was missing: recovered the study from "
            f"{paths.state_backup.name} ({len(state.completed)} of {len(state.runs)} "
            "runs completed)"
        )
    return ledger


def _move_aside(
    spec: StudySpec, paths: StudyPaths, state: StudyState, reporter: Reporter, resume: bool
) -> None:
    """The folders of reopened runs moved aside, after the state that reopened
    them is saved: a launch killed in between is finished by the next one.
    ``overwrite`` reopens runs on a launch only: a resume finishes what was
    started (a rerun cut short included) and never reopens them again."""
    if resume and spec.runner.overwrite:
        reporter.warn(
            "experiments_runner.overwrite is not applied by a resume, which finishes "
            "what was started; launch without --resume to run those runs again"
        )
    for folder, aside in move_aside_reopened(paths, state):
        where = folder.relative_to(paths.root)
        reporter.say(f"{where} runs again; its earlier folder is {aside.relative_to(paths.root)}")


def _only_config_errors(state: StudyState, flag: StopFlag, config_error: str | None) -> bool:
    attempts = [a for r in state.runs for a in r.attempts]
    return (
        config_error is not None
        and flag.signum is None
        and bool(attempts)
        and all(a.attempt_class is AttemptClass.CONFIG_ERROR for a in attempts)
    )


def _take_back(
    spec: StudySpec,
    paths: StudyPaths,
    state: StudyState,
    before: frozenset[str] | None,
    reporter: Reporter,
    config_error: str | None,
) -> LaunchResult:
    """A new study whose runs could not even be built leaves nothing behind: a
    config error is bad input, and bad input leaves the disk as it was. The
    state, run folders and logs this launch created are removed, so the same
    command works once the config is fixed. Only names xorch itself gives are
    removed, and only those that were not there before: output_base_dir may be
    a folder shared with other files."""
    reporter.log_path = None  # xorch.log is about to go
    ours = [paths.state, paths.state_backup, paths.state_journal, paths.state_lock]
    ours += [paths.summary, paths.log]
    ours += [paths.comparison, paths.forkserver_log, paths.slurm_jobs]
    # A variant's runs lie in its folder (wide/run_00_seed42): the folder goes.
    ours += dict.fromkeys(paths.root / Path(r.dir).parts[0] for r in state.runs)
    for entry in ours:
        if entry.name in (before or ()):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    _say_problems(reporter, config_error or "")
    reporter.error(
        f"nothing was trained and what this launch created in {paths.root} is removed: "
        f"fix the config and launch again (xorch validate {spec.config_path} checks it)"
    )
    return LaunchResult(paths.root, 0, len(state.runs), ExitCode.USAGE)


def _finish(
    spec: StudySpec,
    paths: StudyPaths,
    state: StudyState,
    reporter: Reporter,
    flag: StopFlag,
    config_error: str | None,
) -> LaunchResult:
    summary_written = False
    if spec.runner.save_summary:
        try:
            write_summary(paths, state)
            summary_written = True
        except OSError as exc:
            # Every result is safe in runner_state.json; only this copy is missing.
            reporter.say(
                f"could not write {paths.summary} ({exc.strerror or exc}); the results are "
                "in runner_state.json: fix that, then launch again with --resume to write it"
            )
    completed = state.completed
    _report_means(spec, completed, reporter)
    _report_comparisons(state, reporter)
    unfinished = [r for r in state.runs if r.status is not RunStatus.COMPLETED]
    if unfinished:
        reporter.say(f"{len(unfinished)} of {len(state.runs)} runs did not complete:")
        reporter.table(
            ["run", "seed", "status", "attempts", "reason"],
            [
                [
                    str(r.index),
                    str(r.seed),
                    (r.failure.value if r.failure else r.status.value),
                    str(len(r.attempts)),
                    (r.current_attempt.reason if r.current_attempt else "not started"),
                ]
                for r in unfinished
            ],
        )
    if flag.signum is not None:
        code = ExitCode(128 + flag.signum)
        reporter.say(f"stopped by signal {flag.signum}; resume with: xorch launch ... --resume")
    elif config_error is not None:
        _say_problems(reporter, config_error)
        code = ExitCode.USAGE
    else:
        code = ExitCode.RUNS_FAILED if unfinished else ExitCode.OK
    reporter.say(f"summary: {paths.summary}" if summary_written else "done")
    return LaunchResult(paths.root, len(completed), len(state.runs), code)


def _report_comparisons(state: StudyState, reporter: Reporter) -> None:
    """For a study of variants, what a reader wants first: each variant against
    the reference on each summary metric (difference, its 95% interval, the Holm
    p-value, the verdict in words), as comparison.csv has it."""
    if not state.variant_configs or not state.completed:
        return
    from orchestrator.commands.compare import compare_variants  # scipy: only here
    from orchestrator.errors import XorchError
    from orchestrator.seed_table import seed_table

    logged = set(seed_table(state).metrics())
    metrics = [m for m in state.summary_metrics if m in logged]
    if not metrics:
        return
    try:
        table = compare_variants(state, metrics)
    except XorchError:  # a reference without runs, a metric nobody logged: said elsewhere
        return
    for c in table.contrasts:
        reporter.say(f"{c.group} vs {c.reference}, {c.metric}: {comparison_words(c)}")


def comparison_words(c: Contrast) -> str:
    """``diff -0.021 [-0.034, -0.008], Holm p 0.004: better (lower is better)``."""
    if c.better == "n/a" or math.isnan(c.diff):
        return f"no comparison ({c.note or 'too few values'})"
    interval = ""
    if math.isfinite(c.diff_ci_low):
        interval = f" [{c.diff_ci_low:+.3g}, {c.diff_ci_high:+.3g}]"
    p = f", Holm p {c.p_holm:.3g}" if math.isfinite(c.p_holm) else ""
    way = "lower" if c.goal.value == "min" else "higher"
    if c.better == "diverges":
        verdict = f"diverges more often ({c.not_finite} seeds not finite)"
    elif c.better == "equal":
        verdict = "the same mean"
    elif math.isfinite(c.p_holm) and c.p_holm < 0.05:
        verdict = "better" if c.better == "yes" else "worse"
    else:
        side = "better" if c.better == "yes" else "worse"
        verdict = f"no significant difference (its mean is {side})"
    return f"diff {c.diff:+.3g}{interval}{p}: {verdict} ({way} is better)"


def _say_problems(reporter: Reporter, config_error: str) -> None:
    """Every problem the run's build found, one error line each."""
    problems = config_error.splitlines() or [config_error]
    if len(problems) == 1:
        reporter.error(f"a run could not be built from the config: {problems[0]}")
        return
    reporter.error(f"a run could not be built from the config: {len(problems)} problems")
    for problem in problems:
        reporter.error(problem)


def _report_means(spec: StudySpec, completed: list[RunRecord], reporter: Reporter) -> None:
    """Mean ± std of each summary metric over its finite values, as summary.csv has
    them; a diverged seed (nan, inf) is counted, never averaged (nor a crash)."""
    groups: list[str | None] = [*spec.variants] or [None]
    table = from_runs(completed)
    for variant in groups:  # per variant: a mean over several configs would mean nothing
        for name in spec.runner.summary_metrics:
            values = list(table.values(name, variant).values())
            if values:
                line = mean_std_line(name, values)
                reporter.say(line if variant is None else f"{variant}: {line}")
