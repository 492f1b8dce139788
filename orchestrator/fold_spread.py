"""The spread of a study with folds, split in two (``xorch summary``): between
seeds and between folds.

Every seed runs every fold, so the runs form a fold x seed table. The
between-seed spread is the std (ddof=1) of the seed means, each over that
seed's folds; the between-fold spread is the std of the fold means, each over
that fold's seeds. On a complete table these are the two main effects of a
two-way analysis of variance without interaction: ``n_folds * var(seed means)``
is the seed factor's mean square and ``n_seeds * var(fold means)`` the fold
factor's (tests/test_folds.py checks them against statsmodels' ``anova_lm``).
Non-finite values are left out, as everywhere (``orchestrator.seed_table``); a
spread over fewer than two means is nan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["FoldSpread", "fold_spread"]


@dataclass(frozen=True)
class FoldSpread:
    """One metric's spread in a study with folds."""

    seeds: int  # seeds with a finite value
    folds: int  # folds with a finite value
    between_seeds: float  # std of the seed means
    between_folds: float  # std of the fold means


def fold_spread(values: Mapping[tuple[int, int], float]) -> FoldSpread:
    """Over ``(fold, seed) -> value``: the std of the seed means and of the fold means."""
    by_seed: dict[int, list[float]] = {}
    by_fold: dict[int, list[float]] = {}
    for (fold, seed), value in values.items():
        if math.isfinite(value):
            by_seed.setdefault(seed, []).append(value)
            by_fold.setdefault(fold, []).append(value)
    return FoldSpread(
        seeds=len(by_seed),
        folds=len(by_fold),
        between_seeds=_std_of_means(by_seed),
        between_folds=_std_of_means(by_fold),
    )


def _std_of_means(groups: Mapping[int, list[float]]) -> float:
    means = np.array([np.mean(v) for v in groups.values()], dtype=float)
    if means.size < 2:
        return math.nan
    return 0.0 if np.min(means) == np.max(means) else float(np.std(means, ddof=1))
