"""The in-memory form every data source ends in: a `Dataset` of `Split`s of uint8 images and int64 labels."""
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
