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

from orchestrator.errors import XorchError

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
        "experiments_runner.seeds=[1,2]",
        show_default=False,
    ),
]


def _guard(call: Callable[[], T]) -> T:
    try:
        return call()
    except XorchError as exc:
        typer.echo(f"xorch: error: {exc}", err=True)
        raise typer.Exit(int(exc.exit_code)) from None


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
    from orchestrator.study import launch as launch_study

    result = _guard(
        lambda: launch_study(config, overrides or (), resume=resume, cancel_jobs=cancel_jobs)
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
    from orchestrator.build_check import check_build
    from orchestrator.config import load_study
    from orchestrator.plan import describe_plan

    for line in _guard(lambda: describe_plan(config, overrides or ())):
        typer.echo(line)
    if fast:
        return
    check = check_build(_guard(lambda: load_study(config, overrides or ())))
    for problem in check.problems:
        typer.echo(f"xorch: error: {problem}", err=True)
    if check.problems:
        raise typer.Exit(2)
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

    from orchestrator.status import render_status, study_status

    while True:
        text = render_status(_guard(lambda: study_status(study_dir)), as_json=as_json)
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
    interval (Student t), min, median, max. Completed runs only.

    Example: xorch summary outputs/quickstart --format markdown -m val/loss -m val/acc
    """
    from orchestrator.stats import render_stats, study_metric_stats

    def run() -> str:
        state = _study_state(study_dir)
        return render_stats(study_metric_stats(state, metrics or None), fmt)

    typer.echo(_guard(run))


@app.command()
def compare(
    study_a: Annotated[Path, typer.Argument(help="The baseline study.", show_default=False)],
    study_b: Annotated[Path, typer.Argument(help="The study compared to it.", show_default=False)],
    fmt: FormatOpt = "table",
    metrics: MetricsOpt = None,
) -> None:
    """Two studies side by side: means ± std, B - A with its 95% CI (Welch), and
    Welch's t-test p-value.

    Example: xorch compare outputs/baseline outputs/ablation -m val/loss
    """
    from orchestrator.stats import compare_studies, render_comparison

    def run() -> str:
        rows = compare_studies(_study_state(study_a), _study_state(study_b), metrics or None)
        return render_comparison(rows, fmt)

    typer.echo(_guard(run))


@app.command()
def plot(study_dir: StudyDirArg, metrics: MetricsOpt = None) -> None:
    """PNG plots in DIR/plots: learning curves (mean ± std across seeds) and the
    spread of each final metric across seeds.

    Example: xorch plot outputs/quickstart -m val/loss -m val/acc
    """
    from orchestrator.plots import plot_study

    for path in _guard(lambda: plot_study(study_dir, metrics or None)):
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
    from orchestrator.replay import replay_run

    result = _guard(lambda: replay_run(study_dir, run))
    raise typer.Exit(0 if result.identical else 1)


def _study_state(study_dir: Path) -> StudyState:
    from orchestrator.errors import StateError
    from orchestrator.paths import StudyPaths
    from orchestrator.state_store import load_state

    state = load_state(StudyPaths(Path(study_dir).resolve()))
    if state is None:
        raise StateError(f"{study_dir} holds no runner_state.json: is it a study folder?")
    return state


def main() -> None:
    app(prog_name="xorch")


if __name__ == "__main__":  # pragma: no cover
    main()
