"""From the training config to Lightning objects, with every output inside the run dir."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger

from orchestrator.contract.records import LAST_CHECKPOINT_FILE

__all__ = [
    "BuildError",
    "TrainerParts",
    "build_callback",
    "build_data",
    "build_loggers",
    "build_model",
    "build_trainer_parts",
    "check_arguments",
    "check_trainer_arguments",
    "instantiate",
    "resolve_class",
]


class BuildError(Exception):
    """The config names something that cannot be built (a bad class_path or argument).

    The parent treats it as a config error: retrying cannot help. The message is
    one line that starts with the config key at fault.
    """


def resolve_class(entry: Mapping[str, Any], where: str, kind: type) -> type:
    """Import ``entry["class_path"]`` and check that it names a subclass of ``kind``.

    Importing a module runs its top-level code (the user's own, as with
    LightningCLI); nothing the class_path names is called here. Calling it is
    what would run ``os.system`` or ``builtins.eval``, so a class_path that
    names a function, or a class of another kind, stops here.
    """
    class_path = str(entry["class_path"])
    module_name, _, attr = class_path.rpartition(".")
    if not module_name or not attr:
        raise BuildError(f"{where}.class_path {class_path!r} must be dotted: pkg.module.Class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        named = missing == module_name or module_name.startswith(missing + ".")
        inside = "" if named else f" (imported by {module_name})"
        raise BuildError(
            f"{where}.class_path {class_path!r}: cannot import {missing!r}{inside}"
        ) from exc
    except (ImportError, SyntaxError) as exc:
        raise BuildError(
            f"{where}.class_path {class_path!r}: importing {module_name} failed: "
            f"{type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise BuildError(
            f"{where}.class_path {class_path!r}: {module_name} has no {attr!r}"
            + _did_you_mean(attr, [n for n in dir(module) if not n.startswith("_")])
        ) from None
    if not inspect.isclass(cls):
        raise BuildError(
            f"{where}.class_path {class_path!r} names a "
            f"{'function' if callable(cls) else type(cls).__name__}, not a class; "
            f"name a {kind.__name__} subclass"
        )
    if not issubclass(cls, kind):
        raise BuildError(
            f"{where}.class_path {class_path!r}: {cls.__name__} is not a {kind.__name__}"
        )
    return cls


def check_arguments(
    cls: type, kwargs: Mapping[str, Any], where: str, added: Mapping[str, str] | None = None
) -> None:
    """Refuse arguments that ``cls`` does not take, and required ones that are
    missing, naming the key. ``added``: arguments xorch supplies itself, mapped
    to the config key they come from."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to check (a C type): the call speaks
        return
    parameters = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = [
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    if not takes_any:
        for key in kwargs:
            if key not in named:
                source = (added or {}).get(key, f"{where}.{key}")
                raise BuildError(
                    f"{source}: {cls.__name__} takes no argument {key!r}"
                    + _did_you_mean(key, named)
                )
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        missing = re.search(r"missing a required argument: '(\w+)'", str(exc))
        if missing:
            raise BuildError(
                f"{where}: {cls.__name__} needs argument {missing.group(1)!r}; "
                f"set {where}.{missing.group(1)}"
            ) from None
        raise BuildError(f"{where}: arguments do not fit {cls.__name__}: {exc}") from None


def instantiate(
    entry: Mapping[str, Any],
    where: str,
    kind: type,
    added: Mapping[str, str] | None = None,
    **extra: Any,
) -> Any:
    """``{class_path: pkg.mod.Class, init_args: {...}}`` -> ``Class(**init_args, **extra)``,
    once ``Class`` is known to be a ``kind`` and the arguments to fit it."""
    cls = resolve_class(entry, where, kind)
    kwargs = {**dict(entry.get("init_args") or {}), **extra}
    check_arguments(cls, kwargs, f"{where}.init_args", added)
    return cls(**kwargs)


def build_model(config: Mapping[str, Any]) -> pl.LightningModule:
    return instantiate(config["model"], "model", pl.LightningModule)


def build_data(config: Mapping[str, Any]) -> pl.LightningDataModule | None:
    entry = config.get("data")
    if entry is None:
        return None
    extra: dict[str, Any] = {}
    test_block = config.get("test_dataset")
    if isinstance(test_block, Mapping) and "size" in test_block:
        # test_dataset: {size: N} describes the test split of a built-in data module.
        extra["test_size"] = int(test_block["size"])
    added = {"test_size": "test_dataset.size"}
    return instantiate(entry, "data", pl.LightningDataModule, added, **extra)


def check_trainer_arguments(kwargs: Mapping[str, Any]) -> None:
    """An unknown Trainer argument is a typo in the config, found before the
    Trainer is built (Lightning would raise a bare TypeError)."""
    check_arguments(pl.Trainer, kwargs, "pl_trainer")


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
    check_trainer_arguments(kwargs)
    kwargs["default_root_dir"] = str(run_dir)
    kwargs["logger"] = build_loggers(kwargs.get("logger", True), run_dir)
    callbacks = [
        build_callback(entry, i, run_dir) for i, entry in enumerate(config.get("callbacks") or [])
    ]

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


def build_callback(entry: Mapping[str, Any], index: int, run_dir: Path) -> pl.Callback:
    """``callbacks[index]``, with a ModelCheckpoint's dirpath moved under the run dir."""
    args = dict(entry.get("init_args") or {})
    if str(entry["class_path"]).endswith("ModelCheckpoint") and args.get("dirpath"):
        args["dirpath"] = str(_inside(run_dir, args["dirpath"]))
    callback: pl.Callback = instantiate(
        {**entry, "init_args": args}, f"callbacks[{index}]", pl.Callback
    )
    return callback


def build_loggers(value: Any, run_dir: Path) -> Any:
    """``pl_trainer.logger``: a CSVLogger by default, or class_path entries with
    their save_dir moved under the run dir."""
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
        loggers.append(instantiate({**entry, "init_args": args}, f"pl_trainer.logger[{i}]", Logger))
    return loggers


def _inside(run_dir: Path, configured: str) -> Path:
    """A configured folder moved under the run dir, so two runs never share a file."""
    parts = [p for p in Path(configured).parts if p not in ("/", "..", ".")]
    return run_dir.joinpath(*parts[-1:]) if parts else run_dir


def _did_you_mean(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
