"""From the training config to Lightning objects, with every output inside the run dir."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from worker.protocol import LAST_CHECKPOINT_FILE

__all__ = [
    "BuildError",
    "TrainerParts",
    "build_data",
    "build_model",
    "build_trainer_parts",
    "instantiate",
]


class BuildError(Exception):
    """The config names something that cannot be built (a bad class_path or argument).

    The parent treats it as a config error: retrying cannot help.
    """


def instantiate(entry: Mapping[str, Any], where: str, **extra: Any) -> Any:
    """``{class_path: pkg.mod.Class, init_args: {...}}`` -> ``Class(**init_args, **extra)``."""
    class_path = str(entry["class_path"])
    module_name, _, attr = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BuildError(f"{where}.class_path {class_path!r}: cannot import {exc.name!r}") from exc
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise BuildError(
            f"{where}.class_path {class_path!r}: {module_name} has no {attr!r}"
        ) from None
    kwargs = {**dict(entry.get("init_args") or {}), **extra}
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise BuildError(f"{where}.init_args do not fit {class_path}: {exc}") from None
    except ValueError:  # no signature to check (a C type): let the call speak
        pass
    return cls(**kwargs)


def build_model(config: Mapping[str, Any]) -> pl.LightningModule:
    return instantiate(config["model"], "model")


def build_data(config: Mapping[str, Any]) -> pl.LightningDataModule | None:
    entry = config.get("data")
    if entry is None:
        return None
    extra: dict[str, Any] = {}
    test_block = config.get("test_dataset")
    if isinstance(test_block, Mapping) and "size" in test_block:
        # test_dataset: {size: N} describes the test split of a built-in data module.
        extra["test_size"] = int(test_block["size"])
    return instantiate(entry, "data", **extra)


@dataclass(frozen=True)
class TrainerParts:
    kwargs: dict[str, Any]
    last_checkpoint: Path | None  # where last.ckpt lives; None if checkpointing is off


def build_trainer_parts(
    config: Mapping[str, Any], run_dir: Path, extra_callbacks: list[pl.Callback]
) -> TrainerParts:
    """Trainer kwargs with default_root_dir = run_dir, loggers and checkpoints moved
    under it, a CSVLogger by default and a ModelCheckpoint that keeps last.ckpt."""
    kwargs = dict(config.get("pl_trainer") or {})
    kwargs["default_root_dir"] = str(run_dir)
    kwargs["logger"] = _loggers(kwargs.get("logger", True), run_dir)

    callbacks: list[pl.Callback] = []
    for i, entry in enumerate(config.get("callbacks") or []):
        overrides: dict[str, Any] = {}
        args = dict(entry.get("init_args") or {})
        if entry["class_path"].endswith("ModelCheckpoint") and args.get("dirpath"):
            overrides["dirpath"] = str(_inside(run_dir, args["dirpath"]))
        merged = {**entry, "init_args": {**args, **overrides}}
        callbacks.append(instantiate(merged, f"callbacks[{i}]"))

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


def _loggers(value: Any, run_dir: Path) -> Any:
    if value is True or value is None:
        return CSVLogger(save_dir=str(run_dir), name="lightning_logs")
    if value is False:
        return False
    entries = value if isinstance(value, list) else [value]
    loggers = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "class_path" not in entry:
            raise BuildError(f"pl_trainer.logger[{i}] must be a class_path entry, true or false")
        args = dict(entry.get("init_args") or {})
        args["save_dir"] = str(_inside(run_dir, args.get("save_dir", ".")))
        loggers.append(instantiate({**entry, "init_args": args}, f"pl_trainer.logger[{i}]"))
    return loggers


def _inside(run_dir: Path, configured: str) -> Path:
    """A configured folder moved under the run dir, so two runs never share a file."""
    parts = [p for p in Path(configured).parts if p not in ("/", "..", ".")]
    return run_dir.joinpath(*parts[-1:]) if parts else run_dir
