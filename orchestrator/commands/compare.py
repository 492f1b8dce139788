"""``xorch compare``: groups of seeds against a reference, as tables and a LaTeX table for papers.

The groups are studies (``xorch compare A B``: B against A) or the variants of
one study (``xorch compare STUDY``: each variant against its ``compare_to``,
also written as the study's comparison.csv); the functions take
``group -> metric -> seed -> value`` either way. Pairing is by design (see
``orchestrator.inference``): variants are paired by seed; two studies are paired
when they ran the same seeds, compared with Welch's test otherwise, and when
they share some seeds a second row gives the paired test on those. Holm
corrects over one family: every group on every metric declared in the study's
``goal:`` (the reference study's and the other's, for two studies), or on every
metric logged when none is declared, printed or not (``holm_family``).

Machine and terminal formats (table, markdown, csv, json) carry one row per
(metric, group): the group's own statistics, then, for every group but the
reference, its contrast with the reference (empty cells on the reference's row).
Every number follows the seed table's non-finite rule (``orchestrator.seed_table``):
``n`` counts the finite values, ``not_finite`` the others, left out; a paired
test drops a seed from both sides when either is not finite, and a group that
diverges more often than the reference is ``better: diverges``.
The ``latex`` format is instead a table a paper can include as it is: one row
per group, one column per metric, each cell ``mean ± half-width of the 95% t
interval``, the best mean of each column in bold (by ``goal``), and a dagger
where the group differs from the reference at alpha = 0.05 by the Holm-corrected
p-value of its primary t-test (paired or Welch); the caption says all of this,
and the size of the family Holm corrected over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.errors import XorchError
from orchestrator.inference import Contrast, Goal, compare_groups, default_goal
from orchestrator.sample_stats import SampleStats, describe_sample
from orchestrator.seed_table import seed_table
from orchestrator.state import StudyState
from orchestrator.tables import Cell, latex_escape, render_rows

__all__ = [
    "COMPARE_COLUMNS",
    "ComparisonTable",
    "build_comparison",
    "compare_studies",
    "compare_variants",
    "comparison_csv",
    "render_comparison",
    "state_groups",
]

ALPHA = 0.05

COMPARE_COLUMNS: tuple[str, ...] = (
    "metric", "goal", "group", "n", "not_finite", "mean", "std", "ci_low", "ci_high", "median",
    "iqm", "boot_low", "boot_high", "boot_method", "vs", "test", "n_pairs", "diff", "diff_ci_low",
    "diff_ci_high", "p", "p_holm", "holm_family", "p_wilcoxon", "d_z", "d_z_low", "d_z_high",
    "hedges_g", "g_kind", "p_improve", "better", "seeds", "test_mean", "test_mean_ref", "note",
)  # fmt: skip


@dataclass(frozen=True)
class ComparisonTable:
    """Every group described on every metric, and each non-reference group's contrasts."""

    reference: str
    groups: tuple[str, ...]
    metrics: tuple[str, ...]
    goals: Mapping[str, Goal]
    described: Mapping[tuple[str, str], SampleStats]  # (group, metric)
    contrasts: tuple[Contrast, ...]
    family: tuple[str, ...] = ()  # the metrics whose primary tests Holm corrected over

    def contrast_of(self, group: str, metric: str) -> Contrast | None:
        """The primary reading of ``group`` on ``metric`` (None for the reference)."""
        for row in self.contrasts_of(group, metric):
            return row
        return None

    def contrasts_of(self, group: str, metric: str) -> list[Contrast]:
        """Every reading: the primary, then a second one (paired on shared seeds) if any."""
        return [r for r in self.contrasts if r.group == group and r.metric == metric]

    @property
    def family_size(self) -> int:
        """How many tests Holm corrected over: every group on every metric of ``family``
        with a p-value, printed or not."""
        return max((c.family for c in self.contrasts), default=0)


def state_groups(state: StudyState) -> dict[str, dict[int, float]]:
    """metric -> seed -> final value, over the study's completed runs (its seed table)."""
    return seed_table(state).every_run()


