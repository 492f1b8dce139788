"""A Lightning training script that knows nothing of xorch: it logs with a
CSVLogger into the folder it is given, and xorch reads the run's metrics and
curves from that metrics.csv.

    xorch launch conf/examples/command/lightning_csv.yaml

Run by hand: python lightning_csv.py --seed 1 --out /tmp/x
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset


class Regressor(pl.LightningModule):
    def __init__(self, features: int = 8, hidden: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def _loss(self, batch: list[torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

# The data are the same for every seed; the seed changes the model's initial
# weights and the order of the batches.
data = torch.Generator().manual_seed(0)
x = torch.randn(512, 8, generator=data)
y = torch.sin(x[:, :1]) + 0.1 * torch.randn(512, 1, generator=data)
pl.seed_everything(args.seed)
train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
trainer = pl.Trainer(
    max_epochs=args.epochs,
    logger=CSVLogger(args.out),  # {run_dir}/lightning_logs/version_N/metrics.csv
    accelerator="cpu",
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
    log_every_n_steps=1,
)
trainer.fit(Regressor(), train, val)
