"""Statistics for comparing groups of seeds: interval estimates and tests against a reference.

A *group* is one config run over several seeds: a study today, a variant of a
study later. Its values of one metric are a mapping ``seed -> value``, so two
groups that share seeds are paired by seed (common random numbers), and groups
that do not are compared as independent samples. Nothing here reads a file.

Per group and metric (``describe_sample``):

- ``n``, ``mean``, ``std`` (ddof=1), ``sem``, the Student t 95% interval of the
  mean, ``median``;
- ``iqm``: the interquartile mean, ``scipy.stats.trim_mean(x, 0.25)`` as in
  rliable: sort, drop ``floor(n/4)`` values at each end, average the rest (for
  ``n`` divisible by 4 exactly the middle half);
- a bootstrap 95% interval of the mean (``scipy.stats.bootstrap``, 9999
  resamples, resampling seed 0 so the result is reproducible): BCa when scipy
  can compute it, the percentile interval when BCa comes out undefined (its
  jackknife acceleration or bias correction degenerate, e.g. for n = 2 or
  heavy ties); ``bootstrap_method`` says which.

Against a reference group (``contrast``), ``diff = mean(group) - mean(reference)``:

- seeds in common (at least two): **paired** on those seeds. The interval of
  ``diff`` and the p-value are ``scipy.stats.ttest_rel``'s; the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped as
  Wilcoxon proposed, scipy's default choice of exact or normal p-value) is given
  beside it; with 4 pairs its smallest possible p is 0.125.
- otherwise **Welch**: ``scipy.stats.ttest_ind(equal_var=False)``; no Wilcoxon.
- ``hedges_g``: the difference over a standardiser, times the exact small-sample
  correction ``J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))``. Unpaired: the
  pooled std, df = n_a + n_b - 2 (Hedges' g). Paired: the average std
  ``sqrt((s_a² + s_b²)/2)`` and df = 2(n-1) (Lakens' g_av), so a paired g reads
  on the same scale as an unpaired one instead of growing with the correlation
  between seeds, as d_z would.
- ``prob_improvement``: P(X better than Y) for X drawn from the group and Y from
  the reference, every value against every value, ties counting one half
  (rliable's probability of improvement; the Mann-Whitney U over n_x·n_y).
  "Better" follows ``goal``: larger for ``max``, smaller for ``min``.
- ``better``: "yes"/"no"/"equal" by the sign of ``diff`` and the goal.

Undefined results are NaN with ``note`` saying why: a NaN value (a diverged
seed: no statistic is computed over it, so it cannot vanish from a mean), fewer
than two values, no spread, all paired differences zero.

``compare_groups`` runs every (group, metric) contrast against the reference and
adds Holm-corrected p-values (``statsmodels.stats.multitest.multipletests``),
one family per test (t-tests; Wilcoxon tests) over all the contrasts made.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from orchestrator.errors import XorchError
from orchestrator.seed_table import describe

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "Contrast",
    "Goal",
    "SampleStats",
    "bootstrap_mean_ci",
    "compare_groups",
    "contrast",
    "default_goal",
    "describe_sample",
    "hedges_correction",
    "holm",
    "parse_goals",
]

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0

SeedValues = Mapping[int, float]
Groups = Mapping[str, Mapping[str, SeedValues]]  # group -> metric -> seed -> value


class Goal(str, enum.Enum):
    """Which way a metric is better."""

    MIN = "min"
    MAX = "max"


def default_goal(metric: str) -> Goal:
    """``min`` for a loss or an error (by name), ``max`` for anything else."""
    lowered = metric.lower()
    return Goal.MIN if "loss" in lowered or "error" in lowered else Goal.MAX


def parse_goals(items: Sequence[str]) -> dict[str, Goal]:
    """``["val/loss=min", "val/acc=max"]`` -> goals; XorchError on a malformed item."""
    goals: dict[str, Goal] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name or value not in ("min", "max"):
            raise XorchError(f"--goal {item!r} must read METRIC=min or METRIC=max")
        goals[name] = Goal(value)
    return goals


@dataclass(frozen=True)
class SampleStats:
    """One group's values of one metric."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    median: float
    iqm: float
    boot_low: float
    boot_high: float
    bootstrap_method: str  # "BCa", "percentile" or "n/a"
    note: str = ""
    not_finite: int = 0  # values left out (nan, inf): the seed table's rule


@dataclass(frozen=True)
class Contrast:
    """One group against the reference on one metric; ``diff`` is group minus reference."""

    metric: str
    group: str
    reference: str
    goal: Goal
    paired: bool
    n: int  # pairs when paired, else the group's values
    n_ref: int
    mean: float
    mean_ref: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    test: str  # "paired t" or "Welch t"
    p_value: float
    p_wilcoxon: float
    hedges_g: float
    prob_improvement: float
    better: str  # "yes", "no", "equal", "diverges" or "n/a"
    not_finite: int = 0  # the group's seeds left out: not finite
    not_finite_ref: int = 0
    p_holm: float = math.nan
    p_wilcoxon_holm: float = math.nan
    note: str = ""


