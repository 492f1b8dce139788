"""Tests for the built-in segmentation task (worker/tasks/segmentation.py)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    import pytorch_lightning as pl
    import torch

# torch, Lightning and the task (which imports both) are imported inside each
# test, so collecting this module stays cheap. Lightning's advice about worker
# counts and its own deprecation notices are noise here.
pytestmark = [
    pytest.mark.lightning,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore:.*treespec"),
]


def _trainer(**overrides: object) -> pl.Trainer:
    import pytorch_lightning as pl

    kwargs: dict[str, object] = dict(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)  # type: ignore[arg-type]


def test_encoder_is_a_resnet34() -> None:
    import torch

    from worker.tasks.segmentation import (
        BasicBlock,
        ResNet34Encoder,
    )

    encoder = ResNet34Encoder(in_channels=3)
    per_stage = [sum(isinstance(m, BasicBlock) for m in s.modules()) for s in encoder.stages]
    assert per_stage == [3, 4, 6, 3]
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    # stem + 2 per block + 3 projection shortcuts (first block of stages 2-4)
    assert len(convs) == 1 + 2 * 16 + 3
    assert sum(c.kernel_size == (1, 1) for c in convs) == 3
    # torchvision's resnet34 has 21,797,672 parameters; minus its fc layer (512*1000+1000)
    assert sum(p.numel() for p in encoder.parameters()) == 21_797_672 - 513_000

    features = encoder(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in features] == [
        (64, 32, 48),
        (64, 16, 24),
        (128, 8, 12),
        (256, 4, 6),
        (512, 2, 3),
    ]
    assert ResNet34Encoder(in_channels=1)(torch.randn(2, 1, 32, 32))[-1].shape == (2, 512, 1, 1)


@pytest.mark.parametrize(("classes", "in_channels", "hw"), [(1, 3, (64, 64)), (2, 1, (50, 70))])
def test_unet_output_matches_input_size(
    classes: int, in_channels: int, hw: tuple[int, int]
) -> None:
    import torch

    from worker.tasks.segmentation import UNetResNet34

    model = UNetResNet34(classes=classes, in_channels=in_channels, decoder_width=8)
    assert model.hparams["classes"] == classes and model.hparams["epochs"] is None
    out = model(torch.randn(2, in_channels, *hw))
    assert out.shape == (2, classes, *hw)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_shapes_dataset_items_are_fixed_by_seed_split_and_index() -> None:
    import torch

    from worker.tasks.segmentation import ShapesDataset

    first, second = ShapesDataset(6, 48, seed=3), ShapesDataset(6, 48, seed=3)
    forward = [first[i] for i in range(6)]
    backward = {i: second[i] for i in reversed(range(6))}
    for i, (image, mask) in enumerate(forward):
        assert torch.equal(image, backward[i][0]) and torch.equal(mask, backward[i][1])
        assert image.shape == (3, 48, 48) and image.dtype == torch.float32
        assert mask.shape == (1, 48, 48) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        # shapes are brighter than the background on average
        assert image[:, mask[0] > 0].mean() > image[:, mask[0] == 0].mean()
    assert not torch.equal(forward[0][0], forward[1][0])
    assert not torch.equal(first[0][0], ShapesDataset(6, 48, split="val", seed=3)[0][0])
    assert not torch.equal(first[0][0], ShapesDataset(6, 48, seed=4)[0][0])
    assert ShapesDataset(2, 32, in_channels=1)[0][0].shape == (1, 32, 32)
    with pytest.raises(IndexError):
        first[6]


def test_epoch_seeded_sampler_and_train_loader_order() -> None:
    import pytorch_lightning as pl

    from worker.tasks.sampling import EpochSeededSampler
    from worker.tasks.segmentation import ShapesDataModule

    sampler = EpochSeededSampler(20, seed=5)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(epoch0) == sorted(epoch1) == list(range(20))
    assert epoch0 != epoch1
    assert list(EpochSeededSampler(20, seed=5)) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) == epoch1

    def first_epoch_order(seed: int) -> list[int]:
        dm = ShapesDataModule(image_size=16, train_size=12, val_size=2, batch_size=4, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, EpochSeededSampler)
        return list(loader.sampler)

    assert first_epoch_order(7) == first_epoch_order(7) != first_epoch_order(8)
    pl.seed_everything(1234)
    assert ShapesDataModule().seed == 1234


def test_fit_logs_finite_metrics_and_epoch_f1() -> None:
    import pytorch_lightning as pl
    import torch

    from worker.tasks.segmentation import (
        ShapesDataModule,
        UNetResNet34,
    )

    pl.seed_everything(0)
    model = UNetResNet34(decoder_width=8, epochs=1)
    dm = ShapesDataModule(image_size=64, batch_size=2, train_size=4, val_size=2)
    trainer = _trainer()
    trainer.fit(model, datamodule=dm)
    metrics = trainer.callback_metrics
    for name in ("train/loss", "val/loss", "val/F1Score"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert 0.0 <= float(metrics["val/F1Score"]) <= 1.0
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert scheduler.total_steps == 2  # 1 epoch x 2 batches (limit_train_batches)

    # the logged F1 equals one computed by hand over the (single) validation batch
    model.eval()
    images, masks = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        pred = torch.sigmoid(model(images)) > 0.5
    truth = masks > 0.5
    tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
    expected = 1.0 if 2 * tp + fp + fn == 0 else float(2 * tp / (2 * tp + fp + fn))
    assert float(metrics["val/F1Score"]) == pytest.approx(expected, abs=1e-6)


def test_test_stage_logs_test_metrics_and_needs_test_size() -> None:
    import pytorch_lightning as pl

    from worker.tasks.segmentation import (
        ShapesDataModule,
        UNetResNet34,
    )

    pl.seed_everything(0)
    model = UNetResNet34(decoder_width=8)
    trainer = _trainer()
    trainer.test(model, datamodule=ShapesDataModule(image_size=64, batch_size=2, test_size=2))
    for name in ("test/loss", "test/F1Score"):
        assert name in trainer.callback_metrics
        assert math.isfinite(float(trainer.callback_metrics[name]))
    with pytest.raises(ValueError, match="test_size"):
        _trainer().test(model, datamodule=ShapesDataModule(image_size=64, batch_size=2))
    dm = ShapesDataModule(image_size=64)
    dm.setup("fit")
    with pytest.raises(ValueError, match="test_size"):
        dm.test_dataloader()


def _write_folder(root: Path, count: int = 5, hw: tuple[int, int] = (40, 48)) -> None:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image: np.ndarray
        if i % 2:  # HxWxC uint8
            image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        else:  # CxHxW float32
            image = rng.random((3, *hw), dtype=np.float32)
        mask = np.zeros(hw, dtype=np.uint8)
        mask[5 : 15 + i, 10:30] = 255
        np.save(root / "images" / f"img {i}.npy", image)
        np.save(root / "masks" / f"img {i}.npy", mask)
    (root / "images" / "notes.txt").write_text("ignored")


def test_folder_dataset_reads_npy_layouts(tmp_path: Path) -> None:
    import torch

    from worker.tasks.segmentation import FolderSegmentationDataset

    root = tmp_path / "my data"
    _write_folder(root)
    ds = FolderSegmentationDataset(root / "images", root / "masks", in_channels=3)
    assert len(ds) == 5
    for i in range(5):
        image, mask = ds[i]
        raw = np.load(root / "images" / f"img {i}.npy")
        expected = raw.transpose(2, 0, 1) / 255.0 if raw.dtype == np.uint8 else raw
        assert image.shape == (3, 40, 48) and image.dtype == torch.float32
        assert np.allclose(image.numpy(), expected, atol=1e-6)
        assert mask.shape == (1, 40, 48) and set(mask.unique().tolist()) == {0.0, 1.0}
        assert int(mask.sum()) == (10 + i) * 20
    with pytest.raises(ValueError, match="channels"):
        FolderSegmentationDataset(root / "images", root / "masks", in_channels=1)[0]


def test_folder_dataset_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.tasks.segmentation import FolderSegmentationDataset

    root = tmp_path / "bad data"
    _write_folder(root, count=2)
    np.save(root / "masks" / "orphan.npy", np.zeros((40, 48), dtype=np.uint8))
    with pytest.raises(ValueError, match="orphan"):
        FolderSegmentationDataset(root / "images", root / "masks")
    (root / "masks" / "orphan.npy").unlink()
    np.save(root / "images" / "big.npy", np.zeros((50, 48), dtype=np.float32))
    np.save(root / "masks" / "big.npy", np.zeros((50, 48), dtype=np.uint8))
    with pytest.raises(ValueError, match="one size"):
        FolderSegmentationDataset(root / "images", root / "masks")
    for sub in ("images", "masks"):
        (root / sub / "big.npy").unlink()
        (root / sub / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(ImportError, match="pip install pillow"):
        FolderSegmentationDataset(root / "images", root / "masks")


def test_data_module_trains_on_folder_data(tmp_path: Path) -> None:
    import pytorch_lightning as pl

    from worker.tasks.segmentation import (
        ShapesDataModule,
        UNetResNet34,
    )

    root = tmp_path / "my data"
    _write_folder(root, count=6)
    kwargs = dict(images_dir=str(root / "images"), masks_dir=str(root / "masks"), batch_size=2)
    dm = ShapesDataModule(val_fraction=0.34, **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    train, val = dm.splits["train"], dm.splits["val"]
    assert (len(train), len(val)) == (4, 2)  # type: ignore[arg-type]
    assert not set(train.indices) & set(val.indices)  # type: ignore[attr-defined]
    again = ShapesDataModule(val_fraction=0.34, seed=99, **kwargs)  # type: ignore[arg-type]
    again.setup("fit")
    assert again.splits["val"].indices == val.indices  # type: ignore[attr-defined]

    pl.seed_everything(0)
    model = UNetResNet34(decoder_width=8)
    trainer = _trainer(limit_train_batches=1)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 1
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert math.isfinite(float(trainer.callback_metrics["val/F1Score"]))


CUBLAS = "CUBLAS_WORKSPACE_CONFIG"


def test_same_seed_gives_bit_identical_training() -> None:
    import pytorch_lightning as pl
    import torch

    from worker.tasks.segmentation import (
        ShapesDataModule,
        UNetResNet34,
    )

    def run(seed: int) -> tuple[dict[str, float], torch.Tensor]:
        pl.seed_everything(seed)
        model = UNetResNet34(decoder_width=8, epochs=1)
        trainer = _trainer(deterministic=True)  # also proves no op refuses determinism
        trainer.fit(model, datamodule=ShapesDataModule(image_size=32, batch_size=2, train_size=4))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        return metrics, torch.cat([p.detach().flatten() for p in model.parameters()])

    # Trainer(deterministic=True) switches global torch flags and an env var: restore them.
    flag, cublas = torch.are_deterministic_algorithms_enabled(), os.environ.get(CUBLAS)
    try:
        first, again, other = run(3), run(3), run(4)
    finally:
        torch.use_deterministic_algorithms(flag)
        if cublas is None:
            os.environ.pop(CUBLAS, None)
        else:
            os.environ[CUBLAS] = cublas
    assert first[0] == again[0] and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])
