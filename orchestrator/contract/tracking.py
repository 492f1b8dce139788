"""A run's identity in the experiment trackers its study's loggers write to.

Pure decisions, shared by both sides: which tracker a logger entry names, the
identity of a run (study, variant, run folder, seed, attempt), the arguments
that identity puts into a configured logger (the user's own values win), and the
environment variables a ``command:`` program that makes its own loggers is
given. Nothing here imports a tracker; the worker builds the loggers
(``worker.trackers``) and the parent logs the study's figures
(``orchestrator.tracker_study``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.contract.bounded import ReadRefused, read_bounded, read_json
from orchestrator.contract.limits import MAX_RECORD_BYTES
from orchestrator.contract.paths import RunPaths, StudyPaths
from orchestrator.contract.records import RunSpec

__all__ = [
    "TRACKER_ENV",
    "MlflowParents",
    "RunIdentity",
    "Tracker",
    "default_mlflow_uri",
    "identity_arguments",
    "install_command",
    "read_mlflow_parents",
    "read_mlflow_run_id",
    "run_identity",
    "tracker_environment",
    "tracker_of",
    "tracker_packages",
]


class Tracker(str, enum.Enum):
    """The trackers whose Lightning loggers xorch knows."""

    WANDB = "wandb"
    MLFLOW = "mlflow"
    TENSORBOARD = "tensorboard"
    CSV = "csv"


# Lightning's logger class -> its tracker, in either package (``lightning.pytorch``
# or ``pytorch_lightning``), named from ``loggers`` or from its own module.
_LOGGER_CLASSES = {
    "WandbLogger": Tracker.WANDB,
    "MLFlowLogger": Tracker.MLFLOW,
    "TensorBoardLogger": Tracker.TENSORBOARD,
    "CSVLogger": Tracker.CSV,
}
_LIGHTNING_ROOTS = ("lightning.pytorch.loggers", "pytorch_lightning.loggers")

# What each tracker's logger imports: any one of them will do (Lightning's
# TensorBoardLogger takes tensorboard or tensorboardX).
_PACKAGES: dict[Tracker, tuple[str, ...]] = {
    Tracker.WANDB: ("wandb",),
    Tracker.MLFLOW: ("mlflow",),
    Tracker.TENSORBOARD: ("tensorboard", "tensorboardX"),
    Tracker.CSV: (),
}

# The variables a command program gets (unless its environment already has
# them): W&B reads them in ``wandb.init``, MLflow in ``mlflow.start_run``.
TRACKER_ENV = (
    "WANDB_RUN_GROUP",
    "WANDB_JOB_TYPE",
    "WANDB_NAME",
    "WANDB_RUN_ID",
    "WANDB_RESUME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
)


def tracker_of(class_path: str) -> Tracker | None:
    """The tracker of a Lightning logger class path; None for any other class."""
    module, _, name = class_path.rpartition(".")
    if name not in _LOGGER_CLASSES:
        return None
    if not any(module == root or module.startswith(root + ".") for root in _LIGHTNING_ROOTS):
        return None
    return _LOGGER_CLASSES[name]


def tracker_packages(tracker: Tracker) -> tuple[str, ...]:
    """The importable packages a logger of ``tracker`` needs (any one of them)."""
    return _PACKAGES[tracker]


def install_command(tracker: Tracker) -> str:
    """How a user installs what ``tracker``'s logger needs."""
    return f"pip install 'xorch[{tracker.value}]'"


def default_mlflow_uri(study_dir: str) -> str:
    """MLflow's own embedded store in the study folder (recent MLflow refuses
    Lightning's default ``./mlruns`` file store): ``sqlite:////abs/study/mlflow.db``."""
    return f"sqlite:///{StudyPaths(Path(study_dir)).mlflow_store}"


@dataclass(frozen=True)
class RunIdentity:
    """Who a run is, in the words a tracker shows."""

    study_dir: str  # absolute: two studies that share a folder name stay apart
    run_dir: str  # relative to the study folder: run_00_seed42, or wide/run_00_seed42
    seed: int
    attempt: int
    variant: str | None = None
    changes: Mapping[str, str] = field(default_factory=dict)  # the variant's changed keys
    fold: int | None = None  # experiments_runner.folds

    @property
    def study(self) -> str:
        return self.study_dir.rstrip("/").rpartition("/")[2]

    @property
    def run_id(self) -> str:
        """A stable W&B run id per (study, run): every attempt, and a resumed
        study, continues the same W&B run. W&B ids take letters and digits."""
        digest = hashlib.sha256(f"{self.study_dir}\n{self.run_dir}".encode()).hexdigest()
        return f"xorch{digest[:20]}"

    def values(self) -> dict[str, Any]:
        """What a tracker keeps as the run's config or hparams."""
        found: dict[str, Any] = {"seed": self.seed, "attempt": self.attempt}
        if self.variant is not None:
            found["variant"] = self.variant
        if self.fold is not None:
            found["fold"] = self.fold
        found.update(self.changes)
        return found

    def tags(self) -> dict[str, str]:
        """The run's tags (MLflow keeps strings only)."""
        found = {"xorch.study": self.study, "seed": str(self.seed)}
        if self.variant is not None:
            found["variant"] = self.variant
        if self.fold is not None:
            found["fold"] = str(self.fold)
        return found


