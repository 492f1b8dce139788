"""The launcher a study's config asks for."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.config import StudySpec
from orchestrator.contract.paths import StudyPaths
from orchestrator.launchers.base import Launcher
from orchestrator.launchers.forkserver import ForkserverLauncher, preload_modules
from orchestrator.launchers.local import LocalLauncher
from orchestrator.ranks import cpu_only, starts_ranks
from orchestrator.runner_spec import Executor, LauncherKind

__all__ = ["SPAWN_FOR_DDP", "ddp_runs", "make_launcher"]

SPAWN_FOR_DDP = (
    "launcher: spawn, not forkserver: Lightning starts DDP ranks by running the "
    "child's command line again, and a forked run's is the fork server's"
)


def ddp_runs(spec: StudySpec) -> bool:
    """Whether any run of the study starts DDP ranks of its own."""
    return any(starts_ranks(c) for c in (spec.training, *spec.variants.values()))


def make_launcher(
    spec: StudySpec,
    paths: StudyPaths,
    say: Callable[[str], None] = lambda message: None,
    warn: Callable[[str], None] | None = None,
) -> Launcher:
    """Slurm jobs for ``executor: slurm`` (running the command wrapper for a
    ``command:`` study); else forked runs (the default), which
    fall back to spawn by themselves, and say so once, where forking is unsafe;
    or spawned runs for ``launcher: spawn``, for every ``command:`` study and
    for runs that start DDP ranks (said once too)."""
    command = spec.shape.is_command
    if spec.runner.executor is Executor.SLURM:
        from orchestrator.launchers.slurm import SlurmLauncher  # imports submitit

        # One task with the run's GPUs; Lightning starts the ranks inside it, as
        # on a local slot (worker.ranks.own_ranks_in_one_task). CPU DDP asks for none.
        trainings = [spec.training, *spec.variants.values()]
        gpus = 0 if cpu_only(trainings) else spec.runner.gpus_per_run
        return SlurmLauncher(spec.runner.slurm, paths, spec.shape.entry, gpus_per_run=gpus)
    if command:
        # A program of the user's own: always spawned (the fork server preloads
        # torch and Lightning for Lightning runs, of no use to an exec'd program).
        return LocalLauncher(entry=spec.shape.entry)
    if spec.runner.launcher is LauncherKind.FORKSERVER and ddp_runs(spec):
        say(SPAWN_FOR_DDP)
        return LocalLauncher()
    if spec.runner.launcher is LauncherKind.FORKSERVER:
        preload = preload_modules(spec.training, spec.import_paths)
        return ForkserverLauncher(preload, paths.forkserver_log, say, warn)
    return LocalLauncher()
