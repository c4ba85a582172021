"""Datasets as uint8 tensors in memory, and the loader that augments them in batches on the device.

Every source (CIFAR archives, image folders) ends as a `Dataset` of `Split`s:
images uint8 [N, 3, H, W] and labels int64 [N]. Nothing downstream reads files.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 3, H, W], RGB
    labels: torch.Tensor  # int64 [N], 0 <= label < number of classes

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train: Split | None = None
    val: Split | None = None
    test: Split | None = None
    # Per-channel mean and std of the training images on the 0-1 scale; None when no training split was loaded.
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# Imported after Split and Dataset are defined, because these modules build them.
from resnet_cifar.data.dataset import load_dataset  # noqa: E402
from resnet_cifar.data.loader import Loader  # noqa: E402

__all__ = ["Dataset", "Loader", "Split", "load_dataset"]
