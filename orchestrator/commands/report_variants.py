"""The sections of ``xorch report`` that a study of variants has instead of, or beside,
those of a study of one config.

Every number comes from the modules the commands use, over the same completed
runs, so the page agrees with them: the statistics per variant are
``sample_stats.describe_sample`` of each variant's seeds (the means of summary.csv's
variant blocks, where every value is finite), the paired differences and the
comparison table are ``compare.compare_variants`` (comparison.csv and ``xorch
compare STUDY``), the power figures are ``power.power_for_variants`` (``xorch
power STUDY``), and the differences figure is ``plots.differences_figure``.
A study still running shows what has completed so far; a variant without a
completed run is listed with n = 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from orchestrator.commands.compare import ComparisonTable, compare_variants, variant_groups
from orchestrator.commands.power import PowerAsk, power_for_variants
from orchestrator.commands.report_parts import esc, figure_html, html_table
from orchestrator.commands.report_tables import power_table, statistics_table
from orchestrator.errors import XorchError
from orchestrator.sample_stats import BOOTSTRAP_MIN_N, describe_sample
from orchestrator.state import RunStatus, StudyState

__all__ = [
    "variant_comparison",
    "variant_configs",
    "variant_differences",
    "variant_power",
    "variant_progress",
    "variant_statistics",
]


def reference_of(state: StudyState) -> str:
    return state.compare_to or next(iter(state.variant_configs))


def variant_progress(state: StudyState) -> str:
    """Per variant: runs planned and how many are in each status."""
    order = (RunStatus.COMPLETED, RunStatus.RUNNING, RunStatus.PENDING, RunStatus.FAILED,
             RunStatus.INTERRUPTED)  # fmt: skip
    shown = [s for s in order if any(r.status is s for r in state.runs)]
    rows = []
    for variant in state.variant_configs:
        mine = [r for r in state.runs if r.variant == variant]
        rows.append([variant, str(len(mine)),
                     *(str(sum(r.status is s for r in mine)) for s in shown)])  # fmt: skip
    header = ["variant", "runs", *(s.value for s in shown)]
    reference = reference_of(state)
    lead = (
        f"<p>{len(state.runs)} runs planned: {len(state.variant_configs)} variants on "
        f"{len(state.seeds)} seeds, compared to <b>{esc(reference)}</b>.</p>"
    )
    return lead + html_table(header, rows, numeric=range(1, len(header)))


def variant_statistics(state: StudyState, metrics: list[str]) -> str:
    """One row per (metric, variant): the descriptive statistics of its seeds."""
    groups = variant_groups(state)
    rows = [
        ([metric, variant], describe_sample(values.get(metric, {})))
        for metric in metrics
        for variant, values in groups.items()
    ]
    note = (
        "<p class='note'>Each variant over its own completed seeds. IQM: interquartile mean "
        "(the mean after dropping the lowest and highest quarter of the seeds). Bootstrap: "
        "9999 resamples, seed 0; BCa where it is defined, else percentile; none below "
        f"{BOOTSTRAP_MIN_N} seeds, where its coverage of 95% falls under 90%.</p>"
    )
    return statistics_table(["metric", "variant"], rows, why_no_bootstrap=True) + note


def _table_or_reason(state: StudyState, metrics: list[str]) -> ComparisonTable | str:
    """compare_variants on every logged metric (the summary metrics first): the same
    contrasts, so the same Holm family and p-values, as comparison.csv."""
    try:
        return compare_variants(state, metrics)
    except XorchError as exc:
        return f"<p class='empty'>No comparison yet: {esc(str(exc))}.</p>"


def variant_differences(state: StudyState, metrics: list[str]) -> str:
    """The per-seed differences figure and, per (metric, variant), the mean difference
    against the reference with its paired 95% interval."""
    table = _table_or_reason(state, metrics)
    if isinstance(table, str):
        return table
    from orchestrator.commands.plot import differences_figure

    figure = differences_figure(state, metrics)
    reference = table.reference
    parts = []
    if figure is not None:
        caption = (
            f"Each variant minus {reference}, seed by seed (the points: one per seed that both "
            "completed), and the mean difference with its 95% paired-t interval (the black "
            "diamond and bar). A bar that does not cross the dashed zero line is a difference "
            "the paired t-test finds at alpha = 0.05, before correction for several comparisons."
        )
        parts.append(figure_html(figure, "paired differences", caption))
    header = ["metric", "variant", "minus", "pairs", "mean difference", "95% CI (paired t)",
              "mean better?"]  # fmt: skip
    rows = []
    for metric in metrics:
        for c in table.contrasts:
            if c.metric == metric:
                rows.append([c.metric, c.group, c.reference, str(c.n), _g(c.diff),
                             _interval4(c.diff_ci_low, c.diff_ci_high),
                             f"{c.better} ({c.goal.value} is better)"])  # fmt: skip
    return "".join(parts) + html_table(header, rows, numeric=(3, 4, 5))


def variant_comparison(state: StudyState, metrics: list[str]) -> str:
    """``xorch compare STUDY`` as an HTML table, every metric the runs logged; numbers
    to 4 significant digits so the table fits a page (comparison.csv has them all)."""
    table = _table_or_reason(state, metrics)
    if isinstance(table, str):
        return table
    arrows = {"min": "↓", "max": "↑"}
    # One table per metric under its name, so a long metric name widens no column
    # and P(impr.) and better stay on the page (issue 22, item 9).
    header = ["variant", "n", "mean ± 95% CI", "diff", "diff 95% CI", "p t (Holm)",
              "p Wilcoxon", "g_av", "P(impr.)", "better"]  # fmt: skip
    parts = []
    notes = []
    for metric in table.metrics:
        label = f"{metric} {arrows[table.goals[metric].value]}"
        rows = []
        for group in table.groups:
            s = table.described[(group, metric)]
            c = table.contrast_of(group, metric)
            half = s.summary.ci_high - s.summary.mean
            mean = _g(s.summary.mean) + (f" ± {_g(half, 2)}" if math.isfinite(half) else "")
            own = [group, str(s.summary.n), mean]
            if c is None:
                rows.append([*own, "reference", "", "", "", "", "", ""])
            else:
                rows.append([*own, _g(c.diff), _interval4(c.diff_ci_low, c.diff_ci_high),
                             _p_pair(c.p_value, c.p_holm), _g(c.p_wilcoxon, 3),
                             _g(c.hedges_g, 3), _g(c.prob_improvement, 3), c.better])  # fmt: skip
            # One line per (metric, variant): its own count and its pairs' in one note.
            said = "; ".join(n for n in (s.note, c.note if c is not None else "") if n)
            if said:
                notes.append(f"<li>{esc(metric)}, {esc(group)}: {esc(said)}</li>")
        parts.append(f"<h3 class='metric'>{esc(label)}</h3>"
                     + html_table(header, rows, numeric=range(1, 9)))  # fmt: skip
    tests = ", ".join(sorted({c.test for c in table.contrasts})) or "no"
    note = (
        f"<p class='note'>Each variant against {esc(table.reference)} ({esc(tests)}-test on "
        "the seeds both completed; diff = variant − reference with its 95% interval). "
        "↓: lower is better, ↑: higher is better. The t-test's p is raw, then in brackets "
        f"Holm-corrected over {table.family_size} test{'' if table.family_size == 1 else 's'}: "
        "every variant on "
        f"{esc(_family_text(table))}. The Wilcoxon signed-rank p is a robustness check, "
        "raw and not corrected. g_av: the mean difference over the average of the two "
        "stds, with Hedges' correction for n − 1 degrees of freedom (n pairs); P(impr.): "
        "the chance that a seed of the variant beats a seed of the reference; better: whether "
        "the variant's mean is on the better side (its sign only; whether it is more than noise "
        "is the interval and the p-values). The same rows as "
        "comparison.csv and <code>xorch compare STUDY</code>, which give every digit.</p>"
    )
    listed = f"<ul class='note'>{''.join(notes)}</ul>" if notes else ""
    return "".join(parts) + listed + note


def _family_text(table: ComparisonTable) -> str:
    if set(table.family) == set(table.metrics):
        return "every metric in this table"
    return "the metrics declared in goal: (" + ", ".join(table.family) + ")"


def _g(value: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}g}"


def _p_pair(raw: float, corrected: float) -> str:
    """``0.0012 (0.0048)``: the raw p-value, then the Holm-corrected one."""
    if not math.isfinite(raw):
        return "n/a"
    return f"{raw:.3g} ({_g(corrected, 3)})"


def _interval4(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{_g(low)}, {_g(high)}]"


def variant_power(state: StudyState) -> str:
    """Paired power figures per variant and summary metric, for the pairs now and more."""
    try:
        rows = power_for_variants(state, None, PowerAsk())
    except XorchError as exc:
        return f"<p class='empty'>No power figures yet: {esc(str(exc))}.</p>"
    header = ["metric", "variant", "minus", "pairs now", "std of diffs", "detectable now"]
    explain = (
        "<p class='note'>The smallest difference from the reference that the paired t-test "
        "(two-sided, alpha 0.05) detects with power 0.8, from the spread of the per-seed "
        "differences observed here (statsmodels' <code>TTestPower</code>), with the pairs "
        "now and with 5, 10, 20 and 40 pairs. "
        "<code>xorch power STUDY --metric M --effect E</code> gives the seeds needed for a "
        "given difference E.</p>"
    )
    return power_table(header, "{} pairs", rows, _g, explain, by_variant=True)


def variant_configs(state: StudyState) -> str:
    """Each variant's changes to the base config, as dotted keys."""
    from orchestrator.config import changed_keys

    rows = []
    for variant, config in state.variant_configs.items():
        keys = changed_keys(state.training_config, config)
        changes = ", ".join(f"{k}={_value_at(config, k)}" for k in keys) or "the base config"
        rows.append([variant, changes])
    return html_table(["variant", "changes to the base config below"], rows, numeric=())


def _value_at(config: Mapping[str, Any], dotted: str) -> object:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return "(removed)"
        node = node[part]
    return node
