"""``xorch export``: a plain function that ``cli.py`` registers on the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli_app import StudyDirArg, guard
from orchestrator.errors import XorchError

__all__ = ["export"]

TARGETS = ("mlflow", "wandb", "tensorboard")


def export(
    study_dir: StudyDirArg,
    to: Annotated[
        str,
        typer.Option("--to", help="The tracker: mlflow, wandb or tensorboard.", show_default=False),
    ],
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri",
            help="mlflow: the tracking URI; default sqlite:///DIR/mlflow.db.",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="wandb: the folder for its offline runs (default DIR, runs in DIR/wandb); "
            "tensorboard: the logdir (default DIR/tensorboard).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Put a study run without a tracker into one: every started run with its seed,
    variant, config, status, final metrics and per-epoch curves, and the study's mean,
    std and CI per metric. Offline; exporting again updates, never duplicates.

    Example: xorch export outputs/quickstart --to mlflow
    """

    def run() -> str:
        from orchestrator.commands.export import ExportTarget, export_study, render_export

        if to not in TARGETS:
            raise XorchError(f"--to {to}: not a tracker xorch exports to; use one of "
                             f"{', '.join(TARGETS)}")  # fmt: skip
        return render_export(export_study(study_dir, ExportTarget(to), uri, directory))

    typer.echo(guard(run), nl=False)
