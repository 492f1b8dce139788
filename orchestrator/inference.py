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
  jackknife acceleration or bias correction degenerate, e.g. heavy ties);
  ``bootstrap_method`` says which. None below ``BOOTSTRAP_MIN_N`` = 10 finite
  values (``bootstrap_method`` "n/a (n < 10)"): measured by a seeded simulation
  (tests/test_stats_edges.py), a nominal 95% BCa interval covers the mean of
  normal data 51% of the time at n = 2, 72% at 3, 84% at 5, 88% at 9, 91% at 10.

Against a reference group (``contrast``), ``diff = mean(group) - mean(reference)``;
the means, ``diff`` and ``prob_improvement`` of a row are over the seeds its
test used (``seeds`` says which):

- **paired** (``ttest_rel``: its p and its interval of ``diff``) when the two
  have the same seeds, or when asked (on the seeds they share). Pairing is by
  design: variants of one study are paired on the seeds both completed
  (``compare_groups(same_study=True)``); two separate studies only when they
  ran the same seeds. Two studies that share some seeds get two readings:
  Welch on all seeds (the primary test) and the paired t on the shared seeds,
  labelled with their count and kept out of the Holm family.
- otherwise **Welch**: ``scipy.stats.ttest_ind(equal_var=False)``; no Wilcoxon.
- paired rows also give the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``,
  zero differences dropped, scipy's choice of exact or normal p) as a robustness
  check, never corrected; its smallest possible p is 2 / 2^k on k non-zero
  differences (0.125 at 4, 0.0625 at 5), and the note says so when that cannot
  reach 0.05.
- effect sizes. Paired: ``d_z = mean(d) / sd(d)`` (Cohen's d_z, d the per-seed
  differences, sd with ddof=1) with its 95% interval from the noncentral t
  (``d_z_interval``), and ``hedges_g`` = g_av = ``diff / sqrt((s_a² +
  s_b²)/2) · J(n - 1)``, n the pairs (Cumming 2012; Lakens 2013): the average-std
  standardiser reads on the scale of an unpaired g, not growing with the
  correlation between seeds as d_z does. Unpaired: Hedges' g, the pooled std,
  ``J(n_a + n_b - 2)``. ``J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))``, the exact
  small-sample correction; ``g_kind`` names which g a row shows.
