"""A LightningModule written the way Hydra projects write them (the
lightning-hydra-template layout): the network and the optimizer come in as
arguments, built by ``hydra.utils.instantiate`` from nested ``_target_``
entries, the optimizer as a ``_partial_`` that still needs the parameters.

Small enough that a 3-seed study of ``conf/examples/hydra_style`` finishes in
well under a minute on a CPU; the data is ``worker.tasks.quick.QuickDataModule``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from worker.tasks.quick import ClassifierSteps

__all__ = ["MLP", "HydraClassifier"]


class MLP(nn.Module):
    """The network a config nests inside the model: ``model.net._target_``."""

    def __init__(
        self, features: int = 16, hidden: int = 32, classes: int = 3, dropout: float = 0.1
    ):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class HydraClassifier(ClassifierSteps):
    """Classification with any ``net`` and any optimizer factory."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    ) -> None:
        super().__init__()
        # The network is a module of its own (saved with the weights); the
        # optimizer factory is not a hyperparameter a checkpoint can hold.
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer"])
        self.net = net
        self.optimizer_factory = optimizer

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
