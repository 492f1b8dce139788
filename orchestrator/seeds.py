"""Which seed each run gets."""

from __future__ import annotations

import secrets

from orchestrator.runner_spec import MAX_SEED, RunnerSettings

__all__ = ["random_seeds", "study_seeds"]


def random_seeds(count: int) -> tuple[int, ...]:
    """``count`` distinct seeds from the OS's cryptographic source, in 0..2**31-1."""
    chosen: dict[int, None] = {}  # insertion-ordered set: linear, keeps the draw order
    while len(chosen) < count:
        chosen.setdefault(secrets.randbelow(MAX_SEED + 1))
    return tuple(chosen)


def study_seeds(runner: RunnerSettings) -> tuple[int, ...]:
    """The explicit seeds, or fresh random ones for ``n_runs`` (saved in the state
    before the first run, so a resume never draws again)."""
    if runner.seeds is not None:
        return runner.seeds
    return random_seeds(runner.run_count)
