"""A tiny classification task that trains in about a second on a CPU.

For the quickstart and the test suite: a small MLP with dropout (so a resume
that lost the RNG state would show in its metrics) on Gaussian blobs generated
from ``data_seed``.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from worker.tasks.sampling import EpochSeededSampler, loader_generator

__all__ = ["ClassifierSteps", "QuickClassifier", "QuickDataModule"]


class ClassifierSteps(pl.LightningModule):
    """Cross-entropy steps logging ``{stage}/loss`` and ``{stage}/acc`` per epoch,
    for any ``self.net``; subclasses build the net and the optimizer."""

    net: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")


class QuickClassifier(ClassifierSteps):
    def __init__(
        self,
        features: int = 16,
        hidden: int = 32,
        classes: int = 3,
        lr: float = 0.05,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=float(self.hparams["lr"]), momentum=0.9)


class QuickDataModule(pl.LightningDataModule):
    """Gaussian blobs: the same data for every run (``data_seed``); the run seed
    (``seed``, by default the one the worker seeded torch with) drives shuffling.
    With ``folds`` > 1, the train and validation blobs are pooled and split in
    ``folds`` parts: part ``fold`` validates, the others train
    (``experiments_runner.folds: {n, key: data.init_args.fold}``)."""

    def __init__(
        self,
        features: int = 16,
        classes: int = 3,
        train_size: int = 256,
        val_size: int = 64,
        test_size: int = 0,
        batch_size: int = 32,
        data_seed: int = 0,
        seed: int | None = None,
        folds: int = 1,
        fold: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= fold < folds:
            raise ValueError(f"fold {fold} is not one of 0..{folds - 1} (folds: {folds})")
        self.batch_size = batch_size
        self.seed = torch.initial_seed() if seed is None else seed
        generator = torch.Generator().manual_seed(data_seed)
        centres = torch.randn(classes, features, generator=generator) * 0.35

        def blobs(n: int) -> TensorDataset:
            y = torch.randint(0, classes, (n,), generator=generator)
            x = centres[y] + torch.randn(n, features, generator=generator)
            return TensorDataset(x, y)

        self.train_set = blobs(train_size)
        self.val_set = blobs(val_size)
        if folds > 1:
            self.train_set, self.val_set = _fold_split(self.train_set, self.val_set, folds, fold)
        self.test_set = blobs(test_size) if test_size else None

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(self.train_set), self.seed),
            generator=loader_generator(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.batch_size, generator=loader_generator(self.seed)
        )

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError("QuickDataModule has no test split: set test_dataset: {size: N}")
        return DataLoader(
            self.test_set, batch_size=self.batch_size, generator=loader_generator(self.seed)
        )


def _fold_split(
    train: TensorDataset, val: TensorDataset, folds: int, fold: int
) -> tuple[TensorDataset, TensorDataset]:
    """Part ``fold`` of ``folds`` contiguous parts of train + val, and the rest."""
    x = torch.cat([train.tensors[0], val.tensors[0]])
    y = torch.cat([train.tensors[1], val.tensors[1]])
    part = torch.arange(len(y)) * folds // len(y) == fold
    return TensorDataset(x[~part], y[~part]), TensorDataset(x[part], y[part])
