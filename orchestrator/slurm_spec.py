"""The ``experiments_runner.slurm`` block -> a frozen ``SlurmSpec``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.setting_values import flag, gigabytes, refuse_unknown_keys, whole

__all__ = ["MAX_SLOTS", "SlurmSpec", "parse_slurm"]

MAX_SLOTS = 10_000  # max_parallel, runs_per_gpu, slurm.max_concurrent (README, "Limits")
_WHERE = "experiments_runner.slurm"


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


def parse_slurm(block: Any) -> SlurmSpec:
    where = _WHERE
    if not isinstance(block, dict):
        raise ConfigError(f"{where} must be a mapping (partition: ..., time_min: ...)")
    refuse_unknown_keys(block, tuple(SlurmSpec.__dataclass_fields__), where)
    for key in ("partition", "account", "qos"):
        if block.get(key) is not None and not isinstance(block[key], str):
            raise ConfigError(f"{where}.{key} must be a string, not {block[key]!r}")
    optional_ints = {
        k: None if block.get(k) is None else whole(block[k], f"{where}.{k}", minimum=1)
        for k in ("gpus_per_task", "cpus_per_task")
    }
    extra = block.get("additional_parameters") or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"{where}.additional_parameters must be a mapping of sbatch options")
    return SlurmSpec(
        partition=block.get("partition"),
        time_min=whole(block.get("time_min", 60), f"{where}.time_min", minimum=1),
        mem_gb=gigabytes(block.get("mem_gb"), f"{where}.mem_gb"),
        account=block.get("account"),
        qos=block.get("qos"),
        max_concurrent=whole(
            block.get("max_concurrent", 4), f"{where}.max_concurrent", 1, MAX_SLOTS
        ),
        requeue=flag(block.get("requeue", True), f"{where}.requeue"),
        additional_parameters=dict(extra),
        **optional_ints,
    )
