"""One group's statistics: the values of one metric over its seeds (seed -> value).


- ``n``, ``mean``, ``std`` (ddof=1), ``sem``, the Student t 95% interval of the
  mean, ``median``;
- ``iqm``: the interquartile mean, ``scipy.stats.trim_mean(x, 0.25)`` as in
  rliable: sort, drop ``floor(n/4)`` values at each end, average the rest (for
  ``n`` divisible by 4 exactly the middle half);
- a bootstrap 95% interval of the mean (``scipy.stats.bootstrap``, 9999
  resamples, resampling seed 0 so the result is reproducible): BCa when scipy
  can compute it, the percentile interval when BCa comes out undefined (its
  jackknife acceleration or bias correction degenerate, e.g. heavy ties);
  ``bootstrap_method`` says which. None below ``BOOTSTRAP_MIN_N`` = 10 finite
  values (``bootstrap_method`` "n/a (n < 10)"): measured by a seeded simulation
  (tests/test_stats_edges.py), a nominal 95% BCa interval covers the mean of
  normal data 51% of the time at n = 2, 72% at 3, 84% at 5, 88% at 9, 91% at 10.

Values that are not finite follow the seed table's rule (``orchestrator.seed_table``):
left out and counted. Nothing here reads a file; comparing two groups is
``orchestrator.inference``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.seed_table import MetricStats, describe

__all__ = [
    "BOOTSTRAP_MIN_N",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "SampleStats",
    "SeedValues",
    "bootstrap_mean_ci",
    "describe_sample",
    "join_notes",
    "values_array",
]

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
# Below this many finite values no bootstrap interval is given: its coverage of a
# nominal 95% falls under 90% (seeded simulation, tests/test_inference.py, normal
# data: 0.51 at n = 2, 0.72 at 3, 0.84 at 5, 0.88 at 9, 0.91 at 10, 0.92 at 20).
BOOTSTRAP_MIN_N = 10

SeedValues = Mapping[int, float]


@dataclass(frozen=True)
class SampleStats:
    """One group's values of one metric: the seed table's statistics of them (``summary``:
    n, mean, std, the t interval, median, the values left out, as in summary.csv), with
    the IQM and a bootstrap interval."""

    summary: MetricStats
    iqm: float
    boot_low: float
    boot_high: float
    bootstrap_method: str  # "BCa", "percentile", "n/a" or "n/a (n < 10)"
    note: str = ""


def describe_sample(values: Sequence[float] | SeedValues) -> SampleStats:
    """``seed_table.describe`` of ``values`` (a sequence or seed -> value), with
    the median, the IQM and a bootstrap interval: the same non-finite rule, so
    these numbers agree with summary.csv's."""
    data = values_array(values)
    base = describe(data.tolist())
    finite = data[np.isfinite(data)]
    left_out = base.not_finite
    note = f"{left_out.describe()}, left out" if left_out.count else ""
    nan = math.nan
    if base.n == 0:
        said = "no finite value" if left_out.count else "no values"
        return SampleStats(base, nan, nan, nan, "n/a", join_notes(note, said))
    from scipy import stats

    iqm = float(stats.trim_mean(finite, 0.25))
    # describe gives one value std 0 and no interval, and equal values a point interval.
    if base.n == 1:
        return SampleStats(base, iqm, nan, nan, "n/a", join_notes(note, "one value: no interval"))
    if base.std == 0:
        said = "all values equal: nothing to resample"
        return SampleStats(base, iqm, nan, nan, "n/a", join_notes(note, said))
    if base.n < BOOTSTRAP_MIN_N:
        return SampleStats(base, iqm, nan, nan, f"n/a (n < {BOOTSTRAP_MIN_N})", note)
    low, high, method = bootstrap_mean_ci(finite)
    return SampleStats(base, iqm, low, high, method, note)


def join_notes(*notes: str) -> str:
    """The non-empty ``notes``, joined with "; "."""
    return "; ".join(n for n in notes if n)


def bootstrap_mean_ci(
    data: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float, str]:
    """Bootstrap 95% interval of the mean: BCa, or percentile where BCa is undefined."""
    from scipy import stats

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # scipy warns (and returns nan) when BCa's terms degenerate; we fall back instead.
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (data,), np.mean, n_resamples=n_resamples, confidence_level=CONFIDENCE,
                method=method, rng=np.random.default_rng(seed),
            )  # fmt: skip
        low, high = (float(x) for x in result.confidence_interval)
        if math.isfinite(low) and math.isfinite(high):
            return low, high, method
    return math.nan, math.nan, "n/a"


# --------------------------------------------------------------------------- two groups


def values_array(values: Sequence[float] | SeedValues) -> np.ndarray:
    """``values`` as a float array; a mapping seed -> value in seed order."""
    if isinstance(values, Mapping):
        values = [values[seed] for seed in sorted(values)]
    return np.asarray(list(values), dtype=float)
