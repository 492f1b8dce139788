"""The launcher a study's config asks for."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.config import StudySpec
from orchestrator.contract.paths import StudyPaths
from orchestrator.launchers.base import Launcher
from orchestrator.launchers.forkserver import ForkserverLauncher, preload_modules
from orchestrator.launchers.local import LocalLauncher
from orchestrator.runner_spec import Executor, LauncherKind

__all__ = ["make_launcher"]


def make_launcher(
    spec: StudySpec, paths: StudyPaths, say: Callable[[str], None] = lambda message: None
) -> Launcher:
    """Slurm jobs for ``executor: slurm`` (running the command wrapper for a
    ``command:`` study); else forked runs (the default), which
    fall back to spawn by themselves, and say so once, where forking is unsafe;
    or spawned runs for ``launcher: spawn`` and for every ``command:`` study."""
    command = "command" in spec.training
    if spec.runner.executor is Executor.SLURM:
        from orchestrator.launchers.slurm import SlurmLauncher  # imports submitit

        entry = "worker.command_run" if command else "worker.train_one"
        return SlurmLauncher(spec.runner.slurm, paths, entry)
    if command:
        # A program of the user's own: always spawned (the fork server preloads
        # torch and Lightning for Lightning runs, of no use to an exec'd program).
        return LocalLauncher(entry="worker.command_run")
    if spec.runner.launcher is LauncherKind.FORKSERVER:
        preload = preload_modules(spec.training, spec.import_paths)
        return ForkserverLauncher(preload, paths.forkserver_log, say)
    return LocalLauncher()
