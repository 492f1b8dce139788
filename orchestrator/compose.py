"""Hydra and OmegaConf configs in the parent: composing a ``defaults:`` list,
resolving ``${...}`` interpolations (with hydra-core and omegaconf themselves),
and reading Hydra's layout (``_target_`` entries, a ``trainer:`` with a
``_target_``, a top-level ``logger:``) into the shape the worker builds from.

Neither library imports torch, so the parent stays torch-free; both are imported
only when a config needs them, so a plain file costs nothing extra. Every
problem (a missing config group, a bad override, a reference to a key that does
not exist) is one ``ConfigError`` line naming the key.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from orchestrator.contract.child import RUN_DIR_MARK
from orchestrator.contract.limits import MAX_CONFIG_BYTES, mib
from orchestrator.errors import ConfigError
from orchestrator.setting_values import kind_of

__all__ = [
    "TRAINER_TARGETS",
    "check_hydra_keys",
    "check_target_entry",
    "compose_folder",
    "has_interpolation",
    "interpolated_roots",
    "move_logger",
    "refuse_unreadable_configs",
    "resolve",
    "trainer_arguments",
]

# The first name of a ``${name.more}`` reference: a top-level block the config
# draws on. Resolver calls (``${oc.env:X}``) match too, harmlessly.
_REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][\w-]*)")


def _strings(tree: Any) -> Iterable[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, Mapping):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _strings(value)


def has_interpolation(tree: Any) -> bool:
    return any("${" in text for text in _strings(tree))


def interpolated_roots(tree: Any) -> frozenset[str]:
    """The top-level names that some ``${...}`` in ``tree`` refers to."""
    return frozenset(m.group(1) for text in _strings(tree) for m in _REFERENCE.finditer(text))


def compose_folder(path: Path, overrides: Iterable[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Compose ``path`` (a config with a ``defaults:`` list) from its folder as
    ``@hydra.main`` would, with Hydra's override grammar for ``overrides``.
    Interpolations are left for ``resolve``, so the caller sees what they refer to.

    Also returns Hydra's warnings (a defaults list without ``_self_``), one line
    each, to be shown as xorch's own rather than as Python warnings with a path."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    folder = path.parent.resolve()
    refuse_unreadable_configs(folder)
    set_project_root(folder)
    _stand_in_for_colorlog()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            initialize_config_dir(config_dir=str(folder), version_base="1.3"),
        ):
            warnings.simplefilter("always")
            composed = compose(
                config_name=path.name, overrides=list(overrides), return_hydra_config=True
            )
    except (HydraException, OmegaConfBaseException) as exc:
        line = _first_line(exc)
        if line.startswith("Could not override"):
            line += " To add a key that the config lacks, write +KEY=VALUE."
        elif "Could not find" in line:
            line += "; check the group folder and the file name in the defaults list"
        raise ConfigError(f"{path}: {line}") from None
    except ValueError as exc:  # initialize_config_dir refuses some folders this way
        raise ConfigError(f"{path}: {_first_line(exc)}") from None
    except RecursionError:
        # Issue 23: Hydra follows a defaults list that reaches back to its own
        # file (a.yaml lists b, b.yaml lists a) until Python's stack runs out.
        raise ConfigError(
            f"{path}: the defaults lists form a cycle (a file's defaults lead back to "
            "itself); remove the entry that closes the loop"
        ) from None
    tree = OmegaConf.to_container(composed, resolve=False)
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the composed config is not a mapping of keys")
    _give_hydra_meanings(tree.pop("hydra", {}), cast(dict[str, Any], tree), path)
    notes = tuple(f"hydra: {str(w.message).splitlines()[0]}" for w in caught)
    return cast(dict[str, Any], tree), notes


# Files looked at before Hydra composes a folder: its config folders are small,
# and a folder that holds more (a project's data beside the config) is checked
# this far only.
_FOLDER_CHECK_ENTRIES = 5000


def refuse_unreadable_configs(folder: Path) -> None:
    """Hydra opens the YAML files a defaults list names with a plain ``open``:
    one that is a FIFO would block it forever, one past the config limit would
    be read whole. Issue 23: refuse them first, in one line, as xorch's own
    reader refuses the config file itself."""
    seen = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.endswith((".yaml", ".yml")):
                continue
            seen += 1
            if seen > _FOLDER_CHECK_ENTRIES:
                return
            file = Path(root, name)
            try:
                info = file.stat()
            except OSError:
                continue  # a dangling link: Hydra says so if a defaults list names it
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(
                    f"{file}: not a regular file; Hydra would wait on it forever when "
                    "composing this folder: move it out of the config folder"
                )
            if info.st_size > MAX_CONFIG_BYTES:
                raise ConfigError(
                    f"{file}: larger than the config limit of {mib(MAX_CONFIG_BYTES)}; "
                    "move it out of the config folder"
                )


# What ``${hydra:KEY}`` means inside an xorch run, where Hydra's own value is
# that of a run Hydra never starts: the run's folder (filled in by the child,
# see contract.child.RUN_DIR_MARK), the one job of a run. The other keys
# (runtime.cwd, runtime.choices, job.config_name, job.override_dirname, ...)
# keep the values Hydra's compose gave them.
_RUN_MEANINGS: dict[str, Any] = {
    "runtime.output_dir": RUN_DIR_MARK,
    "run.dir": RUN_DIR_MARK,
    "sweep.dir": RUN_DIR_MARK,
    "sweep.subdir": ".",
    "job.num": 0,
    "job.id": "0",
    "mode": "RUN",
}


def _give_hydra_meanings(node: Any, tree: dict[str, Any], path: Path) -> None:
    """Register the ``hydra`` resolver for this config: ``${hydra:KEY}`` is read
    from Hydra's own node with the run's meanings above (``job.name``: the
    config's name, as xorch runs no script), interpolations resolved against
    the whole config, as in a Hydra run."""
    from omegaconf import OmegaConf

    hydra_node = OmegaConf.create(node if isinstance(node, dict) else {})
    hydra_node.job.name = path.stem
    for key, value in _RUN_MEANINGS.items():
        OmegaConf.update(hydra_node, key, value, force_add=True)
    whole = OmegaConf.create({**tree, "hydra": hydra_node})

    def hydra_value(key: str) -> Any:
        found = OmegaConf.select(whole, f"hydra.{key}", default=_ABSENT)
        if found is _ABSENT or found == "???":
            raise ValueError(f"${{hydra:{key}}} has no value in an xorch run")
        return OmegaConf.to_container(found, resolve=True) if OmegaConf.is_config(found) else found

    OmegaConf.register_new_resolver("hydra", hydra_value, replace=True)


_ABSENT = object()


def _stand_in_for_colorlog() -> None:
    """lightning-hydra-template's ``hydra:`` group asks for hydra-colorlog's
    logging configs. xorch starts no Hydra run and uses none of its logging, so
    when the plugin is not installed empty ones stand in and the config composes."""
    import importlib.util

    try:
        if importlib.util.find_spec("hydra_plugins.hydra_colorlog") is not None:
            return
    except ModuleNotFoundError:  # no hydra_plugins namespace at all
        pass
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group in ("hydra/job_logging", "hydra/hydra_logging"):
        store.store(group=group, name="colorlog", node={})


def set_project_root(folder: Path) -> None:
    """Set ``PROJECT_ROOT`` as lightning-hydra-template's rootutils would: the nearest
    folder from ``folder`` upward that holds a ``.project-root`` file, so that
    ``${oc.env:PROJECT_ROOT}`` resolves. A value the environment already has wins."""
    if os.environ.get("PROJECT_ROOT"):
        return
    for candidate in (folder, *folder.parents):
        if (candidate / ".project-root").is_file():
            os.environ["PROJECT_ROOT"] = str(candidate)
            return


def resolve(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``${...}`` in ``tree`` replaced by its value, as OmegaConf resolves it."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(
            OmegaConf.create(dict(tree)), resolve=True, throw_on_missing=True
        )
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        where = f"{key}: " if key else ""
        if isinstance(exc, MissingMandatoryValue):  # Hydra's ??? placeholder
            raise ConfigError(
                f"{where}the value is ??? (required); set it in the config or as {key}=VALUE"
            ) from None
        if "HydraConfig was not set" in str(exc):
            # A file without a defaults list is not composed by Hydra: no ${hydra:...}.
            raise ConfigError(
                f"{where}${{hydra:...}} needs a config composed by Hydra (a defaults: "
                "list); write a plain value here"
            ) from None
        raise ConfigError(
            f"{where}{_first_line(exc)}; fix the interpolation or define the key it names"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the config cannot be resolved: {_first_line(exc)}") from None
    assert isinstance(resolved, dict)
    return cast(dict[str, Any], resolved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# What a Hydra ``trainer:`` block may name: xorch builds the Trainer itself
# (default_root_dir in the run folder, its checkpoint and heartbeat callbacks),
# so the block is read as the Trainer's keyword arguments.
# Every module path each package exports the Trainer class under (``lightning``
# re-exports it at its top level), spelled out so the parent needs no import.
TRAINER_TARGETS = ("lightning.pytorch.Trainer", "pytorch_lightning.Trainer")
_TRAINER_PATHS = frozenset(
    f"{package}{module}.Trainer"
    for package in ("lightning.pytorch", "pytorch_lightning")
    for module in ("", ".trainer", ".trainer.trainer")
) | {"lightning.Trainer"}

# Hydra's instantiate keys, allowed in a ``_target_`` entry next to its arguments.
_HYDRA_KEYS = ("_target_", "_args_", "_recursive_", "_convert_", "_partial_")


def trainer_arguments(trainer: dict[str, Any], key: str) -> dict[str, Any]:
    if "_target_" not in trainer:
        return trainer
    if str(trainer["_target_"]) not in _TRAINER_PATHS:
        raise ConfigError(
            f"{key}._target_ {trainer['_target_']!r}: xorch builds the Trainer itself; "
            f"name {' or '.join(TRAINER_TARGETS)}, or leave _target_ out"
        )
    special = sorted(k for k in trainer if k in _HYDRA_KEYS and k != "_target_")
    if special:
        raise ConfigError(f"{key}.{special[0]}: not used for the Trainer; remove it")
    return {k: v for k, v in trainer.items() if k != "_target_"}


def move_logger(raw: dict[str, Any], trainer_key: str) -> dict[str, Any]:
    """Hydra's top-level ``logger:`` (one entry, or entries by name) becomes the
    Trainer's ``logger`` argument."""
    value = raw["logger"]
    rest = {k: v for k, v in raw.items() if k != "logger"}
    if value is None:
        return rest
    trainer = dict(rest.get(trainer_key) or {})
    if "logger" in trainer:
        raise ConfigError(f"both logger and {trainer_key}.logger are set; keep one")
    if isinstance(value, dict) and not ("_target_" in value or "class_path" in value):
        # Entries by name, as lightning-hydra-template's instantiate_loggers reads
        # them: one that is null or names no class (an experiment config setting
        # ``logger.wandb.tags`` while no wandb logger is chosen) is skipped.
        value = [entry for entry in value.values() if _names_a_class(entry)]
        if not value:
            return rest
    for i, entry in enumerate(value if isinstance(value, list) else [value]):
        if not isinstance(entry, dict) or not ("_target_" in entry or "class_path" in entry):
            raise ConfigError(f"logger entry {i} needs _target_ (or class_path) naming a Logger")
    trainer["logger"] = value
    return {**rest, trainer_key: trainer}


def _names_a_class(entry: Any) -> bool:
    return isinstance(entry, dict) and ("_target_" in entry or "class_path" in entry)


def check_target_entry(entry: dict[str, Any], where: str) -> None:
    """A Hydra entry: ``_target_`` and the arguments beside it. Nested entries
    follow Hydra's own rules in the worker; this one must name a class there."""
    target = entry["_target_"]
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"{where}._target_ {target!r} must be dotted: pkg.module.Class")
    if "class_path" in entry or "init_args" in entry:
        raise ConfigError(
            f"{where}: _target_ and class_path/init_args are two styles; use one of them"
        )
    if entry.get("_partial_"):
        raise ConfigError(
            f"{where}._partial_: the {where} entry must build an object, not a partial; remove it"
        )
    check_hydra_keys(entry, where)