def build_comparison(
    groups: Mapping[str, Mapping[str, Mapping[int, float]]],
    reference: str,
    metrics: Sequence[str],
    goals: Mapping[str, Goal] | None = None,
    paired: bool | None = None,
    family: Sequence[str] | None = None,
    same_study: bool = False,
) -> ComparisonTable:
    """Describe and contrast ``groups`` (group -> metric -> seed -> value) on ``metrics``;
    Holm over ``family`` (default: ``metrics``), see ``inference.compare_groups``."""
    family = list(metrics if family is None else family)
    every = list(dict.fromkeys([*metrics, *family]))
    goals = {m: (goals or {}).get(m) or default_goal(m) for m in every}
    described = {
        (g, m): describe_sample(groups[g].get(m, {})) for m in metrics for g in groups
    }  # fmt: skip
    contrasts = compare_groups(groups, reference, metrics, goals, paired, family, same_study)
    return ComparisonTable(
        reference, tuple(groups), tuple(metrics), {m: goals[m] for m in metrics}, described,
        tuple(contrasts), tuple(family),
    )  # fmt: skip


def holm_family(declared: Mapping[str, object], logged: Sequence[str]) -> list[str]:
    """The metrics Holm corrects over: those declared in the study's ``goal:`` (its
    primary metrics) that were logged, else every logged metric."""
    primary = [m for m in declared if m in logged]
    return primary or list(logged)


def compare_studies(
    state_a: StudyState,
    state_b: StudyState,
    names: tuple[str, str] = ("A", "B"),
    metrics: Sequence[str] | None = None,
    goals: Mapping[str, Goal] | None = None,
    paired: bool | None = None,
) -> ComparisonTable:
    """Study B against study A (the reference) on the metrics both logged (sorted by default)."""
    for label, state in (("first (A)", state_a), ("second (B)", state_b)):
        if not state.completed:
            raise XorchError(f"the {label} study has no completed run yet: nothing to compare")
    if names[0] == names[1]:
        names = (f"A: {names[0]}", f"B: {names[1]}")
    values_a, values_b = state_groups(state_a), state_groups(state_b)
    common = sorted(set(values_a) & set(values_b))
    if not common:
        raise XorchError(
            "the two studies have no metric in common (A logged "
            f"{', '.join(sorted(values_a))}; B logged {', '.join(sorted(values_b))})"
        )
    chosen = _choose_metrics(metrics, common)
    unknown_goals = sorted(set(goals or {}) - set(chosen))
    if unknown_goals:
        raise XorchError(
            f"--goal names {', '.join(unknown_goals)}, which is not compared; "
            f"compared: {', '.join(chosen)}"
        )
    groups = {names[0]: values_a, names[1]: values_b}
    declared = {**state_b.goal, **state_a.goal}
    merged = {m: Goal(way) for m, way in declared.items() if m in common}
    merged.update(goals or {})
    family = holm_family(declared, common)
    return build_comparison(groups, names[0], chosen, merged, paired, family)


def variant_groups(state: StudyState) -> dict[str, dict[str, dict[int, float]]]:
    """variant -> metric -> seed -> final value, over the completed runs, every variant
    (one with no completed run yet has no values)."""
    return seed_table(state).groups()


def compare_variants(
    state: StudyState,
    metrics: Sequence[str] | None = None,
    goals: Mapping[str, Goal] | None = None,
    paired: bool | None = None,
) -> ComparisonTable:
    """Each variant of one study against its reference (``compare_to``), paired by seed.

    Metrics default to every metric a completed run logged, sorted; goals to the
    study's ``goal`` block, then ``goals`` (from the command line) over it."""
    if not state.variant_configs:
        raise XorchError(
            "this study has no variants: compare it with another study (xorch compare A B)"
        )
    reference = state.compare_to or next(iter(state.variant_configs))
    groups = variant_groups(state)
    if not groups[reference]:
        raise XorchError(
            f"the reference variant {reference} has no completed run yet: nothing to compare"
        )
    logged = sorted({name for values in groups.values() for name in values})
    chosen = _choose_metrics(metrics, logged, "logged by any variant")
    merged = {m: Goal(way) for m, way in state.goal.items() if m in chosen}
    unknown_goals = sorted(set(goals or {}) - set(chosen))
    if unknown_goals:
        raise XorchError(
            f"--goal names {', '.join(unknown_goals)}, which is not compared; "
            f"compared: {', '.join(chosen)}"
        )
    merged.update(goals or {})
    family = holm_family(state.goal, logged)
    return build_comparison(groups, reference, chosen, merged, paired, family, same_study=True)


