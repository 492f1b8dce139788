"""``xorch compare``: groups of seeds against a reference, as tables and a LaTeX table for papers.

The groups are studies (``xorch compare A B``: B against A) or the variants of
one study (``xorch compare STUDY``: each variant against its ``compare_to``,
also written as the study's comparison.csv); the functions take
``group -> metric -> seed -> value`` either way. Two groups that share seeds
are compared paired by seed (see ``orchestrator.inference``), others with
Welch's test.

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
p-value of the t-test (paired or Welch); the caption says all of this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.errors import XorchError
from orchestrator.inference import (
    Contrast,
    Goal,
    SampleStats,
    compare_groups,
    default_goal,
    describe_sample,
)
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
    "diff_ci_high", "p", "p_holm", "p_wilcoxon", "p_wilcoxon_holm", "hedges_g",
    "p_improve", "better", "note",
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

    def contrast_of(self, group: str, metric: str) -> Contrast | None:
        for row in self.contrasts:
            if row.group == group and row.metric == metric:
                return row
        return None


def state_groups(state: StudyState) -> dict[str, dict[int, float]]:
    """metric -> seed -> final value, over the study's completed runs (its seed table)."""
    return seed_table(state).every_run()


def build_comparison(
    groups: Mapping[str, Mapping[str, Mapping[int, float]]],
    reference: str,
    metrics: Sequence[str],
    goals: Mapping[str, Goal] | None = None,
    paired: bool | None = None,
) -> ComparisonTable:
    """Describe and contrast ``groups`` (group -> metric -> seed -> value) on ``metrics``."""
    goals = {m: (goals or {}).get(m) or default_goal(m) for m in metrics}
    described = {
        (g, m): describe_sample(groups[g].get(m, {})) for m in metrics for g in groups
    }  # fmt: skip
    contrasts = compare_groups(groups, reference, metrics, goals, paired)
    return ComparisonTable(
        reference, tuple(groups), tuple(metrics), goals, described, tuple(contrasts)
    )


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
    return build_comparison(groups, names[0], chosen, goals, paired)


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
    return build_comparison(groups, reference, chosen, merged, paired)


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
    """One record per (metric, group) in COMPARE_COLUMNS order."""
    nan = math.nan
    records: list[list[Cell]] = []
    for metric in table.metrics:
        for group in table.groups:
            s = table.described[(group, metric)]
            row: list[Cell] = [
                metric, table.goals[metric].value, group, s.n, s.not_finite, s.mean, s.std,
                s.ci_low, s.ci_high, s.median, s.iqm, s.boot_low, s.boot_high, s.bootstrap_method,
            ]  # fmt: skip
            c = table.contrast_of(group, metric)
            if c is None:  # the reference itself
                row += ["", "", nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, "", s.note]
            else:
                notes = "; ".join(n for n in (s.note, c.note) if n)
                row += [
                    c.reference, c.test, c.n if c.paired else nan, c.diff, c.diff_ci_low,
                    c.diff_ci_high, c.p_value, c.p_holm, c.p_wilcoxon, c.p_wilcoxon_holm,
                    c.hedges_g, c.prob_improvement, c.better, notes,
                ]  # fmt: skip
            records.append(row)
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
    stats = [table.described[(g, metric)] for g in table.groups]
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
        if significant(table.contrast_of(group, metric)):
            text += r"$^{\dagger}$"
        if s.not_finite:
            text += r"$^{\ddagger}$"
        cells.append(text)
    return cells


def _decimals(half_width: float) -> int:
    """Decimals that show two significant digits of the interval's half-width (4 if none)."""
    if not math.isfinite(half_width) or half_width <= 0:
        return 4
    return min(8, max(0, 1 - math.floor(math.log10(half_width))))


def _latex_caption(table: ComparisonTable) -> str:
    ns = sorted({table.described[(g, m)].n for g in table.groups for m in table.metrics})
    seeds = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]} to {ns[-1]}"
    tests = sorted({c.test for c in table.contrasts})
    family = sum(math.isfinite(c.p_value) for c in table.contrasts)  # what Holm corrected over
    diverged = any(table.described[(g, m)].not_finite for g in table.groups for m in table.metrics)
    return (
        rf"Mean $\pm$ half-width of the 95\% Student-t confidence interval over seeds "
        rf"({seeds}). Bold: the best mean per column ($\downarrow$ lower is better, "
        rf"$\uparrow$ higher is better). $^{{\dagger}}$: differs from "
        rf"{latex_escape(table.reference)} at $\alpha = {ALPHA}$ "
        rf"({latex_escape(', '.join(tests) or 'no')}-test, Holm-corrected over "
        rf"{family} comparison{'s' if family != 1 else ''})."
        + (
            r" $^{\ddagger}$: some seeds diverged (a value that is not finite); they are "
            r"left out of the cell, its $n$ and its test."
            if diverged
            else ""
        )
    )
