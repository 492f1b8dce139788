"""``python -m tests.fake_xorch ARGS``: the real xorch CLI whose children are
``tests.fake_worker`` (spawned by the real ``LocalLauncher``, or run by the real
``SlurmLauncher``'s jobs for ``executor: slurm``), for tests that
need the parent as a real process (signals to it, ``kill -9`` then
``--resume``) without a torch import in any child (``launch --together``'s
study processes are fake xorch too). Test-only: the product has
no hook for it; the launcher factory is replaced here, before the CLI runs."""

from __future__ import annotations

import sys

import orchestrator.cli as cli
import orchestrator.commands.launch_many as launch_many
import orchestrator.launchers as launchers
from orchestrator.config import StudySpec
from orchestrator.contract.paths import StudyPaths
from orchestrator.launchers.base import Launcher
from orchestrator.launchers.local import LocalLauncher
from orchestrator.runner_spec import Executor

__all__ = ["ENTRY", "fake_launcher", "main"]

ENTRY = "tests.fake_worker"


def fake_launcher(spec: StudySpec, paths: StudyPaths, *args: object, **kwargs: object) -> Launcher:
    """What ``make_launcher`` returns in a fake study: spawned fake workers, or,
    for ``executor: slurm``, Slurm jobs that run the fake worker."""
    if spec.runner.executor is Executor.SLURM:
        from orchestrator.launchers.slurm import SlurmLauncher  # imports submitit

        return SlurmLauncher(spec.runner.slurm, paths, ENTRY, gpus_per_run=0)
    return LocalLauncher(entry=ENTRY)


def main(argv: list[str]) -> None:
    """Every loaded module that holds ``make_launcher`` gets ``fake_launcher``
    instead (the CLI's imports are all loaded by now); none found is an error,
    so a move of the factory cannot quietly start real workers."""
    real = launchers.make_launcher
    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("orchestrator") and getattr(module, "make_launcher", None) is real
    ]
    assert holders, "tests.fake_xorch: no module holds make_launcher any more"
    for module in holders:
        module.make_launcher = fake_launcher  # type: ignore[attr-defined]
    # ``launch --together`` starts one xorch per study: fake ones too.
    launch_many.PARENT_MODULE = "tests.fake_xorch"
    sys.argv = ["xorch", *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
