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

The checks live beside it: ``overrides`` (``key=value``), ``config_keys`` (the
top-level keys), ``training_config`` (the training part), ``runner_spec`` (the
``experiments_runner`` block).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.compose import compose_folder, has_interpolation, interpolated_roots, resolve
from orchestrator.config_keys import top_level_keys
from orchestrator.contract.command import placeholders_in
from orchestrator.errors import ConfigError
from orchestrator.file_kinds import pseudo_filesystem
from orchestrator.folds import check_fold_key, with_fold
from orchestrator.overrides import apply_overrides, set_dotted
from orchestrator.ranks import with_devices
from orchestrator.run_shape import RunShape, run_shape
from orchestrator.runner_spec import RUNNER_KEY, RunnerSettings, parse_runner
from orchestrator.search.spec import SEARCH_KEY, SearchSpec, parse_search, space_roots
from orchestrator.setting_values import kind_of, parse_seed
from orchestrator.training_config import training_part
from orchestrator.yaml_file import read_config_file

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
    search: SearchSpec | None = None  # a search: block (orchestrator.search)
    # Derived from ``training`` when the spec is made (orchestrator.run_shape).
    shape: RunShape = dataclasses.field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", run_shape(self.training))

    def training_for(self, variant: str | None) -> Mapping[str, Any]:
        """What a run of ``variant`` trains (the base config for ``None``)."""
        return self.training if variant is None else self.variants[variant]

    def run_config(self, variant: str | None, fold: int | None) -> dict[str, Any]:
        """What one run trains: ``variant``'s config with ``fold`` at the fold key."""
        return with_fold(self.training_for(variant), self.runner.folds, fold)

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


# --------------------------------------------------------------------------- validation


def _validate(
    path: Path, raw: dict[str, Any], referenced: frozenset[str] = frozenset()
) -> StudySpec:
    warnings = list(top_level_keys(path, raw, referenced | space_roots(raw.get(SEARCH_KEY))))
    mode = _mode(raw)
    # lightning-hydra-template's train.yaml says `seed: null`: no seed, nothing ignored.
    if raw.get("seed") is not None and mode is Mode.RUN_EXPERIMENTS:
        warnings.append(
            f"top-level seed: {raw['seed']!r} is not used; xorch seeds each run with its "
            f"own seed from {RUNNER_KEY}"
        )
    training = training_part(path, raw)

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
    search = _search(raw, mode, runner, training)
    variants = {
        name: with_devices(_variant(path, raw, name, c), share, f"{RUNNER_KEY}.variants.{name}: ")
        for name, c in runner.variants.items()
    }
    _check_folds(raw, runner, training, variants)
    return StudySpec(
        config_path=path,
        mode=mode,
        runner=runner,
        # mode train: one run that sees every GPU, whatever devices says
        training=with_devices(training, share, "") if mode is Mode.RUN_EXPERIMENTS else training,
        train_seed=train_seed,
        warnings=tuple(warnings),
        search=search,
        variants=variants,
    )


def _check_folds(
    raw: Mapping[str, Any],
    runner: RunnerSettings,
    training: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
) -> None:
    """The fold key is in the training config (and in every variant's); ``{fold}``
    in a command only with folds."""
    command = "command" in training
    if runner.folds is None:
        arguments = [*(raw.get("command") or []), *(raw.get("resume_args") or [])]
        if command and any("fold" in placeholders_in(str(a)) for a in arguments):
            raise ConfigError(
                "command: {fold} is given only in a study with folds; add "
                f"{RUNNER_KEY}.folds: {{n: 5}} or remove {{fold}}"
            )
        return
    check_fold_key(runner.folds, training, command, "")
    for name, config in variants.items():
        check_fold_key(runner.folds, config, command, f"{RUNNER_KEY}.variants.{name}: ")


def _variant(
    path: Path, raw: Mapping[str, Any], name: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The base config with one variant's dotted changes, checked like the base."""
    where = f"{RUNNER_KEY}.variants.{name}"
    config = copy.deepcopy(dict(raw))
    for key, value in changes.items():
        blocked = set_dotted(config, key, copy.deepcopy(value))
        if blocked is not None:
            above, child = blocked
            raise ConfigError(
                f"{where}.{key}: {above} is a {kind_of(child)} in the config, not a "
                f"mapping; change {above} itself instead"
            )
    try:
        return training_part(path, config)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _search(
    raw: Mapping[str, Any], mode: Mode, runner: RunnerSettings, training: Mapping[str, Any]
) -> SearchSpec | None:
    if SEARCH_KEY not in raw:
        return None
    if mode is Mode.TRAIN:
        raise ConfigError(f"{SEARCH_KEY} runs many trials; use mode run-experiments with it")
    if runner.variants:
        raise ConfigError(
            f"{SEARCH_KEY} and {RUNNER_KEY}.variants cannot go together: the search's seed "
            f"study makes its own variants (best, and baseline with {SEARCH_KEY}.baseline: "
            "true); remove the variants block"
        )
    return parse_search(
        raw[SEARCH_KEY], training, runner.seeds, runner.summary_metrics, runner.goal
    )


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
            kind = pseudo_filesystem(candidate)
            if kind is not None:
                raise ConfigError(
                    f"{where} {value} is in {candidate}, on the kernel's {kind} filesystem, "
                    "which holds no files of ours; choose a folder on a disk"
                )
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
