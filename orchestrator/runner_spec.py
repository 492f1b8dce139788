"""The ``experiments_runner`` block: how to run a study (seeds, output, failure
policy, parallel slots, launcher, executor), validated into a frozen ``RunnerSettings``.

Every mistake is a ``ConfigError`` naming the key and the fix.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.adaptive import AdaptiveRule, check_metric, parse_adaptive
from orchestrator.errors import ConfigError

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "MAX_GPUS_PER_RUN",
    "MAX_RUNS",
    "MAX_SEED",
    "MAX_SLOTS",
    "RUNNER_KEY",
    "RUNNER_KEYS",
    "VARIANT_NAME",
    "Executor",
    "LauncherKind",
    "OnFailure",
    "RunnerSettings",
    "SlurmSpec",
    "kind_of",
    "parse_runner",
    "parse_seed",
]

MAX_SEED = 2**31 - 1
# Documented limits (README, "Limits"). Bookkeeping grows with the run count
# (the state is rewritten after every attempt), and a slot list is built up
# front, so past these a study would crawl or exhaust memory instead of running.
MAX_RUNS = 100_000
MAX_SLOTS = 10_000  # max_parallel, runs_per_gpu, slurm.max_concurrent
MAX_GPUS_PER_RUN = 64  # gpus_per_run: one node's GPUs (runs span one node)
DEFAULT_OUTPUT_DIR = "outputs/experiments_runner"
RUNNER_KEY = "experiments_runner"


class OnFailure(str, enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"


class LauncherKind(str, enum.Enum):
    SPAWN = "spawn"  # a fresh Python per run
    FORKSERVER = "forkserver"  # forked from a helper that imported torch once


class Executor(str, enum.Enum):
    LOCAL = "local"  # children on this machine
    SLURM = "slurm"  # one Slurm job per run, through submitit


@dataclass(frozen=True)
class SlurmSpec:
    """The ``experiments_runner.slurm`` block."""

    partition: str | None = None
    time_min: int = 60
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    max_concurrent: int = 4  # runs in the queue at once
    requeue: bool = True  # on preemption or near the time limit, requeue and continue
    additional_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunnerSettings:
    """The validated ``experiments_runner`` block."""

    seeds: tuple[int, ...] | None = None
    n_runs: int | None = None  # with adaptive seeds: their min, the runs planned at first
    adaptive: AdaptiveRule | None = None  # n_runs: {min, max, until}
    output_base_dir: str = DEFAULT_OUTPUT_DIR
    save_summary: bool = True
    summary_metrics: tuple[str, ...] = ("val/loss",)
    resume: bool = False
    on_failure: OnFailure = OnFailure.CONTINUE
    max_retries: int = 1
    run_timeout: float | None = None
    hang_timeout: float | None = 1800.0
    grace_period: float = 30.0
    gpus: Literal["auto"] | tuple[int, ...] = "auto"  # () means none
    runs_per_gpu: int = 1
    gpus_per_run: int = 1  # > 1: each run gets a group of GPUs (DDP, see orchestrator.ranks)
    max_parallel: int | None = None  # None: one per GPU slot, or 1 without GPUs
    min_free_gpu_mem_gb: float | None = None
    launcher: LauncherKind = LauncherKind.FORKSERVER
    executor: Executor = Executor.LOCAL
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    # name -> {dotted.key: value}: each variant's changes to the training config,
    # in the config's order. Empty: the study is one config.
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    compare_to: str | None = None  # the reference variant (the first by default)
    goal: Mapping[str, str] = field(default_factory=dict)  # metric -> "min" | "max"

    @property
    def run_count(self) -> int:
        if self.seeds is not None:
            return len(self.seeds)
        assert self.n_runs is not None
        return self.n_runs

    @property
    def heartbeat_interval_s(self) -> float:
        # Several beats per hang window, so one slow write is never a "hang".
        if self.hang_timeout is None:
            return 2.0
        return max(0.05, min(2.0, self.hang_timeout / 4))


# The block's YAML keys: every setting but ``adaptive``, which n_runs carries.
RUNNER_KEYS = tuple(k for k in RunnerSettings.__dataclass_fields__ if k != "adaptive")


def _refuse_unknown_keys(block: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in block:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def parse_runner(block: Mapping[str, Any]) -> RunnerSettings:
    _refuse_unknown_keys(block, RUNNER_KEYS, RUNNER_KEY)
    p = f"{RUNNER_KEY}."
    seeds = block.get("seeds")
    n_runs = block.get("n_runs")
    if seeds is None and n_runs is None:
        raise ConfigError(f"{RUNNER_KEY} needs seeds: [42, 101, 28] or n_runs: 5")
    seed_tuple: tuple[int, ...] | None = None
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds:
            raise ConfigError(f"{p}seeds must be a non-empty list of integers, like [42, 101, 28]")
        if len(seeds) > MAX_RUNS:
            raise ConfigError(
                f"{p}seeds lists {len(seeds):,} seeds; the limit is {MAX_RUNS:,} runs per "
                "study: split it into several studies"
            )
        seed_tuple = tuple(parse_seed(s, f"{p}seeds[{i}]") for i, s in enumerate(seeds))
        seen: set[int] = set()
        for i, s in enumerate(seed_tuple):  # a set, not list.count: linear at 100,000 seeds
            if s in seen:
                raise ConfigError(
                    f"{p}seeds has {s} more than once (again at seeds[{i}]); seeds must be unique"
                )
            seen.add(s)
    adaptive = None
    if isinstance(n_runs, dict):
        if seed_tuple is not None:
            raise ConfigError(
                f"{p}n_runs: a mapping (adaptive seeds) draws its own seeds; drop seeds, "
                "or give n_runs a number"
            )
        adaptive = parse_adaptive(n_runs, MAX_RUNS)
        n_runs = adaptive.min_seeds
    if n_runs is not None:
        n_runs = _int(n_runs, f"{p}n_runs", minimum=1, maximum=MAX_RUNS)
        if seed_tuple is not None and n_runs != len(seed_tuple):
            raise ConfigError(
                f"{p}n_runs is {n_runs} but seeds lists {len(seed_tuple)}; "
                "they must agree (or drop n_runs)"
            )
    out = block.get("output_base_dir", DEFAULT_OUTPUT_DIR)
    if not isinstance(out, str) or not out.strip():
        raise ConfigError(f"{p}output_base_dir must be a folder path, like outputs/my_study")
    metrics = block.get("summary_metrics", ["val/loss"])
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigError(f"{p}summary_metrics must be a list of metric names, like [val/loss]")
    if adaptive is not None:
        check_metric(adaptive, metrics)
    on_failure = block.get("on_failure", OnFailure.CONTINUE.value)
    try:
        on_failure_enum = OnFailure(on_failure)
    except ValueError:
        raise ConfigError(f"{p}on_failure must be continue or stop, not {on_failure!r}") from None
    max_parallel = block.get("max_parallel")
    launcher = block.get("launcher", LauncherKind.FORKSERVER.value)
    try:
        launcher_kind = LauncherKind(launcher)
    except ValueError:
        raise ConfigError(f"{p}launcher must be spawn or forkserver, not {launcher!r}") from None
    executor = block.get("executor", Executor.LOCAL.value)
    try:
        executor_kind = Executor(executor)
    except ValueError:
        raise ConfigError(f"{p}executor must be local or slurm, not {executor!r}") from None
    variants = _variants(block.get("variants"))
    if variants and seed_tuple is not None and len(seed_tuple) * len(variants) > MAX_RUNS:
        raise ConfigError(
            f"{p}variants: {len(variants)} variants x {len(seed_tuple):,} seeds is over the "
            f"limit of {MAX_RUNS:,} runs per study: split it into several studies"
        )
    compare_to = block.get("compare_to")
    if compare_to is not None and compare_to not in variants:
        names = ", ".join(variants) or "none: add a variants block"
        raise ConfigError(
            f"{p}compare_to is {_short(compare_to)}, which is not a variant; variants: {names}"
        )
    if variants and compare_to is None:
        compare_to = next(iter(variants))
    runs_per_gpu = _int(block.get("runs_per_gpu", 1), f"{p}runs_per_gpu", 1, MAX_SLOTS)
    gpus_per_run = _int(block.get("gpus_per_run", 1), f"{p}gpus_per_run", 1, MAX_GPUS_PER_RUN)
    if runs_per_gpu > 1 and gpus_per_run > 1:
        raise ConfigError(
            f"{p}runs_per_gpu is {runs_per_gpu} and {p}gpus_per_run is {gpus_per_run}: a run "
            "on several GPUs has them to itself; set runs_per_gpu: 1 or gpus_per_run: 1"
        )
    slurm = _slurm(block.get("slurm") or {})
    if gpus_per_run > 1 and slurm.gpus_per_task not in (None, gpus_per_run):
        raise ConfigError(
            f"{p}slurm.gpus_per_task is {slurm.gpus_per_task} but {p}gpus_per_run is "
            f"{gpus_per_run}; a run is one task with all its GPUs: drop gpus_per_task"
        )
    return RunnerSettings(
        variants=variants,
        compare_to=compare_to,
        goal=_goal(block.get("goal")),
        executor=executor_kind,
        slurm=slurm,
        launcher=launcher_kind,
        gpus=_gpus(block.get("gpus", "auto")),
        runs_per_gpu=runs_per_gpu,
        gpus_per_run=gpus_per_run,
        max_parallel=(
            None if max_parallel is None else _int(max_parallel, f"{p}max_parallel", 1, MAX_SLOTS)
        ),
        min_free_gpu_mem_gb=_gigabytes(block.get("min_free_gpu_mem_gb"), f"{p}min_free_gpu_mem_gb"),
        seeds=seed_tuple,
        n_runs=n_runs,
        adaptive=adaptive,
        output_base_dir=out,
        save_summary=_bool(block.get("save_summary", True), f"{p}save_summary"),
        summary_metrics=tuple(metrics),
        resume=_bool(block.get("resume", False), f"{p}resume"),
        on_failure=on_failure_enum,
        max_retries=_int(block.get("max_retries", 1), f"{p}max_retries", minimum=0),
        run_timeout=_seconds(
            block.get("run_timeout"), f"{p}run_timeout", optional=True, positive=True
        ),
        hang_timeout=_seconds(
            block.get("hang_timeout", 1800), f"{p}hang_timeout", optional=True, positive=True
        ),
        grace_period=_seconds(block.get("grace_period", 30), f"{p}grace_period", optional=False)
        or 0.0,
    )


# A variant names a folder under the study: one plain path component.
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Keys a variant may not change: they say how the study runs, not what a run trains.
_NOT_TRAINING = (RUNNER_KEY, "mode", "seed")


def _variants(block: Any) -> dict[str, dict[str, Any]]:
    where = f"{RUNNER_KEY}.variants"
    if block is None:
        return {}
    if not isinstance(block, dict) or not block:
        raise ConfigError(
            f"{where} must be a mapping of names to changes, like "
            "{baseline: {}, wide: {model.init_args.hidden: 256}}"
        )
    variants: dict[str, dict[str, Any]] = {}
    for name, changes in block.items():
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or name.endswith("."):
            raise ConfigError(
                f"{where}: {_short(name)} is not a usable variant name; use letters, digits, "
                "_ . - (it names a folder, like baseline or lr_1e-3)"
            )
        if changes is None:
            changes = {}
        if not isinstance(changes, dict):
            raise ConfigError(
                f"{where}.{name} must be a mapping of dotted keys to values, like "
                f"{{model.init_args.lr: 0.01}}, not a {kind_of(changes)}"
            )
        for key in changes:
            parts = key.split(".") if isinstance(key, str) else [""]
            if any(not part for part in parts):
                raise ConfigError(
                    f"{where}.{name}: {_short(key)} is not a dotted key like model.init_args.lr"
                )
            if parts[0] in _NOT_TRAINING:
                raise ConfigError(
                    f"{where}.{name}.{key}: a variant changes the training config only; "
                    f"{parts[0]} is the same for every variant"
                )
        variants[name] = dict(changes)
    return variants


def _goal(block: Any) -> dict[str, str]:
    where = f"{RUNNER_KEY}.goal"
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(
            f"{where} must be a mapping of metric to min or max, like {{val/loss: min}}"
        )
    for metric, way in block.items():
        if not isinstance(metric, str) or not metric or way not in ("min", "max"):
            raise ConfigError(
                f"{where}.{metric}: {_short(way)} is not min or max (which way is better)"
            )
    return dict(block)


def parse_seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {value!r} is not an integer seed; use a whole number like 42")
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{where}: {value} is outside 0..{MAX_SEED} (2**31-1)")
    return value


def _int(value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, not {_short(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(
            f"{where} is {value:,}; the limit is {maximum:,} (see the README's Limits)"
        )
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    return value


def _seconds(value: Any, where: str, optional: bool, positive: bool = False) -> float | None:
    """A duration: a finite number >= 0 (> 0 with ``positive``: a zero timeout
    would fail every run at once; null is how a config says "no limit")."""
    return _amount(value, where, optional, "seconds", positive)


def _gigabytes(value: Any, where: str) -> float | None:
    """A memory size in GB: a finite number >= 0, or null for no limit."""
    return _amount(value, where, optional=True, unit="GB", positive=False)


def _amount(value: Any, where: str, optional: bool, unit: str, positive: bool) -> float | None:
    """A finite number >= 0 (> 0 with ``positive``) of ``unit``; None for null
    when ``optional``."""
    if value is None and optional:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        also = " (null for no limit)" if optional else ""
        raise ConfigError(f"{where} must be a number of {unit} {bound}{also}, not {_short(value)}")
    return float(value)


def _gpus(value: Any) -> Literal["auto"] | tuple[int, ...]:
    if value == "auto":
        return "auto"
    if value is None or value == "none" or value == []:
        return ()
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        if len(set(value)) != len(value):
            raise ConfigError(f"{RUNNER_KEY}.gpus lists a GPU twice: {value}")
        return tuple(value)
    raise ConfigError(f"{RUNNER_KEY}.gpus must be auto, none or a list of GPU ids like [0, 1]")


def kind_of(value: Any) -> str:
    names: dict[type, str] = {list: "list", dict: "mapping", str: "string"}
    return names.get(type(value), type(value).__name__)


def _slurm(block: Any) -> SlurmSpec:
    where = f"{RUNNER_KEY}.slurm"
    if not isinstance(block, dict):
        raise ConfigError(f"{where} must be a mapping (partition: ..., time_min: ...)")
    _refuse_unknown_keys(block, tuple(SlurmSpec.__dataclass_fields__), where)
    for key in ("partition", "account", "qos"):
        if block.get(key) is not None and not isinstance(block[key], str):
            raise ConfigError(f"{where}.{key} must be a string, not {block[key]!r}")
    optional_ints = {
        k: None if block.get(k) is None else _int(block[k], f"{where}.{k}", minimum=1)
        for k in ("gpus_per_task", "cpus_per_task")
    }
    extra = block.get("additional_parameters") or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"{where}.additional_parameters must be a mapping of sbatch options")
    return SlurmSpec(
        partition=block.get("partition"),
        time_min=_int(block.get("time_min", 60), f"{where}.time_min", minimum=1),
        mem_gb=_gigabytes(block.get("mem_gb"), f"{where}.mem_gb"),
        account=block.get("account"),
        qos=block.get("qos"),
        max_concurrent=_int(
            block.get("max_concurrent", 4), f"{where}.max_concurrent", 1, MAX_SLOTS
        ),
        requeue=_bool(block.get("requeue", True), f"{where}.requeue"),
        additional_parameters=dict(extra),
        **optional_ints,
    )
