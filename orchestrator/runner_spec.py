"""The ``experiments_runner`` block: how to run a study (seeds, output, failure
policy, parallel slots, launcher, executor), validated into a frozen ``RunnerSettings``.

Every mistake is a ``ConfigError`` naming the key and the fix. The blocks inside
it have their own parsers: ``slurm_spec`` (``slurm``), ``variants_spec``
(``variants``, ``goal``), ``adaptive_spec`` (``n_runs: {min, max, until}``);
``setting_values`` checks single values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from orchestrator.adaptive_spec import check_metric, parse_adaptive
from orchestrator.errors import ConfigError
from orchestrator.folds import parse_folds
from orchestrator.rerun import RunChoice, parse_overwrite
from orchestrator.setting_values import (
    MAX_SEED,
    flag,
    gigabytes,
    kind_of,
    parse_seed,
    refuse_unknown_keys,
    seconds,
    short,
    whole,
)
from orchestrator.slurm_spec import MAX_SLOTS, SlurmSpec, parse_slurm
from orchestrator.state import AdaptiveRule, FoldSpec
from orchestrator.variants_spec import VARIANT_NAME, parse_goal, parse_variants

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

# Documented limits (README, "Limits"). Bookkeeping grows with the run count
# (the state is rewritten after every attempt), and a slot list is built up
# front, so past these a study would crawl or exhaust memory instead of running.
MAX_RUNS = 100_000
# MAX_SLOTS (slurm_spec): max_parallel, runs_per_gpu, slurm.max_concurrent
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
    # Completed runs to run again on a launch without --resume (orchestrator.rerun).
    overwrite: RunChoice | None = None
    # The metric that picks the representative and the best run (orchestrator.representative);
    # None: the first of summary_metrics.
    representative_metric: str | None = None
    folds: FoldSpec | None = None  # every seed runs every fold (orchestrator.folds)

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


_P = f"{RUNNER_KEY}."


def parse_runner(block: Mapping[str, Any]) -> RunnerSettings:
    """The block -> ``RunnerSettings``; its checks run in this order, so the
    first mistake of a block is always the one reported."""
    refuse_unknown_keys(block, RUNNER_KEYS, RUNNER_KEY)
    p = _P
    seed_tuple, n_runs, adaptive = _seeds_and_count(block)
    out = block.get("output_base_dir", DEFAULT_OUTPUT_DIR)
    if not isinstance(out, str) or not out.strip():
        raise ConfigError(f"{p}output_base_dir must be a folder path, like outputs/my_study")
    metrics = _summary_metrics(block.get("summary_metrics", ["val/loss"]))
    if adaptive is not None:
        check_metric(adaptive, metrics)
    on_failure = _choice(OnFailure, block.get("on_failure", OnFailure.CONTINUE.value), "on_failure")
    max_parallel = block.get("max_parallel")
    launcher = _choice(
        LauncherKind, block.get("launcher", LauncherKind.FORKSERVER.value), "launcher"
    )
    executor = _choice(Executor, block.get("executor", Executor.LOCAL.value), "executor")
    variants, compare_to = _variants_and_reference(block, seed_tuple)
    runs_per_gpu, gpus_per_run, slurm = _placement(block)
    folds = parse_folds(block.get("folds"), adaptive is not None)
    _check_run_total(seed_tuple, n_runs, len(variants), folds)
    return RunnerSettings(
        folds=folds,
        variants=variants,
        compare_to=compare_to,
        goal=parse_goal(block.get("goal")),
        overwrite=parse_overwrite(block.get("overwrite")),
        representative_metric=_metric_name(block.get("representative_metric")),
        executor=executor,
        slurm=slurm,
        launcher=launcher,
        gpus=_gpus(block.get("gpus", "auto")),
        runs_per_gpu=runs_per_gpu,
        gpus_per_run=gpus_per_run,
        max_parallel=(
            None if max_parallel is None else whole(max_parallel, f"{p}max_parallel", 1, MAX_SLOTS)
        ),
        min_free_gpu_mem_gb=gigabytes(block.get("min_free_gpu_mem_gb"), f"{p}min_free_gpu_mem_gb"),
        seeds=seed_tuple,
        n_runs=n_runs,
        adaptive=adaptive,
        output_base_dir=out,
        save_summary=flag(block.get("save_summary", True), f"{p}save_summary"),
        summary_metrics=metrics,
        resume=flag(block.get("resume", False), f"{p}resume"),
        on_failure=on_failure,
        max_retries=whole(block.get("max_retries", 1), f"{p}max_retries", minimum=0),
        run_timeout=seconds(
            block.get("run_timeout"), f"{p}run_timeout", optional=True, positive=True
        ),
        hang_timeout=seconds(
            block.get("hang_timeout", 1800), f"{p}hang_timeout", optional=True, positive=True
        ),
        grace_period=seconds(block.get("grace_period", 30), f"{p}grace_period", optional=False)
        or 0.0,
    )


def _seeds_and_count(
    block: Mapping[str, Any],
) -> tuple[tuple[int, ...] | None, int | None, AdaptiveRule | None]:
    """``seeds`` and ``n_runs`` (a number, or the mapping of adaptive seeds)."""
    p = _P
    seeds = block.get("seeds")
    n_runs = block.get("n_runs")
    if seeds is None and n_runs is None:
        raise ConfigError(f"{RUNNER_KEY} needs seeds: [42, 101, 28] or n_runs: 5")
    seed_tuple = None if seeds is None else _seed_list(seeds)
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
        n_runs = whole(n_runs, f"{p}n_runs", minimum=1, maximum=MAX_RUNS)
        if seed_tuple is not None and n_runs != len(seed_tuple):
            raise ConfigError(
                f"{p}n_runs is {n_runs} but seeds lists {len(seed_tuple)}; "
                "they must agree (or drop n_runs)"
            )
    return seed_tuple, n_runs, adaptive


def _seed_list(seeds: Any) -> tuple[int, ...]:
    p = _P
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
    return seed_tuple


def _summary_metrics(metrics: Any) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigError(f"{_P}summary_metrics must be a list of metric names, like [val/loss]")
    return tuple(metrics)


def _metric_name(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise ConfigError(f"{_P}representative_metric must be a metric name, like val/loss")


_Choice = TypeVar("_Choice", bound=enum.Enum)
_CHOICES: dict[type[enum.Enum], str] = {
    OnFailure: "continue or stop",
    LauncherKind: "spawn or forkserver",
    Executor: "local or slurm",
}


def _choice(kind: type[_Choice], value: Any, key: str) -> _Choice:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{_P}{key} must be {_CHOICES[kind]}, not {value!r}") from None


def _variants_and_reference(
    block: Mapping[str, Any], seed_tuple: tuple[int, ...] | None
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``variants`` and ``compare_to`` (the first variant by default)."""
    p = _P
    variants = parse_variants(block.get("variants"))
    if variants and seed_tuple is not None and len(seed_tuple) * len(variants) > MAX_RUNS:
        raise ConfigError(
            f"{p}variants: {len(variants)} variants x {len(seed_tuple):,} seeds is over the "
            f"limit of {MAX_RUNS:,} runs per study: split it into several studies"
        )
    compare_to = block.get("compare_to")
    if compare_to is not None and compare_to not in variants:
        names = ", ".join(variants) or "none: add a variants block"
        raise ConfigError(
            f"{p}compare_to is {short(compare_to)}, which is not a variant; variants: {names}"
        )
    if variants and compare_to is None:
        compare_to = next(iter(variants))
    return variants, compare_to


