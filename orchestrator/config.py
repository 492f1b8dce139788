"""From a YAML file and command-line overrides to a validated, frozen ``StudySpec``.

Everything a user can get wrong in the config is caught here, before anything
touches the disk, and reported as one ``ConfigError`` line naming the key and
the fix. The training part of the config (everything but ``mode`` and
``experiments_runner``) is handed to the worker; its fingerprint lets a resume
notice that the training changed.

Loading, in order: the file is read with the safe loader; a file with a
``defaults:`` list is composed from its folder by Hydra (``orchestrator.compose``),
with the command-line overrides in Hydra's grammar, while a plain file gets
xorch's own ``key=value`` overrides; then every ``${...}`` is resolved by
OmegaConf, so what is validated, fingerprinted and sent to the worker is the
resolved config. The worker instantiates it (``class_path`` or ``_target_``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.command import check_command
from orchestrator.compose import (
    check_target_entry,
    compose_folder,
    has_interpolation,
    interpolated_roots,
    move_logger,
    resolve,
    trainer_arguments,
)
from orchestrator.errors import ConfigError
from orchestrator.ranks import with_devices
from orchestrator.run_shape import RunShape, run_shape
from orchestrator.runner_spec import (
    RUNNER_KEY,
    RUNNER_KEYS,
    RunnerSettings,
    kind_of,
    parse_runner,
    parse_seed,
)
from orchestrator.yaml_file import parse_yaml, read_config_file

__all__ = [
    "Mode",
    "StudySpec",
    "apply_overrides",
    "changed_keys",
    "load_study",
]


class Mode(str, enum.Enum):
    RUN_EXPERIMENTS = "run-experiments"
    TRAIN = "train"


@dataclass(frozen=True)
class StudySpec:
    """A whole validated config: how to run the study, and what each run trains."""

    config_path: Path
    mode: Mode
    runner: RunnerSettings
    training: Mapping[str, Any]
    train_seed: int | None = None  # mode: train only
    warnings: tuple[str, ...] = ()  # one line each, shown by launch and validate
    # Variant name -> its whole training config (the base with its changes), in the
    # config's order; empty for a study of one config.
    variants: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    # Derived from ``training`` when the spec is made (orchestrator.run_shape).
    shape: RunShape = dataclasses.field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", run_shape(self.training))

    def training_for(self, variant: str | None) -> Mapping[str, Any]:
        """What a run of ``variant`` trains (the base config for ``None``)."""
        return self.training if variant is None else self.variants[variant]

    @property
    def output_dir(self) -> Path:
        return Path(self.runner.output_base_dir).expanduser().resolve()

    @property
    def fingerprint(self) -> str:
        return training_fingerprint(self.training)

    @property
    def import_paths(self) -> tuple[str, ...]:
        """Where the worker looks for the user's own modules."""
        return (str(self.config_path.parent.resolve()), os.getcwd())


def training_fingerprint(training: Mapping[str, Any]) -> str:
    canonical = json.dumps(training, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two configs."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return sorted(
        k for k in flat_old.keys() | flat_new.keys() if flat_old.get(k) != flat_new.get(k)
    )


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


# --------------------------------------------------------------------------- loading


def load_study(config_path: Path | str, overrides: Iterable[str] = ()) -> StudySpec:
    """Read, override and validate a config. Touches nothing on disk."""
    path = Path(config_path)
    raw = read_config_file(path)
    notes: tuple[str, ...] = ()
    composed = "defaults" in raw  # Hydra's: the folder composes it, overrides in its grammar
    if composed:
        raw, notes = compose_folder(path, overrides)
    else:
        raw = apply_overrides(raw, overrides)
    referenced = interpolated_roots(raw)
    if composed or has_interpolation(raw):  # a composed config may hold Hydra's ??? too
        raw = resolve(raw)
    spec = _validate(path, raw, referenced)
    return dataclasses.replace(spec, warnings=notes + spec.warnings) if notes else spec


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``a.b=value`` items, values parsed as YAML, applied to a copy of ``config``."""
    result = copy.deepcopy(dict(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"override {item!r} is not KEY=VALUE; write e.g. pl_trainer.max_epochs=3"
            )
        try:
            value = parse_yaml(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(
                f"override {key}: {text!r} is not a YAML value; quote it or fix the brackets"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"override {key}: {exc}") from None
        blocked = _set_dotted(result, key, value)
        if blocked is not None:
            where, child = blocked
            raise ConfigError(
                f"override {key}: {where} is a {kind_of(child)}, not a mapping; "
                f"set {where}=... instead"
            )
    return result


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> tuple[str, Any] | None:
    """Set ``a.b.c`` in ``tree``, making the mappings on the way; or, where a
    value that is not a mapping stands on the way, leave ``tree`` as it was
    below it and return that key and its value for the caller's message."""
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return ".".join(parts[: depth + 1]), child
        node = child
    node[parts[-1]] = value
    return None


# --------------------------------------------------------------------------- validation

