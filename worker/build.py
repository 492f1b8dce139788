"""From the training config to Lightning objects, with every output inside the run dir.

An entry is either LightningCLI's ``{class_path, init_args}`` or Hydra's
``{_target_, ...arguments}``; the latter is built by ``hydra.utils.instantiate``
itself (nested ``_target_`` objects, ``_partial_``, ``_args_``, ``_recursive_``).
Either way the top-level class is imported and checked to be of the expected
kind, and the arguments to fit it, before anything is called.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import pytorch_lightning as pl

__all__ = [
    "BuildError",
    "build_data",
    "build_model",
    "check_arguments",
    "choose_package",
    "instantiate",
    "resolve_class",
]


# The Trainer's parts moved to worker.trainer_parts (which builds on this module);
# their names are still read here, loaded on first use so neither import cycles.
_TRAINER_PARTS = (
    "TrainerParts",
    "build_callback",
    "build_loggers",
    "build_trainer_parts",
    "check_trainer_arguments",
)


def __getattr__(name: str) -> Any:
    if name in _TRAINER_PARTS:
        from worker import trainer_parts

        return getattr(trainer_parts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class BuildError(Exception):
    """The config names something that cannot be built (a bad class_path or argument).

    The parent treats it as a config error: retrying cannot help. The message is
    one line that starts with the config key at fault.
    """


# Hydra's instantiate keys; every other key of a ``_target_`` entry is an argument.
HYDRA_KEYS = frozenset({"_target_", "_args_", "_recursive_", "_convert_", "_partial_"})


def path_key(entry: Mapping[str, Any]) -> str:
    return "_target_" if "_target_" in entry else "class_path"


def entry_arguments(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor's keyword arguments, whichever style the entry is in."""
    if "_target_" in entry:
        return {k: v for k, v in entry.items() if k not in HYDRA_KEYS}
    return dict(entry.get("init_args") or {})


