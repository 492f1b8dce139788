"""The ``xorch`` command. Each command parses, calls one function, prints.

A ``XorchError`` becomes one line on stderr and its exit code; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from orchestrator.errors import ENVIRONMENT_ERRNOS, ExitCode, XorchError, os_error_line

if TYPE_CHECKING:
    from orchestrator.state import StudyState

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="xorch",
    help="Run one PyTorch Lightning config over many seeds, one fresh process per run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Dotted overrides, values as YAML: pl_trainer.max_epochs=3 "
        "experiments_runner.seeds=[1,2] (for a config with a defaults: list, "
        "Hydra's override grammar: model=other, +new.key=1)",
        show_default=False,
    ),
]


def _guard(call: Callable[[], T], on_write_error: str = "") -> T:
    """Run one command; ``on_write_error`` is added to a machine fault's line
    (launch says how to go on once the disk is fixed)."""
    try:
        return call()
    except XorchError as exc:
        typer.echo(f"xorch: error: {exc}", err=True)
        raise typer.Exit(int(exc.exit_code)) from None
    except OSError as exc:
        # A fault of the machine (disk full, read-only folder) at a write that
        # has no message of its own: still one line naming the path and the fix.
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        typer.echo(f"xorch: error: {os_error_line(exc)}{on_write_error}", err=True)
        raise typer.Exit(int(ExitCode.STATE_WRITE)) from None


@app.command()
def launch(
    config: Annotated[Path, typer.Argument(help="The study's YAML file.", show_default=False)],
    overrides: OverridesArg = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the study in output_base_dir.")
    ] = False,
    cancel_jobs: Annotated[
        bool,
        typer.Option(
            "--cancel-jobs",
            help="executor slurm: cancel the study's jobs when xorch is stopped "
            "(by default they keep running and --resume watches them again).",
        ),
    ] = False,
) -> None:
    """Run the study: one child process per seed, state in runner_state.json,
    results in summary.csv.

    Example: xorch launch conf/examples/quickstart.yaml pl_trainer.max_epochs=3
    """
    from orchestrator.config import load_study
    from orchestrator.study import launch_spec

    spec = _guard(lambda: load_study(config, overrides or ()))
    for warning in spec.warnings:
        typer.echo(f"xorch: warning: {warning}", err=True)
    result = _guard(
        lambda: launch_spec(spec, resume=resume, cancel_jobs=cancel_jobs),
        on_write_error="; files written before are as they were: fix it, then --resume",
    )
    raise typer.Exit(int(result.exit_code))


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The study's YAML file.", show_default=False)],
    overrides: OverridesArg = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Only the checks that need no torch: skip building model, data, "
            "callbacks and Trainer in a child process.",
        ),
    ] = False,
) -> None:
    """Check a config and show the plan, without training or writing anything.
    By default one child process also builds the model, data module, callbacks
    and Trainer (no fit), which catches a class_path or init_args mistake.

    Example: xorch validate conf/examples/quickstart.yaml experiments_runner.n_runs=5
    """
    from orchestrator.commands.build_check import check_build
    from orchestrator.commands.validate import describe_plan
    from orchestrator.config import load_study

    for line in _guard(lambda: describe_plan(config, overrides or ())):
        typer.echo(line)
    if fast:
        # --fast never builds the classes, so it must not read as a full pass:
        # a class of the wrong kind is only found by the build (issue 20).
        typer.echo(
            "not built (--fast): model, data, callbacks and Trainer were not "
            "checked; run 'xorch validate' without --fast to build-check them"
        )
        return
    check = check_build(_guard(lambda: load_study(config, overrides or ())))
    for problem in check.problems:
        typer.echo(f"xorch: error: {problem}", err=True)
    if check.problems:
        raise typer.Exit(2)
    if check.built:  # nothing is built for a command study
        typer.echo(f"built in a child process: {', '.join(check.built)}")


StudyDirArg = Annotated[
    Path, typer.Argument(help="A study folder (output_base_dir).", show_default=False)
]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="table, markdown, latex, csv or json.")
]
MetricsOpt = Annotated[
    list[str] | None,
    typer.Option("--metrics", "-m", help="Metrics to show (repeat the option); default all."),
]


@app.command()
def status(
    study_dir: StudyDirArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh every few seconds until Ctrl-C.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """One row per run: status or failure class, attempt, duration, epoch, metrics.
    Safe to run from another terminal while the study runs.

    Example: xorch status outputs/quickstart --watch
    """
    import time

    from orchestrator.commands.status import render_status, study_status

    folder = _guard(lambda: _study_folder(study_dir))
    while True:
        text = render_status(_guard(lambda: study_status(folder)), as_json=as_json)
        if watch and sys.stdout.isatty():
            typer.echo("\x1b[2J\x1b[H", nl=False)  # clear the screen, only on a terminal
        typer.echo(text)
        if not watch:
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@app.command()
def summary(study_dir: StudyDirArg, fmt: FormatOpt = "table", metrics: MetricsOpt = None) -> None:
    """Statistics over seeds per metric: n, mean, std, standard error, 95% confidence
    interval (Student t), min, median, max. Completed runs only; a study of variants
    gets one row per metric and variant.

    Example: xorch summary outputs/quickstart --format markdown -m val/loss -m val/acc
    """
    from orchestrator.commands.summary_cmd import (
        render_stats,
        render_variant_stats,
        study_metric_stats,
        variant_metric_stats,
    )

    def run() -> str:
        state = _study_state(study_dir)
        if state.variant_configs:
            return render_variant_stats(variant_metric_stats(state, metrics or None), fmt)
        return render_stats(study_metric_stats(state, metrics or None), fmt)

    typer.echo(_guard(run))


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
        "default: paired when the studies share two or more seeds.",
        show_default=False,
    ),
]


@app.command()
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
                _study_state(study_a), metrics or None, parse_goals(goal or []), paired
            )
            return render_comparison(within, fmt)
        names = (Path(study_a).resolve().name, Path(study_b).resolve().name)
        goals = parse_goals(goal or [])
        table = compare_studies(
            _study_state(study_a), _study_state(study_b), names, metrics or None, goals, paired
        )
        return render_comparison(table, fmt)

    typer.echo(_guard(run), nl=False)


@app.command()
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
    from orchestrator.commands.power import (
        power_for_studies,
        power_for_study,
        power_for_variants,
        render_power,
    )

    def run() -> str:
        if len(studies) not in (1, 2):
            raise XorchError(f"give one or two study folders, not {len(studies)}")
        if len(studies) == 1:
            state = _study_state(studies[0])
            if state.variant_configs:
                rows = power_for_variants(state, metrics, effect, alpha, power_level, paired)
                return render_power(rows, fmt)
            if paired:
                raise XorchError(
                    "--paired needs two studies on the same seeds (the spread of their "
                    "differences); one study gives two-sample and one-sample figures"
                )
            rows = power_for_study(state, metrics, effect, alpha, power_level)
        else:
            state_a, state_b = (_study_state(s) for s in studies)
            rows = power_for_studies(state_a, state_b, metrics, effect, alpha, power_level, paired)
        return render_power(rows, fmt)

    typer.echo(_guard(run), nl=False)


@app.command()
def report(
    study_dir: StudyDirArg,
    out: Annotated[
        Path | None,
        typer.Option(help="The HTML file to write; default DIR/report.html.", show_default=False),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Rewrite the report whenever the state changes.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between checks with --watch.")] = 2.0,
) -> None:
    """One self-contained HTML page: config and environment, learning curves, the spread
    of final metrics, statistics, power figures and the runs that did not complete.

    Example: xorch report outputs/quickstart --watch
    """
    from orchestrator.commands.report_page import watch_report, write_report

    if watch:
        _guard(lambda: watch_report(study_dir, out, interval, typer.echo))
    else:
        typer.echo(str(_guard(lambda: write_report(study_dir, out))))


@app.command()
def plot(study_dir: StudyDirArg, metrics: MetricsOpt = None) -> None:
    """PNG plots in DIR/plots: learning curves (mean ± std across seeds) and the
    spread of each final metric across seeds; a study of variants gets one colour
    per variant and differences.png (each variant minus the reference, per seed).

    Example: xorch plot outputs/quickstart -m val/loss -m val/acc
    """
    from orchestrator.commands.plot import plot_study

    folder = _guard(lambda: _study_folder(study_dir))
    for path in _guard(lambda: plot_study(folder, metrics or None)):
        typer.echo(str(path))


@app.command()
def replay(
    study_dir: StudyDirArg,
    run: Annotated[int, typer.Argument(help="The run's index.", show_default=False)],
) -> None:
    """Train one run again with its exact config and seed in DIR/run_XX_seedN_replay,
    then say whether its metrics match the original.

    Example: xorch replay outputs/quickstart 1
    """
    from orchestrator.commands.replay import replay_run

    folder = _guard(lambda: _study_folder(study_dir))
    result = _guard(lambda: replay_run(folder, run))
    raise typer.Exit(0 if result.identical else 1)


def _study_state(study_dir: Path) -> StudyState:
    from orchestrator.contract.paths import StudyPaths
    from orchestrator.state_store import load_study_state

    return load_study_state(StudyPaths(_study_folder(study_dir)))


def _study_folder(study_dir: Path) -> Path:
    """The study folder argument, resolved; a path that cannot be one is bad input."""
    from orchestrator.errors import StateError

    try:
        folder = Path(study_dir).expanduser().resolve()
    except (RuntimeError, OSError):  # a symlink loop: RuntimeError before Python 3.13
        raise StateError(
            f"{study_dir}: a symlink in it points back to itself; fix the link or give "
            "the study folder itself"
        ) from None
    if folder.exists() and not folder.is_dir():
        raise StateError(f"{study_dir} is a file, not a study folder; give the output_base_dir")
    return folder


def main() -> None:
    app(prog_name="xorch")


if __name__ == "__main__":  # pragma: no cover
    main()
