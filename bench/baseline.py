"""The classic per-image torchvision pipeline that the benchmarks compare against.

Most CIFAR repositories wrap their images in a map-style dataset of PIL images and let a
DataLoader's worker processes transform them one at a time; this is that dataset.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import transforms


class PillowImages(torch.utils.data.Dataset):
    """uint8 HWC images served as PIL images through `transform`, the usual torchvision setup."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: transforms.Compose) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])
