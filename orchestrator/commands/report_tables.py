"""The report's tables of numbers that the page of one config and the sections of a
study of variants share: the descriptive statistics of each group's seeds, and the
power figures (now and with more seeds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from orchestrator.commands.power import PowerFigures, detectable_effect
from orchestrator.commands.report_parts import esc, html_table, interval
from orchestrator.sample_stats import SampleStats
from orchestrator.tables import human_cell

__all__ = ["SEED_COUNTS", "power_table", "statistics_table"]

# The power tables' "with N seeds" columns (N pairs in a study of variants).
SEED_COUNTS: tuple[int, ...] = (5, 10, 20, 40)


def statistics_table(
    names: Sequence[str],
    rows: Sequence[tuple[Sequence[str], SampleStats]],
    why_no_bootstrap: bool = False,
) -> str:
    """One row per group: its ``names`` (the columns ``names`` heads), then n, mean, std,
    the t and bootstrap intervals, median, IQM and note. Without a bootstrap interval
    its cell says "n/a", or with ``why_no_bootstrap`` the reason ("n/a (n < 10)")."""
    header = [*names, "n", "mean", "std", "95% CI (t)", "median", "IQM",
              "95% CI (bootstrap)", "note"]  # fmt: skip
    body = []
    for row_names, s in rows:
        t = s.summary
        boot = f"{interval(s.boot_low, s.boot_high)} {s.bootstrap_method}"
        if s.bootstrap_method.startswith("n/a"):
            boot = s.bootstrap_method if why_no_bootstrap else "n/a"
        body.append([*row_names, str(t.n), human_cell(t.mean), human_cell(t.std),
                     interval(t.ci_low, t.ci_high), human_cell(t.median), human_cell(s.iqm),
                     boot, s.note])  # fmt: skip
    return html_table(header, body, numeric=range(len(names), len(header) - 1))


def power_table(
    header: Sequence[str],
    count_header: str,
    rows: Sequence[PowerFigures],
    number: Callable[[float], str],
    explain: str,
    by_variant: bool = False,
) -> str:
    """The power figures as a table: each row's names (its metric; ``by_variant``: also
    the variant and its reference), n, std, the difference detectable now and with
    SEED_COUNTS seeds in the row's design; then the rows' notes and ``explain``.
    ``header`` names the columns up to "detectable now", ``count_header`` (a format,
    "with {} seeds") those of SEED_COUNTS."""
    header = [*header, *(count_header.format(n) for n in SEED_COUNTS)]
    body, notes = [], []
    for r in rows:
        names = [r.metric, r.variant, r.vs] if by_variant else [r.metric]
        more = [number(detectable_effect(r.design, r.std, n)) for n in SEED_COUNTS]
        body.append([*names, str(r.n), number(r.std), number(r.detectable), *more])
        if r.note:
            notes.append(f"<li>{esc(', '.join(names[:2]))}: {esc(r.note)}</li>")
    listed = f"<ul class='note'>{''.join(notes)}</ul>" if notes else ""
    named = 3 if by_variant else 1
    return html_table(header, body, numeric=range(named, len(header))) + listed + explain
