"""``mode: train``: one training with one seed, the way a user replays a run.

Same child, same supervision as a study, but no state file: the run folder is
``pl_trainer.default_root_dir`` (or ``outputs/train_seed<N>``), and a folder
that already holds a result is never overwritten.
"""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.config import StudySpec
from orchestrator.errors import ExitCode, StudyExistsError
from orchestrator.launchers.base import Launcher
from orchestrator.launchers.local import LocalLauncher
from orchestrator.paths import RunPaths
from orchestrator.report import Reporter, format_metrics
from orchestrator.result import LaunchResult
from orchestrator.state import AttemptClass
from orchestrator.supervise import AttemptWatch
from worker.protocol import RunSpec

__all__ = ["single_run_dir", "train_single"]


def single_run_dir(spec: StudySpec) -> Path:
    trainer = spec.training.get("pl_trainer") or {}
    configured = trainer.get("default_root_dir") or f"outputs/train_seed{spec.train_seed}"
    return Path(configured).expanduser().resolve()


def train_single(
    spec: StudySpec, reporter: Reporter | None = None, launcher: Launcher | None = None
) -> LaunchResult:
    assert spec.train_seed is not None
    run = RunPaths(single_run_dir(spec))
    if run.metrics.exists():
        raise StudyExistsError(
            f"{run.root} already holds a finished run; set pl_trainer.default_root_dir "
            "to a new folder"
        )
    run.root.mkdir(parents=True, exist_ok=True)
    reporter = reporter or Reporter()
    RunSpec(
        run_index=0,
        seed=spec.train_seed,
        run_dir=str(run.root),
        config=dict(spec.training),
        import_paths=spec.import_paths,
        heartbeat_interval_s=spec.runner.heartbeat_interval_s,
    ).write(run.run_spec)
    reporter.say(f"train: seed {spec.train_seed} in {run.root}")
    watch = AttemptWatch((launcher or LocalLauncher()).start(run, {}), run, spec.runner)
    verdict = watch.check()
    while verdict is None:
        time.sleep(0.2)
        verdict = watch.check()
    if verdict.outcome is AttemptClass.COMPLETED:
        reporter.say("completed  " + format_metrics(verdict.metrics, sorted(verdict.metrics)))
        return LaunchResult(run.root, 1, 1, ExitCode.OK)
    reporter.say(f"{verdict.outcome.value}: {verdict.reason} (log: {run.log})")
    return LaunchResult(run.root, 0, 1, ExitCode.RUNS_FAILED)