# --------------------------------------------------------------------------- one group


def describe_sample(values: Sequence[float] | SeedValues) -> SampleStats:
    """``seed_table.describe`` of ``values`` (a sequence or seed -> value), with
    the median, the IQM and a bootstrap interval: the same non-finite rule, so
    these numbers agree with summary.csv's."""
    data = _array(values)
    base = describe(data.tolist())
    finite = data[np.isfinite(data)]
    left_out = base.not_finite
    note = f"{left_out.describe()}, left out" if left_out.count else ""
    n, nan = base.n, math.nan
    if n == 0:
        return SampleStats(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, "n/a",
                           _join(note, "no finite value" if left_out.count else "no values"),
                           left_out.count)  # fmt: skip
    from scipy import stats

    iqm = float(stats.trim_mean(finite, 0.25))
    if n == 1:
        return SampleStats(1, base.mean, 0.0, nan, nan, nan, base.median, iqm, nan, nan, "n/a",
                           _join(note, "one value: no interval"), left_out.count)  # fmt: skip
    if base.std == 0:
        return SampleStats(n, base.mean, 0.0, 0.0, base.mean, base.mean, base.median, iqm,
                           nan, nan, "n/a", _join(note, "all values equal: nothing to resample"),
                           left_out.count)  # fmt: skip
    low, high, method = bootstrap_mean_ci(finite)
    return SampleStats(n, base.mean, base.std, base.sem, base.ci_low, base.ci_high, base.median,
                       iqm, low, high, method, note, left_out.count)  # fmt: skip


def _join(*notes: str) -> str:
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


def hedges_correction(df: float) -> float:
    """Hedges' exact small-sample factor J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))."""
    from scipy.special import gammaln

    return math.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def contrast(
    metric: str,
    group: str,
    values: SeedValues,
    reference: str,
    ref_values: SeedValues,
    goal: Goal | None = None,
    paired: bool | None = None,
) -> Contrast:
    """``group`` against ``reference`` on ``metric``; ``paired=None`` pairs when seeds match.

    ``paired=True`` with fewer than two shared seeds is an XorchError.
    """
    from scipy import stats

    goal = goal or default_goal(metric)
    shared = sorted(set(values) & set(ref_values))
    if paired is None:
        paired = len(shared) >= 2
    elif paired and len(shared) < 2:
        raise XorchError(
            f"{group} and {reference} share {len(shared)} seed(s): a paired comparison "
            "needs at least two; leave out --paired to compare them with Welch's test"
        )
    notes: list[str] = []
    bad = {seed for seed, v in values.items() if not math.isfinite(v)}
    bad_ref = {seed for seed, v in ref_values.items() if not math.isfinite(v)}
    if paired:
        unmatched = len(set(values) ^ set(ref_values))
        if unmatched:
            notes.append(f"paired on {len(shared)} shared seeds, {unmatched} unmatched left out")
        dropped = [seed for seed in shared if seed in bad or seed in bad_ref]
        if dropped:
            notes.append(f"{len(dropped)} pair(s) dropped, a side not finite: "
                         f"seed {', '.join(map(str, dropped))}")  # fmt: skip
        kept = [seed for seed in shared if seed not in dropped]
        x = np.array([values[seed] for seed in kept], dtype=float)
        y = np.array([ref_values[seed] for seed in kept], dtype=float)
    else:
        for name, left_out in ((group, bad), (reference, bad_ref)):
            if left_out:
                notes.append(f"{len(left_out)} not finite in {name}, left out")
        x = _array({k: v for k, v in values.items() if k not in bad})
        y = _array({k: v for k, v in ref_values.items() if k not in bad_ref})
    nan = math.nan
    base = Contrast(
        metric=metric, group=group, reference=reference, goal=goal, paired=paired,
        n=int(x.size), n_ref=int(y.size),
        mean=float(np.mean(x)) if x.size else nan, mean_ref=float(np.mean(y)) if y.size else nan,
        diff=nan, diff_ci_low=nan, diff_ci_high=nan,
        test="paired t" if paired else "Welch t", p_value=nan, p_wilcoxon=nan,
        hedges_g=nan, prob_improvement=nan, better="n/a",
        not_finite=len(bad), not_finite_ref=len(bad_ref),
    )  # fmt: skip
    if x.size == 0 or y.size == 0:
        return replace(base, note="; ".join([*notes, "a group has no finite value"]))
    result = _tested(base, x, y, notes, stats)
    return _diverging(result, len(values), len(ref_values))


