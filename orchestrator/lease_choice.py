"""Which place on a GPU a new run takes, given who holds the GPU now: pure.

Each GPU of the machine has numbered places; a run holds one place on each of
its GPUs for the whole attempt (``orchestrator.gpu_leases`` takes them). Every
holder brings its own study's ``runs_per_gpu``: a GPU is full for a new run
when the runs on it, the new one included, would be more than the new run's
``runs_per_gpu`` or than any holder's. So a study that asked for a GPU to itself
(``runs_per_gpu: 1``) gets it alone, whoever else shares the machine.

Places go first come, first served: a process that was refused a GPU says
since when it waits, and no other takes that GPU before it (``first_in_line``);
else a study that frees a place would take it again at once, and a second
study would wait for the first one's last run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PlaceHolder", "choose_place", "choose_places", "first_in_line"]


@dataclass(frozen=True)
class PlaceHolder:
    """A place of one GPU held by a live run, and that run's ``runs_per_gpu``."""

    place: int
    runs_per_gpu: int


def choose_place(held: Sequence[PlaceHolder], runs_per_gpu: int) -> int | None:
    """The lowest free place for a run of ``runs_per_gpu``, or None when the GPU is full."""
    limits = [runs_per_gpu, *(holder.runs_per_gpu for holder in held)]
    if len(held) + 1 > min(limits):
        return None
    taken = {holder.place for holder in held}
    return next(place for place in itertools.count() if place not in taken)


def choose_places(
    held: Mapping[str, Sequence[PlaceHolder]], gpus: Sequence[str], runs_per_gpu: int
) -> dict[str, int] | None:
    """One place on each of ``gpus`` (a DDP run's group), or None when any is full:
    a run starts on all its GPUs or on none."""
    chosen = {}
    for gpu in gpus:
        place = choose_place(held.get(gpu, ()), runs_per_gpu)
        if place is None:
            return None
        chosen[gpu] = place
    return chosen


def first_in_line(waiting_since: float | None, others_since: Sequence[float]) -> bool:
    """Whether a taker may take a GPU that the other live waiters wait for too:
    when none of them waits since longer (a taker not yet waiting comes last)."""
    if waiting_since is None:
        return not others_since
    return all(waiting_since <= other for other in others_since)
