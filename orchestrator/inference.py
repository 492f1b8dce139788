"""Statistics for comparing groups of seeds: tests of a group against a reference.

A *group* is one config run over several seeds: a study today, a variant of a
study later. Its values of one metric are a mapping ``seed -> value``, so two
groups that share seeds are paired by seed (common random numbers), and groups
that do not are compared as independent samples. Nothing here reads a file.
One group's own statistics (mean, intervals, IQM, bootstrap) are
``orchestrator.sample_stats``; the effect sizes (g, d_z and its interval, the
Wilcoxon floor) ``orchestrator.effect_size``; their names are re-exported here.

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
- effect sizes (``orchestrator.effect_size``): paired rows give ``d_z`` with its
  95% interval and ``hedges_g`` = g_av; unpaired rows Hedges' g; ``g_kind`` names
  which g a row shows.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from orchestrator.effect_size import d_z_interval, hedges_correction, hedges_g, wilcoxon_floor
from orchestrator.errors import XorchError
from orchestrator.sample_stats import (
    BOOTSTRAP_MIN_N,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    SampleStats,
    SeedValues,
    bootstrap_mean_ci,
    describe_sample,
)
from orchestrator.sample_stats import join_notes as _join
from orchestrator.sample_stats import values_array as _array

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

ALPHA = 0.05

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
    bad = {seed for seed, v in values.items() if not math.isfinite(v)}
    bad_ref = {seed for seed, v in ref_values.items() if not math.isfinite(v)}
    x, y, seeds, notes = _chosen(values, ref_values, reference, paired, bad, bad_ref)
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


def _chosen(
    values: SeedValues, ref_values: SeedValues, reference: str, paired: bool,
    bad: set[int], bad_ref: set[int],
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:  # fmt: skip
    """The finite values a reading tests (paired: the shared seeds whose both sides
    are finite), the ``seeds`` it says it used, and the notes on what was left out."""
    notes: list[str] = []
    shared = sorted(set(values) & set(ref_values))
    same_seeds = set(values) == set(ref_values)
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
    return x, y, seeds, notes


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
    result = replace(result, hedges_g=hedges_g(diff, x.size, y.size, var_x, var_y, paired))
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