def comparison_csv(state: StudyState) -> str | None:
    """comparison.csv's text: ``xorch compare STUDY --format csv``; None before the
    reference has a completed run."""
    try:
        return render_comparison(compare_variants(state), "csv")
    except XorchError:
        return None


def _choose_metrics(
    requested: Sequence[str] | None, available: list[str], where: str = "logged by both studies"
) -> list[str]:
    if not requested:
        return available
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise XorchError(
            f"metric {', '.join(unknown)} is not {where}; available: {', '.join(available)}"
        )
    return list(dict.fromkeys(requested))


# --------------------------------------------------------------------------- rendering


def render_comparison(table: ComparisonTable, fmt: str = "table") -> str:
    """``table`` as ``fmt`` (table, markdown, latex, csv, json), ending in a newline."""
    if fmt == "latex":
        return latex_table(table)
    return render_rows(COMPARE_COLUMNS, comparison_records(table), fmt)


def comparison_records(table: ComparisonTable) -> list[list[Cell]]:
    """One record per (metric, group) in COMPARE_COLUMNS order, and one more for a
    second reading (two studies that share only some seeds: paired on those)."""
    nan = math.nan
    records: list[list[Cell]] = []
    for metric in table.metrics:
        for group in table.groups:
            s = table.described[(group, metric)]
            t = s.summary
            own: list[Cell] = [
                metric, table.goals[metric].value, group, t.n, t.not_finite.count, t.mean, t.std,
                t.ci_low, t.ci_high, t.median, s.iqm, s.boot_low, s.boot_high, s.bootstrap_method,
            ]  # fmt: skip
            readings = table.contrasts_of(group, metric)
            if not readings:  # the reference itself
                records.append([*own, "", "", nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                                nan, nan, "", nan, "", "all its seeds", nan, nan,
                                s.note])  # fmt: skip
            for c in readings:
                notes = "; ".join(n for n in (s.note, c.note) if n)
                records.append([
                    *own, c.reference, c.test, c.n if c.paired else nan, c.diff, c.diff_ci_low,
                    c.diff_ci_high, c.p_value, c.p_holm, c.family if c.in_family else nan,
                    c.p_wilcoxon, c.d_z, c.d_z_low, c.d_z_high, c.hedges_g, c.g_kind,
                    c.prob_improvement, c.better, c.seeds, c.mean, c.mean_ref, notes,
                ])  # fmt: skip
    return records


def significant(c: Contrast | None) -> bool:
    """The t-test's Holm-corrected p-value is below ALPHA (False where undefined)."""
    return c is not None and math.isfinite(c.p_holm) and c.p_holm < ALPHA


