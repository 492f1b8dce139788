"""The ``xorch`` command. Each command parses, calls one function, prints.

A ``XorchError`` becomes one line on stderr and its exit code; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from orchestrator.errors import XorchError

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
) -> None:
    """Run the study: one child process per seed, state in runner_state.json,
    results in summary.csv.

    Example: xorch launch conf/examples/quickstart.yaml pl_trainer.max_epochs=3
    """
    from orchestrator.study import launch as launch_study

    result = _guard(lambda: launch_study(config, overrides or (), resume=resume))
    raise typer.Exit(int(result.exit_code))


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The study's YAML file.", show_default=False)],
    overrides: OverridesArg = None,
) -> None:
    """Check a config and show the plan, without running or writing anything.

    Example: xorch validate conf/examples/quickstart.yaml experiments_runner.n_runs=5
    """
    from orchestrator.plan import describe_plan

    for line in _guard(lambda: describe_plan(config, overrides or ())):
        typer.echo(line)


def main() -> None:
    app(prog_name="xorch")


if __name__ == "__main__":  # pragma: no cover
    main()
