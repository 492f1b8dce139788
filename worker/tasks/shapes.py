"""Segmentation data that needs no download: synthetic shapes drawn on the fly,
or a folder of the user's own images and masks.

The data depend on ``data_seed`` alone, so every run of a seed study sees the
same images; the run seed changes the order of training batches.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from worker.tasks.sampling import EpochSeededSampler, loader_generator

__all__ = ["FolderSegmentationDataset", "ShapesDataModule", "ShapesDataset"]

Sample = tuple[Tensor, Tensor]
_SUFFIXES = {".npy", ".png", ".jpg", ".jpeg"}


def _item_seed(base_seed: int, split: str, index: int) -> int:
    """A 63-bit seed from (base seed, split, index); unlike hash() it is stable across runs."""
    digest = hashlib.blake2b(f"{base_seed}|{split}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class ShapesDataset(Dataset[Sample]):
    """Noisy images with 1-3 filled circles, rectangles or triangles; the mask is their union.

    Item ``i`` comes from a generator seeded by ``(seed, split, i)`` alone, so it is the
    same whenever and in whatever order it is read. Returns image [C,H,W], mask [1,H,W].
    """

    def __init__(
        self,
        size: int,
        image_size: int = 256,
        in_channels: int = 3,
        split: str = "train",
        seed: int = 0,
    ) -> None:
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        self.size, self.image_size, self.in_channels = size, image_size, in_channels
        self.split, self.seed = split, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.size:
            raise IndexError(index)
        g = torch.Generator().manual_seed(_item_seed(self.seed, self.split, index))

        def uniform(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand((), generator=g))

        s, c = self.image_size, self.in_channels
        image = (0.35 * torch.rand(c, 1, 1, generator=g)).expand(c, s, s)
        centres = torch.arange(s, dtype=torch.float32) + 0.5
        yy, xx = torch.meshgrid(centres, centres, indexing="ij")
        mask = torch.zeros(s, s, dtype=torch.bool)
        for _ in range(int(torch.randint(1, 4, (), generator=g))):
            kind = int(torch.randint(0, 3, (), generator=g))
            cy, cx, size = uniform(0.2 * s, 0.8 * s), uniform(0.2 * s, 0.8 * s), uniform(0.08, 0.22)
            if kind == 0:  # circle
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size * s) ** 2
            elif kind == 1:  # axis-aligned rectangle
                aspect = uniform(0.5, 2.0)
                shape = ((yy - cy).abs() <= size * s * aspect) & ((xx - cx).abs() <= size * s)
            else:
                # Vertices on a circle 120 degrees apart give or take 0.5 rad: every gap
                # stays under pi, so the triangle is never degenerate and holds its centre.
                start, r = uniform(0.0, 2 * math.pi), 1.3 * size * s
                angles = [start + k * 2 * math.pi / 3 + uniform(-0.5, 0.5) for k in range(3)]
                pts = [(cy + r * math.sin(a), cx + r * math.cos(a)) for a in angles]
                sides = [
                    (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0)
                    for (y0, x0), (y1, x1) in zip(pts, pts[1:] + pts[:1], strict=True)
                ]
                shape = torch.stack(sides).ge(0).all(0) | torch.stack(sides).le(0).all(0)
            shape[min(int(cy), s - 1), min(int(cx), s - 1)] = True  # never empty, even if tiny
            image = torch.where(shape, 0.55 + 0.45 * torch.rand(c, 1, 1, generator=g), image)
            mask |= shape
        noise = uniform(0.03, 0.12) * torch.randn(c, s, s, generator=g)
        return (image + noise).clamp(0.0, 1.0).float(), mask.float().unsqueeze(0)


def _read(path: Path, *, mask: bool = False, shape_only: bool = False) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, mmap_mode="r" if shape_only else None)
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            f"Reading {path} needs Pillow, which is not installed: run "
            "`pip install pillow` (or convert the files to .npy)."
        ) from exc
    with Image.open(path) as img:
        if mask or img.mode not in ("L", "RGB", "RGBA", "I;16", "I", "F"):
            img = img.convert("L" if mask else "RGB")
        return np.asarray(img)


class FolderSegmentationDataset(Dataset[Sample]):
    """Images and binary masks from two folders, paired by file stem; nothing is resized.

    ``.npy`` images may be HxW, HxWxC or CxHxW and masks HxW; PNG/JPG need Pillow. All
    images must share one size. Integer images are scaled to [0, 1] by their dtype's
    maximum, float images are kept as they are; masks become ``mask > 0``.
    """

    def __init__(
        self, images_dir: str | Path, masks_dir: str | Path, in_channels: int | None = None
    ) -> None:
        self.images, self.masks = self._by_stem(Path(images_dir)), self._by_stem(Path(masks_dir))
        unpaired = sorted(set(self.images) ^ set(self.masks))
        if unpaired:
            raise ValueError(f"images and masks must pair up by file stem: {unpaired[:10]}")
        if not self.images:
            raise ValueError(f"no .npy/.png/.jpg/.jpeg files in {images_dir}")
        self.stems, self.in_channels = sorted(self.images), in_channels
        sizes = {
            stem: _read(self.masks[stem], mask=True, shape_only=True).shape for stem in self.stems
        }
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"all images and masks must have one size (and masks be HxW); "
                f"found {sorted(set(sizes.values()))}"
            )
        self.hw = next(iter(sizes.values()))
        if len(self.hw) != 2:
            raise ValueError(f"masks must be HxW arrays, found shape {self.hw}")

    @staticmethod
    def _by_stem(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            raise FileNotFoundError(f"not a directory: {folder}")
        found: dict[str, Path] = {}
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES):
            if path.stem in found:
                raise ValueError(f"two files share the stem {path.stem!r} in {folder}")
            found[path.stem] = path
        return found

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> Sample:
        path = self.images[self.stems[index]]
        raw = _read(path)
        if raw.shape == self.hw:
            raw = raw[None]
        elif raw.ndim == 3 and raw.shape[:2] == self.hw:
            raw = raw.transpose(2, 0, 1)  # HxWxC -> CxHxW
        elif raw.ndim != 3 or raw.shape[1:] != self.hw:
            raise ValueError(f"image {path} has shape {raw.shape}, its mask is {self.hw}")
        if self.in_channels is not None and raw.shape[0] != self.in_channels:
            raise ValueError(f"{path} has {raw.shape[0]} channels; in_channels={self.in_channels}")
        image = torch.from_numpy(np.array(raw, dtype=np.float32))
        if np.issubdtype(raw.dtype, np.integer):
            image /= float(np.iinfo(raw.dtype).max)
        mask = torch.from_numpy(np.array(_read(self.masks[self.stems[index]], mask=True) > 0))
        return image, mask.float().unsqueeze(0)


class ShapesDataModule(pl.LightningDataModule):
    """Synthetic shapes, or the user's folders of images/masks, in a seed-stable order.

    ``data_seed`` fixes the data (and the folder train/val split); ``seed`` fixes the
    batch order and defaults to ``torch.initial_seed()`` at construction, which is the
    run seed after ``seed_everything``. With folder data, ``test_size > 0`` holds that
    many items out as a test split; otherwise testing reuses the validation split.
    """

    def __init__(
        self,
        image_size: int = 256,
        in_channels: int = 3,
        train_size: int = 64,
        val_size: int = 16,
        test_size: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
        data_seed: int = 0,
        seed: int | None = None,
        images_dir: str | None = None,
        masks_dir: str | None = None,
        val_fraction: float = 0.2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if (images_dir is None) != (masks_dir is None):
            raise ValueError("give both images_dir and masks_dir, or neither")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
        self.image_size, self.in_channels, self.data_seed = image_size, in_channels, data_seed
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.batch_size, self.num_workers = batch_size, num_workers
        self.folders = (images_dir, masks_dir) if images_dir and masks_dir else None
        self.val_fraction = val_fraction
        # An unseeded torch.initial_seed() has 64 bits, too many for the sampler's seed
        # arithmetic; seeds below 2**32 (every seed_everything seed) pass unchanged.
        self.seed = (torch.initial_seed() if seed is None else seed) % 2**32
        self.splits: dict[str, Dataset[Sample]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.folders is not None:
            full = FolderSegmentationDataset(*self.folders, in_channels=self.in_channels)
            n_test = self.sizes["test"]
            n_val = min(
                max(round(self.val_fraction * (len(full) - n_test)), 1), len(full) - n_test - 1
            )
            if n_val < 1:
                raise ValueError(f"{len(full)} images are too few for train, val and test splits")
            order = torch.randperm(len(full), generator=loader_generator(self.data_seed)).tolist()
            val, test = order[:n_val], order[n_val : n_val + n_test]
            self.splits = {
                "train": Subset(full, order[n_val + n_test :]),
                "val": Subset(full, val),
                "test": Subset(full, test or val),
            }
            return
        self.splits = {
            split: ShapesDataset(n, self.image_size, self.in_channels, split, self.data_seed)
            for split, n in self.sizes.items()
            if n > 0 or split != "test"
        }
        if stage == "test":
            self._loader("test")

    def _loader(self, split: str) -> DataLoader[Sample]:
        if split not in self.splits:
            if split == "test" and self.sizes["test"] == 0 and self.folders is None:
                raise ValueError(
                    "ShapesDataModule has no test data: set test_size > 0 (a "
                    "`test_dataset: {size: N}` block in the study config does so)"
                )
            raise RuntimeError(f"no {split} split: call setup() first")
        dataset = self.splits[split]
        n = len(dataset)  # type: ignore[arg-type]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=EpochSeededSampler(n, self.seed) if split == "train" else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=loader_generator(self.seed),
        )

    def train_dataloader(self) -> DataLoader[Sample]:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader[Sample]:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[Sample]:
        return self._loader("test")
