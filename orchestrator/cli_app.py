"""What every ``xorch`` command shares: the typer app, the one guard that turns
a ``XorchError`` (or a machine's ``OSError``) into one line on stderr and its
exit code, the arguments several commands take, and the study folder argument
read into a state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from orchestrator.errors import ENVIRONMENT_ERRNOS, ExitCode, XorchError, os_error_line

if TYPE_CHECKING:
    from orchestrator.state import StudyState

__all__ = [
    "ConfigArg",
    "ConfigNameOpt",
    "ConfigPathOpt",
    "FormatOpt",
    "MetricsOpt",
    "OverridesArg",
    "StudyDirArg",
    "app",
    "config_file",
    "guard",
    "one_line",
    "study_folder",
    "study_state",
]

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


ConfigArg = Annotated[
    Path | None,
    typer.Argument(
        help="The study's YAML file (or --config-path and --config-name).", show_default=False
    ),
]
ConfigPathOpt = Annotated[
    Path | None,
    typer.Option(
        "--config-path", help="The config's folder, as Hydra's flag names it.", show_default=False
    ),
]
ConfigNameOpt = Annotated[
    str | None,
    typer.Option(
        "--config-name",
        help="The config's name in --config-path (.yaml optional).",
        show_default=False,
    ),
]


def config_file(
    config: Path | None, overrides: list[str] | None, path: Path | None, name: str | None
) -> tuple[Path, list[str]]:
    """The config and its overrides from ``CONFIG [OVERRIDES]`` or from Hydra's
    ``--config-path DIR --config-name NAME [OVERRIDES]`` (as the seed project
    takes them; the first override then arrives where CONFIG would be)."""
    rest = list(overrides or ())
    if name is None and path is None:
        if config is None:
            _usage("name the study's YAML file: CONFIG, or --config-path DIR --config-name NAME")
        return config, rest
    if name is None:
        _usage("--config-path needs --config-name NAME (the config's file in that folder)")
    if config is not None:
        rest.insert(0, str(config))
    folder = path if path is not None else Path(".")
    chosen = folder / name
    if chosen.suffix not in (".yaml", ".yml") and not chosen.exists():
        chosen = chosen.with_name(chosen.name + ".yaml")
    return chosen, rest


def _usage(message: str) -> NoReturn:
    typer.echo(f"xorch: error: {message}", err=True)
    raise typer.Exit(int(ExitCode.USAGE))


def guard(call: Callable[[], T], on_write_error: str = "") -> T:
    """Run one command; ``on_write_error`` is added to a machine fault's line
    (launch says how to go on once the disk is fixed)."""
    try:
        return call()
    except XorchError as exc:
        typer.echo(f"xorch: error: {one_line(str(exc))}", err=True)
        raise typer.Exit(int(exc.exit_code)) from None
    except OSError as exc:
        # A fault of the machine (disk full, read-only folder) at a write that
        # has no message of its own: still one line naming the path and the fix.
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        typer.echo(f"xorch: error: {one_line(os_error_line(exc))}{on_write_error}", err=True)
        raise typer.Exit(int(ExitCode.STATE_WRITE)) from None


def one_line(message: str) -> str:
    """A message kept on one line: a newline or carriage return in a path or
    value it quotes is shown escaped (issue 23: a path with a newline broke the
    one-line error in two)."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


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


def study_state(study_dir: Path) -> StudyState:
    from orchestrator.state_store import read_study_folder  # not at import: keeps --help quick

    return read_study_folder(study_dir)


def study_folder(study_dir: Path) -> Path:
    """The study folder argument, resolved; a path that cannot be one is bad input."""
    from orchestrator.state_store import study_folder as resolved

    return resolved(study_dir)
