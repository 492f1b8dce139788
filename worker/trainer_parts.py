"""The Trainer's keyword arguments from the config, with every output inside the run dir.

``pl_trainer`` checked against the Trainer's signature; its loggers (a CSVLogger
by default) and each ModelCheckpoint's ``dirpath`` moved under the run dir; a
ModelCheckpoint that keeps ``last.ckpt`` every epoch added unless the config's own
keeps one. The entries themselves are built by ``worker.build.instantiate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytorch_lightning as pl

from orchestrator.contract.records import LAST_CHECKPOINT_FILE
from orchestrator.contract.tracking import RunIdentity
from worker.build import (
    BuildError,
    check_arguments,
    entry_arguments,
    instantiate,
    path_key,
    with_arguments,
)
from worker.trackers import logger_arguments

__all__ = [
    "TrainerParts",
    "build_callback",
    "build_loggers",
    "build_trainer_parts",
    "check_trainer_arguments",
]


def check_trainer_arguments(kwargs: Mapping[str, Any], pkg: ModuleType = pl) -> None:
    """An unknown Trainer argument is a typo in the config, found before the
    Trainer is built (Lightning would raise a bare TypeError)."""
    check_arguments(pkg.Trainer, kwargs, "pl_trainer")


@dataclass(frozen=True)
class TrainerParts:
    kwargs: dict[str, Any]
    last_checkpoint: Path | None  # where last.ckpt lives; None if checkpointing is off


def build_trainer_parts(
    config: Mapping[str, Any],
    run_dir: Path,
    extra_callbacks: list[pl.Callback],
    pkg: ModuleType = pl,
    identity: RunIdentity | None = None,
) -> TrainerParts:
    """Trainer kwargs with default_root_dir = run_dir, loggers and checkpoints moved
    under it, a CSVLogger by default and a ModelCheckpoint that keeps last.ckpt."""
    kwargs = dict(config.get("pl_trainer") or {})
    check_trainer_arguments(kwargs, pkg)
    kwargs["default_root_dir"] = str(run_dir)
    kwargs["logger"] = build_loggers(kwargs.get("logger", True), run_dir, pkg, identity)
    callbacks = [
        build_callback(entry, i, run_dir, pkg)
        for i, entry in enumerate(config.get("callbacks") or [])
    ]
    ModelCheckpoint = pkg.callbacks.ModelCheckpoint

    last: Path | None = None
    users_last = [c for c in callbacks if isinstance(c, ModelCheckpoint) and c.save_last]
    if users_last:
        dirpath = users_last[0].dirpath
        last = Path(dirpath) / LAST_CHECKPOINT_FILE if dirpath else None
    elif kwargs.get("enable_checkpointing", True):
        # One checkpoint named "last", rewritten every epoch. (save_last with
        # save_top_k=0 would only write it when training ends.)
        # save_on_train_epoch_end: it then holds the whole epoch, validation
        # and train-epoch metrics included.
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir,
                filename=Path(LAST_CHECKPOINT_FILE).stem,
                save_top_k=1,
                save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
        last = run_dir / LAST_CHECKPOINT_FILE
    kwargs["callbacks"] = callbacks + extra_callbacks
    return TrainerParts(kwargs=kwargs, last_checkpoint=last)


def build_callback(
    entry: Mapping[str, Any], index: int, run_dir: Path, pkg: ModuleType = pl
) -> pl.Callback:
    """``callbacks[index]``, with a ModelCheckpoint's dirpath moved under the run dir."""
    args = entry_arguments(entry)
    if str(entry[path_key(entry)]).endswith("ModelCheckpoint") and args.get("dirpath"):
        args["dirpath"] = str(_inside(run_dir, args["dirpath"]))
    callback: pl.Callback = instantiate(
        with_arguments(entry, args), f"callbacks[{index}]", pkg.Callback
    )
    return callback


def build_loggers(
    value: Any, run_dir: Path, pkg: ModuleType = pl, identity: RunIdentity | None = None
) -> Any:
    """``pl_trainer.logger``: a CSVLogger by default, or class_path entries with
    their save_dir moved under the run dir and, in a run, the run's identity
    given to the trackers' loggers (worker.trackers)."""
    if value is True or value is None:
        return pkg.loggers.CSVLogger(save_dir=str(run_dir), name="lightning_logs")
    if value is False:
        return False
    entries = value if isinstance(value, list) else [value]
    loggers = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not ("class_path" in entry or "_target_" in entry):
            raise BuildError(
                f"pl_trainer.logger[{i}] must be a class_path or _target_ entry, true or false"
            )
        args = entry_arguments(entry)
        args["save_dir"] = str(_inside(run_dir, args.get("save_dir", ".")))
        args = logger_arguments(str(entry[path_key(entry)]), args, identity)
        loggers.append(
            instantiate(with_arguments(entry, args), f"pl_trainer.logger[{i}]", pkg.loggers.Logger)
        )
    return loggers


def _inside(run_dir: Path, configured: str) -> Path:
    """A configured folder moved under the run dir, so two runs never share a file;
    one already inside it (``${hydra:runtime.output_dir}/checkpoints``) stays."""
    path = Path(configured)
    if path.is_absolute() and path.resolve().is_relative_to(run_dir.resolve()):
        return path
    parts = [p for p in path.parts if p not in ("/", "..", ".")]
    return run_dir.joinpath(*parts[-1:]) if parts else run_dir
