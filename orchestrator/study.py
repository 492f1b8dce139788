"""``xorch launch``: from a validated config to a finished (or resumable) study.

Order of events: validate the config (nothing touched yet); take the study's
launcher lock; refuse to overwrite a study unless resuming; create or load the
state (random seeds are saved before any run starts); settle runs that a dead
parent left running; hand the rest to the scheduler; report what did not
complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import psutil

from orchestrator.adaptive import add_seeds
from orchestrator.commands.train import train_single
from orchestrator.config import (
    Mode,
    StudySpec,
    changed_keys,
    load_study,
    training_fingerprint,
)
from orchestrator.console import Reporter
from orchestrator.contract.paths import StudyPaths, run_dir_name
from orchestrator.contract.records import Heartbeat, RunResult
from orchestrator.errors import ExitCode, StateError, StudyExistsError
from orchestrator.interrupts import StopFlag, stop_on_signals
from orchestrator.launchers import make_launcher
from orchestrator.launchers.base import ChildProcess, Launcher
from orchestrator.launchers.local import stop_process_group
from orchestrator.locks import launcher_lock
from orchestrator.result import LaunchResult
from orchestrator.runner_spec import Executor
from orchestrator.scheduler import Scheduler, study_slots
from orchestrator.seeds import adaptive_sequence, random_seeds, study_seeds
from orchestrator.state import (
    AdaptiveSeeds,
    AttemptClass,
    RunRecord,
    RunStatus,
    StudyState,
    now_iso,
)
from orchestrator.state_store import load_backup, load_state, save_state
from orchestrator.summary import mean_std_line, write_summary

__all__ = ["launch", "launch_spec"]


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
    resume: bool = False,
    reporter: Reporter | None = None,
    launcher: Launcher | None = None,
    cancel_jobs: bool = False,
) -> LaunchResult:
    if spec.mode is Mode.TRAIN:
        return train_single(spec, reporter=reporter, launcher=launcher)
    resume = resume or spec.runner.resume
    paths = StudyPaths(spec.output_dir)
    # GPUs named in the config that are not there: refused before anything is written.
    slots = study_slots(spec)
    if not resume:
        _refuse_existing(paths)  # before the folder is even created
    before = _entries(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    with launcher_lock(paths):
        for temp in paths.stale_temp_files():  # a killed launch's half-written files
            with contextlib.suppress(OSError):
                temp.unlink()
        fresh = not (paths.state.exists() or paths.state_backup.exists())
        state = _initial_state(spec, paths, resume)
        reporter = reporter or Reporter(paths.log)
        reporter.say(
            f"study {paths.root}: {len(state.runs)} runs, {len(state.completed)} already completed"
        )
        chosen = launcher or make_launcher(spec, paths, reporter.say)
        state, reattach = _settle_stale_runs(
            paths, state, reporter, spec.runner.grace_period, chosen
        )
        flag = StopFlag()
        on_cluster = spec.runner.executor is Executor.SLURM
        try:
            with stop_on_signals(flag), reporter.live_progress():
                outcome = Scheduler(
                    spec,
                    paths,
                    chosen,
                    reporter,
                    flag,
                    slots=slots,
                    leave_running_on_stop=on_cluster and not cancel_jobs,
                ).run(state, reattach)
        finally:
            chosen.close()
        if not (fresh and _only_config_errors(outcome.state, flag, outcome.config_error)):
            return _finish(spec, paths, outcome.state, reporter, flag, outcome.config_error)
        result = _take_back(spec, paths, outcome.state, before, reporter, outcome.config_error)
    if before is None:  # the folder is ours: it goes too, once its lock is released
        with contextlib.suppress(OSError):
            paths.launcher_lock.unlink()
            paths.root.rmdir()
    return result


def _refuse_existing(paths: StudyPaths) -> None:
    state = load_state(paths) if paths.state.exists() else None
    if state is not None:
        raise StudyExistsError(
            f"{paths.root} already holds a study ({len(state.completed)} of {len(state.runs)} "
            "runs completed); resume it with --resume (or resume: true), "
            "or choose another output_base_dir"
        )
    if paths.state_backup.exists():
        # Starting over here would write a new state over the only record of
        # the finished runs; --resume recovers from the .bak instead.
        raise StudyExistsError(
            f"{paths.root} holds {paths.state_backup.name} but no {paths.state.name}; "
            "recover that study with: xorch launch <config> --resume, "
            "or choose another output_base_dir"
        )
    if paths.root.is_dir() and any(
        p.name.startswith("run_") or p == paths.summary for p in paths.root.iterdir()
    ):
        raise StudyExistsError(
            f"{paths.root} holds run folders but no runner_state.json; "
            "choose another output_base_dir or move those folders away"
        )


def _entries(folder: Path) -> frozenset[str] | None:
    """The names in ``folder`` before this launch; None if it did not exist."""
    try:
        return frozenset(p.name for p in folder.iterdir())
    except FileNotFoundError:
        return None
    except OSError:  # not a folder, or unreadable: the launch itself will say so
        return frozenset()


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
    ours = [paths.state, paths.state_backup, paths.state_lock, paths.summary, paths.log]
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
    reporter.error(
        f"a run could not be built from the config: {config_error}; nothing was trained "
        f"and what this launch created in {paths.root} is removed: fix the config and "
        f"launch again (xorch validate {spec.config_path} checks it)"
    )
    return LaunchResult(paths.root, 0, len(state.runs), ExitCode.USAGE)


def _initial_state(spec: StudySpec, paths: StudyPaths, resume: bool) -> StudyState:
    existing = load_state(paths)
    recovered = False
    if existing is None and resume:
        # runner_state.json is gone (deleted, or moved aside as damaged) but the
        # previous good state is there: continue from it, never start over.
        # A run it still shows running is settled from its folder like any other.
        existing = load_backup(paths)
        recovered = existing is not None
    if spec.variants or (existing is not None and existing.variant_configs):
        return _initial_variant_state(spec, paths, resume, existing, recovered)
    if existing is None:
        adaptive, planned = _adaptive_seeds(spec, None)
        seeds = study_seeds(spec.runner) if planned is None else planned
        width = len(adaptive.sequence) if adaptive else len(seeds)
        state = StudyState(
            config_fingerprint=spec.fingerprint,
            training_config=dict(spec.training),
            seeds=seeds,
            runs=tuple(
                RunRecord(index=i, seed=s, dir=run_dir_name(i, s, width))
                for i, s in enumerate(seeds)
            ),
            summary_metrics=spec.runner.summary_metrics,
            adaptive=adaptive,
        )
        save_state(paths, state)  # random seeds are on disk before any run starts
        return state
    if not resume:  # another launch created it between our check and the lock
        _refuse_existing(paths)
    if existing.config_fingerprint != spec.fingerprint:
        keys = changed_keys(existing.training_config, spec.training)
        raise StateError(
            f"the training config changed since this study started ({', '.join(keys)}); "
            "resume with the original config, or start a new output_base_dir"
        )
    runner = spec.runner
    if runner.seeds is not None and runner.seeds != existing.seeds:
        raise StateError(
            f"experiments_runner.seeds {list(runner.seeds)} differ from the study's "
            f"{list(existing.seeds)}; resume with the original seeds"
        )
    adaptive, planned = _adaptive_seeds(spec, existing)
    if adaptive is None and runner.seeds is None and runner.n_runs != len(existing.seeds):
        raise StateError(
            f"experiments_runner.n_runs is {runner.n_runs} but the study has "
            f"{len(existing.seeds)} runs; resume with n_runs: {len(existing.seeds)}"
        )
    updated = dataclasses.replace(
        existing, summary_metrics=runner.summary_metrics, adaptive=adaptive
    )
    if planned is not None and len(planned) > len(updated.seeds):  # a larger min: now
        updated, _ = add_seeds(updated, len(planned) - len(updated.seeds))
    if updated != existing or recovered:  # recovered: the .bak is left as it is
        save_state(paths, updated)
    existing = updated
    if recovered:
        Reporter(paths.log).say(
            f"{paths.state.name} was missing: recovered the study from "
            f"{paths.state_backup.name} ({len(existing.completed)} of {len(existing.runs)} "
            "runs completed)"
        )
    return existing


def _initial_variant_state(
    spec: StudySpec, paths: StudyPaths, resume: bool, existing: StudyState | None, recovered: bool
) -> StudyState:
    """A study of variants: every variant on every seed, interleaved seed by seed.

    On resume each variant's training config must be the one it started with;
    a variant or seeds added to the config add their runs (at the end, still
    seed by seed), and nothing that ran is trained again."""
    runner = spec.runner
    if existing is None:
        adaptive, planned = _adaptive_seeds(spec, None)
        seeds = study_seeds(runner) if planned is None else planned
        state = StudyState(
            config_fingerprint=spec.fingerprint,
            training_config=dict(spec.training),
            seeds=seeds,
            runs=(),
            summary_metrics=runner.summary_metrics,
        )
    else:
        if not resume:
            _refuse_existing(paths)
        state = existing
        _check_variants_kept(spec, existing)
        adaptive, planned = _adaptive_seeds(spec, existing)
        seeds = _resumed_seeds(spec, existing) if planned is None else planned
    width = len(adaptive.sequence) if adaptive else len(seeds)
    configs = {**state.variant_configs, **{n: dict(c) for n, c in spec.variants.items()}}
    have = {(r.variant, r.seed) for r in state.runs}
    added = [
        (variant, position, seed)
        for position, seed in enumerate(seeds)
        for variant in spec.variants
        if (variant, seed) not in have
    ]
    runs = list(state.runs)
    for variant, position, seed in added:
        name = run_dir_name(position, seed, width, variant)
        runs.append(RunRecord(index=len(runs), seed=seed, dir=name, variant=variant))
    updated = dataclasses.replace(
        state,
        seeds=seeds,
        runs=tuple(runs),
        variant_configs=configs,
        compare_to=runner.compare_to,
        goal=dict(runner.goal),
        summary_metrics=runner.summary_metrics,
        adaptive=adaptive,
    )
    if updated != existing or recovered:
        save_state(paths, updated)  # random seeds are on disk before any run starts
    if recovered:
        Reporter(paths.log).say(
            f"{paths.state.name} was missing: recovered the study from "
            f"{paths.state_backup.name} ({len(updated.completed)} of {len(updated.runs)} "
            "runs completed)"
        )
    return updated


def _check_variants_kept(spec: StudySpec, existing: StudyState) -> None:
    """Refuse a resume that would mix runs of different training configs."""
    if not spec.variants:
        raise StateError(
            "this study has variants "
            f"({', '.join(existing.variant_configs)}); resume with its experiments_runner."
            "variants block, or start a new output_base_dir"
        )
    if not existing.variant_configs:
        raise StateError(
            "this study was started without variants; start the variants in a new "
            "output_base_dir (xorch compare A B compares two studies)"
        )
    dropped = [n for n in existing.variant_configs if n not in spec.variants]
    if dropped:
        raise StateError(
            f"variant {', '.join(dropped)} is in the study but not in the config; "
            "resume with every variant the study has (new ones may be added)"
        )
    for name, config in spec.variants.items():
        old = existing.variant_configs.get(name)
        if old is not None and training_fingerprint(old) != training_fingerprint(config):
            keys = ", ".join(changed_keys(old, config))
            raise StateError(
                f"variant {name}: its training config changed since the study started "
                f"({keys}); resume with the original, or add the change as a new variant"
            )


def _adaptive_seeds(
    spec: StudySpec, existing: StudyState | None
) -> tuple[AdaptiveSeeds | None, tuple[int, ...] | None]:
    """A study with adaptive seeds: its rule and sequence, and the seeds planned
    now (the ones already run, and at least ``min``). (None, None) otherwise.

    A new study draws all ``max`` seeds at once. A resume keeps the stored
    sequence (extended if ``max`` grew); the rule may change as any
    experiments_runner setting may, but not to fewer seeds than already ran."""
    rule = spec.runner.adaptive
    old = existing.adaptive if existing is not None else None
    if existing is not None and old is None and rule is not None:
        raise StateError(
            f"experiments_runner.n_runs: this study was started with {len(existing.seeds)} "
            f"fixed seeds; resume it with n_runs: {len(existing.seeds)}, or start adaptive "
            "seeds in a new output_base_dir"
        )
    if old is not None and rule is None:
        raise StateError(
            "experiments_runner.n_runs: this study adds seeds adaptively; resume it with its "
            f"n_runs mapping ({{min: {old.rule.min_seeds}, max: {old.rule.max_seeds}, until: "
            "...}), or start a new output_base_dir"
        )
    if rule is None:
        return None, None
    if existing is None or old is None:
        sequence = adaptive_sequence(rule.max_seeds)
        return AdaptiveSeeds(rule, sequence), sequence[: rule.min_seeds]
    ran = len(existing.seeds)
    if rule.max_seeds < ran:
        raise StateError(
            f"experiments_runner.n_runs.max is {rule.max_seeds} but the study has already "
            f"run {ran} seeds; resume with max: {ran} or more"
        )
    sequence = adaptive_sequence(rule.max_seeds, old.sequence)
    stopped = old.stopped if rule == old.rule else None  # a new rule is judged afresh
    return AdaptiveSeeds(rule, sequence, stopped), sequence[: max(ran, rule.min_seeds)]


def _resumed_seeds(spec: StudySpec, existing: StudyState) -> tuple[int, ...]:
    """The study's seeds, extended by the config's extra ones (never changed)."""
    old = existing.seeds
    runner = spec.runner
    if runner.seeds is not None:
        if runner.seeds[: len(old)] != old:
            raise StateError(
                f"experiments_runner.seeds {list(runner.seeds)} do not start with the study's "
                f"{list(old)}; keep those first (more may follow)"
            )
        return runner.seeds
    assert runner.n_runs is not None
    if runner.n_runs < len(old):
        raise StateError(
            f"experiments_runner.n_runs is {runner.n_runs} but the study has {len(old)} "
            f"seeds; resume with n_runs: {len(old)} or more"
        )
    extra = [s for s in random_seeds(runner.n_runs + len(old)) if s not in old]
    return old + tuple(extra[: runner.n_runs - len(old)])


def _settle_stale_runs(
    paths: StudyPaths,
    state: StudyState,
    reporter: Reporter,
    grace_period: float,
    launcher: Launcher,
) -> tuple[StudyState, list[tuple[int, ChildProcess]]]:
    """Runs that a dead parent left 'running': a cluster job is watched again
    (it may still run, or have finished meanwhile); otherwise adopt a result the
    child finished, or stop a child that outlived its parent and record it
    interrupted."""
    stale = state.with_status(RunStatus.RUNNING)
    reattach: list[tuple[int, ChildProcess]] = []
    settled = False
    for record in stale:
        attempt = record.current_attempt
        assert attempt is not None
        if attempt.job_id is not None and launcher.reattaches_jobs:
            reattach.append((record.index, launcher.attach(attempt.job_id, paths.run(record.dir))))
            continue
        settled = True
        run = paths.run(record.dir)
        result = RunResult.read(run.metrics)
        if result is not None:
            outcome = AttemptClass.COMPLETED
            reason = "; ".join(filter(None, ["finished while the parent was away", result.note]))
            ended = _file_time(run.metrics)  # the child's last act: its end, not ours
        else:
            outcome, reason = AttemptClass.INTERRUPTED, "the parent died during this attempt"
            beat = Heartbeat.read(run.heartbeat)
            ended = beat.time if beat is not None else None  # its last sign of life
            if _still_running(attempt.pid, attempt.pid_create_time, attempt.host):
                assert attempt.pid is not None
                reporter.say(f"run {record.index}: stopping its child {attempt.pid} left running")
                stop_process_group(attempt.pid, grace_period)
        duration = _seconds_since(attempt.started_at, ended)
        finished = dataclasses.replace(
            attempt,
            attempt_class=outcome,
            reason=reason,
            ended_at=_iso(ended) if ended is not None and duration is not None else now_iso(),
            duration_s=duration,
        )
        state = state.finish_attempt(record.index, finished, result.metrics if result else None)
        reporter.say(f"run {record.index} seed {record.seed}: was running, now {outcome.value}")
    if settled:
        save_state(paths, state)
    return state, reattach


def _still_running(pid: int | None, create_time: float | None, host: str) -> bool:
    """Alive only on proof: same host, the pid exists, and it is the same process
    (its create time matches, so a reused pid is not mistaken for our child)."""
    if pid is None or host != socket.gethostname():
        return False
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > 1.0:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
        reporter.error(f"a run could not be built from the config: {config_error}")
        code = ExitCode.USAGE
    else:
        code = ExitCode.RUNS_FAILED if unfinished else ExitCode.OK
    reporter.say(f"summary: {paths.summary}" if summary_written else "done")
    return LaunchResult(paths.root, len(completed), len(state.runs), code)


def _report_means(spec: StudySpec, completed: list[RunRecord], reporter: Reporter) -> None:
    """Mean ± std of each summary metric over its finite values, as summary.csv has
    them; a diverged seed (nan, inf) is counted, never averaged (nor a crash)."""
    groups: list[str | None] = [*spec.variants] or [None]
    for variant in groups:  # per variant: a mean over several configs would mean nothing
        mine = [r for r in completed if r.variant == variant]
        for name in spec.runner.summary_metrics:
            values = [r.metrics[name] for r in mine if name in r.metrics]
            if values:
                line = mean_std_line(name, values)
                reporter.say(line if variant is None else f"{variant}: {line}")


def _file_time(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, timezone.utc)
        .astimezone()
        .isoformat(timespec="milliseconds")
    )


def _seconds_since(started_at: str, ended: float | None) -> float | None:
    """The attempt's length from its recorded start to ``ended`` (a Unix time);
    None when either is unknown or they disagree (a clock that went back)."""
    if ended is None:
        return None
    try:
        started = datetime.fromisoformat(started_at).timestamp()
    except ValueError:
        return None
    return round(ended - started, 3) if ended >= started else None
