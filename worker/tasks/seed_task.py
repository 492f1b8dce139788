"""The seed project's config shape, trained as a LightningModule.

A pytorch-smt config names a plain network as ``model:`` and puts the rest of
the task beside it at the top level::

    model:          {class_path: my_nets.Unet, init_args: {...}}     # a torch.nn.Module
    loss:           {class_path: torch.nn.BCEWithLogitsLoss}
    optimizer:      {class_path: torch.optim.Adam, init_args: {lr: 1e-3}}
    scheduler_list:                                   # optional
      - {class_path: torch.optim.lr_scheduler.StepLR, init_args: {step_size: 5}}
      - scheduler: {class_path: ...OneCycleLR, init_args: {max_lr: 1e-3, total_steps: 100}}
        interval: step                                # Lightning's scheduler keys
    train_dataset:  {class_path: my_data.Tiles, init_args: {...}}   # torch Datasets
    val_dataset:    {class_path: my_data.Tiles, init_args: {...}}
    test_dataset:   {class_path: my_data.Tiles, init_args: {...}}   # optional
    metrics:        [{class_path: torchmetrics.F1Score, init_args: {task: binary}}]
    hyperparameters: {batch_size: 8, num_workers: 0}

``worker.seed_shape.as_lightning`` rewrites such a config into ``model:
SeedTask`` and ``data: SeedData`` entries that wire those blocks together, so every guarantee of a
LightningModule run holds for it. Entries may be ``class_path``/``init_args``
or Hydra's ``_target_``. Logged: ``train/loss``, ``val/loss``,
``val/<Metric>`` (the metric's class name, e.g. ``val/F1Score``) and the same
under ``test/`` after training when ``test_dataset`` is given.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["SeedData", "SeedTask"]


def _build(entry: Mapping[str, Any], where: str, kind: type, **extra: Any) -> Any:
    from worker.build import instantiate

    return instantiate(entry, where, kind, **extra)


class SeedTask(pl.LightningModule):
    """A plain network trained with the config's loss, optimizer, schedulers and metrics."""

    def __init__(
        self,
        net: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler_list: Sequence[Any] = (),
        metrics: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = _build(net, "model", nn.Module)
        self.loss_fn = _build(loss, "loss", nn.Module)
        built = [_build(entry, f"metrics[{i}]", nn.Module) for i, entry in enumerate(metrics)]
        # One copy per stage: a metric's running state belongs to one loop.
        self.stage_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({type(m).__name__: copy.deepcopy(m) for m in built})
                for stage in ("val", "test")
            }
        )
        self._optimizer, self._schedulers = optimizer, list(scheduler_list)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        out = self(x)
        loss = self.loss_fn(out, y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True)
        if stage in self.stage_metrics:
            stage_metrics = cast(nn.ModuleDict, self.stage_metrics[stage])
            for name, module in stage_metrics.items():
                metric = cast(Any, module)  # a torchmetrics Metric
                metric.update(out, y)
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        optimizer = _build(self._optimizer, "optimizer", torch.optim.Optimizer,
                           params=self.parameters())  # fmt: skip
        if not self._schedulers:
            return optimizer
        schedulers = []
        for i, item in enumerate(self._schedulers):
            settings = dict(item) if "scheduler" in item else {"scheduler": item}
            settings["scheduler"] = _build(settings["scheduler"], f"scheduler_list[{i}]",
                                           object, optimizer=optimizer)  # fmt: skip
            schedulers.append(settings)
        return [optimizer], schedulers


class SeedData(pl.LightningDataModule):
    """DataLoaders over the config's datasets (``hyperparameters.batch_size`` and
    ``num_workers``); the training loader shuffles with the run's seeded RNG."""

    def __init__(
        self,
        train_dataset: Mapping[str, Any],
        val_dataset: Mapping[str, Any] | None = None,
        test_dataset: Mapping[str, Any] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.entries = {"train": train_dataset, "val": val_dataset, "test": test_dataset}
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets: dict[str, Dataset[Any]] = {}

    def setup(self, stage: str | None = None) -> None:
        for split, entry in self.entries.items():
            if entry is not None and split not in self.datasets:
                self.datasets[split] = _build(entry, f"{split}_dataset", Dataset)

    def _loader(self, split: str) -> DataLoader[Any]:
        return DataLoader(self.datasets[split], batch_size=self.batch_size,
                          shuffle=split == "train", num_workers=self.num_workers)  # fmt: skip

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train")

    def val_dataloader(self) -> Any:
        return self._loader("val") if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test")
