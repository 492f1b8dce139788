"""Shuffling that survives a resume from a checkpoint.

A DataLoader with ``shuffle=True`` draws its permutation from a generator whose
state a checkpoint does not hold, so a run resumed at epoch k would see the
order of epoch 0 again. ``EpochSeededSampler`` derives each epoch's permutation
from ``(seed, epoch)`` alone; Lightning calls ``set_epoch`` before every
training epoch, so a resumed run sees exactly the order an uninterrupted run
would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSeededSampler", "loader_generator"]


class EpochSeededSampler(Sampler[int]):
    """A random permutation of ``range(length)`` that depends on seed and epoch only."""

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


def loader_generator(seed: int) -> torch.Generator:
    """A generator for a DataLoader, so building its iterator draws nothing from
    torch's global generator (that state belongs to the model)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
