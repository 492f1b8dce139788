"""A UNet over a randomly initialised ResNet-34 encoder, for binary segmentation.

Logs train/loss, val/loss, val/F1Score, and test/loss, test/F1Score when tested.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn
from pytorch_lightning.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn

__all__ = ["BasicBlock", "ResNet34Encoder", "UNetResNet34"]

Sample = tuple[Tensor, Tensor]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (1x1 conv-BN when stride or width changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ResNet34Encoder(nn.Module):
    """ResNet-34 trunk; ``forward`` returns the features at strides 2, 4, 8, 16 and 32."""

    blocks_per_stage = (3, 4, 6, 3)
    out_channels = (64, 64, 128, 256, 512)

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, width_in = [], 64
        for i, (count, width) in enumerate(
            zip(self.blocks_per_stage, self.out_channels[1:], strict=True)
        ):
            blocks = [BasicBlock(width_in, width, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            width_in = width
        self.stages = nn.ModuleList(stages)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = [self.stem(x)]
        out = self.pool(features[0])
        for stage in self.stages:
            out = stage(out)
            features.append(out)
        return features


def _conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]


class _DecoderBlock(nn.Module):
    """Upsample 2x, concatenate the skip features (if any), then two conv-BN-ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *_conv_bn_relu(in_ch + skip_ch, out_ch), *_conv_bn_relu(out_ch, out_ch)
        )

    def forward(self, x: Tensor, skip: Tensor | None, size: torch.Size) -> Tensor:
        # Nearest 2x upsampling from expand + reshape: its backward is a plain sum, so it
        # is deterministic on every device. Stride-2 layers map n pixels to ceil(n / 2),
        # hence 2x always covers ``size`` and a crop handles odd sizes.
        n, c, h, w = x.shape
        x = x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)
        x = x[:, :, : size[0], : size[1]]
        return self.convs(x if skip is None else torch.cat([x, skip], dim=1))


class UNetResNet34(pl.LightningModule):
    """UNet over ``ResNet34Encoder``: BCE-with-logits loss, pixel F1 at threshold 0.5.

    Decoder widths are ``decoder_width * (8, 4, 2, 1, 1/2)``; the last block runs at
    input resolution, then a 1x1 head gives ``classes`` logit maps. With classes > 1
    the masks need one 0/1 channel per class (multi-label) and F1 pools all channels.
    """

    def __init__(
        self,
        classes: int = 1,
        in_channels: int = 3,
        max_lr: float = 1e-3,
        decoder_width: int = 32,
        epochs: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.max_lr, self.epochs = max_lr, epochs
        self.encoder = ResNet34Encoder(in_channels)
        widths = [decoder_width * m for m in (8, 4, 2, 1)] + [max(decoder_width // 2, 1)]
        skips = [*reversed(ResNet34Encoder.out_channels[:-1]), 0]
        blocks, width_in = [], ResNet34Encoder.out_channels[-1]
        for skip_ch, width in zip(skips, widths, strict=True):
            blocks.append(_DecoderBlock(width_in, skip_ch, width))
            width_in = width
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(width_in, classes, 1)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self._counts = torch.zeros(3, dtype=torch.long)  # TP, FP, FN of the running epoch

    def forward(self, x: Tensor) -> Tensor:
        features = self.encoder(x)
        out = features[-1]
        for block, skip in zip(self.decoder, [*reversed(features[:-1]), None], strict=True):
            out = block(out, skip, x.shape[-2:] if skip is None else skip.shape[-2:])
        return self.head(out)

    def training_step(self, batch: Sample, batch_idx: int) -> Tensor:
        images, masks = batch
        loss = self.loss_fn(self(images), masks.float())
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    def _eval_step(self, batch: Sample, prefix: str) -> Tensor:
        images, masks = batch
        logits = self(images)
        loss = self.loss_fn(logits, masks.float())
        pred, truth = torch.sigmoid(logits) > 0.5, masks > 0.5
        self._counts += torch.stack(
            [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()]
        )
        self.log(f"{prefix}/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(images))
        return loss

    def _log_f1(self, name: str) -> None:
        tp, fp, fn = self.trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
        denom = 2 * tp + fp + fn  # no positives predicted or present counts as a perfect 1.0
        self.log(name, 2 * tp / denom if denom else 1.0, prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        self._counts = torch.zeros(3, dtype=torch.long, device=self.device)

    def validation_step(self, batch: Sample, batch_idx: int) -> Tensor:
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_f1("val/F1Score")

    def on_test_epoch_start(self) -> None:
        self._counts = torch.zeros(3, dtype=torch.long, device=self.device)

    def test_step(self, batch: Sample, batch_idx: int) -> Tensor:
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_f1("test/F1Score")

    def configure_optimizers(self) -> OptimizerLRScheduler:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.max_lr)
        if self.epochs is None:
            return optimizer
        # estimated_stepping_batches sets up the train loader, so num_training_batches
        # is known afterwards (with limit_train_batches and accumulation applied).
        trainer_steps = self.trainer.estimated_stepping_batches
        batches = self.trainer.num_training_batches
        accumulate = self.trainer.accumulate_grad_batches
        total = self.epochs * math.ceil(batches / accumulate) if math.isfinite(batches) else 0
        if trainer_steps > total:
            if not math.isfinite(trainer_steps):
                raise ValueError("OneCycleLR needs a finite run: set max_epochs or max_steps")
            rank_zero_warn(
                f"epochs={self.epochs} is shorter than the trainer's run: the OneCycleLR"
                f" schedule is stretched to {int(trainer_steps)} steps."
            )
            total = int(trainer_steps)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.max_lr, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