def with_arguments(entry: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    if "_target_" in entry:
        return {**{k: v for k, v in entry.items() if k in HYDRA_KEYS}, **arguments}
    return {**entry, "init_args": dict(arguments)}


def resolve_class(entry: Mapping[str, Any], where: str, kind: type) -> type:
    """Import ``entry["class_path"]`` (or ``_target_``) and check that it names a
    subclass of ``kind``.

    Importing a module runs its top-level code (the user's own, as with
    LightningCLI); nothing the class_path names is called here. Calling it is
    what would run ``os.system`` or ``builtins.eval``, so a class_path that
    names a function, or a class of another kind, stops here.
    """
    key = path_key(entry)
    class_path = str(entry[key])
    where = f"{where}.{key}"
    module_name, _, attr = class_path.rpartition(".")
    if not module_name or not attr:
        raise BuildError(f"{where} {class_path!r} must be dotted: pkg.module.Class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        named = missing == module_name or module_name.startswith(missing + ".")
        inside = "" if named else f" (imported by {module_name})"
        raise BuildError(f"{where} {class_path!r}: cannot import {missing!r}{inside}") from exc
    except (ImportError, SyntaxError) as exc:
        raise BuildError(
            f"{where} {class_path!r}: importing {module_name} failed: "
            f"{type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise BuildError(
            f"{where} {class_path!r}: {module_name} has no {attr!r}"
            + _did_you_mean(attr, [n for n in dir(module) if not n.startswith("_")])
        ) from None
    if not inspect.isclass(cls):
        raise BuildError(
            f"{where} {class_path!r} names a "
            f"{'function' if callable(cls) else type(cls).__name__}, not a class; "
            f"name a {kind.__name__} subclass"
        )
    if not issubclass(cls, kind):
        raise BuildError(
            f"{where} {class_path!r}: {cls.__name__} is not a {kind.__name__}"
            + _other_package(cls, kind)
        )
    return cls


def _other_package(cls: type, kind: type) -> str:
    """A class of the ``lightning`` package's copy of ``kind`` (``import lightning
    as L``) is not a subclass of the ``pytorch_lightning`` one: say so, instead
    of a bare "X is not a LightningModule" for a LightningModule (issue 20).
    Only the names in the MRO are read, so ``lightning`` is never imported."""
    ours = kind.__module__.split(".")[0]
    for base in cls.__mro__:
        package = base.__module__.split(".")[0]
        if base.__name__ == kind.__name__ and package != ours:
            return (
                f" of {ours} (it is {package}'s {kind.__name__}); "
                "import every class of a run from one package"
            )
    return ""


def check_arguments(
    cls: Any,
    kwargs: Mapping[str, Any],
    where: str,
    added: Mapping[str, str] | None = None,
    args: Sequence[Any] = (),
    partial: bool = False,
) -> None:
    """Refuse arguments that ``cls`` does not take, and required ones that are
    missing (unless ``partial``: the rest come at the call), naming the key.
    ``added``: arguments xorch supplies itself, mapped to the config key they
    come from. ``args``: positional arguments (Hydra's ``_args_``)."""
    name = getattr(cls, "__name__", str(cls))
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
                    f"{source}: {name} takes no argument {key!r}" + _did_you_mean(key, named)
                )
    if partial:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        missing = re.search(r"missing a required argument: '(\w+)'", str(exc))
        if missing:
            raise BuildError(
                f"{where}: {name} needs argument {missing.group(1)!r}; "
                f"set {where}.{missing.group(1)}"
            ) from None
        raise BuildError(f"{where}: arguments do not fit {name}: {exc}") from None


def instantiate(
    entry: Mapping[str, Any],
    where: str,
    kind: type,
    added: Mapping[str, str] | None = None,
    **extra: Any,
) -> Any:
    """``{class_path: pkg.mod.Class, init_args: {...}}`` -> ``Class(**init_args, **extra)``,
    once ``Class`` is known to be a ``kind`` and the arguments to fit it.
    A ``_target_`` entry goes to ``hydra.utils.instantiate`` after the same checks."""
    cls = resolve_class(entry, where, kind)
    kwargs = {**entry_arguments(entry), **extra}
    if "_target_" not in entry:
        check_arguments(cls, kwargs, f"{where}.init_args", added)
        return cls(**kwargs)
    args = list(entry.get("_args_") or [])
    check_arguments(cls, kwargs, where, added, args)
    if entry.get("_recursive_", True):
        for i, value in enumerate(args):
            _check_nested(value, f"{where}._args_[{i}]")
        for key, value in entry_arguments(entry).items():
            _check_nested(value, f"{where}.{key}")
    return _hydra_instantiate(entry, where, extra)


def _check_nested(value: Any, where: str) -> None:
    """A nested ``_target_`` that does not import, or arguments that do not fit
    it, is a config error found before anything is built (Hydra would raise it
    half-way, wrapped in its own exception)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        for i, item in enumerate(value):
            _check_nested(item, f"{where}[{i}]")
        return
    if not isinstance(value, Mapping):
        return
    if "_target_" not in value:
        for key, item in value.items():
            _check_nested(item, f"{where}.{key}")
        return
    # The locator instantiate itself uses (hydra.utils.get_object logs its
    # failures to the console on top of raising).
    from hydra._internal.utils import _locate

    target = value["_target_"]
    try:
        obj = _locate(str(target))
    except (ImportError, ValueError) as exc:  # _locate wraps what the import raised
        raise BuildError(
            f"{where}._target_ {target!r}: cannot import it ({_one_line(exc.__cause__ or exc)})"
        ) from None
    args = list(value.get("_args_") or [])
    if callable(obj):
        check_arguments(
            obj, entry_arguments(value), where, args=args, partial=bool(value.get("_partial_"))
        )
    if value.get("_recursive_", True):
        for i, item in enumerate(args):
            _check_nested(item, f"{where}._args_[{i}]")
        for key, item in entry_arguments(value).items():
            _check_nested(item, f"{where}.{key}")


def _hydra_instantiate(entry: Mapping[str, Any], where: str, extra: Mapping[str, Any]) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(dict(entry), **extra)
    except InstantiationException as exc:
        # Hydra wraps what the user's constructor raised; the original keeps its
        # class (an OOM, a missing file), which decides the failure class.
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, InstantiationException):
            raise cause from None
        # Hydra's own refusal (a blocklisted _target_, a malformed key): a config
        # mistake, not a crash to retry (issue 23), in Hydra's words, whole.
        key = _full_key(exc)
        at = f"{where}.{key}" if key else where
        raise BuildError(f"{at}: hydra refused it: {_one_line(cause or exc)}") from None
    except TypeError as exc:
        if not str(exc).startswith("Instantiation:"):  # the user's constructor raised it
            raise
        raise BuildError(f"{where}: hydra refused it: {_one_line(exc)}") from None


def _full_key(exc: BaseException) -> str:
    """The key Hydra names at the end of its message (``full_key: x``)."""
    found = re.search(r"full_key: (\S+)\s*$", str(exc))
    return found.group(1) if found else ""


def choose_package(config: Mapping[str, Any]) -> ModuleType:
    """``lightning.pytorch`` or ``pytorch_lightning``, from the classes the
    config names (model, data, callbacks, loggers); see worker.lightning_package."""
    from worker.lightning_package import package_for

    entries: dict[str, Any] = {"model": config.get("model"), "data": config.get("data")}
    for i, entry in enumerate(config.get("callbacks") or []):
        entries[f"callbacks[{i}]"] = entry
    loggers = (config.get("pl_trainer") or {}).get("logger")
    for i, entry in enumerate(loggers if isinstance(loggers, list) else [loggers]):
        entries[f"pl_trainer.logger[{i}]"] = entry
    return package_for({where: _class_or_none(entry, where) for where, entry in entries.items()})


def _class_or_none(entry: Any, where: str) -> type | None:
    """The class an entry names, or None where it names none (the build then
    says what is wrong with it)."""
    if not isinstance(entry, Mapping) or not ("class_path" in entry or "_target_" in entry):
        return None
    try:
        return resolve_class(entry, where, object)
    except BuildError:
        return None


def build_model(config: Mapping[str, Any], pkg: ModuleType = pl) -> pl.LightningModule:
    return instantiate(config["model"], "model", pkg.LightningModule)


def build_data(config: Mapping[str, Any], pkg: ModuleType = pl) -> pl.LightningDataModule | None:
    entry = config.get("data")
    if entry is None:
        return None
    extra: dict[str, Any] = {}
    test_block = config.get("test_dataset")
    if isinstance(test_block, Mapping) and "size" in test_block:
        # test_dataset: {size: N} describes the test split of a built-in data module.
        extra["test_size"] = int(test_block["size"])
    added = {"test_size": "test_dataset.size"}
    return instantiate(entry, "data", pkg.LightningDataModule, added, **extra)


def _did_you_mean(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_line(exc: BaseException) -> str:
    """The whole message on one line: Hydra breaks its sentences over lines, and
    a first line alone stopped mid-sentence (issue 23)."""
    return " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
