"""Which place on a GPU a new run takes, given who holds the GPU now: pure.

Each GPU of the machine has numbered places; a run holds one place on each of
its GPUs for the whole attempt (``orchestrator.gpu_leases`` takes them). Every
holder brings its own study's ``runs_per_gpu``: a GPU is full for a new run
when the runs on it, the new one included, would be more than the new run's
``runs_per_gpu`` or than any holder's. So a study that asked for a GPU to itself
(``runs_per_gpu: 1``) gets it alone, whoever else shares the machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PlaceHolder", "choose_place", "choose_places"]


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
