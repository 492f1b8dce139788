"""Callbacks the worker adds to every Trainer."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from orchestrator.contract.records import Heartbeat, HeartbeatPhase
from worker.seeding import capture_rng_state, restore_rng_state

__all__ = ["HeartbeatCallback", "ResumeStateCallback", "scalar_metrics"]

CHECKPOINT_KEY = "xorch"


class HeartbeatCallback(pl.Callback):
    """Rewrites heartbeat.json at most every ``interval_s`` while the run makes progress.

    Beats come only from the training thread's hooks: a background thread would
    keep beating through a deadlocked DataLoader, which is exactly the hang the
    parent must see.
    """

    def __init__(self, path: Path, interval_s: float, resumed_from: str | None) -> None:
        self.path = path
        self.interval_s = interval_s
        self.resumed_from = resumed_from
        self.first_batch_time: float | None = None
        self._last = 0.0

    def beat(self, trainer: pl.Trainer | None, phase: HeartbeatPhase, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        Heartbeat(
            pid=os.getpid(),
            time=now,
            phase=phase,
            epoch=trainer.current_epoch if trainer else 0,
            global_step=trainer.global_step if trainer else 0,
            max_epochs=trainer.max_epochs if trainer else None,
            resumed_from=self.resumed_from,
            first_batch_time=self.first_batch_time,
        ).write_if_possible(self.path)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.beat(trainer, HeartbeatPhase.FIT, force=True)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.first_batch_time is None:
            self.first_batch_time = time.time()
            self.beat(trainer, HeartbeatPhase.TRAIN, force=True)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.beat(trainer, HeartbeatPhase.TRAIN)

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.beat(trainer, HeartbeatPhase.VALIDATE)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.beat(trainer, HeartbeatPhase.TRAIN, force=True)

    def on_test_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.beat(trainer, HeartbeatPhase.TEST)


class ResumeStateCallback(pl.Callback):
    """Puts what Lightning's checkpoint lacks into it: the global RNG states and
    the metrics of the epoch it was saved at.

    The RNG states are restored just before the first training batch after a
    resume, not when the checkpoint loads: between loading and training,
    Lightning's sanity check and DataLoader set-up draw random numbers that an
    uninterrupted run never drew at that point.
    """

    def __init__(self) -> None:
        self._pending_rng: dict[str, Any] | None = None
        self.restored_metrics: dict[str, float] = {}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        metrics, _ = scalar_metrics(trainer.callback_metrics, warn=False)
        checkpoint[CHECKPOINT_KEY] = {"rng": capture_rng_state(), "metrics": metrics}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY) or {}
        self._pending_rng = saved.get("rng")
        self.restored_metrics = dict(saved.get("metrics", {}))

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None


def scalar_metrics(
    metrics: Mapping[str, Any], warn: bool = True
) -> tuple[dict[str, float], list[str]]:
    """Every scalar metric as a float; the names of the others, which are skipped."""
    scalars: dict[str, float] = {}
    skipped: list[str] = []
    for name, value in metrics.items():
        try:
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise TypeError(f"a tensor of shape {tuple(value.shape)}")
                number = float(value.detach().cpu().item())
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                number = float(value)
            else:
                raise TypeError(f"a {type(value).__name__}")
        except (TypeError, ValueError, RuntimeError) as exc:
            skipped.append(name)
            if warn:
                warnings.warn(f"metric {name!r} is not a scalar ({exc}); skipped", stacklevel=2)
            continue
        scalars[name] = number
    return scalars, skipped
