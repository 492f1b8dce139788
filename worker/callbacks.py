"""Callbacks the worker adds to every Trainer."""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from orchestrator.contract.records import Heartbeat, HeartbeatPhase, RankProgress
from worker.seeding import capture_rng_state, restore_rng_state

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "ErrorAtOnceHooks",
    "HeartbeatHooks",
    "OwnCallbacks",
    "RankProgressHooks",
    "ResumeStateHooks",
    "callbacks_for",
    "scalar_metrics",
]

CHECKPOINT_KEY = "xorch"


class HeartbeatHooks:
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


class ErrorAtOnceHooks:
    """Writes the run's error record the moment an exception reaches the
    Trainer, before its teardown: in a DDP run the teardown closes the process
    group, and the other ranks then fail too; the first record written is the
    one that stands (``worker.ranks.write_first_error``)."""

    def __init__(self, record: Callable[[BaseException], object]) -> None:
        self.record = record

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.record(exception)


class RankProgressHooks:
    """In a run of several ranks, each rank notes where it is in the step
    (batch start, backward, batch end) in its own small file. When a rank
    hangs, the others wait for it at the next collective, one point further:
    the parent's hang verdict names the rank that is behind (see
    ``orchestrator.supervise``). A plain write and rename, no fsync: a few per
    step must cost next to nothing."""

    def __init__(self, path_of_rank: Callable[[int], Path]) -> None:
        self.path_of_rank = path_of_rank
        self.passed = 0

    def _note(self, trainer: pl.Trainer, point: str) -> None:
        if trainer.world_size < 2:
            return
        rank = trainer.global_rank
        path = self.path_of_rank(rank)
        self.passed += 1
        note = RankProgress(rank, os.getpid(), self.passed, trainer.global_step, point, time.time())
        temp = path.with_name(f".{path.name}.tmp")
        try:
            temp.write_text(json.dumps(note.to_json()), encoding="utf-8")
            os.replace(temp, path)
        except OSError:
            pass  # a note, not a result

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._note(trainer, "batch_start")

    def on_before_backward(self, trainer: pl.Trainer, *args: Any) -> None:
        self._note(trainer, "backward")

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._note(trainer, "batch_end")


class ResumeStateHooks:
    """Puts what Lightning's checkpoint lacks into it: the global RNG states and
    the metrics of the epoch it was saved at, and puts the states back so that a
    resumed run draws the very numbers an uninterrupted one draws.

    In an uninterrupted run, the states saved at the end of epoch e-1 are next
    used by epoch e's ``on_train_epoch_start`` hooks and then by ``iter()`` over
    the train DataLoader, which draws the workers' base seed (a fresh iterator)
    and the shuffle order (``RandomSampler``, at its first batch). A resumed run
    differs before that point: it runs ``on_fit_start``, ``on_train_start`` and
    the sanity check, and Lightning makes the train iterator in
    ``FitLoop.setup_data()`` and reuses it for epoch e instead of calling
    ``iter()`` at the epoch start; with ``persistent_workers`` that iterator
    even draws a base seed the uninterrupted run never drew. So the states go
    back at the first ``on_train_epoch_start`` (this callback is the Trainer's
    first), and the epoch loop calls ``iter()`` once more where an uninterrupted
    run calls it, so that iterator draws from the restored states.
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
        if self._pending_rng is not None:
            _iterate_afresh_at_epoch_start(trainer, self._restore_pending)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_pending()

    def _restore_pending(self) -> None:
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None


@dataclass(frozen=True)
class OwnCallbacks:
    """xorch's callbacks as subclasses of one package's ``Callback``: a Trainer
    of ``lightning.pytorch`` takes only its own package's callbacks, and so does
    one of ``pytorch_lightning``."""

    heartbeat: type[HeartbeatHooks]
    error_at_once: type[ErrorAtOnceHooks]
    rank_progress: type[RankProgressHooks]
    resume_state: type[ResumeStateHooks]


@functools.cache
def callbacks_for(pkg: ModuleType) -> OwnCallbacks:
    """The hooks above on ``pkg.Callback`` (one class per package, made once)."""

    def on_callback(hooks: type[Any]) -> Any:
        name = hooks.__name__.replace("Hooks", "Callback")
        return type(name, (hooks, pkg.Callback), {"__module__": __name__})

    return OwnCallbacks(
        heartbeat=on_callback(HeartbeatHooks),
        error_at_once=on_callback(ErrorAtOnceHooks),
        rank_progress=on_callback(RankProgressHooks),
        resume_state=on_callback(ResumeStateHooks),
    )


def _iterate_afresh_at_epoch_start(trainer: pl.Trainer, before: Callable[[], None]) -> None:
    """Make the next training epoch call ``iter()`` on its data, as every epoch
    after the first does in a run that was never resumed (Lightning skips that
    call on a resume and keeps the iterator it made in ``setup_data``).

    ``before`` runs first: it restores the RNG states if Lightning skipped the
    epoch-start hooks. Once only; not for a restart in the middle of an epoch
    or for loaders that keep their own position (``state_dict``), whose
    iterator Lightning has already moved to where the checkpoint left it.
    """
    epoch_loop = trainer.fit_loop.epoch_loop
    original = epoch_loop.on_run_start

    def on_run_start(data_fetcher: Any) -> None:
        del epoch_loop.on_run_start  # back to the class's method: once only
        before()
        loaders = data_fetcher.combined_loader.flattened
        own_position = any(hasattr(loader, "load_state_dict") for loader in loaders)
        if epoch_loop.batch_progress.current.ready == 0 and not own_position:
            iter(data_fetcher)
        original(data_fetcher)

    epoch_loop.on_run_start = on_run_start  # type: ignore[method-assign]


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