def latex_table(table: ComparisonTable) -> str:
    """A ``table`` float: groups by metrics, mean ± CI half-width, best bold, † significant."""
    arrows = {Goal.MIN: r"$\downarrow$", Goal.MAX: r"$\uparrow$"}
    columns = [_latex_column(table, m) for m in table.metrics]
    header = " & ".join(
        ["", *(f"{latex_escape(m)} {arrows[table.goals[m]]}" for m in table.metrics)]
    )
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{l{'c' * len(table.metrics)}}}",
        r"\hline",
        header + r" \\",
        r"\hline",
    ]
    for i, group in enumerate(table.groups):
        cells = [latex_escape(group), *(column[i] for column in columns)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", rf"\caption{{{_latex_caption(table)}}}"]
    lines += [r"\label{tab:xorch-comparison}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _latex_column(table: ComparisonTable, metric: str) -> list[str]:
    stats = [table.described[(g, metric)].summary for g in table.groups]
    halves = [s.ci_high - s.mean for s in stats]
    # One decimal count per column, enough for the narrowest defined interval.
    decimals = max((_decimals(h) for h in halves if math.isfinite(h) and h > 0), default=4)
    finite = [s.mean for s in stats if math.isfinite(s.mean)]
    best_value = None
    if finite:
        best = min(finite) if table.goals[metric] is Goal.MIN else max(finite)
        best_value = f"{best:.{decimals}f}"
    cells = []
    for group, s, half in zip(table.groups, stats, halves, strict=True):
        if not math.isfinite(s.mean):
            cells.append("n/a")
            continue
        mean = f"{s.mean:.{decimals}f}"
        text = rf"\textbf{{{mean}}}" if mean == best_value else mean
        if math.isfinite(half):
            text += rf" $\pm$ {half:.{decimals}f}"
        c = table.contrast_of(group, metric)
        if significant(c):
            text += r"$^{\dagger}$"
        if s.not_finite.count:
            text += r"$^{\ddagger}$"
        if c is not None and c.in_family and math.isfinite(c.diff):
            text += f" ({c.diff:+.{decimals}f}"
            if math.isfinite(c.diff_ci_low):
                text += f" [{c.diff_ci_low:+.{decimals}f}, {c.diff_ci_high:+.{decimals}f}]"
            text += ")"
        cells.append(text)
    return cells


def _decimals(half_width: float) -> int:
    """Decimals that show two significant digits of the interval's half-width (4 if none)."""
    if not math.isfinite(half_width) or half_width <= 0:
        return 4
    return min(8, max(0, 1 - math.floor(math.log10(half_width))))


def _latex_caption(table: ComparisonTable) -> str:
    ns = sorted({table.described[(g, m)].summary.n for g in table.groups for m in table.metrics})
    seeds = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]} to {ns[-1]}"
    primary = [c for c in table.contrasts if c.in_family]
    tests = sorted({c.test for c in primary})
    family = table.family_size  # what Holm corrected over, printed or not
    pairs = sorted({c.n for c in primary if c.paired})
    paired_on = ""
    if pairs and (len(ns) > 1 or pairs != ns):
        paired_on = (f" on {pairs[0]} pairs" if len(pairs) == 1
                     else f" on {pairs[0]} to {pairs[-1]} pairs")  # fmt: skip
    diverged = any(
        table.described[(g, m)].summary.not_finite.count
        for g in table.groups
        for m in table.metrics
    )
    return (
        rf"Mean $\pm$ half-width of the 95\% Student-t confidence interval over seeds "
        rf"({seeds}). Bold: the best mean per column ($\downarrow$ lower is better, "
        rf"$\uparrow$ higher is better). $^{{\dagger}}$: differs from "
        rf"{latex_escape(table.reference)} at $\alpha = {ALPHA}$ "
        rf"({latex_escape(', '.join(tests) or 'no')}-test{paired_on}, Holm-corrected over "
        rf"{family} test{'s' if family != 1 else ''}: every group against "
        rf"{latex_escape(table.reference)} on {_family_words(table)}). In parentheses: "
        rf"the difference from {latex_escape(table.reference)} and its 95\% interval "
        r"(of the same test)."
        + (
            r" $^{\ddagger}$: some seeds diverged (a value that is not finite); they are "
            r"left out of the cell, its $n$ and its test."
            if diverged
            else ""
        )
    )


def _family_words(table: ComparisonTable) -> str:
    """The Holm family's metrics, in words, for the caption."""
    if set(table.family) == set(table.metrics):
        return "the metrics shown"
    names = ", ".join(latex_escape(m) for m in table.family)
    return f"the {len(table.family)} metrics of its family ({names})"
