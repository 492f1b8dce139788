"""``xorch summary``, ``compare`` and ``power``: the statistics over seeds of
one study (or its variants) or two. Plain functions: ``cli.py`` registers them
on the app in the order of ``xorch --help``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli_app import FormatOpt, MetricsOpt, StudyDirArg, guard, study_state

__all__ = ["compare", "power", "summary"]


def summary(study_dir: StudyDirArg, fmt: FormatOpt = "table", metrics: MetricsOpt = None) -> None:
    """Statistics over seeds per metric: n, mean, std, standard error, 95% confidence
    interval (Student t), min, median, max. Completed runs only; a study of variants
    gets one row per metric and variant.

    Example: xorch summary outputs/quickstart --format markdown -m val/loss -m val/acc
    """
    from orchestrator.commands.summary_cmd import render_summary, summary_table
    from orchestrator.representative import standout_lines

    def run() -> str:
        state = study_state(study_dir)
        text = render_summary(summary_table(state, metrics or None), fmt)
        if fmt == "table":  # the other formats are data for scripts: nothing but the rows
            text += "".join(f"{line}\n" for line in standout_lines(state))
        return text

    typer.echo(guard(run))


GoalOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--goal",
        help="Which way a metric is better, METRIC=min or METRIC=max (repeat the option); "
        "default: min for names with loss or error, max otherwise.",
    ),
]
PairedOpt = Annotated[
    bool | None,
    typer.Option(
        "--paired/--unpaired",
        help="Pair runs by seed, or treat the studies as independent; "
        "default: paired when the studies ran the same seeds; when they share only "
        "some, Welch on all seeds and, as a second reading, paired on the shared ones.",
        show_default=False,
    ),
]


def compare(
    study_a: Annotated[
        Path,
        typer.Argument(help="The reference study (alone: its variants).", show_default=False),
    ],
    study_b: Annotated[
        Path | None,
        typer.Argument(
            help="The study compared to it; leave out to compare the variants of STUDY_A.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = "table",
    metrics: MetricsOpt = None,
    goal: GoalOpt = None,
    paired: PairedOpt = None,
) -> None:
    """B against A per metric: each study's mean, 95% t and bootstrap intervals, median and
    IQM; B - A with its 95% CI, the paired t-test and Wilcoxon test when the studies share
    seeds (Welch's t-test otherwise), Holm-corrected p-values, Hedges' g and the
    probability of improvement. --format latex gives a table for a paper.

    With one study of variants: each variant against its compare_to, paired by seed.

    Example: xorch compare outputs/baseline outputs/ablation -m val/loss --format latex
    """
    from orchestrator.commands.compare import compare_studies, compare_variants, render_comparison
    from orchestrator.inference import parse_goals

    def run() -> str:
        if study_b is None:
            within = compare_variants(
                study_state(study_a), metrics or None, parse_goals(goal or []), paired
            )
            return render_comparison(within, fmt)
        names = (Path(study_a).resolve().name, Path(study_b).resolve().name)
        goals = parse_goals(goal or [])
        table = compare_studies(
            study_state(study_a), study_state(study_b), names, metrics or None, goals, paired
        )
        return render_comparison(table, fmt)

    typer.echo(guard(run), nl=False)


def power(
    studies: Annotated[
        list[Path],
        typer.Argument(
            help="One study (figures for a future comparison with it) or two studies "
            "(figures for comparing them).",
            show_default=False,
        ),
    ],
    metrics: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Metric (repeat); default the summary_metrics."),
    ] = None,
    effect: Annotated[
        float | None,
        typer.Option(help="The difference to detect, in the metric's units.", show_default=False),
    ] = None,
    power_level: Annotated[float, typer.Option("--power", help="Wanted power.")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    paired: PairedOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """How many seeds a t-test needs to detect --effect, and the smallest difference the
    current seeds detect, from the observed spread (of the per-seed differences when
    paired). One study of variants: each variant against its compare_to, paired by seed.

    Example: xorch power outputs/quickstart --metric val/loss --effect 0.01
    """
    from orchestrator.commands.power import PowerAsk, power_rows, render_power

    def run() -> str:
        ask = PowerAsk(effect, alpha, power_level)  # checked by each power_for_*, first
        states = [study_state(s) for s in studies]
        return render_power(power_rows(states, metrics, ask, paired), fmt)

    typer.echo(guard(run), nl=False)
