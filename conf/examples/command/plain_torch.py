"""A plain PyTorch training loop (no Lightning) that reports to xorch.

    xorch launch conf/examples/command/plain_torch.yaml

Run by hand (python plain_torch.py --seed 1 --out /tmp/x), ``report`` does nothing.
"""

from __future__ import annotations

import argparse
import os

import torch

from worker.report import report

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--resume", default="")  # xorch's {resume_from}: "" on a fresh start
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

torch.manual_seed(args.seed)
features = torch.randn(256, 8)
targets = features @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
train_x, val_x, train_y, val_y = features[:192], features[192:], targets[:192], targets[192:]
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
start = 0
if args.resume:  # a retry: carry on from the checkpoint this script wrote
    saved = torch.load(args.resume)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    start = saved["epoch"] + 1

for epoch in range(start, args.epochs):
    for batch in range(0, len(train_x), 32):
        loss = torch.nn.functional.mse_loss(
            model(train_x[batch : batch + 32]), train_y[batch : batch + 32]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        val_loss = torch.nn.functional.mse_loss(model(val_x), val_y).item()
    # One row per epoch: the curves of `xorch plot`, the run's metrics, a heartbeat.
    report(epoch=epoch, **{"train/loss": loss.item(), "val/loss": val_loss})
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
    torch.save(state, os.path.join(args.out, "last.ckpt"))  # where {resume_from} looks
