"""Which place on a GPU a new run takes (``lease_choice``): a table of cases."""

from __future__ import annotations

import pytest

from orchestrator.lease_choice import PlaceHolder, choose_place, choose_places


def held(*pairs: tuple[int, int]) -> list[PlaceHolder]:
    return [PlaceHolder(place, limit) for place, limit in pairs]


@pytest.mark.parametrize(
    ("holders", "runs_per_gpu", "place"),
    [
        ([], 1, 0),  # a free GPU: place 0
        (held((0, 1)), 1, None),  # one run there, one allowed
        (held((0, 2)), 2, 1),  # two allowed, one there: the next place
        (held((0, 2), (1, 2)), 2, None),  # full
        (held((1, 2)), 2, 0),  # place 0 freed (its holder died): taken again
        (held((0, 1)), 4, None),  # the holder wants its GPU alone
        (held((0, 4)), 1, None),  # the newcomer wants it alone
        (held((0, 3), (1, 2)), 3, None),  # a holder allows 2: a third would break it
        (held((0, 3), (2, 3)), 3, 1),  # the lowest free place, between held ones
        (held((0, 4), (1, 4), (2, 4)), 4, 3),
    ],
)
def test_a_run_takes_the_lowest_free_place_within_every_holders_limit(
    holders: list[PlaceHolder], runs_per_gpu: int, place: int | None
) -> None:
    assert choose_place(holders, runs_per_gpu) == place


@pytest.mark.parametrize(
    ("by_gpu", "gpus", "chosen"),
    [
        ({}, ["0"], {"0": 0}),
        ({"0": held((0, 1))}, ["1"], {"1": 0}),  # another GPU's holders do not count
        ({"0": held((0, 1))}, ["0", "1"], None),  # a DDP pair: all of its GPUs or none
        ({"2": held((0, 2))}, ["2", "3"], {"2": 1, "3": 0}),
        ({"3": held((0, 2), (1, 2))}, ["2", "3"], None),
    ],
)
def test_a_run_on_several_gpus_gets_a_place_on_each_or_none(
    by_gpu: dict[str, list[PlaceHolder]], gpus: list[str], chosen: dict[str, int] | None
) -> None:
    assert choose_places(by_gpu, gpus, 2) == chosen