def _check_run_total(
    seeds: tuple[int, ...] | None, n_runs: int | None, variants: int, folds: FoldSpec | None
) -> None:
    """Folds multiply the runs: seeds x folds x variants must stay within MAX_RUNS."""
    if folds is None:
        return
    total = (len(seeds) if seeds is not None else n_runs or 0) * folds.n * max(1, variants)
    if total > MAX_RUNS:
        raise ConfigError(
            f"{_P}folds: {folds.n} folds make {total:,} runs, over the limit of {MAX_RUNS:,} "
            "runs per study: split it into several studies"
        )


def _placement(block: Mapping[str, Any]) -> tuple[int, int, SlurmSpec]:
    """``runs_per_gpu``, ``gpus_per_run`` and the ``slurm`` block, which must agree."""
    p = _P
    runs_per_gpu = whole(block.get("runs_per_gpu", 1), f"{p}runs_per_gpu", 1, MAX_SLOTS)
    gpus_per_run = whole(block.get("gpus_per_run", 1), f"{p}gpus_per_run", 1, MAX_GPUS_PER_RUN)
    if runs_per_gpu > 1 and gpus_per_run > 1:
        raise ConfigError(
            f"{p}runs_per_gpu is {runs_per_gpu} and {p}gpus_per_run is {gpus_per_run}: a run "
            "on several GPUs has them to itself; set runs_per_gpu: 1 or gpus_per_run: 1"
        )
    slurm = parse_slurm(block.get("slurm") or {})
    if gpus_per_run > 1 and slurm.gpus_per_task not in (None, gpus_per_run):
        raise ConfigError(
            f"{p}slurm.gpus_per_task is {slurm.gpus_per_task} but {p}gpus_per_run is "
            f"{gpus_per_run}; a run is one task with all its GPUs: drop gpus_per_task"
        )
    return runs_per_gpu, gpus_per_run, slurm


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