def identity_arguments(
    tracker: Tracker,
    identity: RunIdentity,
    user: Mapping[str, Any],
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """The logger's keyword arguments: the user's ``user`` with the run's
    identity added where the user set nothing. ``environ`` is read for
    MLFLOW_TRACKING_URI, which Lightning's MLFlowLogger ignores by itself."""
    if tracker is Tracker.WANDB:
        return _wandb_arguments(identity, user)
    if tracker is Tracker.MLFLOW:
        uri = environ.get("MLFLOW_TRACKING_URI") or default_mlflow_uri(identity.study_dir)
        added = {
            "experiment_name": identity.study,
            "run_name": identity.run_dir,
            "tracking_uri": uri,
        }
        tags = {**identity.tags(), **dict(user.get("tags") or {})}
        return {**added, **user, "tags": tags}
    if tracker is Tracker.TENSORBOARD and "name" not in user and "version" not in user:
        # The study folder is the logdir; each run's events in its own folder,
        # named as TensorBoard's run list shows it. Its hparams are written at
        # the end, with the final metrics (worker.trackers).
        added = {"save_dir": identity.study_dir, "name": "", "version": identity.run_dir}
        return {**user, **added, "default_hp_metric": user.get("default_hp_metric", False)}
    return dict(user)  # CSVLogger: version_N stays, so xorch's curves read its log


def _wandb_arguments(identity: RunIdentity, user: Mapping[str, Any]) -> dict[str, Any]:
    added: dict[str, Any] = {
        "group": identity.study,
        "name": identity.run_dir,
        "id": identity.run_id,
        "resume": "allow",
    }
    if identity.variant is not None:
        added["job_type"] = identity.variant
    if "version" in user:  # WandbLogger's own name for the run id
        added.pop("id")
    config = {**identity.values(), **dict(user.get("config") or {})}
    return {**added, **user, "config": config}


def tracker_environment(identity: RunIdentity, environ: Mapping[str, str]) -> dict[str, str]:
    """The tracker variables a command program starts with, but none that its
    environment already sets. No MLFLOW_RUN_ID: MLflow refuses an id it does
    not know, and the program's own ``start_run`` makes its run."""
    found = {
        "WANDB_RUN_GROUP": identity.study,
        "WANDB_NAME": identity.run_dir,
        "WANDB_RUN_ID": identity.run_id,
        "WANDB_RESUME": "allow",
        "MLFLOW_TRACKING_URI": default_mlflow_uri(identity.study_dir),
        "MLFLOW_EXPERIMENT_NAME": identity.study,
    }
    if identity.variant is not None:
        found["WANDB_JOB_TYPE"] = identity.variant
    return {name: value for name, value in found.items() if not environ.get(name)}


def run_identity(spec: RunSpec) -> RunIdentity:
    """The identity of the run ``spec`` describes. A run outside a study
    (``mode: train``, a replay) belongs to its folder's parent."""
    run_dir = Path(spec.run_dir)
    study_dir = Path(spec.study_dir) if spec.study_dir else run_dir.parent
    try:
        relative = run_dir.relative_to(study_dir).as_posix()
    except ValueError:
        relative = run_dir.name
    return RunIdentity(
        study_dir=str(study_dir),
        run_dir=relative,
        seed=spec.seed,
        attempt=spec.attempt,
        variant=spec.variant,
        changes=dict(spec.changes),
        fold=spec.fold,
    )


@dataclass(frozen=True)
class MlflowParents:
    """mlflow_parents.json: the store and the parent run of the study (of each
    variant, by name; "" for a study of one config), written by the worker that
    made them and read by the next runs and by the parent's figures."""

    tracking_uri: str
    parents: dict[str, str]


def read_mlflow_parents(study: StudyPaths) -> MlflowParents | None:
    """The study's MLflow parent runs; None when none were made or the file
    is not what the worker writes (read within the record limit)."""
    found = read_json(study.mlflow_parents, MAX_RECORD_BYTES).payload
    if not isinstance(found, dict) or not isinstance(found.get("parents"), dict):
        return None
    parents = {str(k): str(v) for k, v in found["parents"].items()}
    return MlflowParents(str(found.get("tracking_uri")), parents)


def read_mlflow_run_id(run: RunPaths) -> str | None:
    """The MLflow run an earlier attempt of this run made; None before the first."""
    try:
        text = read_bounded(run.mlflow_run_id, MAX_RECORD_BYTES).decode("utf-8", "replace")
    except (FileNotFoundError, ReadRefused, OSError):
        return None
    return text.strip() or None