def _diverging(result: Contrast, n_all: int, n_all_ref: int) -> Contrast:
    """A group whose seeds diverge more often than the reference's is a finding
    of its own: its ``better`` says so instead of the finite seeds' verdict."""
    if not n_all or result.not_finite / n_all <= result.not_finite_ref / max(1, n_all_ref):
        return result
    said = (f"diverged on {result.not_finite} of {n_all} seeds (reference: "
            f"{result.not_finite_ref} of {n_all_ref}); the finite seeds alone say "
            f"better: {result.better}")  # fmt: skip
    note = "; ".join(n for n in (result.note, said) if n)
    return replace(result, better="diverges", note=note)


def _tested(base: Contrast, x: np.ndarray, y: np.ndarray, notes: list[str], stats: Any) -> Contrast:
    """``base`` with its difference, effect size and tests on the finite ``x`` and ``y``."""
    goal, paired = base.goal, base.paired
    diff = base.mean - base.mean_ref
    better = "equal" if diff == 0 else ("yes" if (diff > 0) == (goal is Goal.MAX) else "no")
    # Probability of improvement: U counts x > y, with ties one half.
    if goal is Goal.MAX:
        u = stats.mannwhitneyu(x, y).statistic
    else:
        u = stats.mannwhitneyu(y, x).statistic
    result = replace(base, diff=diff, better=better,
                     prob_improvement=float(u) / (x.size * y.size))  # fmt: skip
    var_x = float(np.var(x, ddof=1)) if x.size > 1 and np.ptp(x) > 0 else 0.0
    var_y = float(np.var(y, ddof=1)) if y.size > 1 and np.ptp(y) > 0 else 0.0
    if x.size < 2 or y.size < 2:
        notes.append("fewer than two values in a group: no test")
        return replace(result, note="; ".join(notes))
    result = replace(result, hedges_g=_hedges_g(diff, x.size, y.size, var_x, var_y, paired))
    if paired:
        d = x - y
        if np.any(d != 0):  # Wilcoxon drops zero differences; it needs one left
            result = replace(result, p_wilcoxon=float(stats.wilcoxon(x, y).pvalue))
        # Differences come from subtraction: a constant shift leaves rounding noise
        # (~1e-17) that would give an absurd t, so noise below 1e-12 counts as none.
        if np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))):
            notes.append("the paired differences do not vary: no t-test")
            return replace(result, note="; ".join(notes))
        t = stats.ttest_rel(x, y)
        result = replace(result, p_value=float(t.pvalue))
    else:
        if var_x == 0 and var_y == 0:
            notes.append("neither group varies: no test")
            return replace(result, note="; ".join(notes))
        t = stats.ttest_ind(x, y, equal_var=False)
        result = replace(result, p_value=float(t.pvalue))
    low, high = t.confidence_interval(CONFIDENCE)
    return replace(result, diff_ci_low=float(low), diff_ci_high=float(high), note="; ".join(notes))


def _hedges_g(diff: float, n_x: int, n_y: int, var_x: float, var_y: float, paired: bool) -> float:
    if paired:
        scale, df = math.sqrt((var_x + var_y) / 2), 2 * (n_x - 1)
    else:
        df = n_x + n_y - 2
        scale = math.sqrt(((n_x - 1) * var_x + (n_y - 1) * var_y) / df)
    if scale == 0:
        return math.nan
    return diff / scale * hedges_correction(df)


def compare_groups(
    groups: Groups,
    reference: str,
    metrics: Sequence[str],
    goals: Mapping[str, Goal] | None = None,
    paired: bool | None = None,
) -> list[Contrast]:
    """Every other group against ``reference`` on each metric, with Holm-corrected p-values.

    Rows are ordered metric by metric, groups in ``groups`` order.
    """
    if reference not in groups:
        raise XorchError(f"reference {reference!r} is not one of {', '.join(groups)}")
    goals = goals or {}
    rows = [
        contrast(metric, name, groups[name].get(metric, {}), reference,
                 groups[reference].get(metric, {}), goals.get(metric), paired)
        for metric in metrics
        for name in groups
        if name != reference
    ]  # fmt: skip
    holm_t = holm([r.p_value for r in rows])
    holm_w = holm([r.p_wilcoxon for r in rows])
    return [
        replace(r, p_holm=pt, p_wilcoxon_holm=pw)
        for r, pt, pw in zip(rows, holm_t, holm_w, strict=True)
    ]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values over the finite entries; NaN entries stay NaN and do not count."""
    finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    if finite:
        from statsmodels.stats.multitest import multipletests

        corrected = multipletests([p_values[i] for i in finite], method="holm")[1]
        for i, p in zip(finite, corrected, strict=True):
            adjusted[i] = float(p)
    return adjusted


def _array(values: Sequence[float] | SeedValues) -> np.ndarray:
    if isinstance(values, Mapping):
        values = [values[seed] for seed in sorted(values)]
    return np.asarray(list(values), dtype=float)
