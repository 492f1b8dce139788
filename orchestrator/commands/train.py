"""One training outside a study: ``mode: train`` and ``xorch replay``.

Same child, same supervision as a study, but no state file. The run folder is
never one that already holds a result: nothing is overwritten.
"""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.config import StudySpec
from orchestrator.console import Reporter, format_metrics
from orchestrator.contract.paths import RunPaths
from orchestrator.contract.records import RunSpec
from orchestrator.errors import ExitCode, StudyExistsError
from orchestrator.launchers.base import Launcher
from orchestrator.launchers.local import LocalLauncher
from orchestrator.result import LaunchResult
from orchestrator.run_shape import run_shape
from orchestrator.runner_spec import RunnerSettings
from orchestrator.state import AttemptClass
from orchestrator.supervise import AttemptWatch, Verdict

__all__ = ["run_one", "single_run_dir", "train_single"]


def single_run_dir(spec: StudySpec) -> Path:
    trainer = spec.training.get("pl_trainer") or {}
    configured = trainer.get("default_root_dir") or f"outputs/train_seed{spec.train_seed}"
    return Path(configured).expanduser().resolve()


def run_one(
    run_spec: RunSpec, runner: RunnerSettings, reporter: Reporter, launcher: Launcher | None = None
) -> Verdict:
    """Train ``run_spec`` in a fresh child in an empty (or new) folder and wait for it."""
    run = RunPaths(Path(run_spec.run_dir))
    if run.metrics.exists():
        raise StudyExistsError(
            f"{run.root} already holds a finished run; choose a new folder "
            "(pl_trainer.default_root_dir)"
        )
    run.root.mkdir(parents=True, exist_ok=True)
    run_spec.write(run.run_spec)
    shape = run_shape(run_spec.config)  # a study's own program too (replay)
    child = (launcher or LocalLauncher(shape.entry)).start(run, {})
    watch = AttemptWatch(child, run, runner, kind=shape.kind)
    verdict = watch.check()
    while verdict is None:
        time.sleep(0.2)
        verdict = watch.check()
    if verdict.attempt_class is AttemptClass.COMPLETED:
        reporter.say("completed  " + format_metrics(verdict.metrics, sorted(verdict.metrics)))
    else:
        reporter.say(f"{verdict.attempt_class.value}: {verdict.reason} (log: {run.log})")
    return verdict


def train_single(
    spec: StudySpec, reporter: Reporter | None = None, launcher: Launcher | None = None
) -> LaunchResult:
    assert spec.train_seed is not None
    reporter = reporter or Reporter()
    root = single_run_dir(spec)
    run_spec = RunSpec(
        run_index=0,
        seed=spec.train_seed,
        run_dir=str(root),
        config=dict(spec.training),
        import_paths=spec.import_paths,
        heartbeat_interval_s=spec.runner.heartbeat_interval_s,
    )
    reporter.say(f"train: seed {spec.train_seed} in {root}")
    verdict = run_one(run_spec, spec.runner, reporter, launcher)
    completed = verdict.attempt_class is AttemptClass.COMPLETED
    code = ExitCode.OK if completed else ExitCode.RUNS_FAILED
    if verdict.config_error:  # bad input, as for a study
        code = ExitCode.USAGE
    return LaunchResult(root, int(completed), 1, code)
