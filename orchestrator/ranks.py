"""Runs of several processes (Lightning's DDP ranks), parent side: how many
devices a run's Trainer asks for, its agreement with ``gpus_per_run``, and
whether a run starts ranks of its own.

Lightning's ``ddp`` strategy starts ranks 1..N-1 by running the child's command
line again (``python -m worker.train_one RUN_SPEC``); what a rank may write is
decided in ``worker.ranks``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from orchestrator.errors import ConfigError

__all__ = ["cpu_only", "device_count", "free_port", "starts_ranks", "with_devices"]

# Strategies that start their ranks with multiprocessing (spawn, fork) rather
# than by running the command line again; everything else named ddp* re-runs it.
_MULTIPROCESSING = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def device_count(value: Any) -> int | None:
    """The number of devices ``pl_trainer.devices`` names: 2, "2", [0, 1] or
    "0,1"; None for "auto" and -1 (all visible: whatever the slot gives)."""
    if value in ("auto", -1, "-1"):
        return None
    if isinstance(value, bool):
        return 0  # never a count: refused as a contradiction
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        parts = [p for p in text.split(",") if p.strip()]
        return len(parts) if "," in text else 0
    return 0


def with_devices(training: Mapping[str, Any], gpus_per_run: int, where: str) -> dict[str, Any]:
    """``training`` with ``pl_trainer.devices: gpus_per_run`` when it is absent
    (or ``auto``/-1, which would leave the launcher choice to chance); a
    ``devices`` that says otherwise is refused. Nothing is added for
    ``gpus_per_run: 1`` (a study's fingerprint must not move under it), where
    only more than one device on GPUs is refused (the slot has one), nor for a
    ``command:`` run (no Trainer of ours)."""
    if "command" in training:
        return dict(training)
    trainer = dict(training.get("pl_trainer") or {})
    if gpus_per_run == 1:
        count = device_count(trainer.get("devices", "auto"))
        if count is not None and count > 1 and trainer.get("accelerator") != "cpu":
            raise ConfigError(
                f"{where}pl_trainer.devices is {trainer['devices']!r} but each run gets one "
                f"GPU; set experiments_runner.gpus_per_run: {count} (or accelerator: cpu "
                "for CPU processes)"
            )
        return dict(training)
    if device_count(trainer.get("devices", "auto")) is None:
        trainer["devices"] = gpus_per_run
        return {**training, "pl_trainer": trainer}
    count = device_count(trainer["devices"])
    if count != gpus_per_run:
        raise ConfigError(
            f"{where}pl_trainer.devices is {trainer['devices']!r} but "
            f"experiments_runner.gpus_per_run is {gpus_per_run}; make them agree "
            f"(or drop devices: it is set to {gpus_per_run})"
        )
    return dict(training)


def starts_ranks(training: Mapping[str, Any]) -> bool:
    """Whether a run's Trainer starts processes by running the command line
    again: more than one device, or a ``ddp`` strategy by name (it sets up a
    process group, and so a rendezvous port, even on one device)."""
    if "command" in training:
        return False
    trainer = training.get("pl_trainer") or {}
    count = device_count(trainer.get("devices", "auto"))
    strategy = trainer.get("strategy")
    named_ddp = isinstance(strategy, str) and strategy.startswith("ddp")
    if isinstance(strategy, str) and strategy.startswith(_MULTIPROCESSING):
        return False
    return named_ddp or (count is not None and count > 1)


def free_port(taken: Collection[int] = ()) -> int:
    """A TCP port free on this machine now and not in ``taken`` (the ports of
    runs still starting up, which may not have bound theirs yet): each DDP run
    gets its own ``MASTER_PORT``, so concurrent runs never meet at one."""
    for _ in range(100):
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port
    raise OSError("no free TCP port for a run's MASTER_PORT")


def cpu_only(trainings: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every config (the base and each variant) says ``accelerator: cpu``:
    then ``gpus_per_run`` counts CPU processes, and no GPU is needed or asked for."""
    return all((t.get("pl_trainer") or {}).get("accelerator") == "cpu" for t in trainings)
