"""The ``xorch`` command. Each command parses, calls one function, prints.

A ``XorchError`` becomes one line on stderr and its exit code; any other
exception is a bug and keeps its traceback (``cli_app.guard``). The statistics
commands (summary, compare, power) are ``cli_stats``'.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from orchestrator.cli_app import (
    ConfigArg,
    ConfigNameOpt,
    ConfigPathOpt,
    MetricsOpt,
    OverridesArg,
    StudyDirArg,
    app,
    config_file,
    guard,
    study_folder,
)
from orchestrator.cli_export import export
from orchestrator.cli_stats import compare, power, summary

__all__ = ["app", "main"]


@app.command()
def launch(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    config_path: ConfigPathOpt = None,
    config_name: ConfigNameOpt = None,
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
    together: Annotated[
        bool,
        typer.Option(
            "--together",
            help="With several configs: run the studies side by side (one xorch process "
            "each, sharing this machine's GPUs), not one after another.",
        ),
    ] = False,
) -> None:
    """Run the study: one child process per seed, state in runner_state.json,
    results in summary.csv. Several configs (a.yaml b.yaml): their studies one
    after another, or side by side with --together; overrides apply to each.

    Example: xorch launch conf/examples/quickstart.yaml pl_trainer.max_epochs=3
    """
    from orchestrator.commands.launch_many import launch_several, split_configs
    from orchestrator.config import load_study
    from orchestrator.study import launch_spec

    path, changes = config_file(config, overrides, config_path, config_name)
    more, changes = split_configs(changes) if config_name is None else ([], changes)
    if more or together:
        code = launch_several(
            [path, *more],
            changes,
            resume=resume,
            cancel_jobs=cancel_jobs,
            together=together,
            say=typer.echo,
            error=lambda line: typer.echo(line, err=True),
        )
        raise typer.Exit(code)
    spec = guard(lambda: load_study(path, changes))
    for warning in spec.warnings:
        typer.echo(f"xorch: warning: {warning}", err=True)
    result = guard(
        lambda: launch_spec(spec, resume=resume, cancel_jobs=cancel_jobs),
        on_write_error="; files written before are as they were: fix it, then --resume",
    )
    raise typer.Exit(int(result.exit_code))


@app.command()
def validate(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    config_path: ConfigPathOpt = None,
    config_name: ConfigNameOpt = None,
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

    path, changes = config_file(config, overrides, config_path, config_name)
    plan = guard(lambda: describe_plan(path, changes))
    if fast:
        for line in plan:
            typer.echo(line)
        # --fast never builds the classes, so it must not read as a full pass:
        # a class of the wrong kind is only found by the build (issue 20).
        typer.echo(
            "not built (--fast): model, data, callbacks and Trainer were not "
            "checked; run 'xorch validate' without --fast to build-check them"
        )
        return
    check = check_build(guard(lambda: load_study(path, changes)))
    for problem in check.problems:
        typer.echo(f"xorch: error: {problem}", err=True)
    if check.problems:  # no "config ok" and plan above the errors (issue 23)
        raise typer.Exit(2)
    for line in plan:
        typer.echo(line)
    if check.built:  # nothing is built for a command study
        typer.echo(f"built in a child process: {', '.join(check.built)}")


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

    folder = guard(lambda: study_folder(study_dir))
    while True:
        text = render_status(guard(lambda: study_status(folder)), as_json=as_json)
        if watch and sys.stdout.isatty():
            typer.echo("\x1b[2J\x1b[H", nl=False)  # clear the screen, only on a terminal
        typer.echo(text)
        if not watch:
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


app.command()(summary)
app.command()(compare)
app.command()(power)
app.command()(export)


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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing --out file that xorch did not write "
            "(never the study's own files).",
        ),
    ] = False,
) -> None:
    """One self-contained HTML page: config and environment, learning curves, the spread
    of final metrics, statistics, power figures and the runs that did not complete.

    Example: xorch report outputs/quickstart --watch
    """
    from orchestrator.commands.report_page import watch_report, write_report

    if watch:
        guard(lambda: watch_report(study_dir, out, interval, typer.echo, force))
    else:
        typer.echo(str(guard(lambda: write_report(study_dir, out, force))))


@app.command()
def plot(study_dir: StudyDirArg, metrics: MetricsOpt = None) -> None:
    """PNG plots in DIR/plots: learning curves (mean ± std across seeds) and the
    spread of each final metric across seeds; a study of variants gets one colour
    per variant and differences.png (each variant minus the reference, per seed).

    Example: xorch plot outputs/quickstart -m val/loss -m val/acc
    """
    from orchestrator.commands.plot import plot_study

    folder = guard(lambda: study_folder(study_dir))
    for path in guard(lambda: plot_study(folder, metrics or None)):
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

    folder = guard(lambda: study_folder(study_dir))
    result = guard(lambda: replay_run(folder, run))
    raise typer.Exit(0 if result.identical else 1)


@app.command()
def rerun(
    study_dir: StudyDirArg,
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Runs by index (3), or variant/index (wide/2) in a study of variants.",
            show_default=False,
        ),
    ],
) -> None:
    """Run completed runs again: reopen them in runner_state.json (their attempts
    kept) and move their folders aside (run_03_seed7.old-1); the next
    'xorch launch CONFIG --resume' trains them.

    Example: xorch rerun outputs/quickstart 3 5
    """
    from orchestrator.commands.rerun_cmd import rerun_runs
    from orchestrator.rerun import parse_run_names

    folder = guard(lambda: study_folder(study_dir))
    names = guard(lambda: parse_run_names(runs, "xorch rerun"))
    result = guard(lambda: rerun_runs(folder, names))
    for index, seed in result.reopened:
        typer.echo(f"run {index} (seed {seed}) reopened")
    for run_dir, aside in result.moved:
        typer.echo(f"{run_dir} moved aside to {aside}")
    for index, status in result.not_completed:
        typer.echo(f"run {index} is {status}, not completed: a resume runs it anyway")
    if result.reopened:
        typer.echo("train them with: xorch launch CONFIG --resume")


def main(argv: list[str] | None = None) -> None:
    """``xorch``: a mistake on the command line (``xorch lanch``, an unknown
    option) is one line on stderr with typer's suggestion, exit 2, not a framed box."""
    try:
        code = app(prog_name="xorch", args=argv, standalone_mode=False)
    except TyperException as exc:
        sys.exit(_usage_line(exc))
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_line(exc: TyperException) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":
        app(prog_name="xorch", args=[])  # bare ``xorch``: typer's help, as before
    message = " ".join(exc.format_message().split())
    where = ctx.command_path if ctx is not None else "xorch"
    typer.echo(f"xorch: error: {message} (see '{where} --help')", err=True)
    return int(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
