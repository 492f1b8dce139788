"""Which seed each run gets."""

from __future__ import annotations

import secrets

from orchestrator.runner_spec import MAX_SEED, RunnerSettings

__all__ = ["adaptive_sequence", "random_seeds", "study_seeds"]


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


def adaptive_sequence(length: int, drawn: tuple[int, ...] = ()) -> tuple[int, ...]:
    """An adaptive study's seed sequence: the ``drawn`` one (stored in the state)
    kept as it is, extended with fresh random seeds to ``length`` (new: drawn like
    ``n_runs``' seeds)."""
    if len(drawn) >= length:
        return drawn
    taken = set(drawn)
    # Enough draws that, after dropping any already in the sequence, some remain.
    extra = [s for s in random_seeds(length + len(drawn)) if s not in taken]
    return drawn + tuple(extra[: length - len(drawn)])
