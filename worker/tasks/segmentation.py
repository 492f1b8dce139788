"""The built-in binary segmentation task of the seed's full example: a UNet with a
ResNet-34 encoder (``worker.tasks.unet``) on synthetic shapes or a folder of
images and masks (``worker.tasks.shapes``). Config files name the classes here.
"""

from __future__ import annotations

from worker.tasks.shapes import FolderSegmentationDataset, ShapesDataModule, ShapesDataset
from worker.tasks.unet import BasicBlock, ResNet34Encoder, UNetResNet34

__all__ = [
    "BasicBlock",
    "FolderSegmentationDataset",
    "ResNet34Encoder",
    "ShapesDataModule",
    "ShapesDataset",
    "UNetResNet34",
]
