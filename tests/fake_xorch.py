"""``python -m tests.fake_xorch ARGS``: the real xorch CLI whose children are
``tests.fake_worker`` (spawned by the real ``LocalLauncher``), for tests that
need the parent as a real process (signals to it, ``kill -9`` then
``--resume``) without a torch import in any child. Test-only: the product has
no hook for it; the launcher factory is replaced here, before the CLI runs."""

from __future__ import annotations

import sys

import orchestrator.launchers as launchers
import orchestrator.study as study
from orchestrator.launchers.base import Launcher
from orchestrator.launchers.local import LocalLauncher

__all__ = ["ENTRY", "fake_launcher", "main"]

ENTRY = "tests.fake_worker"


def fake_launcher(*args: object, **kwargs: object) -> Launcher:
    """What ``make_launcher`` returns in a fake study: spawned fake workers."""
    return LocalLauncher(entry=ENTRY)


def main(argv: list[str]) -> None:
    for module in (launchers, study):
        if hasattr(module, "make_launcher"):
            module.make_launcher = fake_launcher  # type: ignore[attr-defined]
    from orchestrator.cli import main as cli_main

    sys.argv = ["xorch", *argv]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