# Hydra's ``_convert_`` values (hydra.types.ConvertMode), as a config spells them.
_CONVERT_MODES = ("none", "partial", "object", "all")


def check_hydra_keys(tree: Any, where: str) -> None:
    """The shapes of Hydra's own keys in ``tree`` and every entry nested in it:
    Hydra refuses them only when the run builds (issue 23: ``_recursive_: maybe``
    was retried as a crash), yet reading them needs no user code."""
    if isinstance(tree, list):
        for i, item in enumerate(tree):
            check_hydra_keys(item, f"{where}[{i}]")
        return
    if not isinstance(tree, dict):
        return
    for flag in ("_recursive_", "_partial_"):
        if flag in tree and not isinstance(tree[flag], bool):
            raise ConfigError(f"{where}.{flag} {tree[flag]!r} must be true or false")
    if "_args_" in tree and not isinstance(tree["_args_"], list):
        raise ConfigError(
            f"{where}._args_ must be a list of positional arguments, not a "
            f"{kind_of(tree['_args_'])}; write _args_: [...] (or name them as keyword arguments)"
        )
    convert = tree.get("_convert_")
    if "_convert_" in tree and str(convert).lower() not in _CONVERT_MODES:
        raise ConfigError(
            f"{where}._convert_ {convert!r} must be one of {', '.join(_CONVERT_MODES)}"
        )
    for key, value in tree.items():
        if key == "_args_" or key not in _HYDRA_KEYS:  # _args_ may hold entries too
            check_hydra_keys(value, f"{where}.{key}")
