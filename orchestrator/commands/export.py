"""``xorch export STUDY --to mlflow|wandb|tensorboard``: a study run without a
tracker, put in one after the fact.

The study is read as ``orchestrator.api`` reads it (no lock, nothing in it
changed but the target's default place inside it), by
``export_study.read_export``; one module per tracker writes it. The trackers
are optional extras: a missing one is refused before anything is read or
written, with the install command. Exporting again is safe: each target finds
or rewrites its runs by a stable id instead of adding new ones.
"""

from __future__ import annotations

import enum
import importlib.util
import shlex
from dataclasses import dataclass
from pathlib import Path

from orchestrator.commands.export_study import read_export
from orchestrator.contract.paths import StudyPaths, wandb_folder
from orchestrator.errors import XorchError

__all__ = ["ExportResult", "ExportTarget", "export_study", "render_export"]


class ExportTarget(str, enum.Enum):
    """A tracker ``xorch export`` writes to; the value is ``--to``'s word, the
    package's import name and the extra that installs it."""

    MLFLOW = "mlflow"
    WANDB = "wandb"
    TENSORBOARD = "tensorboard"

    @property
    def install(self) -> str:
        return f"pip install -e '.[{self.value}]'"


@dataclass(frozen=True)
class ExportResult:
    """What one export did: where to, how many tracker runs it created and how many
    it found from an earlier export and brought up to date."""

    target: ExportTarget
    where: str
    created: int
    updated: int
    left_out: int  # runs not started yet


def export_study(
    folder: Path | str, target: ExportTarget, uri: str | None = None, directory: Path | None = None
) -> ExportResult:
    """Export the study in ``folder``. ``uri``: MLflow's tracking URI (default a SQLite
    store in the study folder); ``directory``: W&B's or TensorBoard's folder (default
    inside the study folder)."""
    _check_installed(target)
    if uri is not None and target is not ExportTarget.MLFLOW:
        raise XorchError(f"--uri is for --to mlflow; give --to {target.value} a folder: --dir")
    if directory is not None and target is ExportTarget.MLFLOW:
        raise XorchError("--dir is not for --to mlflow; give a tracking URI: --uri")
    study = read_export(folder)
    paths = StudyPaths(study.root)
    if target is ExportTarget.MLFLOW:
        from orchestrator.commands.export_mlflow import export_mlflow

        where = uri or f"sqlite:///{paths.mlflow_store}"
        created, updated = export_mlflow(study, where)
    elif target is ExportTarget.WANDB:
        from orchestrator.commands.export_wandb import export_wandb

        chosen = _folder(directory, paths.root)
        created, updated = export_wandb(study, chosen)
        where = str(chosen)
    else:
        from orchestrator.commands.export_tensorboard import export_tensorboard

        chosen = _folder(directory, paths.tensorboard)
        created, updated = export_tensorboard(study, chosen)
        where = str(chosen)
    return ExportResult(target, where, created, updated, study.left_out)


def _check_installed(target: ExportTarget) -> None:
    if importlib.util.find_spec(target.value) is None:
        raise XorchError(
            f"--to {target.value} needs the {target.value} package, which is not installed: "
            f"{target.install} (from xorch's folder), or pip install {target.value}"
        )


def _folder(directory: Path | None, default: Path) -> Path:
    chosen = (directory or default).expanduser().resolve()
    if chosen.exists() and not chosen.is_dir():
        raise XorchError(f"--dir {directory}: it is a file; give a folder")
    return chosen


def render_export(result: ExportResult) -> str:
    """The lines ``xorch export`` prints: what it did and how to look at it."""
    lines = [
        f"exported to {result.target.value} at {result.where}: {result.created} runs created, "
        f"{result.updated} updated"
    ]
    if result.left_out:
        lines.append(f"{result.left_out} runs not started yet: export again once they ran")
    where = shlex.quote(result.where)
    offline = shlex.quote(str(wandb_folder(Path(result.where))))
    looks = {
        ExportTarget.MLFLOW: f"look: mlflow ui --backend-store-uri {where}",
        ExportTarget.WANDB: f"upload: wandb sync {offline}/offline-run-*",
        ExportTarget.TENSORBOARD: f"look: tensorboard --logdir {where}",
    }
    lines.append(looks[result.target])
    return "\n".join(lines) + "\n"