TOP_LEVEL_KEYS = (
    "mode",
    RUNNER_KEY,
    "model",
    "data",
    "pl_trainer",
    "trainer",
    "callbacks",
    "logger",
    "seed",
    "deterministic_cudnn",
    "test_dataset",
    "run_test",
    "command",  # a program to run instead of model and data (orchestrator.command)
    "resume_args",  # arguments added to a command only when there is a checkpoint
    "metrics_from_log",  # regular expressions that read a command's printed metrics
    "cwd",  # where a command runs: config_dir (default) or run_dir
)

# Keys that belong one level down: written at the top level they would be
# passed along and never used (a max_epochs that silently does nothing).
_NESTED_HOMES = {
    **{
        k: "pl_trainer"
        for k in (
            "max_epochs",
            "min_epochs",
            "max_steps",
            "accelerator",
            "devices",
            "precision",
            "strategy",
            "num_nodes",
            "gradient_clip_val",
            "accumulate_grad_batches",
            "check_val_every_n_epoch",
            "log_every_n_steps",
            "default_root_dir",
            "logger",
            "enable_checkpointing",
            "enable_progress_bar",
            "limit_train_batches",
            "limit_val_batches",
            "val_check_interval",
            "deterministic",
            "benchmark",
        )
    },
    **{k: RUNNER_KEY for k in RUNNER_KEYS},
}


# Top-level keys of the lightning-hydra-template layout that xorch does not use.
# Only warned about: `train: true` is not a typo of `trainer`.
_HYDRA_TEMPLATE_KEYS = ("train", "test", "task_name", "tags", "ckpt_path", "paths", "extras")


def _top_level_keys(
    path: Path, raw: Mapping[Any, Any], referenced: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """Refuse near-misses of our keys; the warnings for any other unknown block.

    Other blocks are passed to the worker as they are. One that some ``${...}``
    refers to (the seed's ``hyperparameters:`` and ``backbone:``) is known: it
    is how the config shares values. Any other is warned about."""
    warnings = []
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: top-level key {key!r} is not a string")
        if key in TOP_LEVEL_KEYS or key in referenced:
            continue
        if key in _HYDRA_TEMPLATE_KEYS:
            warnings.append(
                f"top-level key {key!r} (lightning-hydra-template's) is not used by xorch"
            )
            continue
        close = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1, cutoff=0.8)
        if close:
            raise ConfigError(f"unknown top-level key {key!r}: did you mean {close[0]!r}?")
        nested = difflib.get_close_matches(key, list(_NESTED_HOMES), n=1, cutoff=0.8)
        if nested:
            home = f"{_NESTED_HOMES[nested[0]]}.{nested[0]}"
            raise ConfigError(
                f"unknown top-level key {key!r}: did you mean {home!r}? "
                f"(move it into the {_NESTED_HOMES[nested[0]]} block)"
            )
        warnings.append(
            f"top-level key {key!r} is not one xorch knows; it is passed to the run's "
            "config unused unless the config refers to it (remove it if it is a typo)"
        )
    return tuple(warnings)


def _validate(
    path: Path, raw: dict[str, Any], referenced: frozenset[str] = frozenset()
) -> StudySpec:
    warnings = list(_top_level_keys(path, raw, referenced))
    mode = _mode(raw)
    if "seed" in raw and mode is Mode.RUN_EXPERIMENTS:
        warnings.append(
            f"top-level seed: {raw['seed']!r} is not used; xorch seeds each run with its "
            f"own seed from {RUNNER_KEY}"
        )
    training = _training(path, raw)

    train_seed = None
    if mode is Mode.TRAIN:
        if "command" in raw:
            raise ConfigError(
                "mode train does not run a command; use mode run-experiments with seeds: [N]"
            )
        train_seed = parse_seed(raw.get("seed"), "seed")
        runner = RunnerSettings(seeds=(train_seed,))
    else:
        block = raw.get(RUNNER_KEY)
        if block is None:
            raise ConfigError(
                f"mode run-experiments needs an {RUNNER_KEY} block with seeds or n_runs"
            )
        if not isinstance(block, dict):
            raise ConfigError(f"{RUNNER_KEY} must be a mapping, not a {kind_of(block)}")
        runner = parse_runner(block)
        _check_output_dir(runner.output_base_dir)
    # gpus_per_run > 1: pl_trainer.devices is set to it, or must agree (orchestrator.ranks).
    share = runner.gpus_per_run
    return StudySpec(
        config_path=path,
        mode=mode,
        runner=runner,
        # mode train: one run that sees every GPU, whatever devices says
        training=with_devices(training, share, "") if mode is Mode.RUN_EXPERIMENTS else training,
        train_seed=train_seed,
        warnings=tuple(warnings),
        variants={
            name: with_devices(
                _variant(path, raw, name, c), share, f"{RUNNER_KEY}.variants.{name}: "
            )
            for name, c in runner.variants.items()
        },
    )