- ``prob_improvement``: P(X better than Y) for X drawn from the group and Y from
  the reference, every value against every value, ties counting one half
  (rliable's probability of improvement; the Mann-Whitney U over n_x·n_y).
  "Better" follows ``goal``: larger for ``max``, smaller for ``min``.
- ``better``: "yes"/"no"/"equal" by the sign of ``diff`` and the goal;
  "diverges" when the group has more non-finite seeds than the reference.

Undefined results are NaN with ``note`` saying why: no finite value, fewer
than two values, no spread, all paired differences zero. Values that are not
finite follow the seed table's rule (``orchestrator.seed_table``): left out,
counted, a pair dropped when either side is not finite.

``compare_groups`` runs every (group, metric) contrast against the reference and
adds Holm-corrected p-values (``statsmodels.stats.multitest.multipletests``)
over one family: the primary t-test of every group on every metric of
``family`` (the study's declared metrics, or every metric it logged), whether
printed or not; ``family`` on each row is its size.
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
    "ALPHA",
    "BOOTSTRAP_MIN_N",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "Contrast",
    "Goal",
    "SampleStats",
    "bootstrap_mean_ci",
    "compare_groups",
    "contrast",
    "d_z_interval",
    "default_goal",
    "describe_sample",
    "hedges_correction",
    "holm",
    "parse_goals",
    "wilcoxon_floor",
]

CONFIDENCE = 0.95
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
# Below this many finite values no bootstrap interval is given: its coverage of a
# nominal 95% falls under 90% (seeded simulation, tests/test_inference.py, normal
# data: 0.51 at n = 2, 0.72 at 3, 0.84 at 5, 0.88 at 9, 0.91 at 10, 0.92 at 20).
BOOTSTRAP_MIN_N = 10

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
    bootstrap_method: str  # "BCa", "percentile", "n/a" or "n/a (n < 10)"
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
    hedges_g: float  # paired: g_av, df = pairs - 1; unpaired: Hedges' g (``g_kind``)
    prob_improvement: float
    better: str  # "yes", "no", "equal", "diverges" or "n/a"
    not_finite: int = 0  # the group's seeds left out: not finite
    not_finite_ref: int = 0
    p_holm: float = math.nan
    note: str = ""
    seeds: str = ""  # which seeds the test, the means and P(improvement) used
    g_kind: str = ""  # "g_av" (paired) or "Hedges' g" (unpaired)
    d_z: float = math.nan  # paired: mean of the differences over their std (ddof=1)
    d_z_low: float = math.nan  # its 95% interval, by inverting the noncentral t
    d_z_high: float = math.nan
    in_family: bool = True  # a primary test, Holm-corrected; False: a second reading
    family: int = 0  # how many tests Holm corrected over (0: not corrected)


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
    if n < BOOTSTRAP_MIN_N:
        return SampleStats(n, base.mean, base.std, base.sem, base.ci_low, base.ci_high,
                           base.median, iqm, nan, nan, f"n/a (n < {BOOTSTRAP_MIN_N})", note,
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


def d_z_interval(d_z: float, pairs: int) -> tuple[float, float]:
    """The 95% interval of d_z on ``pairs`` pairs: t = d_z·sqrt(n) has a noncentral t
    distribution (df n - 1, noncentrality δ·sqrt(n)); the bounds are the δ at which
    the observed t is its 97.5% and 2.5% quantile (Steiger & Fouladi 1997)."""
    from scipy import optimize, stats

    df, root_n = pairs - 1, math.sqrt(pairs)
    t_obs = d_z * root_n
    bounds = []
    # The cdf at t_obs falls as the noncentrality grows: the lower bound lies below
    # t_obs, the upper above. Step out from t_obs until the tail is crossed (scipy's
    # nct is nan far out, so no wide fixed bracket), then solve on that step.
    for tail, way in ((0.5 + CONFIDENCE / 2, -1.0), (0.5 - CONFIDENCE / 2, 1.0)):

        def gap(ncp: float, tail: float = tail) -> float:
            return float(stats.nct.cdf(t_obs, df, ncp)) - tail

        near, step, bound = t_obs, 1.0, math.nan
        for _ in range(60):
            far = t_obs + way * step
            value = gap(far)
            if not math.isfinite(value):
                break
            if (value > 0) == (way < 0):
                bound = optimize.brentq(gap, min(near, far), max(near, far)) / root_n
                break
            near, step = far, step * 2
        bounds.append(bound)
    return bounds[0], bounds[1]


def wilcoxon_floor(pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give on
    ``pairs`` non-zero differences: every sign alike, 2 / 2^pairs."""
    return 2.0 / 2.0**pairs if pairs > 0 else 1.0


def contrast(
    metric: str,
    group: str,
    values: SeedValues,
    reference: str,
    ref_values: SeedValues,
    goal: Goal | None = None,
    paired: bool | None = None,
) -> Contrast:
    """``group`` against ``reference`` on ``metric``, one reading.

    ``paired=None``: paired when the two have the same seeds (two or more),
    Welch otherwise (``compare_groups`` adds the paired reading on the shared
    seeds beside it). ``paired=True``: paired on the shared seeds, however many
    of them there are; fewer than two is an XorchError. ``paired=False``: Welch.
    """
    from scipy import stats

    goal = goal or default_goal(metric)
    shared = sorted(set(values) & set(ref_values))
    same_seeds = set(values) == set(ref_values)
    if paired is None:
        paired = same_seeds and len(shared) >= 2
    elif paired and len(shared) < 2:
        raise XorchError(
            f"{group} and {reference} share {len(shared)} seed(s): a paired comparison "
            "needs at least two; leave out --paired to compare them with Welch's test"
        )
    notes: list[str] = []
    bad = {seed for seed, v in values.items() if not math.isfinite(v)}
    bad_ref = {seed for seed, v in ref_values.items() if not math.isfinite(v)}
    if paired:
        seeds = (f"paired on every seed ({len(shared)})" if same_seeds else
                 f"paired on {len(shared)} shared seeds (of {len(values)} and "
                 f"{len(ref_values)})")  # fmt: skip
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
        seeds = f"all seeds ({len(values)} and {len(ref_values)}), unpaired"
        if bad_ref:  # the group's own count is in its row's describe note
            notes.append(f"{len(bad_ref)} not finite in {reference}, left out")
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
        not_finite=len(bad), not_finite_ref=len(bad_ref), seeds=seeds,
        g_kind="g_av" if paired else "Hedges' g",
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
        # Differences come from subtraction: a constant shift leaves rounding noise
        # (~1e-17) that would give an absurd t, so noise below 1e-12 counts as none.
        flat = np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d))))
        if not flat:
            d_z = float(np.mean(d) / np.std(d, ddof=1))
            low_z, high_z = d_z_interval(d_z, d.size)
            result = replace(result, d_z=d_z, d_z_low=low_z, d_z_high=high_z)
        nonzero = int(np.count_nonzero(d))
        if nonzero:  # Wilcoxon drops zero differences; it needs one left
            result = replace(result, p_wilcoxon=float(stats.wilcoxon(x, y).pvalue))
            floor = wilcoxon_floor(nonzero)
            if floor >= ALPHA:
                notes.append(f"Wilcoxon on {nonzero} non-zero pairs cannot go below "
                             f"p = {floor:.4g}: it cannot reach {ALPHA}")  # fmt: skip
        if flat:
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
    """Paired: g_av = diff / sqrt((s_x² + s_y²)/2) · J(n - 1), n the pairs (Cumming
    2012, Lakens 2013). Unpaired: Hedges' g, the pooled std, J(n_x + n_y - 2)."""
    if paired:
        scale, df = math.sqrt((var_x + var_y) / 2), n_x - 1
    else:
        df = n_x + n_y - 2
        scale = math.sqrt(((n_x - 1) * var_x + (n_y - 1) * var_y) / df)
    if scale == 0 or df < 2:  # J(1) is Γ(0.5)/(√0.5 Γ(0)): 0; g is undefined
        return math.nan
    return diff / scale * hedges_correction(df)


def compare_groups(
    groups: Groups,
    reference: str,
    metrics: Sequence[str],
    goals: Mapping[str, Goal] | None = None,
    paired: bool | None = None,
    family: Sequence[str] | None = None,
    same_study: bool = False,
) -> list[Contrast]:
    """Every other group against ``reference`` on each metric, with Holm-corrected p-values.

    Pairing by design: ``same_study`` (variants of one study, which share their
    seeds by construction) pairs on the seeds both completed (Welch, with a note,
    below two). Separate studies (``paired=None``) are paired only when they have
    the same seeds; when they share two or more but not all, the primary row is
    Welch on all seeds and a second row, ``in_family=False``, the paired t on the
    shared seeds. ``paired`` True or False forces one reading.

    The Holm family is the primary test (t) of every group on every metric of
    ``family`` (default: ``metrics``), computed whether or not it is printed, so
    a metric's ``p_holm`` does not depend on which metrics are asked for; a
    metric asked for outside the family gets no ``p_holm``. The Wilcoxon test is
    a robustness check and is not corrected. Rows are ordered metric by metric,
    groups in ``groups`` order, the second reading right after its primary.
    """
    if reference not in groups:
        raise XorchError(f"reference {reference!r} is not one of {', '.join(groups)}")
    goals = goals or {}
    family = list(dict.fromkeys(metrics if family is None else family))
    every = list(dict.fromkeys([*metrics, *family]))
    rows: list[Contrast] = []
    for metric in every:
        base = groups[reference].get(metric, {})
        for name in groups:
            if name == reference:
                continue
            mine = groups[name].get(metric, {})
            rows += _readings(metric, name, mine, reference, base, goals.get(metric), paired,
                              same_study)  # fmt: skip
    primary = [i for i, r in enumerate(rows) if r.in_family and r.metric in family]
    corrected = holm([rows[i].p_value for i in primary])
    size = sum(math.isfinite(p) for p in corrected)
    for i, p in zip(primary, corrected, strict=True):
        rows[i] = replace(rows[i], p_holm=p, family=size)
    out = []
    for r in rows:
        if r.metric not in metrics:
            continue
        if r.in_family and r.metric not in family:
            outside = "not in the Holm family (the metrics declared in goal:): p uncorrected"
            r = replace(r, in_family=False, note=_join(r.note, outside))
        out.append(r)
    return sorted(out, key=lambda r: list(metrics).index(r.metric))


def _readings(
    metric: str, name: str, mine: SeedValues, reference: str, base: SeedValues,
    goal: Goal | None, paired: bool | None, same_study: bool,
) -> list[Contrast]:  # fmt: skip
    shared = set(mine) & set(base)
    if same_study and paired is not False:
        if len(shared) >= 2:
            return [contrast(metric, name, mine, reference, base, goal, True)]
        c = contrast(metric, name, mine, reference, base, goal, False)
        said = f"shares {len(shared)} completed seed(s) with {reference}: Welch, not paired"
        return [replace(c, note=_join(said, c.note))]
    if paired is not None or set(mine) == set(base) or len(shared) < 2:
        return [contrast(metric, name, mine, reference, base, goal, paired)]
    welch = contrast(metric, name, mine, reference, base, goal, False)
    pairs = contrast(metric, name, mine, reference, base, goal, True)
    said = (f"{len(shared)} of the seeds are shared: Welch on all seeds (the primary test); "
            f"the next row is paired on the {len(shared)} shared seeds")  # fmt: skip
    second = (f"second reading: paired on the {len(shared)} shared seeds only, not in the "
              "Holm family")  # fmt: skip
    # The second reading's own note says which seeds it paired on; drop contrast's.
    rest = [n for n in pairs.note.split("; ") if n and not n.startswith("paired on ")]
    return [replace(welch, note=_join(said, welch.note)),
            replace(pairs, in_family=False, note=_join(second, *rest))]  # fmt: skip


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