def _variant(
    path: Path, raw: Mapping[str, Any], name: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The base config with one variant's dotted changes, checked like the base."""
    where = f"{RUNNER_KEY}.variants.{name}"
    config = copy.deepcopy(dict(raw))
    for key, value in changes.items():
        blocked = _set_dotted(config, key, copy.deepcopy(value))
        if blocked is not None:
            above, child = blocked
            raise ConfigError(
                f"{where}.{key}: {above} is a {kind_of(child)} in the config, not a "
                f"mapping; change {above} itself instead"
            )
    try:
        return _training(path, config)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _training(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The training part of a config (all but ``mode`` and the runner block), checked."""
    if "pl_trainer" in raw and "trainer" in raw:
        raise ConfigError("both pl_trainer and trainer are set; they are one key, keep one")
    trainer_key = "pl_trainer" if "pl_trainer" in raw else "trainer"
    trainer = raw.get(trainer_key)
    if trainer is not None and not isinstance(trainer, dict):
        raise ConfigError(
            f"pl_trainer must be a mapping of Trainer arguments, not a {kind_of(trainer)}"
        )
    if trainer is not None:
        raw = {**raw, trainer_key: trainer_arguments(trainer, trainer_key)}
    if "logger" in raw:
        raw = move_logger(raw, trainer_key)
    for key in ("resume_args", "metrics_from_log", "cwd"):
        if key in raw and "command" not in raw:
            raise ConfigError(f"{key} is set without command: remove it or add a command")
    if "command" in raw:
        check_command(path, raw)
    for key in ("model", "data"):
        if "command" not in raw and (key in raw or key == "model"):
            _class_entry(raw.get(key), key)
    callbacks = raw.get("callbacks")
    if isinstance(callbacks, dict) and not ({"_target_", "class_path"} & set(callbacks)):
        # Hydra's layout: callbacks by name (null drops one that a default added).
        callbacks = [entry for entry in callbacks.values() if entry is not None]
        raw = {**raw, "callbacks": callbacks}
    if callbacks is not None:
        if not isinstance(callbacks, list):
            raise ConfigError(
                "callbacks must be a list of {class_path, init_args} or _target_ entries "
                "(or, as Hydra writes it, a mapping of such entries by name)"
            )
        for i, entry in enumerate(callbacks):
            _class_entry(entry, f"callbacks[{i}]")
    for key in ("deterministic_cudnn", "run_test"):
        if key in raw and not isinstance(raw[key], bool):
            raise ConfigError(f"{key} must be true or false, not {raw[key]!r}")
    if "test_dataset" in raw and not isinstance(raw["test_dataset"], (dict, type(None))):
        raise ConfigError("test_dataset must be a mapping (for built-in data: {size: N})")

    training = {k: v for k, v in raw.items() if k not in ("mode", RUNNER_KEY)}
    if "trainer" in training:  # one spelling downstream
        training["pl_trainer"] = training.pop("trainer")
    return training


def _check_output_dir(value: str) -> None:
    """Only reads: the folder must be one that could be made (no file in the
    way, no symlink loop), so launch fails here and not after writing."""
    where = f"{RUNNER_KEY}.output_base_dir"
    path = Path(value).expanduser()
    try:
        resolved = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop: RuntimeError before Python 3.13
        raise ConfigError(
            f"{where} {value}: a symlink in it points back to itself; fix the link or "
            "choose another folder"
        ) from None
    for candidate in (resolved, *resolved.parents):
        if candidate.is_dir():
            return
        if candidate.is_symlink():  # dangling or looping: resolve() stopped at it
            raise ConfigError(
                f"{where} {value}: {candidate} is a broken or looping symlink; fix the link "
                "or choose another folder"
            )
        if candidate.exists():
            if candidate == resolved:
                raise ConfigError(
                    f"{where} {value} is a file, not a folder; choose a folder path "
                    "(or move the file away)"
                )
            raise ConfigError(
                f"{where} {value} cannot be made: {candidate} is a file; choose another folder"
            )


def _mode(raw: Mapping[str, Any]) -> Mode:
    value = raw.get("mode", Mode.RUN_EXPERIMENTS.value)
    try:
        return Mode(value)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ConfigError(f"mode: {value!r} is not one of {choices}") from None


def _class_entry(entry: Any, where: str) -> None:
    if isinstance(entry, dict) and "_target_" in entry:
        check_target_entry(entry, where)
        return
    if not isinstance(entry, dict) or not isinstance(entry.get("class_path"), str):
        raise ConfigError(
            f"{where} needs class_path: pkg.module.Class (and optional init_args: {{...}}), "
            "or _target_: pkg.module.Class with its arguments beside it"
        )
    if "." not in entry["class_path"]:
        raise ConfigError(
            f"{where}.class_path {entry['class_path']!r} must be dotted: pkg.module.Class"
        )
    unknown = set(entry) - {"class_path", "init_args"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; use class_path and init_args"
        )
    if not isinstance(entry.get("init_args", {}), dict):
        raise ConfigError(f"{where}.init_args must be a mapping of constructor arguments")
